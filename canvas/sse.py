"""Server-sent event endpoints: async Django views (a sync generator would be buffered whole under
ASGI and never cleaned up), authenticated and deal-scoped like every other endpoint.

Wire format: `id: <stream id>`, `event: <type>`, `data: <JSON>`; a comment line `: ping` as
heartbeat; `event: reset` when the client must reload. The client resumes with the `Last-Event-ID`
header (browsers send it on reconnect) or the `last_event_id` query parameter.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, JsonResponse, StreamingHttpResponse
from rest_framework.exceptions import APIException
from rest_framework_simplejwt.authentication import JWTAuthentication

from canvas import streams
from canvas_project.api.errors import domain_error_parts
from canvas_project.errors import DomainError
from deals.access import DealAccessContext, require_role, resolve_deal_access

HEARTBEAT_SECONDS = 15.0


class _SseError(Exception):
    def __init__(self, response: JsonResponse) -> None:
        self.response = response


def _authenticate(request: HttpRequest):
    authenticator = JWTAuthentication()
    try:
        result = authenticator.authenticate(request)
    except APIException as exc:
        detail = exc.detail.get("detail") if isinstance(exc.detail, dict) else exc.detail
        raise _SseError(JsonResponse({"detail": str(detail)}, status=401,
                                     headers={"WWW-Authenticate": 'Bearer realm="api"'})) from None
    if result is None:
        raise _SseError(JsonResponse({"detail": "Authentication credentials were not provided."}, status=401,
                                     headers={"WWW-Authenticate": 'Bearer realm="api"'}))
    return result


def _resolve(request: HttpRequest, deal_id: str, minimum: str) -> tuple[object, DealAccessContext]:
    user, token = _authenticate(request)
    try:
        access = resolve_deal_access(user=user, deal_id=deal_id, token=token)
        require_role(access, minimum)
    except DomainError as exc:
        code, body, headers = domain_error_parts(exc)
        raise _SseError(JsonResponse(body, status=code, headers=headers)) from None
    return user, access


def last_event_id(request: HttpRequest) -> str | None:
    """The client's resume point. Raises _SseError (422 at header or query) when malformed."""
    header = request.headers.get("Last-Event-ID")
    query = request.GET.get("last_event_id")
    value, location, name = (header, "header", "Last-Event-ID") if header else (query, "query", "last_event_id")
    if value is None or value == "":
        return None
    if not streams.valid_stream_id(value):
        raise _SseError(JsonResponse({"detail": [{
            "loc": [location, name], "msg": "Expected a stream id such as 1732300000000-0.", "type": "value_error",
            "input": value, "ctx": {}}]}, status=422))
    return value


def format_entry(entry: streams.Entry) -> str:
    event = entry.fields.get("type", "message")
    data = entry.fields.get("data", "{}")
    return f"id: {entry.id}\nevent: {event}\ndata: {data}\n\n"


def format_reset(reset: streams.Reset) -> str:
    body = json.dumps({"reason": reset.reason, "last_event_id": reset.last_event_id})
    id_line = f"id: {reset.last_event_id}\n" if reset.last_event_id else ""
    return f"{id_line}event: reset\ndata: {body}\n\n"


async def event_stream(key: str, after: str | None, *, on_close: Callable[[], None] | None = None,
                       heartbeat: float = HEARTBEAT_SECONDS) -> AsyncIterator[str]:
    yield f"retry: {getattr(settings, 'SSE_RETRY_MS', 3000)}\n\n"
    try:
        async for item in streams.hub().subscribe(key, after=after, heartbeat=heartbeat):
            if item is streams.HEARTBEAT:
                yield ": ping\n\n"
            elif isinstance(item, streams.Reset):
                yield format_reset(item)
            else:
                yield format_entry(item)
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


async def open_deal_stream(request: HttpRequest, deal_id: str, *, minimum: str,
                           key_for: Callable[[DealAccessContext], str]):
    """Authenticate, scope to the deal, validate the resume id, and stream `key_for(access)`."""
    if request.method != "GET":
        return JsonResponse({"detail": f'Method "{request.method}" not allowed.'}, status=405)
    try:
        _user, access = await sync_to_async(_resolve, thread_sensitive=True)(request, deal_id, minimum)
        after = last_event_id(request)
    except _SseError as exc:
        return exc.response
    return sse_response(event_stream(key_for(access), after))


# --- endpoints ---------------------------------------------------------------------------------------
async def canvas_events(request: HttpRequest, deal_id: str):
    """GET /api/canvas/{deal_id}/events (viewer): every change of the canvas as it happens."""
    from canvas import keys

    return await open_deal_stream(request, deal_id, minimum="viewer",
                                  key_for=lambda access: keys.events_key(access.deal.pk))


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
            "and the client reloads the canvas. `: ping` comments every 15 s keep proxies from closing it."
        ),
        "tag": "collaboration",
    },
]
