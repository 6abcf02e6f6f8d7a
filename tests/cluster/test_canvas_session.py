"""tests.canvas.test_session_api on the Redis Cluster (see conftest.py)."""

from tests.canvas.test_session_api import *  # noqa: F403
