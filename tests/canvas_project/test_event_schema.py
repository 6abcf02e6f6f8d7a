"""The event streams' payloads are in the OpenAPI document: a component per event type, a oneOf with a
discriminator per stream, and every event type the code emits is one of them."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [
    path for package in ("canvas", "deals", "internal_api", "canvas_project") for path in (ROOT / package).rglob("*.py")
]

# (the callee as written, the position of the argument that names the event type)
EMITTERS = {
    "canvas": [("events.emit", 1)],
    "run": [("telemetry.emit_run_event", 2), ("ctx.emit", 0)],
    "discourse": [("telemetry.discourse_emit", 1)],
}


@pytest.fixture(scope="module")
def schema(django_db_blocker) -> dict:
    from drf_spectacular.generators import SchemaGenerator

    with django_db_blocker.unblock():
        return json.loads(json.dumps(SchemaGenerator().get_schema(request=None, public=True), default=str))


def _callee(node: ast.Call) -> str:
    return ast.unparse(node.func)


def _literals(node: ast.AST) -> set[str]:
    """The event types an argument can be: a string, or either branch of `a if cond else b`."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.IfExp):
        return _literals(node.body) | _literals(node.orelse)
    return set()


def _emitted(stream: str) -> set[str]:
    """Every event type the code passes as a literal to the stream's emitters (memo writes name theirs with
    `event=`)."""
    found: set[str] = set()
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            callee = _callee(node)
            for name, where in EMITTERS[stream]:
                if callee != name:
                    continue
                if len(node.args) > where:
                    found |= _literals(node.args[where])
            if stream == "canvas" and callee == "memo_write":
                found |= {lit for kw in node.keywords if kw.arg == "event" for lit in _literals(kw.value)}
    return found


def _union(schema: dict, name: str) -> dict:
    return schema["components"]["schemas"][name]


@pytest.mark.parametrize(
    "stream, component, path",
    [
        ("canvas", "CanvasEvent", "/api/canvas/{deal_id}/events"),
        ("run", "RunEvent", "/api/canvas/{deal_id}/runs/{run_id}/stream"),
        ("discourse", "DiscourseEvent", "/api/canvas/{deal_id}/discourse/stream"),
    ],
)
def test_it_documents_every_event_type_the_code_emits(schema, stream, component, path):
    union = _union(schema, component)
    documented = set(union["discriminator"]["mapping"])
    emitted = _emitted(stream)
    assert len(emitted) >= 4, f"the scan found too few {stream} events: {emitted}"
    assert emitted <= documented, f"emitted but not in {component}: {sorted(emitted - documented)}"
    assert "reset" in documented  # every stream of canvas_project.sse.responses may send it
    stream_schema = schema["paths"][path]["get"]["responses"]["200"]["content"]["text/event-stream"]["schema"]
    assert stream_schema == {"$ref": f"#/components/schemas/{component}"}


def test_each_event_is_a_component_with_its_payload(schema):
    schemas = schema["components"]["schemas"]
    for union_name in ("CanvasEvent", "RunEvent", "DiscourseEvent", "ChatStreamEvent"):
        union = schemas[union_name]
        assert union["discriminator"]["propertyName"] == "event"
        assert [one["$ref"] for one in union["oneOf"]] == list(union["discriminator"]["mapping"].values())
        for name, ref in union["discriminator"]["mapping"].items():
            event = schemas[ref.rsplit("/", 1)[1]]
            assert event["properties"]["event"]["enum"] == [name]
            assert event["required"] == ["event", "data"]
            data_ref = event["properties"]["data"]["x-json-schema"]["$ref"]
            data = schemas[data_ref.rsplit("/", 1)[1]]
            assert data["type"] == "object"
            assert set(data.get("required", [])) <= set(data["properties"])


def test_the_409_and_423_bodies_carry_their_extras(schema):
    schemas = schema["components"]["schemas"]
    assert "current_version" in schemas["ConflictError"]["properties"]
    assert {"holder", "holder_id", "expires_at", "locked_sections"} <= set(schemas["LockedError"]["properties"])


def test_the_run_stream_of_generate_is_the_run_events(schema):
    responses = schema["paths"]["/api/canvas/{deal_id}/generate"]["post"]["responses"]
    assert responses["200"]["content"]["text/event-stream"]["schema"] == {"$ref": "#/components/schemas/RunEvent"}


def test_the_chat_stream_documents_its_three_events(schema):
    union = _union(schema, "ChatStreamEvent")
    assert set(union["discriminator"]["mapping"]) == {"message", "message_end", "done"}
    stream = schema["paths"]["/api/v1/chat/stream"]["post"]["responses"]["200"]["content"]["text/event-stream"]
    assert stream["schema"] == {"$ref": "#/components/schemas/ChatStreamEvent"}
