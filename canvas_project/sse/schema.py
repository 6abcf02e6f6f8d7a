"""The OpenAPI entries of the event streams.

Django's async views are invisible to drf-spectacular, so each stream module documents its endpoint here
when it is imported (the URLconf imports them before any schema is built), and the schema hook in
canvas_project.api.openapi writes them into the document. The project core holds the list; the apps fill it.

A stream also declares its events: `events={name: payload schema}` under a component `prefix`. The hook
writes, per event, `<prefix><Name>` (the event as a client's EventSource sees it: `event` that name,
`data` the JSON text of the payload) and `<prefix><Name>Data` (the payload once parsed), and `<prefix>`, a
`oneOf` of the events with a discriminator on `event`, which the stream's text/event-stream answer uses.
"""

from __future__ import annotations

from typing import Any

# GET streams under a deal: {path, operation_id, summary, description, tag, events, prefix, extra_path_params?}
DEAL_STREAMS: list[dict] = []
# streams answered to a POST with a JSON body: {path, method, operation_id, summary, description, tag, request,
# events, prefix}
POSTED_STREAMS: list[dict] = []
# event streams a DRF view answers besides JSON (POST /generate): prefix -> events
EVENT_SETS: dict[str, dict[str, dict]] = {}


def document_deal_stream(**endpoint) -> None:
    document_events(endpoint["prefix"], endpoint["events"])
    if all(known["path"] != endpoint["path"] for known in DEAL_STREAMS):
        DEAL_STREAMS.append(endpoint)


def document_posted_stream(**endpoint) -> None:
    document_events(endpoint["prefix"], endpoint["events"])
    if all(known["path"] != endpoint["path"] for known in POSTED_STREAMS):
        POSTED_STREAMS.append(endpoint)


def document_events(prefix: str, events: dict[str, dict]) -> None:
    """Declare a set of events under `prefix` (a component name, unique in the project)."""
    EVENT_SETS[prefix] = events


def event_union_ref(prefix: str) -> dict[str, str]:
    """The schema of one event of the set `prefix`, as a text/event-stream response names it."""
    return {"$ref": f"#/components/schemas/{prefix}"}


def payload(description: str, required: dict[str, Any], optional: dict[str, Any] | None = None) -> dict:
    """A payload schema: an object with these properties (JSON Schema each), the `required` ones always
    present. Other properties may come (a payload can grow without breaking a client)."""
    schema = {"type": "object", "description": description, "properties": {**required, **(optional or {})}}
    if required:  # OpenAPI 3.0 refuses an empty `required`
        schema["required"] = sorted(required)
    return schema


# building blocks for payload properties
STRING = {"type": "string"}
UUID = {"type": "string", "format": "uuid"}
NULLABLE_UUID = {"type": "string", "format": "uuid", "nullable": True}
INTEGER = {"type": "integer"}
BOOLEAN = {"type": "boolean"}
MILLIS = {"type": "integer", "description": "When it happened, in milliseconds since the epoch."}
STRINGS = {"type": "array", "items": {"type": "string"}}
OBJECT = {"type": "object", "additionalProperties": True}

# `event: reset` on every stream served by canvas_project.sse.responses: the client reloads what it shows.
RESET = payload(
    "The stream was interrupted. `history_lost` true: events the client has not seen are gone (its last event is "
    "older than the kept history, the history expired or was purged, or Redis restarted): reload. false: the "
    "kept history from the client's position is intact and follows this event (a Redis outage that kept it; a "
    "change made while no event could be recorded sent none). `earliest_event_id`: the oldest event the stream "
    "still keeps (null when it keeps none). The stream goes on after `last_event_id`.",
    {
        "reason": STRING,
        "last_event_id": {"type": "string", "nullable": True},
        "history_lost": BOOLEAN,
        "earliest_event_id": {"type": "string", "nullable": True},
    },
)

# `event: revoked` / `event: expired`, the last event of a stream (canvas_project.sse.guard); the response ends.
REVOKED = payload(
    "The caller's access to the deal is gone (grant removed or lowered below the stream's role, org membership "
    "removed, account deactivated, password changed, API key revoked): the stream ends; a reconnect gets 401 or "
    "404. Sent within SSE_REAUTH_SECONDS of the change.",
    {"reason": STRING},
)
EXPIRED = payload(
    "The credential the stream was opened with (JWT, stream ticket, API key) has expired: the stream ends. Get a "
    "new one and reconnect with Last-Event-ID to resume.",
    {"reason": STRING},
)
# every deal stream's closing events, next to its `reset`
GUARD_EVENTS = {"revoked": REVOKED, "expired": EXPIRED}

# The 429 body when a stream limit is reached (per user or per deal, in one server process).
STREAM_LIMIT_ERROR = {
    "type": "object",
    "description": "Too many event streams open on this server process: `scope` user (SSE_MAX_STREAMS_PER_USER) "
    "or deal (SSE_MAX_STREAMS_PER_DEAL); `limit` is that limit. Retry-After says when to try again.",
    "properties": {
        "detail": STRING,
        "limit": INTEGER,
        "scope": {"type": "string", "enum": ["user", "deal"]},
    },
    "required": ["detail", "limit", "scope"],
}
