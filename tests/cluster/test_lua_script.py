"""tests.canvas_project.test_lua_script on the Redis Cluster (see conftest.py). The single-node module's
first test reads one server's script cache and command stats; on a cluster a script lives on the node of
its keys' slot, so it is not re-run here."""

from tests.canvas_project.test_lua_script import (  # noqa: F401
    redis_client,
    test_a_script_error_is_raised_as_with_eval,
    test_keys_in_several_cluster_slots_are_refused_before_redis_sees_them,
)
