"""Server-sent events over Django's async views: the parts every stream shares.

Wire format: `id: <stream id>`, `event: <type>`, `data: <JSON>`; a comment line `: ping` as
heartbeat; `event: reset` when the client must reload. The client resumes with the `Last-Event-ID`
header (browsers send it on reconnect) or the `last_event_id` query parameter.

A stream must be an `async def` view returning an async generator: a sync generator is buffered whole
by Django under ASGI (the client gets nothing) and its cleanup never runs. Errors before the stream
starts answer JSON like every other endpoint (`SseError` carries the response). Each process fans a
Redis stream out to its subscribers through one reader (canvas_project.sse.hub).
"""

from __future__ import annotations

import asyncio
import json
import threading
import weakref
from collections import Counter
from collections.abc import AsyncIterator, Callable

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection
from django.http import HttpRequest, JsonResponse, StreamingHttpResponse

from canvas_project.pool_recovery import check_pools_soon
from canvas_project.sse import guard, hub


class SseError(Exception):
    def __init__(self, response: JsonResponse) -> None:
        self.response = response


# PostgreSQL down or restarting: 503 as the DRF views answer it (canvas_project.api.errors), not a 500.
DATABASE_DOWN = (OperationalError, InterfaceError)


def database_unavailable() -> SseError:
    check_pools_soon()
    return SseError(JsonResponse({"detail": "PostgreSQL is unavailable; try again shortly."}, status=503))


def _closing(fn: Callable) -> Callable:
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        finally:
            connection.close()

    return call


def released(fn: Callable) -> Callable:
    """`fn` on the request's sync thread, then its pooled DB connection goes back to the pool: what a stream
    does while it opens (authentication, authorization).

    Django returns a thread's connection only at request_finished, which for a stream comes when the
    stream ends: without this every open stream would pin one pooled connection (DB_POOL_MAX_SIZE
    streams per worker, the next one waits DB_POOL_TIMEOUT and fails with a 500).
    """
    return sync_to_async(_closing(fn), thread_sensitive=True)


def released_to_pool(fn: Callable) -> Callable:
    """As `released`, on a thread of the loop's shared pool: for what an OPEN stream does (a run's status).
    The stream has given its request thread up by then (canvas_project.sse.handler); a thread-sensitive call
    would start a new one and hold it until the stream ends."""
    return sync_to_async(_closing(fn), thread_sensitive=False)


# --- open streams per user and per deal --------------------------------------------------------------
# Streams of each user, and of each deal, open in this process. One user (or a leaked token) may hold at most
# SSE_MAX_STREAMS_PER_USER of them in each ASGI worker process, and one deal SSE_MAX_STREAMS_PER_DEAL (what
# one hot deal may take of a worker); 0 lifts a limit. Taken on the event loop; given back there, or by the
# garbage collector in whichever thread drops an unstarted response, hence the lock.
_open_streams: Counter[str] = Counter()
_open_streams_of_deal: Counter[str] = Counter()
_open_streams_lock = threading.Lock()
STREAM_SLOT_RETRY_AFTER = 10


def open_streams_of(user_id) -> int:
    return _open_streams[str(user_id)]


def open_streams_of_deal(deal_id) -> int:
    return _open_streams_of_deal[str(deal_id)]


def _stream_limit_reached(detail: str, limit: int, scope: str) -> SseError:
    return SseError(
        JsonResponse(
            {"detail": detail, "limit": limit, "scope": scope},
            status=429,
            headers={"Retry-After": str(STREAM_SLOT_RETRY_AFTER)},
        )
    )


class _Slot:
    """One open stream's hold on its user's (and deal's) stream slots and on its guard lease; calling it gives
    them back (idempotent). An object with slots, not closures: each open stream keeps one (bench/events --idle)."""

    __slots__ = ("user_id", "deal_key", "watcher", "lease", "released")

    def __init__(self, user_id: str, deal_key: str | None) -> None:
        self.user_id = user_id
        self.deal_key = deal_key
        self.watcher: guard.StreamGuard | None = None
        self.lease: hub.Lease | None = None
        self.released = False

    def __call__(self) -> None:
        with _open_streams_lock:
            if self.released:
                return
            self.released = True
            user_id, deal_key = self.user_id, self.deal_key
            _open_streams[user_id] -= 1
            if _open_streams[user_id] <= 0:
                del _open_streams[user_id]
            if deal_key is not None:
                _open_streams_of_deal[deal_key] -= 1
                if _open_streams_of_deal[deal_key] <= 0:
                    del _open_streams_of_deal[deal_key]
        if self.watcher is not None:
            self.watcher.close(self.lease)


def take_stream_slot(user, deal_id=None) -> _Slot:
    """Count one more open stream of the user (and of the deal); returns its release (idempotent). Raises
    SseError (429, body StreamLimitError: `scope` user or deal)."""
    user_id = str(user.pk)
    deal_key = str(deal_id) if deal_id is not None else None
    limit = settings.SSE_MAX_STREAMS_PER_USER
    deal_limit = settings.SSE_MAX_STREAMS_PER_DEAL
    with _open_streams_lock:
        if limit and _open_streams[user_id] >= limit:
            raise _stream_limit_reached(
                f"You have {limit} event streams open, the most one user may hold on this server; "
                "close one (each browser tab holds its own) and try again.",
                limit,
                "user",
            )
        if deal_key is not None and deal_limit and _open_streams_of_deal[deal_key] >= deal_limit:
            raise _stream_limit_reached(
                f"This deal has {deal_limit} event streams open on this server, the most one deal may hold; "
                "try again shortly.",
                deal_limit,
                "deal",
            )
        _open_streams[user_id] += 1
        if deal_key is not None:
            _open_streams_of_deal[deal_key] += 1
    return _Slot(user_id, deal_key)


async def holding_slot(stream: AsyncIterator[str], release: Callable[[], None]) -> AsyncIterator[str]:
    try:
        async for chunk in stream:
            yield chunk
    finally:
        release()


def slotted_response(
    user,
    stream: AsyncIterator[str] | Callable[[hub.Lease | None], AsyncIterator[str]],
    *,
    grant: guard.Grant | None = None,
) -> StreamingHttpResponse:
    """The stream's response, holding one of the user's (and the deal's) stream slots until the stream ends.

    With a `grant`, the stream is registered with the loop's guard (re-checked access, credential expiry,
    lifetime): `stream` is then a function of the guard's lease that builds the stream.
    Released when the stream finishes or the client goes away, and (weakref.finalize) when the stream is
    dropped before it ever started, which no `finally` inside it would see. Raises SseError (429).
    """
    release = take_stream_slot(user, grant.deal_id if grant is not None else None)
    if grant is not None:
        release.watcher = guard.guard()
        release.lease = release.watcher.open(grant)
        stream = stream(release.lease)
    weakref.finalize(stream, release)
    return sse_response(stream, release=release)


def last_event_id(request: HttpRequest) -> str | None:
    """The client's resume point (the header wins over the query). Raises SseError (422 at header or query)
    when either is malformed: an empty one is absent (STREAM_ID_PATTERN, as the schema says)."""
    header = request.headers.get("Last-Event-ID")
    query = request.GET.get("last_event_id")
    for value, location, name in ((header, "header", "Last-Event-ID"), (query, "query", "last_event_id")):
        if value and not hub.valid_stream_id(value):
            raise _malformed_id(value, location, name)
    return header or query or None


def _malformed_id(value: str, location: str, name: str) -> SseError:
    return SseError(
        JsonResponse(
            {
                "detail": [
                    {
                        "loc": [location, name],
                        "msg": "Expected a stream id such as 1732300000000-0.",
                        "type": "value_error",
                        "input": value,
                        "ctx": {},
                    }
                ]
            },
            status=422,
        )
    )


def format_entry(entry: hub.Entry) -> bytes:
    return entry.wire  # built once per entry, however many subscribers send it


def format_reset(reset: hub.Reset) -> str:
    body = json.dumps(
        {
            "reason": reset.reason,
            "last_event_id": reset.last_event_id,
            "history_lost": reset.history_lost,
            "earliest_event_id": reset.earliest_event_id,
        }
    )
    id_line = f"id: {reset.last_event_id}\n" if reset.last_event_id else ""
    return f"{id_line}event: reset\ndata: {body}\n\n"


def format_end(end: hub.End) -> str:
    """The stream's last words: `event: revoked` or `event: expired` ({reason}), or a comment when only its
    lifetime is over (the client reconnects and resumes as after any drop)."""
    if end.event is None:
        return f": {end.reason}\n\n"
    return f"event: {end.event}\ndata: {json.dumps({'reason': end.reason})}\n\n"


async def event_stream(
    key: str,
    after: str | None,
    *,
    on_close: Callable[[], None] | None = None,
    heartbeat: float | None = None,
    lease: hub.Lease | None = None,
) -> AsyncIterator[str]:
    yield f"retry: {settings.SSE_RETRY_MS}\n\n"
    try:
        beat = heartbeat if heartbeat is not None else settings.SSE_HEARTBEAT_SECONDS
        async for item in hub.hub().subscribe_batches(key, after=after, heartbeat=beat, lease=lease):
            if item is hub.HEARTBEAT:
                yield ": ping\n\n"
            elif isinstance(item, hub.End):
                yield format_end(item)
                return
            elif isinstance(item, hub.Reset):
                yield format_reset(item)
            else:
                yield b"".join([entry.wire for entry in item])  # what is already queued leaves in one write
    except asyncio.CancelledError:
        raise  # the client went away: the hub's finally has released the subscription
    finally:
        if on_close is not None:
            on_close()


def sse_response(stream: AsyncIterator[str], *, release: Callable[[], None] | None = None) -> StreamingHttpResponse:
    """The stream's response; `sse_stream` marks it for canvas_project.sse.handler, which sends it without
    holding the request and calls `release` (`sse_release`) once it ends. Django's own handler (a test client,
    WSGI) iterates the response as usual: `release` then runs when that iteration ends."""
    content = holding_slot(stream, release) if release is not None else stream
    response = StreamingHttpResponse(content, content_type="text/event-stream")
    response.sse_stream = stream
    response.sse_release = release
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: do not buffer the stream
    return response


def method_not_allowed(request: HttpRequest, allowed: str) -> JsonResponse:
    """405 for a stream path, in JSON with the Allow header (never Django's HTML)."""
    return JsonResponse({"detail": f'Method "{request.method}" not allowed.'}, status=405, headers={"Allow": allowed})
