"""tests.canvas.test_rate_limit_processes on the Redis Cluster (see conftest.py)."""

from tests.canvas.test_rate_limit_processes import *  # noqa: F403
