"""tests.superadmin.test_purge_api on the Redis Cluster (see conftest.py)."""

from tests.superadmin.test_purge_api import *  # noqa: F403
