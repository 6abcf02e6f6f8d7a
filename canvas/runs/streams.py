"""A drafting run's event stream: GET /api/canvas/{deal_id}/runs/{run_id}/stream, and the same stream as
POST /generate answers it with `Accept: text/event-stream`; and the deal's agent discourse (what its runs
and brushes are doing): GET /api/canvas/{deal_id}/discourse/stream. Async views (canvas_project.sse.responses),
deal-scoped by deals.streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from canvas.models import TERMINAL_RUN_STATUSES, SynthesisRun
from canvas_project import keys
from canvas_project.sse import hub
from canvas_project.sse.responses import (
    DATABASE_DOWN,
    SseError,
    database_unavailable,
    event_stream,
    format_end,
    format_entry,
    format_reset,
    last_event_id,
    method_not_allowed,
    released,
    released_to_pool,
    slotted_response,
    sse_response,
)
from canvas_project.sse.schema import (
    GUARD_EVENTS,
    MILLIS,
    NULLABLE_UUID,
    OBJECT,
    RESET,
    STRING,
    STRINGS,
    UUID,
    document_deal_stream,
    payload,
)
from deals.models import DealRole
from deals.streams import resolve_stream_access


def _run_status(run_id) -> str | None:
    """The run's status; None when unknown, also while PostgreSQL is down (the stream waits on)."""
    try:
        return SynthesisRun.objects.filter(pk=run_id).values_list("status", flat=True).first()
    except DATABASE_DOWN:
        return None


def _run_status_of_deal(deal_id, run_id) -> str | None:
    return SynthesisRun.objects.filter(pk=run_id, deal_id=deal_id).values_list("status", flat=True).first()


async def run_event_stream(
    deal_id, run_id, after: str | None, *, heartbeat: float | None = None, lease: hub.Lease | None = None
) -> AsyncIterator[str]:
    """A run's events from after `after` (from its first event when None) up to and including `done`,
    then the response ends. Before the run has written its first event (still queued) it sends pings.
    It also ends when its `lease` does (canvas_project.sse.guard: revoked, expired, lifetime)."""
    heartbeat = heartbeat if heartbeat is not None else settings.SSE_HEARTBEAT_SECONDS
    key = keys.run_key(deal_id, run_id, "events")
    yield f"retry: {settings.SSE_RETRY_MS}\n\n"
    client = hub.async_redis()
    if after is None:
        waited = 0.0
        while True:
            if lease is not None and lease.ended is not None:
                yield format_end(lease.ended)
                return
            try:
                if await client.exists(key):
                    break
            except hub.REDIS_ERRORS:
                pass
            if await released_to_pool(_run_status)(run_id) in TERMINAL_RUN_STATUSES and not await client.exists(key):
                yield format_reset(
                    hub.Reset(
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
    async with contextlib.aclosing(hub.hub().subscribe(key, after=after, heartbeat=heartbeat, lease=lease)) as items:
        async for item in items:
            if isinstance(item, hub.End):
                yield format_end(item)
                return
            if item is hub.HEARTBEAT:
                # a run that ended while Redis lost its `done` must not hold the client forever
                if await released_to_pool(_run_status)(run_id) in TERMINAL_RUN_STATUSES:
                    terminal_heartbeats += 1
                    if terminal_heartbeats >= 2:
                        return
                yield ": ping\n\n"
            elif isinstance(item, hub.Reset):
                yield format_reset(item)
            else:
                yield format_entry(item)
                if item.fields.get("type") == "done":
                    return


def run_event_response(deal_id, run_id) -> StreamingHttpResponse:
    """The whole event stream of a run, as POST /generate answers with Accept: text/event-stream."""
    return sse_response(run_event_stream(deal_id, run_id, None))


@csrf_exempt  # bearer-token API, no cookies: CSRF does not apply (DRF's views are exempt the same way)
async def run_stream(request: HttpRequest, deal_id: str, run_id: str):
    """GET /api/canvas/{deal_id}/runs/{run_id}/stream (viewer): the run's events; resumable."""
    if request.method != "GET":
        return method_not_allowed(request, "GET")
    try:
        user, access, grant = await released(resolve_stream_access)(request, deal_id, DealRole.VIEWER)
        try:
            run_uuid = uuid.UUID(str(run_id))
        except ValueError:
            raise SseError(
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
    except SseError as exc:
        return exc.response
    try:
        status = await released(_run_status_of_deal)(access.deal.pk, run_uuid)
    except DATABASE_DOWN:
        return database_unavailable().response
    if status is None:
        return JsonResponse({"detail": "This deal has no such run."}, status=404)
    if after is not None and status in TERMINAL_RUN_STATUSES:
        # the client saw the end already: 204 tells an EventSource to stop reconnecting
        try:
            last = await hub.async_redis().xrevrange(keys.run_key(access.deal.pk, run_uuid, "events"), count=1)
        except hub.REDIS_ERRORS:
            last = []
        entry = hub._decode(last)[0] if last else None
        if entry is not None and entry.fields.get("type") == "done" and hub.parse_id(after) >= hub.parse_id(entry.id):
            return HttpResponse(status=204)
    try:
        return slotted_response(
            user, lambda lease: run_event_stream(access.deal.pk, run_uuid, after, lease=lease), grant=grant
        )
    except SseError as exc:
        return exc.response


async def discourse_event_stream(key: str, after: str | None, lease: hub.Lease | None = None) -> AsyncIterator[str]:
    """The discourse ring: replayed whole (or after `after`, while that id is still in the ring), then live."""
    client = hub.async_redis()
    try:
        first = hub._decode(await client.xrange(key, count=1))
    except hub.REDIS_ERRORS:
        first = []
    if not first:
        after = None  # an empty ring: follow from now on
    elif after is None or hub.parse_id(after) < hub.parse_id(first[0].id):
        after = "0-0"  # everything the ring still holds
    async for chunk in event_stream(key, after, lease=lease):
        yield chunk


@csrf_exempt  # bearer-token API, no cookies: CSRF does not apply (DRF's views are exempt the same way)
async def discourse_stream(request: HttpRequest, deal_id: str):
    """GET /api/canvas/{deal_id}/discourse/stream (viewer): what the deal's agents are doing."""
    if request.method != "GET":
        return method_not_allowed(request, "GET")
    try:
        user, access, grant = await released(resolve_stream_access)(request, deal_id, DealRole.VIEWER)
        after = last_event_id(request)
        key = keys.discourse_key(access.deal.pk)
        return slotted_response(user, lambda lease: discourse_event_stream(key, after, lease), grant=grant)
    except SseError as exc:
        return exc.response


# What every run event carries (canvas.runs.synthesis.telemetry.emit_run_event), then each type's own fields.
RUN_ENVELOPE = {"run_id": UUID, "at": MILLIS}
SECONDS = {"type": "number", "description": "Seconds."}
NULLABLE_TEXT = {"type": "string", "nullable": True}
CITATION = {
    "type": "object",
    "properties": {
        "id": STRING,
        "text": STRING,
        "document": STRING,
        "document_id": NULLABLE_UUID,
        "page": {"type": "integer", "nullable": True},
    },
}


def run_event(description: str, required: dict, optional: dict | None = None) -> dict:
    return payload(description, {**RUN_ENVELOPE, **required}, optional)


RUN_EVENTS = {
    "workflow_started": run_event("The run started.", {"inputs": OBJECT}, {"drafter": STRING}),
    "node_started": run_event(
        "A section's drafter started (component_id is the section key).",
        {"component_id": STRING, "component_name": STRING, "component_type": STRING, "thoughts": STRING},
    ),
    "message": run_event("A text delta of a section's draft.", {"component_id": STRING, "content": STRING}),
    "message_end": run_event(
        "A section's draft ended: `status` delivered, failed, skipped_locked...",
        {"component_id": STRING, "status": STRING, "reference": {"type": "array", "items": CITATION}},
        {"content": STRING, "error": NULLABLE_TEXT, "locked_by": {**OBJECT, "nullable": True}},
    ),
    "node_finished": run_event(
        "A section's drafter finished.",
        {"component_id": STRING, "inputs": OBJECT, "outputs": OBJECT, "error": NULLABLE_TEXT, "elapsed_time": SECONDS},
        {"component_name": STRING},
    ),
    "workflow_finished": run_event(
        "The run ended; `outputs` lists the sections delivered, missing and failed.",
        {
            "status": STRING,
            "inputs": OBJECT,
            "outputs": {
                "type": "object",
                "properties": {"delivered": STRINGS, "missing": STRINGS, "failed": STRINGS},
            },
            "elapsed_time": SECONDS,
            "error": NULLABLE_TEXT,
        },
    ),
    "run_resumed": run_event(
        "The run's worker died (no heartbeat) and another worker continues it from its last checkpoint: sections "
        "already delivered are not drafted again. At most RUN_MAX_RESUMES times, then the run fails.",
        {
            "resume_count": {"type": "integer", "description": "This resume's number, from 1."},
            "max_resumes": {"type": "integer", "description": "RUN_MAX_RESUMES."},
            "delivered": STRINGS,
            "remaining": STRINGS,
        },
    ),
    "input_required": run_event(
        "The run paused for human input (status waiting_input): `input_request` names the sections without material "
        "and the JSON Schema of the answer (POST /runs/{run_id}/resume). The stream stays open; the run goes on "
        "after the answer.",
        {"input_request": OBJECT},
    ),
    "input_received": run_event(
        "The run was answered and is queued to continue: the sections with notes, and those whose retrieval is "
        "retried.",
        {"notes": STRINGS, "retry_retrieval": STRINGS},
        {"by": UUID, "by_name": STRING},
    ),
    "error": run_event("The run failed.", {"message": STRING}),
    "done": run_event("The last event of the run; the response ends after it.", {"status": STRING}),
    "reset": RESET,
    **GUARD_EVENTS,
}
DISCOURSE_EVENT = payload(
    "What one of the deal's agents did.",
    {"kind": STRING, "deal_id": UUID, "at": MILLIS, "agent": STRING, "text": STRING},
    {"run_id": UUID, "brush_id": STRING},
)
DISCOURSE_EVENTS = {
    "retrieval": DISCOURSE_EVENT,
    "draft": DISCOURSE_EVENT,
    "brush": DISCOURSE_EVENT,
    "run": DISCOURSE_EVENT,
    "reset": RESET,
    **GUARD_EVENTS,
}

document_deal_stream(
    path="/api/canvas/{deal_id}/runs/{run_id}/stream",
    prefix="RunEvent",
    events=RUN_EVENTS,
    operation_id="canvas_run_stream",
    extra_path_params=["run_id"],
    summary="A drafting run's events as server-sent events (viewer)",
    description=(
        "The run's events from its first to `done`, after which the response ends: workflow_started {inputs},"
        " node_started {component_id (the section key), component_name, component_type, thoughts}, message "
        "{component_id, content: a text delta}, message_end {component_id, status, content, reference: "
        "citations {id, text, document, document_id, page}}, node_finished {component_id, inputs, outputs, "
        "error, elapsed_time}, workflow_finished "
        "{status, inputs, outputs: {delivered, missing, failed}, elapsed_time}, input_required {input_request} (the "
        "run paused for input; the stream stays open), input_received {notes, retry_retrieval}, error {message}, "
        "done {status}; run_resumed {resume_count, max_resumes, delivered, remaining} when another worker continues "
        "the run from its last checkpoint after its worker died (the sections after it are those not yet "
        "delivered). Each has `id:`, `event:` and `data:` (JSON). Without Last-Event-ID the whole run is "
        "replayed (pings while it is still queued); with it, the stream resumes after that event, nothing "
        "lost or repeated, and answers 204 when that event was `done`. Closing the stream does not stop the "
        "run. Kept 24 hours."
    ),
    tag="synthesis",
)


document_deal_stream(
    path="/api/canvas/{deal_id}/discourse/stream",
    prefix="DiscourseEvent",
    events=DISCOURSE_EVENTS,
    operation_id="canvas_discourse_stream",
    summary="The deal's agent discourse as server-sent events (viewer)",
    description=(
        "What the deal's agents do (retrieval, draft, brush, run), a ring of the last 100 events and at most "
        "2 hours: replayed whole on connect, or after Last-Event-ID while that event is still in the ring, "
        "then live. Each event's data is {kind, agent, text, run_id?, at}."
    ),
    tag="synthesis",
)
