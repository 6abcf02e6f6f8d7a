"""The raw Redis client every producer uses (django-redis's pool; keys come from canvas.keys)."""

from __future__ import annotations

import redis
from django_redis import get_redis_connection


def get_redis() -> redis.Redis:
    """The shared client. Keys written through it carry no cache prefix: canvas.keys names them."""
    return get_redis_connection("default")
