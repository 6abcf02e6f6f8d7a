"""Settings for the test suite: the real PostgreSQL and Redis, isolated per test worker.

Each pytest-xdist worker gets its own Redis database number (pytest-django gives each its own SQL
database); tests/conftest.py flushes that Redis database around every test.
"""

import os
from urllib.parse import urlsplit, urlunsplit

from canvas_project.settings import *  # noqa: F403
from canvas_project.settings import CACHES, REDIS_URL, _celery_broker_url

_worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
REDIS_TEST_DB = int(os.environ.get("REDIS_TEST_DB_BASE", "1")) + int(_worker.removeprefix("gw") or 0)


def _with_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    if parts.scheme == "unix":
        query = "&".join([q for q in parts.query.split("&") if q and not q.startswith("db=")] + [f"db={db}"])
        # urlunsplit would drop the empty host and write unix:/path, which redis-py refuses
        return f"unix://{parts.path}?{query}"
    return urlunsplit(parts._replace(path=f"/{db}"))


REDIS_URL = _with_db(REDIS_URL, REDIS_TEST_DB)
CACHES["default"]["LOCATION"] = REDIS_URL
CELERY_BROKER_URL = _celery_broker_url(REDIS_URL)
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
INTERNAL_ENGINE_TOKENS = ["test-engine-token-primary", "test-engine-token-rotated"]
DEBUG = False
