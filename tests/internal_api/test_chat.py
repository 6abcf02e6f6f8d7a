"""POST /api/v1/chat, /api/v1/chat/stream, GET /api/v1/threads and GET /api/v1/threads/{id}/messages."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx
import pytest
from django.conf import settings
from django.db import connection

from canvas.nodes import services as nodes
from canvas_project.store import deal_thread_ids
from deals.tokens import token_pair_for_user
from internal_api.models import ChatThread
from tests.conftest import ROLES
from tests.servers import ServiceProcess, database_url_of, free_port


def _chat(client, deal, message="What are the risks?", **extra):
    return client.post(
        "/api/v1/chat", {"message": message, "project_id": str(deal.pk), "agent_id": "strategy", **extra}, format="json"
    )


@pytest.mark.parametrize("role", ROLES)
def test_role_matrix(cast, written, role):
    expected = {"anonymous": 401, "outsider": 404, "other_org": 404, "superadmin": 404}.get(role, 200)
    assert _chat(cast.client(role), cast.deal).status_code == expected
    listed = cast.client(role).get(f"/api/v1/threads?project_id={cast.deal.pk}")
    assert listed.status_code == expected


def test_the_forwarded_metadata_has_the_contract_shape(cast, written):
    nodes.node_create(deal=cast.deal, actor_id=None, type="strategy_item", title="Hold", status="approved")
    body = _chat(cast.client("viewer"), cast.deal, knowledge_search=False, canvas_profile={"tone": "brief"}).json()
    metadata = body["metadata"]
    assert set(metadata) == {"knowledge_search", "attached_document_ids", "canvas_context", "canvas_profile"}
    assert metadata["knowledge_search"] is False and metadata["canvas_profile"] == {"tone": "brief"}
    context = metadata["canvas_context"]
    assert context["mode"] == "summary"
    assert context["summary"] == {
        "nodeCount": 10,
        "byType": {"section": 9, "strategy_item": 1},
        "byStatus": {"approve": 1, "reject": 0, "pending": 9},
    }
    ref = context["context_ref"]
    assert ref == {
        "project_id": str(cast.deal.pk),
        "thread_id": body["thread_id"],
        "agent_id": "strategy",
        "revision": ref["revision"],
    }
    # the pushed revision is the one the internal endpoint serves
    from internal_api.context import canvas_summary

    assert canvas_summary(cast.deal)[1] == ref["revision"]


def test_the_embedded_engine_answers_from_the_canvas_and_keeps_history(cast, written):
    client = cast.client("viewer")
    first = _chat(client, cast.deal, "Show me the details of the risks section").json()
    assert first["message"]["role"] == "assistant"
    assert "9 items" in first["message"]["content"] and "Risks and Mitigants" in first["message"]["content"]
    thread = ChatThread.objects.get(pk=first["thread_id"])
    assert thread.user == cast.users["viewer"] and thread.title.startswith("Show me")
    second = _chat(client, cast.deal, "And the market?", thread_id=first["thread_id"]).json()
    assert second["thread_id"] == first["thread_id"] and "message 2 of our conversation" in second["message"]["content"]
    assert thread.langgraph_thread_id in deal_thread_ids(cast.deal.pk)
    listed = client.get(f"/api/v1/threads?project_id={cast.deal.pk}").json()["results"]
    assert [t["id"] for t in listed] == [first["thread_id"]]


def test_someone_elses_thread_is_404(cast, written):
    theirs = _chat(cast.client("editor"), cast.deal).json()["thread_id"]
    assert _chat(cast.client("viewer"), cast.deal, thread_id=theirs).status_code == 404


def test_a_thread_reads_back_with_its_messages(cast, written):
    client = cast.client("viewer")
    first = _chat(client, cast.deal, "Show me the details of the risks section").json()
    second = _chat(client, cast.deal, "And the market?", thread_id=first["thread_id"]).json()
    response = client.get(f"/api/v1/threads/{first['thread_id']}/messages")
    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["project_id"], body["agent_id"]) == (first["thread_id"], str(cast.deal.pk), "strategy")
    assert body["title"].startswith("Show me") and body["created_at"] and body["updated_at"]
    assert body["messages"] == [
        {"role": "user", "content": "Show me the details of the risks section"},
        {"role": "assistant", "content": first["message"]["content"]},
        {"role": "user", "content": "And the market?"},
        {"role": "assistant", "content": second["message"]["content"]},
    ]


def test_a_new_thread_without_history_has_no_messages(cast, written):
    thread = ChatThread.objects.create(deal=cast.deal, user=cast.users["viewer"], agent_id="strategy")
    body = cast.client("viewer").get(f"/api/v1/threads/{thread.pk}/messages").json()
    assert body["messages"] == [] and body["title"] == ""


def test_only_its_user_reads_a_thread(cast, written):
    theirs = _chat(cast.client("editor"), cast.deal).json()["thread_id"]
    for role in ("viewer", "owner", "superadmin", "outsider"):
        response = cast.client(role).get(f"/api/v1/threads/{theirs}/messages")
        assert response.status_code == 404, role
        assert response.json() == {"detail": "No chat thread of yours has this id."}
    assert cast.client("anonymous").get(f"/api/v1/threads/{theirs}/messages").status_code == 401
    unknown = cast.client("editor").get("/api/v1/threads/6f1c0d52-3b7e-4d0a-9a51-2f3c4b5d6e7f/messages")
    assert unknown.status_code == 404
    malformed = cast.client("editor").get("/api/v1/threads/nope/messages")
    assert malformed.status_code == 422 and malformed.json()["detail"][0]["loc"] == ["path", "thread_id"]


def test_a_thread_of_a_deal_the_user_lost_is_404(cast, written):
    from deals.models import DealAccess

    mine = _chat(cast.client("viewer"), cast.deal).json()["thread_id"]
    DealAccess.objects.filter(deal=cast.deal, user=cast.users["viewer"]).delete()
    assert cast.client("viewer").get(f"/api/v1/threads/{mine}/messages").status_code == 404


def test_a_deal_scoped_token_reads_only_its_deals_threads(cast, written):
    from deals.tokens import deal_token_mint
    from tests import factories

    mine = _chat(cast.client("owner"), cast.deal).json()["thread_id"]
    other = factories.make_deal(cast.org, owner=cast.users["owner"], name="Elsewhere")
    scoped = factories.client_for(token=deal_token_mint(user_id=cast.users["owner"].pk, deal_id=other.pk)["access"])
    assert scoped.get(f"/api/v1/threads/{mine}/messages").status_code == 404


def test_the_history_store_down_is_503(cast, written, monkeypatch):
    from psycopg_pool import PoolTimeout

    from internal_api import chat

    mine = _chat(cast.client("viewer"), cast.deal).json()["thread_id"]

    class Down:
        def get_state(self, config):
            raise PoolTimeout("no connection")

    monkeypatch.setattr(chat, "embedded_engine", Down)
    response = cast.client("viewer").get(f"/api/v1/threads/{mine}/messages")
    assert response.status_code == 503 and "chat history" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"message": ""}, ["body", "message"]),
        ({"attached_document_ids": ["nope"]}, ["body", "attached_document_ids", 0]),
        ({"attached_document_ids": ["6f1c0d52-3b7e-4d0a-9a51-2f3c4b5d6e7f"]}, ["body", "attached_document_ids", 0]),
    ],
)
def test_bad_chat_bodies_are_422(cast, written, body, loc):
    response = cast.client("viewer").post(
        "/api/v1/chat", {"message": "hi", "project_id": str(cast.deal.pk), "agent_id": "a", **body}, format="json"
    )
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == loc


def test_chat_spends_the_shared_generate_bucket(cast, written, settings):
    settings.GENERATE_RATE_PER_MINUTE = 1
    settings.GENERATE_RATE_BURST = 2
    client = cast.client("editor")
    assert client.post(f"/api/canvas/{cast.deal.pk}/refresh").status_code == 200
    assert _chat(client, cast.deal).status_code == 200
    limited = _chat(client, cast.deal)
    assert limited.status_code == 429 and int(limited["Retry-After"]) >= 1


class _Engine(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Engine.received.append({"path": self.path, "headers": dict(self.headers), "body": body})
        payload = json.dumps({"content": f"external answer to {body['message']}"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


def test_an_external_engine_gets_the_internal_headers_and_metadata(cast, written, settings):
    port = free_port()
    server = HTTPServer(("127.0.0.1", port), _Engine)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.ENGINE_URL = f"http://127.0.0.1:{port}"
    _Engine.received.clear()
    try:
        body = _chat(cast.client("viewer"), cast.deal, "Hello engine").json()
    finally:
        server.shutdown()
    assert body["message"]["content"] == "external answer to Hello engine"
    call = _Engine.received[0]
    assert call["path"] == "/chat"
    assert call["headers"]["Authorization"] == "Bearer test-engine-token-primary"
    assert call["headers"]["X-Contract-Version"] == "2026-02"
    assert call["headers"]["X-Project-Id"] == str(cast.deal.pk)
    assert call["headers"]["X-Thread-Id"] == body["thread_id"]
    assert call["body"]["metadata"]["canvas_context"]["mode"] == "summary"


def test_an_unreachable_external_engine_is_503(cast, written, settings):
    settings.ENGINE_URL = f"http://127.0.0.1:{free_port()}"
    settings.ENGINE_TIMEOUT_SECONDS = 2
    response = _chat(cast.client("viewer"), cast.deal)
    assert response.status_code == 503 and "engine" in response.json()["detail"]


@pytest.mark.django_db(transaction=True)
def test_the_stream_variant_over_real_http(cast, memo_text):
    from tests.canvas.conftest import save

    save(cast.client("owner"), cast.deal, memo_text)
    server = ServiceProcess(
        {
            "DJANGO_SETTINGS_MODULE": "canvas_project.settings",
            "DATABASE_URL": database_url_of(connection.settings_dict),
            "REDIS_URL": settings.REDIS_URL,
        }
    ).start()
    try:
        token = token_pair_for_user(user=cast.users["viewer"])["access"]
        events, current = [], {}
        with httpx.stream(
            "POST",
            f"{server.url}/api/v1/chat/stream",
            timeout=30,
            headers={"Authorization": f"Bearer {token}"},
            json={"message": "details of the risks section", "project_id": str(cast.deal.pk), "agent_id": "strategy"},
        ) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            for line in response.iter_lines():
                if not line:
                    if current:
                        events.append(current)
                    current = {}
                elif ":" in line and not line.startswith(":"):
                    name, _, value = line.partition(":")
                    current[name] = value.lstrip(" ")
        anonymous = httpx.post(f"{server.url}/api/v1/chat/stream", json={}, timeout=10)
        bad = httpx.post(
            f"{server.url}/api/v1/chat/stream",
            headers={"Authorization": f"Bearer {token}"},
            json={"message": "", "project_id": str(cast.deal.pk), "agent_id": "a"},
            timeout=10,
        )
    finally:
        server.stop()
    kinds = [e.get("event") for e in events]
    assert kinds[-2:] == ["message_end", "done"] and set(kinds[:-2]) == {"message"}
    deltas = "".join(json.loads(e["data"])["delta"] for e in events if e.get("event") == "message")
    end = json.loads(events[-2]["data"])
    assert deltas == end["message"]["content"] and "Risks and Mitigants" in deltas
    assert anonymous.status_code == 401
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "message"]
