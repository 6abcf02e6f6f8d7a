"""Settings for the test suite: the real PostgreSQL and Redis, isolated per test worker.

Each pytest-xdist worker gets its own Redis database number (pytest-django gives each its own SQL
database); tests/conftest.py flushes that Redis database around every test.
"""

import os
import socket
from urllib.parse import urlsplit, urlunsplit

from canvas_project.env import env_bool, env_str
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
# Test processes (and other people's) share one RabbitMQ, vhost "/": each test process publishes to and
# consumes its own queue (and exchange, named after it), deleted when the session ends (tests/conftest.py).
# Exported so that the service and worker processes a test starts (tests/servers.py, tests/faults/) use it.
CELERY_TASK_DEFAULT_QUEUE = f"deal-canvas-test.{socket.gethostname()}.{os.getpid()}"
os.environ["CELERY_TASK_DEFAULT_QUEUE"] = CELERY_TASK_DEFAULT_QUEUE
# The RabbitMQ of the worker tests' rabbitmq runs (tests/conftest.py `celery_broker`). Unreachable: those
# runs are skipped with the reason, or fail when CELERY_TEST_RABBITMQ_REQUIRED is true (.ci/run sets it).
CELERY_TEST_RABBITMQ_URL = env_str("CELERY_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")
CELERY_TEST_RABBITMQ_REQUIRED = env_bool("CELERY_TEST_RABBITMQ_REQUIRED", False)
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
INTERNAL_ENGINE_TOKENS = ["test-engine-token-primary", "test-engine-token-rotated"]
DEBUG = False
