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
    "The client must reload: the history it resumes from is gone, or events may have been lost.",
    {"reason": STRING, "last_event_id": {"type": "string", "nullable": True}},
)
