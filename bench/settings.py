"""Settings of the benchmarks: the project's settings, served as production serves them.

DEBUG is off (with DEBUG on Django records every SQL query and DRF adds its browsable renderer),
and the URL map adds one bare authenticated endpoint as the baseline (bench/urls.py). The database
and Redis come from DATABASE_URL / REDIS_URL, which bench/canvas_get.py points at a dedicated
database (deal_canvas_bench) and Redis database number (14).
"""

from canvas_project.settings import *  # noqa: F403
from canvas_project.settings import REST_FRAMEWORK

DEBUG = False
ROOT_URLCONF = "bench.urls"
REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"] = [
    name for name in REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"] if not name.endswith("BrowsableAPIRenderer")
]
