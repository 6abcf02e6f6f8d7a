"""Server-sent event endpoints: async Django views (a sync generator would be buffered whole under
ASGI and never cleaned up), authenticated and deal-scoped like every other endpoint.

Wire format: `id: <stream id>`, `event: <type>`, `data: <JSON>`; a comment line `: ping` as
heartbeat; `event: reset` when the client must reload. The client resumes with the `Last-Event-ID`
header (browsers send it on reconnect) or the `last_event_id` query parameter.
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
from rest_framework.exceptions import APIException

from canvas_project.api.errors import domain_error_parts
from canvas_project.errors import DomainError
from canvas_project.pool_recovery import check_pools_soon
from canvas_project.sse import hub as streams
from deals.access import DealAccessContext, require_role, resolve_deal_access


class _SseError(Exception):
    def __init__(self, response: JsonResponse) -> None:
        self.response = response


# PostgreSQL down or restarting: 503 as the DRF views answer it (canvas_project.api.errors), not a 500.
DATABASE_DOWN = (OperationalError, InterfaceError)


def _database_unavailable() -> _SseError:
    check_pools_soon()
    return _SseError(JsonResponse({"detail": "PostgreSQL is unavailable; try again shortly."}, status=503))


def _authenticate(request: HttpRequest):
    from deals.authentication import BearerJWTAuthentication

    authenticator = BearerJWTAuthentication()
    try:
        result = authenticator.authenticate(request)
    except APIException as exc:
        detail = exc.detail.get("detail") if isinstance(exc.detail, dict) else exc.detail
        raise _SseError(
            JsonResponse({"detail": str(detail)}, status=401, headers={"WWW-Authenticate": 'Bearer realm="api"'})
        ) from None
    if result is None:
        raise _SseError(
            JsonResponse(
                {"detail": "Authentication credentials were not provided."},
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="api"'},
            )
        )
    return result


def _resolve(request: HttpRequest, deal_id: str, minimum: str) -> tuple[object, DealAccessContext]:
    """The caller and its access to the deal. Raises _SseError (401, 403, 404, or 503 when PostgreSQL is down)."""
    try:
        user, token = _authenticate(request)
        access = resolve_deal_access(user=user, deal_id=deal_id, token=token)
        require_role(access, minimum)
    except DomainError as exc:
        code, body, headers = domain_error_parts(exc)
        raise _SseError(JsonResponse(body, status=code, headers=headers)) from None
    except DATABASE_DOWN:
        raise _database_unavailable() from None
    return user, access


def _released(fn: Callable) -> Callable:
    """`fn` on the request's sync thread, then its pooled DB connection goes back to the pool.

    Django returns a thread's connection only at request_finished, which for a stream comes when the
    stream ends: without this every open stream would pin one pooled connection (DB_POOL_MAX_SIZE
    streams per worker, the next one waits DB_POOL_TIMEOUT and fails with a 500).
    """

    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        finally:
            connection.close()

    return sync_to_async(call, thread_sensitive=True)


# --- open streams per user ------------------------------------------------------------------------
# Streams of each user open in this process. A stream costs a thread and a subscription for as long as it is
# open, so one user (or a leaked token) may hold at most SSE_MAX_STREAMS_PER_USER of them in each ASGI worker
# process; 0 lifts the limit. Taken on the event loop; given back there, or by the garbage collector in
# whichever thread drops an unstarted response, hence the lock.
_open_streams: Counter[str] = Counter()
_open_streams_lock = threading.Lock()
STREAM_SLOT_RETRY_AFTER = 10


def open_streams_of(user_id) -> int:
    return _open_streams[str(user_id)]


def _take_stream_slot(user) -> Callable[[], None]:
    """Count one more open stream of the user; returns its release (idempotent). Raises _SseError (429)."""
    user_id = str(user.pk)
    limit = int(settings.SSE_MAX_STREAMS_PER_USER)
    with _open_streams_lock:
        if limit and _open_streams[user_id] >= limit:
            raise _SseError(
                JsonResponse(
                    {
                        "detail": f"You have {limit} event streams open, the most one user may hold on this server; "
                        "close one (each browser tab holds its own) and try again."
                    },
                    status=429,
                    headers={"Retry-After": str(STREAM_SLOT_RETRY_AFTER)},
                )
            )
        _open_streams[user_id] += 1
    released = False

    def release() -> None:
        nonlocal released
        with _open_streams_lock:
            if released:
                return
            released = True
            _open_streams[user_id] -= 1
            if _open_streams[user_id] <= 0:
                del _open_streams[user_id]

    return release


async def _holding_slot(stream: AsyncIterator[str], release: Callable[[], None]) -> AsyncIterator[str]:
    try:
        async for chunk in stream:
            yield chunk
    finally:
        release()


def slotted_response(user, stream: AsyncIterator[str]) -> StreamingHttpResponse:
    """The stream's response, holding one of the user's stream slots until the stream ends.

    Released when the stream finishes or the client goes away, and (weakref.finalize) when the response is
    dropped before its stream ever started, which no `finally` inside it would see. Raises _SseError (429).
    """
    release = _take_stream_slot(user)
    wrapped = _holding_slot(stream, release)
    weakref.finalize(wrapped, release)
    return sse_response(wrapped)


def last_event_id(request: HttpRequest) -> str | None:
    """The client's resume point. Raises _SseError (422 at header or query) when malformed."""
    header = request.headers.get("Last-Event-ID")
    query = request.GET.get("last_event_id")
    value, location, name = (header, "header", "Last-Event-ID") if header else (query, "query", "last_event_id")
    if value is None or value == "":
        return None
    if not streams.valid_stream_id(value):
        raise _SseError(
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
    return value


def format_entry(entry: streams.Entry) -> bytes:
    return entry.wire  # built once per entry, however many subscribers send it


def format_reset(reset: streams.Reset) -> str:
    body = json.dumps({"reason": reset.reason, "last_event_id": reset.last_event_id})
    id_line = f"id: {reset.last_event_id}\n" if reset.last_event_id else ""
    return f"{id_line}event: reset\ndata: {body}\n\n"


async def event_stream(
    key: str, after: str | None, *, on_close: Callable[[], None] | None = None, heartbeat: float | None = None
) -> AsyncIterator[str]:
    # `: ping` after SSE_HEARTBEAT_SECONDS of quiet keeps proxies from closing an idle stream
    heartbeat = float(settings.SSE_HEARTBEAT_SECONDS) if heartbeat is None else heartbeat
    yield f"retry: {settings.SSE_RETRY_MS}\n\n"
    try:
        async for item in streams.hub().subscribe_batches(key, after=after, heartbeat=heartbeat):
            if item is streams.HEARTBEAT:
                yield ": ping\n\n"
            elif isinstance(item, streams.Reset):
                yield format_reset(item)
            else:
                yield b"".join([entry.wire for entry in item])  # what is already queued leaves in one write
    except asyncio.CancelledError:
        raise  # the client went away: the hub's finally has released the subscription
    finally:
        if on_close is not None:
            on_close()


def sse_response(stream: AsyncIterator[str]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(stream, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: do not buffer the stream
    return response


async def open_deal_stream(
    request: HttpRequest, deal_id: str, *, minimum: str, key_for: Callable[[DealAccessContext], str]
):
    """Authenticate, scope to the deal, validate the resume id, and stream `key_for(access)`."""
    if request.method != "GET":
        return JsonResponse({"detail": f'Method "{request.method}" not allowed.'}, status=405)
    try:
        user, access = await _released(_resolve)(request, deal_id, minimum)
        after = last_event_id(request)
        return slotted_response(user, event_stream(key_for(access), after))
    except _SseError as exc:
        return exc.response


# --- endpoints ---------------------------------------------------------------------------------------
async def canvas_events(request: HttpRequest, deal_id: str):
    """GET /api/canvas/{deal_id}/events (viewer): every change of the canvas as it happens."""
    from canvas_project import keys

    return await open_deal_stream(
        request, deal_id, minimum="viewer", key_for=lambda access: keys.events_key(access.deal.pk)
    )


# OpenAPI entries of the SSE endpoints (Django async views are invisible to drf-spectacular; the
# schema hook in canvas_project.api.openapi adds these).
SSE_ENDPOINTS = [
    {
        "path": "/api/canvas/{deal_id}/events",
        "operation_id": "canvas_events_stream",
        "summary": "Canvas events as server-sent events (viewer)",
        "description": (
            "Every change of the canvas: document_saved, section_updated, version_restored, state_changed, "
            "session_refreshed, section_approved, comment_created, comment_resolved, feedback_created, "
            "suggestion_*, lock_*, presence_*, collab_steps, collab_mode_changed, run_*. Each event has "
            "`id:` (its stream id), `event:` (its type) and `data:` (JSON). Resume with the Last-Event-ID "
            "header or `?last_event_id=`: nothing is lost or repeated. When the id is older than the kept "
            "history (the newest CANVAS_EVENTS_MAXLEN events, at most 7 days) the stream sends `event: reset` "
            "and the client reloads the canvas; so does an open stream once Redis is back after an outage (changes "
            "made meanwhile sent no event). `: ping` comments after 15 s of quiet (SSE_HEARTBEAT_SECONDS), "
            "outages included, keep proxies from closing it."
        ),
        "tag": "collaboration",
    },
]


# --- synthesis runs and agent discourse (canvas.runs) -------------------------------------------------
# Appended by the synthesis work: the run stream, its use by POST /generate, and the discourse ring.
def _run_status(run_id) -> str | None:
    """The run's status; None when unknown, also while PostgreSQL is down (the stream waits on)."""
    from canvas.models import SynthesisRun

    try:
        return SynthesisRun.objects.filter(pk=run_id).values_list("status", flat=True).first()
    except DATABASE_DOWN:
        return None


def _run_status_of_deal(deal_id, run_id) -> str | None:
    from canvas.models import SynthesisRun

    return SynthesisRun.objects.filter(pk=run_id, deal_id=deal_id).values_list("status", flat=True).first()


_TERMINAL_RUN = ("succeeded", "failed", "cancelled")


async def run_event_stream(deal_id, run_id, after: str | None, *, heartbeat: float | None = None) -> AsyncIterator[str]:
    """A run's events from after `after` (from its first event when None) up to and including `done`,
    then the response ends. Before the run has written its first event (still queued) it sends pings."""
    import contextlib

    from canvas_project import keys

    key = keys.run_key(deal_id, run_id, "events")
    heartbeat = float(settings.SSE_HEARTBEAT_SECONDS) if heartbeat is None else heartbeat
    yield f"retry: {settings.SSE_RETRY_MS}\n\n"
    client = streams.async_redis()
    if after is None:
        waited = 0.0
        while True:
            try:
                if await client.exists(key):
                    break
            except streams.REDIS_ERRORS:
                pass
            if await _released(_run_status)(run_id) in _TERMINAL_RUN and not await client.exists(key):
                yield format_reset(
                    streams.Reset(
                        "The run's event history is gone (expired or purged); read the run with GET /runs/{run_id}.",
                        None,
                    )
                )
                return
            await asyncio.sleep(0.2)
            waited += 0.2
            if waited >= heartbeat:
                waited = 0.0
                yield ": ping\n\n"
        after = "0-0"
    terminal_heartbeats = 0
    async with contextlib.aclosing(streams.hub().subscribe(key, after=after, heartbeat=heartbeat)) as items:
        async for item in items:
            if item is streams.HEARTBEAT:
                # a run that ended while Redis lost its `done` must not hold the client forever
                if await _released(_run_status)(run_id) in _TERMINAL_RUN:
                    terminal_heartbeats += 1
                    if terminal_heartbeats >= 2:
                        return
                yield ": ping\n\n"
            elif isinstance(item, streams.Reset):
                yield format_reset(item)
            else:
                yield format_entry(item)
                if item.fields.get("type") == "done":
                    return


def run_event_response(deal_id, run_id) -> StreamingHttpResponse:
    """The whole event stream of a run, as POST /generate answers with Accept: text/event-stream."""
    return sse_response(run_event_stream(deal_id, run_id, None))


async def run_stream(request: HttpRequest, deal_id: str, run_id: str):
    """GET /api/canvas/{deal_id}/runs/{run_id}/stream (viewer): the run's events; resumable."""
    import uuid

    from django.http import HttpResponse

    from canvas_project import keys

    if request.method != "GET":
        return JsonResponse({"detail": f'Method "{request.method}" not allowed.'}, status=405)
    try:
        user, access = await _released(_resolve)(request, deal_id, "viewer")
        try:
            run_uuid = uuid.UUID(str(run_id))
        except ValueError:
            raise _SseError(
                JsonResponse(
                    {
                        "detail": [
                            {
                                "loc": ["path", "run_id"],
                                "msg": "Input should be a valid UUID.",
                                "type": "uuid_parsing",
                                "input": run_id,
                                "ctx": {},
                            }
                        ]
                    },
                    status=422,
                )
            ) from None
        after = last_event_id(request)
    except _SseError as exc:
        return exc.response
    try:
        status = await _released(_run_status_of_deal)(access.deal.pk, run_uuid)
    except DATABASE_DOWN:
        return _database_unavailable().response
    if status is None:
        return JsonResponse({"detail": "This deal has no such run."}, status=404)
    if after is not None and status in _TERMINAL_RUN:
        # the client saw the end already: 204 tells an EventSource to stop reconnecting
        try:
            last = await streams.async_redis().xrevrange(keys.run_key(access.deal.pk, run_uuid, "events"), count=1)
        except streams.REDIS_ERRORS:
            last = []
        entry = streams._decode(last)[0] if last else None
        if (
            entry is not None
            and entry.fields.get("type") == "done"
            and streams.parse_id(after) >= streams.parse_id(entry.id)
        ):
            return HttpResponse(status=204)
    try:
        return slotted_response(user, run_event_stream(access.deal.pk, run_uuid, after))
    except _SseError as exc:
        return exc.response


async def discourse_event_stream(key: str, after: str | None) -> AsyncIterator[str]:
    """The discourse ring: replayed whole (or after `after`, while that id is still in the ring), then live."""
    client = streams.async_redis()
    try:
        first = streams._decode(await client.xrange(key, count=1))
    except streams.REDIS_ERRORS:
        first = []
    if not first:
        after = None  # an empty ring: follow from now on
    elif after is None or streams.parse_id(after) < streams.parse_id(first[0].id):
        after = "0-0"  # everything the ring still holds
    async for chunk in event_stream(key, after):
        yield chunk


async def discourse_stream(request: HttpRequest, deal_id: str):
    """GET /api/canvas/{deal_id}/discourse/stream (viewer): what the deal's agents are doing."""
    from canvas_project import keys

    if request.method != "GET":
        return JsonResponse({"detail": f'Method "{request.method}" not allowed.'}, status=405)
    try:
        user, access = await _released(_resolve)(request, deal_id, "viewer")
        after = last_event_id(request)
        return slotted_response(user, discourse_event_stream(keys.discourse_key(access.deal.pk), after))
    except _SseError as exc:
        return exc.response


SSE_ENDPOINTS.extend(
    [
        {
            "path": "/api/canvas/{deal_id}/runs/{run_id}/stream",
            "operation_id": "canvas_run_stream",
            "extra_path_params": ["run_id"],
            "summary": "A drafting run's events as server-sent events (viewer)",
            "description": (
                "The run's events from its first to `done`, after which the response ends: workflow_started "
                "{inputs}, node_started {component_id (the section key), component_name, component_type, thoughts}, "
                "message {component_id, content: a text delta}, message_end {component_id, status, content, "
                "reference: citations}, node_finished {component_id, inputs, outputs, error, elapsed_time}, "
                "workflow_finished {status, inputs, outputs: {delivered, missing, failed}, elapsed_time}, error "
                "{message}, done {status}. Each has `id:`, `event:` and `data:` (JSON). Without Last-Event-ID the "
                "whole run is replayed (pings while it is still queued); with it, the stream resumes after that event, "
                "nothing lost or repeated, and answers 204 when that event was `done`. Closing the stream does not "
                "stop the run. Kept 24 hours."
            ),
            "tag": "synthesis",
        },
        {
            "path": "/api/canvas/{deal_id}/discourse/stream",
            "operation_id": "canvas_discourse_stream",
            "summary": "The deal's agent discourse as server-sent events (viewer)",
            "description": (
                "What the deal's agents do (retrieval, draft, brush, run), a ring of the last 100 events and at most "
                "2 hours: replayed whole on connect, or after Last-Event-ID while that event is still in the ring, "
                "then live. Each event's data is {kind, agent, text, run_id?, at}."
            ),
            "tag": "synthesis",
        },
    ]
)
