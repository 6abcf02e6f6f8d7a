"""OWASP API7 (SSRF) and API10 (unsafe consumption of APIs): the outbound HTTP calls.

The only URL a request may name is a run's completion webhook (`webhook` on generate and regenerate), which
the outbound policy checks (canvas_project/webhooks.py; its refusals are tested in
tests/canvas/test_run_webhooks.py and tests/canvas_project/test_webhook_policy.py). The other outbound call is
the chat push to the operator's ENGINE_URL. It follows no redirect, is cut off by ENGINE_TIMEOUT_SECONDS, and
an answer of the wrong shape is refused as 503 instead of being passed on.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.canvas.conftest import full_memo, save
from tests.servers import free_port

URL_WORDS = ("url", "uri", "href", "webhook", "callback", "endpoint", "host")


@pytest.fixture(scope="module")
def schema(django_db_blocker) -> dict:
    from drf_spectacular.generators import SchemaGenerator

    with django_db_blocker.unblock():
        return SchemaGenerator().get_schema(request=None, public=True)


def _request_properties(schema: dict) -> Iterator[tuple[str, str, dict]]:
    """(operation, property or parameter name, its schema) of everything a client may send."""
    components = schema["components"]["schemas"]

    def walk(node: dict, seen: set[str]) -> Iterator[tuple[str, dict]]:
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            if name not in seen:
                yield from walk(components[name], seen | {name})
            return
        for key in ("allOf", "oneOf", "anyOf"):
            for part in node.get(key, []):
                yield from walk(part, seen)
        for prop, sub in node.get("properties", {}).items():
            yield prop, sub
            yield from walk(sub, seen)
        if isinstance(node.get("items"), dict):
            yield from walk(node["items"], seen)

    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            name = f"{method.upper()} {path}"
            for parameter in operation.get("parameters", []):
                yield name, parameter["name"], parameter.get("schema", {})
            for media in operation.get("requestBody", {}).get("content", {}).values():
                for prop, sub in walk(media.get("schema", {}), set()):
                    yield name, prop, sub


# The URLs a request may name, each checked by the outbound policy (WEBHOOK_ALLOWED_HOSTS, no private address).
POLICED_URLS = {
    ("POST /api/canvas/{deal_id}/generate", "webhook"),
    ("POST /api/canvas/{deal_id}/sections/{key}/regenerate", "webhook"),
}


def test_no_request_takes_a_url_or_host_to_call_but_the_policed_webhooks(schema):
    offenders = [
        (operation, prop)
        for operation, prop, sub in _request_properties(schema)
        if sub.get("format") in ("uri", "url", "hostname", "ipv4", "ipv6")
        or any(word in prop.lower() for word in URL_WORDS)
    ]
    assert set(offenders) == POLICED_URLS
    assert sum(1 for _ in _request_properties(schema)) > 100  # the walk really saw the API's inputs


class _Handler(BaseHTTPRequestHandler):
    respond: Callable[[BaseHTTPRequestHandler], None] = staticmethod(lambda handler: None)
    calls: list[str] = []

    def do_POST(self):  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).calls.append(self.path)
        type(self).respond(self)

    def log_message(self, *args):
        pass


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # the service hung up on a stalled answer: that is what the timeout test wants


@contextmanager
def _server(respond: Callable[[BaseHTTPRequestHandler], None]) -> Iterator[tuple[str, list[str]]]:
    handler = type("Handler", (_Handler,), {"respond": staticmethod(respond), "calls": []})
    server = _QuietServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler.calls
    finally:
        server.shutdown()
        server.server_close()


def _answer(status: int, body: bytes, headers: dict | None = None) -> Callable[[BaseHTTPRequestHandler], None]:
    def respond(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return respond


def _chat(cast, **extra):
    save(cast.client("owner"), cast.deal, full_memo())
    body = {"message": "What are the risks?", "project_id": str(cast.deal.pk), "agent_id": "strategy", **extra}
    return cast.client("viewer").post("/api/v1/chat", body, format="json")


def test_the_engine_call_follows_no_redirect(cast, settings):
    with (
        _server(_answer(200, b'{"content": "from the redirect target"}')) as (target, target_calls),
        _server(_answer(307, b"", {"Location": f"{target}/chat"})) as (engine, engine_calls),
    ):
        settings.ENGINE_URL = engine
        response = _chat(cast)
    assert engine_calls == ["/chat"] and target_calls == []
    assert response.status_code == 503 and "engine" in response.json()["detail"]


def test_a_client_cannot_choose_where_the_engine_call_goes(cast, settings):
    with _server(_answer(200, b'{"content": "fine"}')) as (engine, calls):
        settings.ENGINE_URL = engine
        steered = _chat(cast, engine_url="http://169.254.169.254/latest/meta-data/")
        assert steered.status_code == 422 and steered.json()["detail"][0]["type"] == "extra_forbidden"
        assert calls == []
        assert _chat(cast).status_code == 200 and calls == ["/chat"]


@pytest.mark.parametrize(
    "answer",
    [
        _answer(200, b"<html>not json</html>", {"Content-Type": "text/html"}),
        _answer(200, b'{"content": 42}'),
        _answer(200, b'{"message": {"content": ["a", "list"]}}'),
        _answer(200, b'["content"]'),
        _answer(200, b'{"message": "a string"}'),
        _answer(200, b'"a bare string"'),
        _answer(200, b"null"),
        _answer(200, b'{"message": {"content": ""}}'),
        _answer(200, b"[" * 100_000 + b"]" * 100_000),
        _answer(500, b'{"content": "an error page that looks like an answer"}'),
    ],
    ids=[
        "html",
        "content not text",
        "content a list",
        "a json list",
        "message a string",
        "a bare string",
        "null",
        "empty content",
        "nested too deep",
        "a 500",
    ],
)
def test_an_engine_answer_of_the_wrong_shape_is_503_and_not_passed_on(cast, settings, answer):
    with _server(answer) as (engine, calls):
        settings.ENGINE_URL = engine
        response = _chat(cast)
    assert calls == ["/chat"]
    assert response.status_code == 503
    assert response.json() == {"detail": "The AI engine is unavailable; try again shortly."} or response.json() == {
        "detail": "The AI engine answered without a message."
    }


def _unsized_answer(body: bytes) -> Callable[[BaseHTTPRequestHandler], None]:
    """An answer without Content-Length: the body ends when the connection closes (HTTP/1.0)."""

    def respond(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.end_headers()
        handler.wfile.write(body)

    return respond


def _sized_answer(body: bytes) -> Callable[[BaseHTTPRequestHandler], None]:
    return _answer(200, body)


@pytest.mark.parametrize("respond", [_sized_answer, _unsized_answer], ids=["with Content-Length", "without"])
def test_an_engine_answer_over_the_size_limit_is_503(cast, settings, respond):
    settings.ENGINE_MAX_RESPONSE_BYTES = 1000
    fits = json.dumps({"content": "x" * 900}).encode()
    with _server(respond(fits)) as (engine, _calls):
        settings.ENGINE_URL = engine
        response = _chat(cast)
    assert response.status_code == 200 and response.json()["message"]["content"] == "x" * 900

    too_large = json.dumps({"content": "x" * 1001}).encode()
    with _server(respond(too_large)) as (engine, calls):
        settings.ENGINE_URL = engine
        response = _chat(cast)
    assert calls == ["/chat"]
    assert response.status_code == 503
    assert response.json() == {"detail": "The AI engine's answer was larger than 1000 bytes."}


def test_the_default_engine_answer_limit_is_1_mib():
    from canvas_project import settings as project_settings

    assert project_settings.ENGINE_MAX_RESPONSE_BYTES == 1024 * 1024


def test_a_slow_engine_is_cut_off_by_the_timeout(cast, settings):
    def stall(handler: BaseHTTPRequestHandler) -> None:
        time.sleep(4)
        _answer(200, json.dumps({"content": "too late"}).encode())(handler)

    with _server(stall) as (engine, _calls):
        settings.ENGINE_URL = engine
        settings.ENGINE_TIMEOUT_SECONDS = 1
        started = time.monotonic()
        response = _chat(cast)
        elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert elapsed < 3.5
