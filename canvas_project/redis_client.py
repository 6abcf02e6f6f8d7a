"""The raw Redis client every producer uses (django-redis's pool; keys come from canvas_project.keys)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import redis
from django_redis import get_redis_connection


def get_redis() -> redis.Redis:
    """The shared client. Keys written through it carry no cache prefix: canvas_project.keys names them."""
    return get_redis_connection("default")


class LuaScript:
    """A Lua script run by its SHA1 (EVALSHA), so the source crosses the wire and is hashed by Redis once.

    A server that does not know it yet (fresh, restarted, SCRIPT FLUSH) answers NOSCRIPT; the script is then
    run with EVAL, which also caches it. Same replies and errors as EVAL.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def __call__(self, keys: Sequence, args: Sequence = (), *, client: redis.Redis | None = None):
        client = client if client is not None else get_redis()
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            return client.eval(self.source, len(keys), *keys, *args)
