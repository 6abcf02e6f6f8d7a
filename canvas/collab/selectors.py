"""Reads of live collaboration: the steps log since a version. (Presence is read through a script that
also drops who aged out, so it lives with the writes in canvas.collab.services.)"""

from __future__ import annotations

import json

import redis

from canvas.collab.errors import StaleStepsVersion, StepsWindowGone
from canvas_project import keys
from canvas_project.errors import RedisUnavailable
from canvas_project.redis_client import get_redis
from deals.models import Deal

REDIS_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


def steps_since(*, deal: Deal, since: int) -> dict:
    """{version, steps: [{version, client_id, step}]} after `since`. Raises StepsWindowGone (410)."""
    key = keys.steps_key(deal.pk)
    try:
        client = get_redis()
        first = client.xrange(key, count=1)
        last = client.xrevrange(key, count=1)
        entries = client.xrange(key, min=f"(0-{since}", max="+") if last else []
    except REDIS_ERRORS as exc:
        raise RedisUnavailable() from exc
    version = int(last[0][0].decode().split("-")[1]) if last else 0
    oldest = int(first[0][0].decode().split("-")[1]) if first else version + 1
    if since > version:
        raise StaleStepsVersion(
            f"Version {since} is ahead of the document (version {version}); reload.", current_version=version
        )
    if since < oldest - 1:
        raise StepsWindowGone(
            f"Steps after version {since} are no longer kept (the window starts at {oldest}); reload the memo.",
            current_version=version,
        )
    steps = [
        {
            "version": int(raw_id.decode().split("-")[1]),
            "client_id": fields[b"c"].decode(),
            "step": json.loads(fields[b"s"]),
        }
        for raw_id, fields in entries
    ]
    return {"version": version, "steps": steps}
