"""The Redis side of a synthesis run: its event stream, cancel flag and trace, and the deal's
agent-discourse ring. Keys come only from canvas_project.keys; every variable key is tracked in the deal's
index in the same pipeline that writes it, so a purge finds it without scanning.

Redis is ephemeral here by design: when it is down an event or trace entry is dropped with a
warning and the run goes on (its row in PostgreSQL and the memo in the Store are the durable record).
"""

from __future__ import annotations

import json
import logging
import time

import redis
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder

from canvas_project import keys
from canvas_project.redis_client import get_redis, pipeline_unlink

logger = logging.getLogger(__name__)
REDIS_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)

# A run's stream is never trimmed below this (a resume must replay the whole run); message deltas
# are coalesced by the drafters so a run stays far below it.
RUN_EVENTS_MAXLEN = 50_000
# The discourse ring: the last 100 agent events of the deal, none older than 2 hours.
DISCOURSE_MAXLEN = 100
DISCOURSE_WINDOW_SECONDS = 2 * 3600

RUN_EVENT_TYPES = (
    "workflow_started",
    "node_started",
    "message",
    "message_end",
    "node_finished",
    "workflow_finished",
    "run_resumed",
    "input_required",
    "input_received",
    "error",
    "done",
)


def _dumps(value) -> str:
    return json.dumps(value, cls=DjangoJSONEncoder, separators=(",", ":"))


# --- run events ---------------------------------------------------------------------------------------
def emit_run_event(deal_id, run_id, event_type: str, data: dict) -> str | None:
    """XADD one event to the run's stream; returns its id, or None when Redis is unavailable."""
    key = keys.run_key(deal_id, run_id, "events")
    body = {"run_id": str(run_id), "at": int(time.time() * 1000), **data}
    try:
        with get_redis().pipeline(transaction=False) as pipe:
            pipe.xadd(key, {"type": event_type, "data": _dumps(body)}, maxlen=RUN_EVENTS_MAXLEN, approximate=True)
            pipe.expire(key, keys.RUN_EVENTS_TTL)
            keys.track_variable_key(pipe, deal_id, key)
            stream_id = pipe.execute()[0]
    except REDIS_ERRORS:
        logger.warning("run event %s of run %s dropped: Redis unavailable", event_type, run_id)
        return None
    return stream_id.decode() if isinstance(stream_id, bytes) else stream_id


def run_events(deal_id, run_id) -> list[tuple[str, str, dict]]:
    """Every event of the run as (id, type, data). Raises redis errors."""
    entries = get_redis().xrange(keys.run_key(deal_id, run_id, "events"))
    out = []
    for raw_id, fields in entries:
        fields = {k.decode(): v.decode() for k, v in fields.items()}
        out.append((raw_id.decode(), fields.get("type", "message"), json.loads(fields.get("data", "{}"))))
    return out


def wait_run_done(deal_id, run_id, *, deadline: float) -> bool:
    """Block until the run's stream holds a `done` entry (run_finish writes it last) or time.monotonic()
    reaches `deadline`; True when `done` was seen. Starts from the stream's current last entry, so a run
    that already ended answers at once. XREAD BLOCK waits in slices shorter than the client's socket
    timeout. Raises redis errors."""
    client = get_redis()
    key = keys.run_key(deal_id, run_id, "events")
    newest = client.xrevrange(key, count=1)
    if newest:
        last_id, fields = newest[0]
        if fields.get(b"type") == b"done":
            return True
    else:
        last_id = b"0-0"  # no stream yet: whatever gets added from now on is new
    slice_seconds = max(float(settings.REDIS_SOCKET_TIMEOUT) / 2, 0.05)
    while (remaining := deadline - time.monotonic()) > 0:
        block_ms = max(1, int(min(remaining, slice_seconds) * 1000))
        for _stream, entries in client.xread({key: last_id}, block=block_ms) or ():
            for entry_id, fields in entries:
                if fields.get(b"type") == b"done":
                    return True
                last_id = entry_id
    return False


# --- cancel flag ----------------------------------------------------------------------------------------
def request_cancel(deal_id, run_id) -> None:
    """Raise the run's cancel flag. Raises redis errors."""
    key = keys.run_key(deal_id, run_id, "cancel")
    with get_redis().pipeline(transaction=False) as pipe:
        pipe.set(key, "1", ex=keys.RUN_CANCEL_TTL)
        keys.track_variable_key(pipe, deal_id, key)
        pipe.execute()


def cancel_requested(deal_id, run_id) -> bool:
    """Whether the flag is up; False when Redis cannot say (the run's row is checked before writes)."""
    try:
        return bool(get_redis().exists(keys.run_key(deal_id, run_id, "cancel")))
    except REDIS_ERRORS:
        return False


# --- trace ----------------------------------------------------------------------------------------------
def trace_append(deal_id, run_id, entry: dict) -> None:
    """Append one node's trace (inputs, outputs, elapsed); the list lives 10 minutes after its last entry."""
    key = keys.run_key(deal_id, run_id, "trace")
    try:
        with get_redis().pipeline(transaction=False) as pipe:
            pipe.rpush(key, _dumps(entry))
            pipe.expire(key, keys.RUN_TRACE_TTL)
            keys.track_variable_key(pipe, deal_id, key)
            pipe.execute()
    except REDIS_ERRORS:
        logger.warning("trace of run %s dropped: Redis unavailable", run_id)


def trace_read(deal_id, run_id) -> list[dict] | None:
    """The run's trace entries, or None when they expired (or never existed). Raises redis errors."""
    raw = get_redis().lrange(keys.run_key(deal_id, run_id, "trace"), 0, -1)
    if not raw:
        return None
    return [json.loads(item) for item in raw]


# --- discourse ------------------------------------------------------------------------------------------
def discourse_emit(deal_id, kind: str, payload: dict) -> str | None:
    """Append an agent event to the deal's discourse ring (100 entries, 2 hours)."""
    key = keys.discourse_key(deal_id)
    now_ms = int(time.time() * 1000)
    body = {"kind": kind, "deal_id": str(deal_id), "at": now_ms, **payload}
    try:
        with get_redis().pipeline(transaction=False) as pipe:
            pipe.xadd(key, {"type": kind, "data": _dumps(body)}, maxlen=DISCOURSE_MAXLEN, approximate=False)
            pipe.xtrim(key, minid=f"{now_ms - DISCOURSE_WINDOW_SECONDS * 1000}-0", approximate=False)
            pipe.expire(key, DISCOURSE_WINDOW_SECONDS)
            stream_id = pipe.execute()[0]
    except REDIS_ERRORS:
        logger.warning("discourse event %s of deal %s dropped: Redis unavailable", kind, deal_id)
        return None
    return stream_id.decode() if isinstance(stream_id, bytes) else stream_id


# --- reset ----------------------------------------------------------------------------------------------
def clear_deal_run_state(deal_id) -> int:
    """UNLINK the deal's run streams, cancel flags, traces, brush findings, discourse ring, cached session
    and readiness; returns how many keys went. Raises redis errors."""
    client = get_redis()
    index = keys.index_key(deal_id)
    tracked = [name.decode() if isinstance(name, bytes) else name for name in client.smembers(index)]
    variable = [
        name
        for name in tracked
        if (found := keys.classify(name)) is not None and found[0] in ("runs", "brush_findings")
    ]
    fixed = [keys.discourse_key(deal_id), keys.session_key(deal_id), keys.readiness_key(deal_id)]
    removed = 0
    with client.pipeline(transaction=False) as pipe:
        pipeline_unlink(pipe, *variable, *fixed)
        if variable:
            pipe.srem(index, *variable)
        removed = int(pipe.execute()[0])
    return removed
