"""Canvas events: every change of a deal's canvas is appended to the capped stream `canvas:events:{D}`.

The SSE endpoint serves this stream (stream ids are the SSE ids, so clients resume after
Last-Event-ID). Events are ephemeral by design: when Redis is down the change itself still lands in
PostgreSQL, the event is dropped and a warning logged.
"""

from __future__ import annotations

import json
import logging
import time

import redis
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder

from canvas_project import keys
from canvas_project.redis_client import get_redis

logger = logging.getLogger(__name__)


def emit(deal_id, event_type: str, payload: dict | None = None, *, actor_id=None) -> str | None:
    """Append an event; returns its stream id, or None when Redis is unavailable."""
    body = {
        "type": event_type,
        "deal_id": str(deal_id),
        "actor_id": str(actor_id) if actor_id else None,
        "at": int(time.time() * 1000),
        **(payload or {}),
    }
    try:
        client = get_redis()
        with client.pipeline(transaction=False) as pipe:
            pipe.xadd(
                keys.events_key(deal_id),
                {"type": event_type, "data": json.dumps(body, cls=DjangoJSONEncoder)},
                maxlen=settings.CANVAS_EVENTS_MAXLEN,
                approximate=True,
            )
            pipe.expire(keys.events_key(deal_id), keys.EVENTS_TTL)
            stream_id, _ = pipe.execute()
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
        logger.warning("event %s of deal %s dropped: Redis unavailable", event_type, deal_id)
        return None
    return stream_id.decode() if isinstance(stream_id, bytes) else stream_id
