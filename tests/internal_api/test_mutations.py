"""POST /api/internal/canvas/mutations: engines create nodes, suggestions and links, idempotently."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from canvas.models import Suggestion
from canvas.nodes import selectors as node_selectors
from internal_api.models import ChatThread, IdempotencyRecord

URL = "/api/internal/canvas/mutations"


@pytest.fixture
def thread(cast):
    return ChatThread.objects.create(deal=cast.deal, user=cast.users["editor"], agent_id="strategy")


def _post(cast, thread, body, *, key="k-1", user="editor", token="test-engine-token-primary"):
    headers = {
        "HTTP_AUTHORIZATION": f"Bearer {token}",
        "HTTP_X_CONTRACT_VERSION": "2026-02",
        "HTTP_X_USER_ID": str(cast.users[user].pk),
        "HTTP_X_PROJECT_ID": str(cast.deal.pk),
        "HTTP_X_THREAD_ID": str(thread.pk),
    }
    if key is not None:
        headers["HTTP_IDEMPOTENCY_KEY"] = key
    return APIClient().post(URL, body, format="json", **headers)


BODY = {
    "agent_id": "strategy",
    "mutations": [
        {"op": "create_node", "node": {"type": "strategy_item", "title": "Refinance in year 3", "framework": "swot"}},
    ],
}


def test_it_creates_nodes_tagged_with_agent_and_thread(cast, thread, written):
    response = _post(cast, thread, BODY)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["success"] is True and body["meta"]["replayed"] is False
    node_id = body["data"]["results"][0]["node_id"]
    stored = {n["id"]: n for n in node_selectors.canvas_graph(cast.deal)[0]}[node_id]
    assert stored["agent_id"] == "strategy" and stored["thread_id"] == str(thread.pk)
    assert stored["framework"] == "swot" and stored["status"] == "pending"


def test_a_replayed_key_returns_the_first_result_and_changes_nothing(cast, thread, written):
    first = _post(cast, thread, BODY).json()
    again = _post(cast, thread, BODY)
    assert again.status_code == 200
    assert again.json()["data"] == first["data"] and again.json()["meta"]["replayed"] is True
    assert sum(1 for n in node_selectors.canvas_graph(cast.deal)[0] if n["type"] == "strategy_item") == 1
    assert IdempotencyRecord.objects.count() == 1


def test_a_key_reused_with_another_body_is_refused(cast, thread, written):
    _post(cast, thread, BODY)
    other = {**BODY, "mutations": [{"op": "create_node", "node": {"type": "risk_item", "title": "x"}}]}
    response = _post(cast, thread, other)
    assert response.status_code == 400 and response.json()["error"]["code"] == "idempotency_key_reused"


def test_the_idempotency_key_is_required(cast, thread, written):
    response = _post(cast, thread, BODY, key=None)
    assert response.status_code == 400 and response.json()["error"]["code"] == "missing_idempotency_key"


def test_suggestions_and_links(cast, thread, written):
    body = {
        "agent_id": "strategy",
        "mutations": [
            {
                "op": "create_suggestion",
                "suggestion": {
                    "section_key": "risks",
                    "kind": "insert",
                    "anchor_text": "",
                    "content": "Rate caps are in place.",
                },
            },
            {"op": "link", "source": "section:risks", "target": "section:financing", "type": "depends_on"},
        ],
    }
    response = _post(cast, thread, body)
    assert response.status_code == 200, response.content
    suggestion = Suggestion.objects.get()
    assert suggestion.author == cast.users["editor"] and suggestion.content == "Rate caps are in place."
    results = response.json()["data"]["results"]
    assert results[0]["node_id"] == f"suggestion:{suggestion.pk}"
    _nodes, edges = node_selectors.canvas_graph(cast.deal)
    assert {"from": "section:risks", "to": "section:financing", "type": "depends_on"} in [
        {k: e[k] for k in ("from", "to", "type")} for e in edges
    ]


def test_a_failing_mutation_is_400_and_the_key_can_be_retried(cast, thread, written):
    bad = {
        "agent_id": "strategy",
        "mutations": [{"op": "link", "source": "section:risks", "target": "section:nope", "type": "depends_on"}],
    }
    response = _post(cast, thread, bad, key="retry-me")
    assert response.status_code == 400 and "mutation 0" in response.json()["error"]["message"]
    assert not IdempotencyRecord.objects.filter(key="retry-me").exists()


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"agent_id": "a", "mutations": []},
        {"agent_id": "a", "mutations": [{"op": "explode"}]},
        {"agent_id": "a", "mutations": [{"op": "create_node"}]},
        {"agent_id": "a", "mutations": [{"op": "create_node", "node": {"type": "section", "title": "x"}}]},
    ],
)
def test_bad_bodies_are_400_in_the_envelope(cast, thread, written, body):
    response = _post(cast, thread, body, key=f"bad-{len(str(body))}")
    assert response.status_code == 400
    assert response.json()["success"] is False and response.json()["error"]["code"]


@pytest.mark.parametrize(("user", "status"), [("viewer", 403), ("commenter", 200), ("outsider", 403)])
def test_the_claimed_user_needs_the_commenter_role(cast, thread, written, user, status):
    assert _post(cast, thread, BODY, user=user).status_code == status


def test_a_wrong_token_is_401(cast, thread):
    assert _post(cast, thread, BODY, token="nope").status_code == 401


@pytest.mark.parametrize(
    "raw, content_type",
    [
        (
            '{"agent_id": "strategy", "mutations": '
            '[{"op": "create_node", "node": {"type": "x", "title": "a\\u0000b"}}]}',
            "application/json",
        ),
        ("{not json", "application/json"),
        ("agent_id=strategy", "text/plain"),
    ],
)
def test_an_unreadable_body_is_the_contracts_400_not_a_500(cast, thread, written, raw, content_type):
    # found by tests/test_schemathesis.py: a NUL in the JSON body answered 500 internal_error
    headers = {
        "HTTP_AUTHORIZATION": "Bearer test-engine-token-primary",
        "HTTP_X_CONTRACT_VERSION": "2026-02",
        "HTTP_X_USER_ID": str(cast.users["editor"].pk),
        "HTTP_X_PROJECT_ID": str(cast.deal.pk),
        "HTTP_X_THREAD_ID": str(thread.pk),
        "HTTP_IDEMPOTENCY_KEY": "k-raw",
    }
    response = APIClient().post(URL, raw, content_type=content_type, **headers)
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["success"] is False and body["error"]["code"] == "invalid_body"
    assert not IdempotencyRecord.objects.exists()


@pytest.mark.parametrize(
    "method, url",
    [("get", URL), ("delete", URL), ("post", "/api/internal/canvas/context"), ("put", "/api/internal/canvas/context")],
)
def test_an_unsupported_method_is_405_in_the_envelope_not_a_500(method, url):
    # found by tests/test_schemathesis.py (its coverage cases try the methods an operation does not have)
    response = getattr(APIClient(), method)(url, HTTP_AUTHORIZATION="Bearer test-engine-token-primary")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed" and "OPTIONS" in response["Allow"]
