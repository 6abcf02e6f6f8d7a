"""The canvas's event streams: GET /api/canvas/{deal_id}/events (every change of the canvas). Async views (see
canvas_project.sse.responses); deal-scoped by deals.streams like every other endpoint.
"""

from __future__ import annotations

from django.http import HttpRequest
from django.views.decorators.csrf import csrf_exempt

from canvas_project import keys
from canvas_project.sse.schema import document_deal_stream
from deals.models import DealRole
from deals.streams import open_deal_stream


@csrf_exempt  # bearer-token API, no cookies: CSRF does not apply (DRF's views are exempt the same way)
async def canvas_events(request: HttpRequest, deal_id: str):
    """GET /api/canvas/{deal_id}/events (viewer): every change of the canvas as it happens."""
    return await open_deal_stream(
        request, deal_id, minimum=DealRole.VIEWER, key_for=lambda access: keys.events_key(access.deal.pk)
    )


document_deal_stream(
    path="/api/canvas/{deal_id}/events",
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
