"""tests.canvas.test_save_api on the Redis Cluster (see conftest.py)."""

from tests.canvas.test_save_api import *  # noqa: F403
