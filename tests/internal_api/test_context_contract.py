"""The internal canvas-context contract (docs/architecture.md, "Internal canvas-context contract"), line by line."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import uuid

import pytest
from rest_framework.test import APIClient

from canvas.nodes import selectors as node_selectors
from canvas.nodes import services as nodes
from internal_api.context import summary_revision
from internal_api.models import ChatThread
from tests.canvas.conftest import canvas_url

TOKEN = "test-engine-token-primary"
URL = "/api/internal/canvas/context"


def _call(
    cast,
    thread,
    *,
    token=TOKEN,
    version="2026-02",
    user=None,
    project=None,
    thread_id=None,
    query=None,
    drop=(),
    drop_query=(),
):
    headers = {
        "HTTP_AUTHORIZATION": f"Bearer {token}" if token else "",
        "HTTP_X_CONTRACT_VERSION": version,
        "HTTP_X_USER_ID": str(user or cast.users["editor"].pk),
        "HTTP_X_PROJECT_ID": str(project or cast.deal.pk),
        "HTTP_X_THREAD_ID": str(thread_id or thread.pk),
    }
    for name in drop:
        headers.pop(name)
    params = {
        "agentId": "strategy",
        "projectId": str(project or cast.deal.pk),
        "threadId": str(thread_id or thread.pk),
        **(query or {}),
    }
    for name in drop_query:
        params.pop(name)
    return APIClient().get(URL, params, **{k: v for k, v in headers.items() if v is not None})


def _assert_error(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["success"] is False and set(body) == {"success", "error"}
    assert set(body["error"]) == {"code", "message"} and body["error"]["code"] == code


# --- "Response shape" ------------------------------------------------------------------------------------
def test_the_response_shape(cast, thread, written):
    body = _call(cast, thread).json()
    assert set(body) == {"success", "data", "meta"} and body["success"] is True
    assert set(body["data"]) == {"canvas_profile", "canvas_context"}
    assert {"summary", "nodes", "relationships"} <= set(body["data"]["canvas_context"])
    assert body["meta"]["contractVersion"] == "2026-02"
    summary = body["data"]["canvas_context"]["summary"]
    assert set(summary) == {"nodeCount", "byType", "byStatus"}
    assert set(summary["byStatus"]) == {"approve", "reject", "pending"}
    assert summary["nodeCount"] == 9 and summary["byType"] == {"section": 9}
    assert body["data"]["canvas_profile"]["project_id"] == str(cast.deal.pk)


def test_revision_is_16_hex_of_sha256_over_the_canonical_summary(cast, thread, written):
    body = _call(cast, thread).json()
    summary = body["data"]["canvas_context"]["summary"]
    canonical = json.dumps(summary, sort_keys=True, separators=(",", ":"))
    assert body["meta"]["revision"] == hashlib.sha256(canonical.encode()).hexdigest()[:16]


def test_revision_is_stable_across_processes_and_key_order():
    summary = {
        "nodeCount": 48,
        "byType": {"strategy_item": 22, "section": 26},
        "byStatus": {"approve": 18, "reject": 4, "pending": 26},
    }
    reordered = {
        "byStatus": {"pending": 26, "reject": 4, "approve": 18},
        "nodeCount": 48,
        "byType": {"section": 26, "strategy_item": 22},
    }
    code = (
        "import json, sys, django; django.setup(); from internal_api.context import summary_revision; "
        "print(summary_revision(json.loads(sys.argv[1])))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "123", "DJANGO_SETTINGS_MODULE": "canvas_project.settings"}
    other = (
        subprocess.run(
            [sys.executable, "-c", code, json.dumps(reordered)], capture_output=True, text=True, check=True, env=env
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    assert summary_revision(summary) == summary_revision(reordered) == other
    assert len(other) == 16 and int(other, 16) >= 0


def test_statuses_normalise_to_approve_reject_pending(cast, thread, written):
    for raw in ("approved", "accepted", "rejected", "declined", "dismissed", "in_review", "open"):
        nodes.node_create(deal=cast.deal, actor_id=None, type="strategy_item", title=raw, status=raw)
    cast.client("editor").post(canvas_url(cast.deal, "sections/risks/approve"), {}, format="json")
    body = _call(cast, thread, query={"maxNodes": 100}).json()
    assert body["data"]["canvas_context"]["summary"]["byStatus"] == {"approve": 3, "reject": 3, "pending": 10}
    by_title = {n["title"]: n for n in body["data"]["canvas_context"]["nodes"]}
    assert by_title["accepted"]["status"] == "approve" and by_title["dismissed"]["status"] == "reject"
    assert by_title["in_review"]["status"] == "pending" and by_title["in_review"]["raw_status"] == "in_review"


def test_an_unchanged_revision_omits_the_nodes(cast, thread, written):
    first = _call(cast, thread).json()
    again = _call(cast, thread, query={"revision": first["meta"]["revision"]}).json()
    context = again["data"]["canvas_context"]
    assert context["unchanged"] is True and context["nodes"] == [] and context["relationships"] == {}
    assert context["summary"] == first["data"]["canvas_context"]["summary"]
    nodes.node_create(deal=cast.deal, actor_id=None, type="strategy_item", title="new")
    changed = _call(cast, thread, query={"revision": first["meta"]["revision"]}).json()
    assert changed["data"]["canvas_context"]["unchanged"] is False
    assert changed["meta"]["revision"] != first["meta"]["revision"]


def test_optional_query_parameters(cast, thread, written):
    strategy = nodes.node_create(
        deal=cast.deal, actor_id=None, type="strategy_item", title="Hold 7 years", content="Because.", framework="swot"
    )
    nodes.link_create(
        deal=cast.deal, actor_id=None, source=strategy["id"], target="section:risks", edge_type="addresses"
    )
    bare = _call(cast, thread, query={"maxNodes": 3}).json()["data"]["canvas_context"]
    assert len(bare["nodes"]) == 3 and bare["truncated"] is True
    assert all("content" not in n for n in bare["nodes"]) and bare["relationships"] == {}
    full = _call(
        cast, thread, query={"framework": "swot", "includeContent": "true", "includeRelationships": "true"}
    ).json()["data"]["canvas_context"]
    assert [n["id"] for n in full["nodes"]] == [strategy["id"]]
    assert full["nodes"][0]["content"] == "Because."
    assert full["summary"]["nodeCount"] == 10  # the summary always covers every node
    # an edge to a node outside the listed set is not listed
    assert full["relationships"] == {}
    every = _call(cast, thread, query={"includeRelationships": "true", "maxNodes": 100}).json()
    assert every["data"]["canvas_context"]["relationships"][strategy["id"]] == [
        {"to": "section:risks", "type": "addresses"}
    ]


# --- "401: missing or invalid internal token" ------------------------------------------------------------
@pytest.mark.parametrize(
    ("token", "code"),
    [
        (None, "missing_token"),
        ("nope", "invalid_token"),
        ("test-engine-token-primar", "invalid_token"),
        ("tökén", "invalid_token"),
    ],
)
def test_401_for_a_missing_or_invalid_token(cast, thread, token, code):
    _assert_error(_call(cast, thread, token=token), 401, code)


def test_a_user_jwt_is_not_an_engine_token(cast, thread):
    from deals.tokens import token_pair_for_user

    jwt = token_pair_for_user(user=cast.users["owner"])["access"]
    _assert_error(_call(cast, thread, token=jwt), 401, "invalid_token")


def test_a_rotated_token_is_accepted(cast, thread):
    assert _call(cast, thread, token="test-engine-token-rotated").status_code == 200


# --- "400: missing trusted claims or contract version mismatch" ------------------------------------------
@pytest.mark.parametrize("version", ["2025-01", "", "2026-02 "])
def test_400_for_a_contract_version_mismatch_naming_the_supported_ones(cast, thread, version):
    response = _call(cast, thread, version=version)
    _assert_error(response, 400, "contract_version_mismatch")
    assert "2026-02" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "header", ["HTTP_X_USER_ID", "HTTP_X_PROJECT_ID", "HTTP_X_THREAD_ID", "HTTP_X_CONTRACT_VERSION"]
)
def test_400_for_a_missing_trusted_claim(cast, thread, header):
    code = "contract_version_mismatch" if header == "HTTP_X_CONTRACT_VERSION" else "missing_claim"
    _assert_error(_call(cast, thread, drop=(header,)), 400, code)


def test_400_for_a_malformed_claim(cast, thread):
    _assert_error(_call(cast, thread, user="not-a-uuid"), 400, "invalid_claim")


@pytest.mark.parametrize("name", ["agentId", "projectId", "threadId"])
def test_400_for_a_missing_required_query_parameter(cast, thread, name):
    response = _call(cast, thread, drop_query=(name,))
    _assert_error(response, 400, "missing_parameter")
    assert name in response.json()["error"]["message"]


@pytest.mark.parametrize("max_nodes", ["0", "1001", "-5", "many"])
def test_400_for_max_nodes_outside_its_bounds(cast, thread, max_nodes):
    _assert_error(_call(cast, thread, query={"maxNodes": max_nodes}), 400, "invalid_parameter")


@pytest.mark.parametrize("max_nodes", ["1", "1000"])
def test_max_nodes_bounds_are_inclusive(cast, thread, max_nodes):
    assert _call(cast, thread, query={"maxNodes": max_nodes}).status_code == 200


def test_400_for_a_non_boolean_flag(cast, thread):
    _assert_error(_call(cast, thread, query={"includeContent": "maybe"}), 400, "invalid_parameter")


# --- "403: trusted claim scope and query scope mismatch" -------------------------------------------------
def test_403_when_the_project_claim_and_query_differ(cast, thread):
    headers_project = uuid.uuid4()
    response = APIClient().get(
        URL,
        {"agentId": "a", "projectId": str(cast.deal.pk), "threadId": str(thread.pk)},
        HTTP_AUTHORIZATION=f"Bearer {TOKEN}",
        HTTP_X_CONTRACT_VERSION="2026-02",
        HTTP_X_USER_ID=str(cast.users["editor"].pk),
        HTTP_X_PROJECT_ID=str(headers_project),
        HTTP_X_THREAD_ID=str(thread.pk),
    )
    _assert_error(response, 403, "scope_mismatch")


def test_403_when_the_thread_claim_and_query_differ(cast, thread):
    response = APIClient().get(
        URL,
        {"agentId": "a", "projectId": str(cast.deal.pk), "threadId": str(uuid.uuid4())},
        HTTP_AUTHORIZATION=f"Bearer {TOKEN}",
        HTTP_X_CONTRACT_VERSION="2026-02",
        HTTP_X_USER_ID=str(cast.users["editor"].pk),
        HTTP_X_PROJECT_ID=str(cast.deal.pk),
        HTTP_X_THREAD_ID=str(thread.pk),
    )
    _assert_error(response, 403, "scope_mismatch")


def test_403_when_the_thread_is_of_another_deal(cast, thread):
    from tests import factories

    other = factories.make_deal(cast.org, owner=cast.users["editor"], name="Other")
    foreign = ChatThread.objects.create(deal=other, user=cast.users["editor"], agent_id="a")
    _assert_error(_call(cast, thread, thread_id=foreign.pk), 403, "thread_scope")


@pytest.mark.parametrize("who", ["outsider", "other_org", "superadmin", "member"])
def test_403_when_the_user_has_no_access(cast, thread, who):
    _assert_error(_call(cast, thread, user=cast.users[who].pk), 403, "no_access")


def test_403_for_an_unknown_project(cast, thread):
    ghost = uuid.uuid4()
    _assert_error(_call(cast, thread, project=ghost), 403, "no_access")


def test_any_role_of_the_deal_reads_the_context(cast, thread):
    assert _call(cast, thread, user=cast.users["viewer"].pk).status_code == 200


# --- "500: internal server/runtime failure" --------------------------------------------------------------
def test_500_in_the_envelope_without_internals(cast, thread, settings):
    from canvas_project.store import close_pool
    from tests.servers import free_port

    settings.LANGGRAPH_DATABASE_URL = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    settings.LANGGRAPH_POOL_TIMEOUT = 0.5
    try:
        response = _call(cast, thread)
    finally:
        close_pool()
    _assert_error(response, 500, "dependency_unavailable")
    assert "127.0.0.1" not in response.content.decode() and "Traceback" not in response.content.decode()


def test_the_token_never_reaches_a_log(cast, thread, caplog):
    caplog.set_level(logging.DEBUG)
    _call(cast, thread)
    _call(cast, thread, token="wrong-token-value")
    text = caplog.text
    assert TOKEN not in text and "wrong-token-value" not in text


def test_the_counted_summary_equals_the_summary_of_every_loaded_node(cast, thread, written):
    """canvas_summary_counts reads LangGraph's store table directly: pin it to the slow, obvious path."""
    for n, raw in enumerate(["approved", "rejected", "open", None, "Dismissed", "accepted"]):
        kwargs = {"status": raw} if raw is not None else {}
        nodes.node_create(
            deal=cast.deal, actor_id=None, type="strategy_item" if n % 2 else "risk_item", title=f"n{n}", **kwargs
        )
    cast.client("commenter").post(
        canvas_url(cast.deal, "comments"), {"section_key": "risks", "body": "?"}, format="json"
    )
    cast.client("editor").post(canvas_url(cast.deal, "sections/risks/approve"), {}, format="json")
    loaded = node_selectors.summarize(node_selectors.canvas_graph(cast.deal)[0])
    assert node_selectors.canvas_summary_counts(cast.deal) == loaded
    assert loaded["nodeCount"] == 16 and loaded["byStatus"]["reject"] == 2


def test_an_unchanged_revision_does_not_load_the_nodes(cast, thread, written, monkeypatch):
    revision = _call(cast, thread).json()["meta"]["revision"]

    def forbidden(deal):
        raise AssertionError("canvas_graph was called for an unchanged revision")

    monkeypatch.setattr("canvas.nodes.selectors.canvas_graph", forbidden)
    body = _call(cast, thread, query={"revision": revision}).json()
    assert body["data"]["canvas_context"]["unchanged"] is True


@pytest.mark.parametrize(
    ("limit", "framework"), [(3, None), (9, None), (12, None), (40, None), (2, "swot"), (40, "swot")]
)
def test_a_page_of_nodes_is_the_start_of_the_whole_list(cast, thread, written, limit, framework):
    for n in range(15):
        nodes.node_create(
            deal=cast.deal, actor_id=None, type="strategy_item", title=f"n{n}", framework="swot" if n % 3 == 0 else None
        )
    everything = [
        n for n in node_selectors.canvas_graph(cast.deal)[0] if framework is None or n["framework"] == framework
    ]
    page, truncated, _implicit = node_selectors.nodes_page(cast.deal, limit=limit, framework=framework)
    assert [n["id"] for n in page] == [n["id"] for n in everything[:limit]]
    assert truncated == (len(everything) > limit)
