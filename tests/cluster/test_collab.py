"""tests.canvas.test_collab_api on the Redis Cluster (see conftest.py)."""

from tests.canvas.test_collab_api import *  # noqa: F403
