"""tests.superadmin.test_purge_service on the Redis Cluster (see conftest.py)."""

from tests.superadmin.test_purge_service import *  # noqa: F403
