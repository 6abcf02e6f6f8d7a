"""tests.deals.test_auth_api on the Redis Cluster (see conftest.py)."""

from tests.deals.test_auth_api import *  # noqa: F403
