"""canvas_project.redis_client.LuaScript: EVALSHA, and EVAL when the server does not know the script."""

from __future__ import annotations

import uuid

import pytest
import redis

from canvas_project.redis_client import LuaScript, get_redis


@pytest.fixture
def redis_client():
    return get_redis()


def _calls(client, command: str) -> int:
    return int(client.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0))


def test_an_unknown_script_is_sent_once_then_run_by_its_sha(redis_client):
    script = LuaScript(f"-- {uuid.uuid4()}\nreturn {{KEYS[1], ARGV[1], ARGV[2]}}")
    assert redis_client.script_exists(script.sha) == [False]
    assert script(["k"], ["a", 2], client=redis_client) == [b"k", b"a", b"2"]
    assert redis_client.script_exists(script.sha) == [True]  # EVAL cached it
    evals, evalshas = _calls(redis_client, "eval"), _calls(redis_client, "evalsha")
    assert script(["k2"], ["b", 3], client=redis_client) == [b"k2", b"b", b"3"]
    assert (_calls(redis_client, "eval"), _calls(redis_client, "evalsha")) == (evals, evalshas + 1)


def test_a_script_error_is_raised_as_with_eval(redis_client):
    script = LuaScript(f"-- {uuid.uuid4()}\nreturn redis.call('INCR', KEYS[1])")
    name = f"test:lua:{uuid.uuid4()}"
    redis_client.set(name, "not a number", ex=60)
    for _ in range(2):  # by EVAL (unknown), then by EVALSHA
        with pytest.raises(redis.exceptions.ResponseError):
            script([name], client=redis_client)


def test_keys_in_several_cluster_slots_are_refused_before_redis_sees_them(redis_client):
    # a cluster answers CROSSSLOT; the check runs on a single node too, so the single-node suite keeps the rule
    script = LuaScript(f"-- {uuid.uuid4()}\nreturn #KEYS")
    with pytest.raises(ValueError, match="share a cluster slot"):
        script(["canvas:session:{a}", "canvas:session:{b}"], client=redis_client)
    assert script(["ratelimit:{login}:x:1", "ratelimit:{login}:y:2"], client=redis_client) == 2
