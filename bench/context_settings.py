"""Settings of bench/context.py: the project's settings, served as production serves them.

DEBUG is off (with DEBUG on Django records every SQL query and DRF adds its browsable renderer), one
internal engine token is configured for the load generator, and the URL map adds the bare contract
endpoint that is the benchmark's baseline (bench/context_urls.py). The database and Redis come from
DATABASE_URL / REDIS_URL, which bench/context.py points at its own database
(deal_canvas_bench_context) and Redis database number (11).
"""

import os

from canvas_project.settings import *  # noqa: F403
from canvas_project.settings import REST_FRAMEWORK

BENCH_ENGINE_TOKEN = os.environ.get("BENCH_CONTEXT_ENGINE_TOKEN", "bench-context-engine-token")

DEBUG = False
ROOT_URLCONF = "bench.context_urls"
INTERNAL_ENGINE_TOKENS = [BENCH_ENGINE_TOKEN]
REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"] = [
    name for name in REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"] if not name.endswith("BrowsableAPIRenderer")
]
