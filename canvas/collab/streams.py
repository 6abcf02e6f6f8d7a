"""The canvas's event streams: GET /api/canvas/{deal_id}/events (every change of the canvas). Async views (see
canvas_project.sse.responses); deal-scoped by deals.streams like every other endpoint.
"""

from __future__ import annotations

from django.http import HttpRequest
from django.views.decorators.csrf import csrf_exempt

from canvas_project import keys
from canvas_project.sse.schema import (
    BOOLEAN,
    GUARD_EVENTS,
    INTEGER,
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
from deals.streams import open_deal_stream


@csrf_exempt  # bearer-token API, no cookies: CSRF does not apply (DRF's views are exempt the same way)
async def canvas_events(request: HttpRequest, deal_id: str):
    """GET /api/canvas/{deal_id}/events (viewer): every change of the canvas as it happens."""
    return await open_deal_stream(
        request, deal_id, minimum=DealRole.VIEWER, key_for=lambda access: keys.events_key(access.deal.pk)
    )


# What every canvas event carries (canvas_project.events.emit), then each type's own fields.
ENVELOPE = {"type": STRING, "deal_id": UUID, "actor_id": NULLABLE_UUID, "at": MILLIS}


def canvas_event(description: str, required: dict, optional: dict | None = None) -> dict:
    return payload(description, {**ENVELOPE, **required}, optional)


def memo_write_event(description: str, **required) -> dict:
    """A durable write of the memo (canvas.memo.writes.memo_write): the new version and state, the sections it
    changed, and those it left because another user holds their lock."""
    return canvas_event(
        description,
        {"version": INTEGER, "state": STRING, "sections": STRINGS, **required},
        {"skipped_locked": STRINGS},
    )


SECTION = {"section_key": STRING}
RUN = {"run_id": UUID}
CANVAS_EVENTS = {
    "document_saved": memo_write_event("The memo was saved."),
    "section_updated": memo_write_event("One section was edited."),
    "version_restored": memo_write_event("An earlier version was restored as a new one."),
    "state_changed": memo_write_event("The memo was approved or reopened."),
    "section_approved": memo_write_event("A section was approved.", **SECTION),
    "suggestion_accepted": memo_write_event("A suggestion was accepted into the memo.", suggestion_id=UUID, **SECTION),
    "run_section_delivered": memo_write_event("A run wrote a section.", **RUN, **SECTION),
    "run_section_failed": memo_write_event("A run marked a section failed."),
    "run_recorded": memo_write_event("A run's outcome was recorded on the memo."),
    "memo_reset": memo_write_event("The memo was reset to its blank template."),
    "run_rolled_back": memo_write_event(
        "A cancelled run's sections went back to their content before it (cancel or strategy `rollback`).", **RUN
    ),
    "memo_snapshot": memo_write_event("A restore point was taken before a reset."),
    "session_refreshed": canvas_event("The session was refreshed.", {"version": INTEGER, "changed": BOOLEAN}),
    "feedback_created": canvas_event("A section was rated.", {**SECTION, "rating": INTEGER}),
    "comment_created": canvas_event(
        "A comment was posted.", {"comment_id": UUID, "section_key": {"type": "string", "nullable": True}}
    ),
    "comment_resolved": canvas_event(
        "A comment was resolved.", {"comment_id": UUID, "section_key": {"type": "string", "nullable": True}}
    ),
    "suggestion_created": canvas_event(
        "A suggestion was proposed.", {"suggestion_id": UUID, **SECTION, "kind": STRING}
    ),
    "suggestion_rejected": canvas_event("A suggestion was rejected.", {"suggestion_id": UUID, **SECTION}),
    "brush_completed": canvas_event(
        "A review brush finished.", {"brush_id": STRING, "brush": STRING, "findings": INTEGER}
    ),
    "node_created": canvas_event("A strategy node was created.", {"node_id": UUID, "type": STRING}),
    "node_updated": canvas_event("A strategy node was changed.", {"node_id": UUID, "changes": STRINGS}),
    "node_deleted": canvas_event("A strategy node was deleted.", {"node_id": UUID}),
    "link_created": canvas_event("Two nodes were linked.", {"from": UUID, "to": UUID, "type": STRING}),
    "link_deleted": canvas_event("A link between two nodes was removed.", {"from": UUID, "to": UUID, "type": STRING}),
    "presence_joined": canvas_event(
        "A user opened the canvas (or moved to a section).",
        {"user_id": UUID, "display_name": STRING},
        {"section_key": {"type": "string", "nullable": True}},
    ),
    "presence_left": canvas_event("A user left the canvas.", {"user_id": UUID}),
    "lock_acquired": canvas_event(
        "A section lock was taken.",
        {**SECTION, "user_id": UUID, "expires_at": {"type": "string", "format": "date-time"}},
    ),
    "lock_released": canvas_event("A section lock was released.", {**SECTION, "user_id": NULLABLE_UUID}),
    "lock_force_released": canvas_event("An owner broke another user's lock.", {**SECTION, "user_id": NULLABLE_UUID}),
    "collab_steps": canvas_event(
        "Collaborative editing steps were accepted.",
        {
            "from_version": INTEGER,
            "to_version": INTEGER,
            "client_id": STRING,
            "steps": {"type": "array", "items": OBJECT},
        },
    ),
    "collab_mode_changed": canvas_event(
        "Collaboration was switched on or off.", {"enabled": BOOLEAN, "cleared": OBJECT}
    ),
    "run_queued": canvas_event(
        "A drafting run was queued.",
        {**RUN, "kind": STRING, "sections": STRINGS, "queued_behind": NULLABLE_UUID},
    ),
    "run_started": canvas_event("A drafting run started.", {**RUN, "kind": STRING, "sections": STRINGS}),
    "run_section_skipped": canvas_event(
        "A run left a section as it was: another user holds its lock.", {**RUN, **SECTION, "reason": STRING}
    ),
    "run_finished": canvas_event("A drafting run ended.", {**RUN, "status": STRING}),
    "run_cancel_requested": canvas_event("Someone asked a run to stop.", RUN),
    "run_resumed": canvas_event(
        "A run whose worker died continues from its last checkpoint on another worker.",
        {
            **RUN,
            "resume_count": INTEGER,
            "max_resumes": INTEGER,
            "delivered": STRINGS,
            "remaining": STRINGS,
        },
    ),
    "run_input_required": canvas_event(
        "A drafting run paused for input on sections without material (GET /runs/{run_id} has its input_request).",
        {**RUN, "sections": STRINGS, "reason": STRING, "expires_at": {"type": "string", "format": "date-time"}},
    ),
    "run_input_received": canvas_event(
        "A run waiting for input was answered and continues.", {**RUN, "notes": STRINGS, "retry_retrieval": STRINGS}
    ),
    "reset": RESET,
    **GUARD_EVENTS,
}

document_deal_stream(
    path="/api/canvas/{deal_id}/events",
    prefix="CanvasEvent",
    events=CANVAS_EVENTS,
    operation_id="canvas_events_stream",
    summary="Canvas events as server-sent events (viewer)",
    description=(
        "Every change of the canvas: document_saved, section_updated, version_restored, state_changed, "
        "session_refreshed, section_approved, comment_created, comment_resolved, feedback_created, "
        "suggestion_*, lock_*, presence_*, collab_steps, collab_mode_changed, run_*. Each event has `id:` "
        "(its stream id), `event:` (its type) and `data:` (JSON). Resume with the Last-Event-ID header or "
        "`?last_event_id=`: nothing is lost or repeated. When the id is older than the kept history (the "
        "newest CANVAS_EVENTS_MAXLEN events, at most 7 days) the stream sends `event: reset` and the client "
        "reloads the canvas; so does an open stream once Redis is back after an outage (changes made "
        "meanwhile sent no event). `: ping` comments after 15 s of quiet (SSE_HEARTBEAT_SECONDS), outages "
        "included, keep proxies from closing it."
    ),
    tag="collaboration",
)
