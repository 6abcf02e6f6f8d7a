"""The Django cache backend on the Redis Cluster: with REDIS_CLUSTER it shares get_redis()'s cluster client
(canvas_project.redis_client.ClusterCacheClient), and multi-key calls over keys of several slots work."""

from __future__ import annotations

from django.core.cache import caches
from django.test import override_settings

from canvas_project.redis_client import get_redis


def test_the_cache_speaks_to_the_cluster_across_slots(on_cluster, settings):
    config = {**settings.CACHES["default"], "LOCATION": on_cluster.url}
    config["OPTIONS"] = {**config["OPTIONS"], "CLIENT_CLASS": "canvas_project.redis_client.ClusterCacheClient"}
    with override_settings(CACHES={"default": config}):
        cache = caches["default"]
        assert cache.client.get_client() is get_redis()
        names = [f"probe-{n}" for n in range(12)]  # a dozen names land in several slots
        cache.set_many({name: n for n, name in enumerate(names)}, timeout=60)
        assert cache.get_many([*names, "absent"]) == {name: n for n, name in enumerate(names)}
        assert cache.incr("probe-3") == 4
        cache.delete_many(names)
        assert cache.get_many(names) == {}
