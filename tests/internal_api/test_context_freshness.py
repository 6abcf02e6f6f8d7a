"""Fresh context for engines: `unchanged` only while nothing the question asks for changed, the content
revision, the cached context (internal_api.context_cache) against the uncached reads after every kind of
write, its cost in queries, and the embedded chat engine's pulls."""

from __future__ import annotations

import hashlib

import orjson
import pytest
from django.test import override_settings

from canvas.nodes import selectors as node_selectors
from canvas_project import keys
from canvas_project.redis_client import get_redis
from canvas_project.store import close_pool
from deals.models import Deal
from internal_api import chat
from internal_api import context as context_service
from tests.canvas.conftest import canvas_url
from tests.internal_api.test_context_contract import _call
from tests.servers import ThrowawayRedis, free_port

BOTH = {"includeContent": "true", "includeRelationships": "true"}


def _context(cast, thread, **query):
    response = _call(cast, thread, query={"maxNodes": 100, **query})
    assert response.status_code == 200, response.content
    return response.json()


def _node(cast, **body):
    response = cast.client("commenter").post(
        canvas_url(cast.deal, "nodes"), {"type": "strategy_item", "title": "Hold 7 years", **body}, format="json"
    )
    assert response.status_code == 201, response.content
    return response.json()


def _patch(cast, node_id, **changes):
    response = cast.client("editor").patch(canvas_url(cast.deal, f"nodes/{node_id}"), changes, format="json")
    assert response.status_code == 200, response.content


def _link(cast, source, target, kind="supports"):
    response = cast.client("commenter").post(
        canvas_url(cast.deal, f"nodes/{source}/links"), {"to": target, "type": kind}, format="json"
    )
    assert response.status_code == 201, response.content


def _unchanged(cast, thread, revision, **query) -> bool:
    return _context(cast, thread, revision=revision, **query)["data"]["canvas_context"]["unchanged"]


# --- the cases -------------------------------------------------------------------------------------
def test_a_content_only_edit_is_never_unchanged_for_an_engine_that_asked_for_content(cast, thread, written):
    node = _node(cast, content="Hold for seven years.")
    first = _context(cast, thread, includeContent="true")
    _patch(cast, node["id"], content="Sell in year three.")
    # the counts did not move: the summary revision is the same
    after = _context(cast, thread, includeContent="true")
    assert after["meta"]["revision"] == first["meta"]["revision"]
    assert after["meta"]["contentRevision"] != first["meta"]["contentRevision"]
    for sent in (first["meta"]["contentRevision"], first["meta"]["revision"]):
        body = _context(cast, thread, includeContent="true", revision=sent)
        context = body["data"]["canvas_context"]
        assert context["unchanged"] is False
        assert next(n for n in context["nodes"] if n["id"] == node["id"])["content"] == "Sell in year three."


def test_a_section_edit_is_never_unchanged_for_an_engine_that_asked_for_content(cast, thread, written):
    first = _context(cast, thread, includeContent="true")
    response = cast.client("editor").put(
        canvas_url(cast.deal, "sections/risks"), {"markdown": "Rates may rise; the cap is hedged."}, format="json"
    )
    assert response.status_code == 200, response.content
    body = _context(cast, thread, includeContent="true", revision=first["meta"]["contentRevision"])
    context = body["data"]["canvas_context"]
    assert context["unchanged"] is False
    risks = next(n for n in context["nodes"] if n["id"] == "section:risks")
    assert risks["content"].startswith("Rates may rise; the cap is hedged.")


def test_a_relationship_only_change_is_never_unchanged_for_an_engine_that_asked_for_relationships(
    cast, thread, written
):
    a, b = _node(cast, title="A"), _node(cast, title="B")
    first = _context(cast, thread, includeRelationships="true")
    _link(cast, a["id"], b["id"])
    assert _context(cast, thread)["meta"]["revision"] == first["meta"]["revision"]  # no count moved
    for sent in (first["meta"]["contentRevision"], first["meta"]["revision"]):
        context = _context(cast, thread, includeRelationships="true", revision=sent)["data"]["canvas_context"]
        assert context["unchanged"] is False
        assert context["relationships"][a["id"]] == [{"to": b["id"], "type": "supports"}]
    linked = _context(cast, thread, includeRelationships="true")
    response = cast.client("editor").delete(canvas_url(cast.deal, f"nodes/{a['id']}/links?to={b['id']}&type=supports"))
    assert response.status_code == 204
    context = _context(cast, thread, includeRelationships="true", revision=linked["meta"]["contentRevision"])
    assert context["data"]["canvas_context"]["unchanged"] is False
    assert a["id"] not in context["data"]["canvas_context"]["relationships"]


def test_unchanged_while_nothing_that_was_asked_for_changed(cast, thread, written):
    a, b = _node(cast, title="A", content="First."), _node(cast, title="B")
    everything = _context(cast, thread, **BOTH)
    assert _unchanged(cast, thread, everything["meta"]["contentRevision"], **BOTH) is True

    content_only = _context(cast, thread, includeContent="true")
    _link(cast, a["id"], b["id"])  # edges: not asked for by the content-only question
    assert _unchanged(cast, thread, content_only["meta"]["contentRevision"], includeContent="true") is True
    assert _unchanged(cast, thread, everything["meta"]["contentRevision"], **BOTH) is False

    # a page of 9 nodes lists the 9 sections: an edit of a stored node, outside the page, changes nothing
    # this question asks for, content and relationships included
    page = {"maxNodes": 9, **BOTH}
    first_page = _context(cast, thread, **page)
    assert all(n["type"] == "section" for n in first_page["data"]["canvas_context"]["nodes"])
    _patch(cast, a["id"], content="Second.")
    assert _unchanged(cast, thread, first_page["meta"]["contentRevision"], **page) is True
    # ... but it does change what the whole canvas lists
    assert _unchanged(cast, thread, content_only["meta"]["contentRevision"], includeContent="true") is False
    # an unchanged answer still carries the current summary and the revisions
    body = _context(cast, thread, revision=first_page["meta"]["contentRevision"], **page)
    assert body["meta"]["contentRevision"] == first_page["meta"]["contentRevision"]
    assert body["data"]["canvas_context"]["nodes"] == [] and body["data"]["canvas_context"]["relationships"] == {}
    assert body["data"]["canvas_context"]["summary"]["nodeCount"] == 11


def test_a_title_edit_changes_the_content_revision_but_not_the_summary_revision(cast, thread, written):
    node = _node(cast)
    first = _context(cast, thread)
    _patch(cast, node["id"], title="Hold 5 years")
    assert _unchanged(cast, thread, first["meta"]["contentRevision"]) is False
    # the summary revision keeps the contract's meaning (counts): a question without content or
    # relationships that sends it is told its counts are current
    assert _unchanged(cast, thread, first["meta"]["revision"]) is True


def test_a_summary_revision_never_answers_unchanged_to_a_question_with_content_or_relationships(cast, thread, written):
    revision = _context(cast, thread)["meta"]["revision"]
    for query in ({"includeContent": "true"}, {"includeRelationships": "true"}, BOTH):
        assert _unchanged(cast, thread, revision, **query) is False
    assert _unchanged(cast, thread, revision) is True


def test_the_content_revision_is_16_hex_of_sha256_over_what_is_listed(cast, thread, written):
    node = _node(cast, content="Because.")
    _link(cast, node["id"], "section:risks", "addresses")
    for query in ({}, {"includeContent": "true"}, BOTH, {"maxNodes": 3}):
        body = _context(cast, thread, **query)
        context = body["data"]["canvas_context"]
        canonical = orjson.dumps(
            {"nodes": context["nodes"], "relationships": context["relationships"], "truncated": context["truncated"]},
            option=orjson.OPT_SORT_KEYS,
        )
        assert body["meta"]["contentRevision"] == hashlib.sha256(canonical).hexdigest()[:16]
    small, large = _context(cast, thread, maxNodes=3), _context(cast, thread, maxNodes=50)
    assert small["meta"]["contentRevision"] != large["meta"]["contentRevision"]  # another question, another answer
    assert small["meta"]["revision"] == large["meta"]["revision"]


# --- the cache against the uncached reads ------------------------------------------------------------------
def _live(deal_id, *, max_nodes: int, framework=None) -> tuple[dict, dict]:
    """(summary, {nodes, relationships, truncated}) read without the cache, with content and relationships."""
    deal = Deal.objects.get(pk=deal_id)
    page, truncated, implicit = node_selectors.nodes_page(deal, limit=max_nodes, framework=framework)
    relationships = node_selectors.relationships_of(node_selectors.edges_of(deal, implicit), {n["id"] for n in page})
    return node_selectors.canvas_summary_counts(deal), {
        "nodes": page,
        "relationships": relationships,
        "truncated": truncated,
    }


def _assert_fresh(cast, thread, *, max_nodes=100, framework=None):
    summary, expected = _live(cast.deal.pk, max_nodes=max_nodes, framework=framework)
    query = {**BOTH, "maxNodes": max_nodes, **({"framework": framework} if framework else {})}
    for _ in range(2):  # the first may build the cache, the second reads it
        context = _context(cast, thread, **query)["data"]["canvas_context"]
        assert context["summary"] == summary
        assert {k: context[k] for k in expected} == expected


def test_the_cached_context_follows_every_kind_of_write(cast, thread, written):
    editor, commenter = cast.client("editor"), cast.client("commenter")
    _assert_fresh(cast, thread)
    a = _node(cast, content="One.", framework="swot")
    _assert_fresh(cast, thread)
    _assert_fresh(cast, thread, framework="swot")
    b = _node(cast, title="Refinance in year 2", status="approved")
    _link(cast, a["id"], b["id"])
    _assert_fresh(cast, thread)
    _patch(cast, b["id"], status="rejected", content="No.")
    _assert_fresh(cast, thread)
    _assert_fresh(cast, thread, max_nodes=10)
    assert editor.delete(canvas_url(cast.deal, f"nodes/{a['id']}")).status_code == 204
    _assert_fresh(cast, thread)
    _assert_fresh(cast, thread, framework="swot")

    proposed = commenter.post(
        canvas_url(cast.deal, "suggestions"),
        {"section_key": "risks", "kind": "insert", "anchor_text": "", "content": "Hedge the rate."},
        format="json",
    ).json()
    _assert_fresh(cast, thread)
    assert (
        editor.post(canvas_url(cast.deal, f"suggestions/{proposed['id']}/accept"), {}, format="json").status_code == 200
    )
    _assert_fresh(cast, thread)
    other = commenter.post(
        canvas_url(cast.deal, "suggestions"),
        {"section_key": "risks", "kind": "insert", "anchor_text": "", "content": "Sell."},
        format="json",
    ).json()
    assert editor.post(canvas_url(cast.deal, f"suggestions/{other['id']}/reject")).status_code == 200
    _assert_fresh(cast, thread)

    comment = commenter.post(
        canvas_url(cast.deal, "comments"), {"section_key": "market_analysis", "body": "Comps?"}, format="json"
    )
    _assert_fresh(cast, thread)
    assert commenter.post(canvas_url(cast.deal, f"comments/{comment.json()['id']}/resolve")).status_code == 200
    _assert_fresh(cast, thread)

    approved = editor.post(
        canvas_url(cast.deal, "sections/financing/approve"), {"conditions": ["Term sheet"]}, format="json"
    ).json()
    _assert_fresh(cast, thread)
    condition = approved["conditions"][0]["id"]
    resolved = editor.post(canvas_url(cast.deal, f"sections/financing/conditions/{condition}/resolve"))
    assert resolved.status_code == 200
    _assert_fresh(cast, thread)

    assert (
        editor.put(canvas_url(cast.deal, "sections/market_analysis"), {"markdown": "Thin."}, format="json").status_code
        == 200
    )
    _assert_fresh(cast, thread)
    brushed = editor.post(canvas_url(cast.deal, "brush"), {"brush": "completeness"}, format="json")
    assert brushed.status_code == 201 and brushed.json()["findings"]
    _assert_fresh(cast, thread)  # brush findings are read live: they show at once
    get_redis().unlink(*[k for k in get_redis().smembers(keys.index_key(cast.deal.pk)) if b":brush:" in k])
    _assert_fresh(cast, thread)  # and go at once (a purge, or their TTL)


def test_a_warm_context_reads_nothing_from_the_store(cast, thread, written, settings):
    for n in range(30):
        _node(cast, title=f"n{n}", content="x" * 50)
    _link(cast, "section:risks", "section:market_analysis", "informs")
    warm = _context(cast, thread, **BOTH)
    settings.LANGGRAPH_DATABASE_URL = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    settings.LANGGRAPH_POOL_TIMEOUT = 0.5
    try:
        assert _context(cast, thread, **BOTH) == warm
    finally:
        close_pool()


@pytest.mark.parametrize("stored", [1, 40])
def test_the_context_get_makes_a_bounded_number_of_queries(
    cast, thread, written, stored, django_assert_max_num_queries
):
    for n in range(stored):
        _node(cast, title=f"n{n}")
    for n in range(3):
        cast.client("commenter").post(
            canvas_url(cast.deal, "comments"), {"section_key": "risks", "body": f"c{n}"}, format="json"
        )
    get_redis().unlink(keys.context_key(cast.deal.pk))
    # cold: the contract's 3 (user, access, thread) and the 3 of suggestions, comments, conditions
    with django_assert_max_num_queries(6):
        cold = _call(cast, thread, query={"maxNodes": 200, **BOTH})
    # warm: the contract's 3 only, however many nodes
    with django_assert_max_num_queries(3):
        warm = _call(cast, thread, query={"maxNodes": 200, **BOTH})
    assert cold.status_code == warm.status_code == 200 and cold.json() == warm.json()
    assert len(warm.json()["data"]["canvas_context"]["nodes"]) == 9 + 3 + stored


# --- the embedded engine ------------------------------------------------------------------------------------
@pytest.fixture
def pulls(monkeypatch):
    """The embedded engine's calls of the context service (recorded, then served as usual)."""
    calls: list[dict] = []
    original = context_service.canvas_context

    def recording(**kwargs):
        calls.append(kwargs)
        return original(**kwargs)

    monkeypatch.setattr(context_service, "canvas_context", recording)
    return calls


def _ask(cast, message):
    response = cast.client("viewer").post(
        "/api/v1/chat", {"message": message, "project_id": str(cast.deal.pk), "agent_id": "strategy"}, format="json"
    )
    assert response.status_code == 200, response.content
    return response.json()["message"]["content"]


def test_the_embedded_engine_answers_counts_from_the_summary_without_pulling(cast, written, pulls):
    for status in ("approved", "rejected", "open"):
        _node(cast, status=status)
    answer = _ask(cast, "How many items are pending?")
    assert "12 items (1 approved, 1 rejected, 10 pending)" in answer
    assert pulls == []


def test_the_embedded_engine_pulls_a_bounded_page_when_the_question_needs_content(cast, written, pulls):
    answer = _ask(cast, "What does the memo say about the risks?")
    assert "Risks and Mitigants" in answer and "123 Main Street" in answer
    assert len(pulls) == 1
    assert pulls[0]["include_content"] is True and pulls[0]["max_nodes"] == chat.CHAT_CONTEXT_MAX_NODES
    assert chat.CHAT_CONTEXT_MAX_NODES <= context_service.DEFAULT_MAX_NODES


def test_the_embedded_engine_does_not_pull_an_empty_canvas(cast, pulls):
    answer = _ask(cast, "What does the memo say about the risks?")  # a deal whose memo was never opened
    assert "has 0 items" in answer
    assert pulls == []


def test_a_purge_of_the_deal_drops_the_cached_context(cast, thread, written):
    from canvas_project import keyspace

    warm = _context(cast, thread, **BOTH)
    assert get_redis().exists(keys.context_key(cast.deal.pk))
    purged = keyspace.purge_deal_keys(
        client=keyspace.purge_redis_client(), deal_id=str(cast.deal.pk), include_protected=False, dry_run=False
    )
    assert purged["context_cache"] == 1 and not get_redis().exists(keys.context_key(cast.deal.pk))
    assert _context(cast, thread, **BOTH) == warm  # rebuilt from the Store and PostgreSQL


@pytest.fixture
def own_redis(settings):
    """The service on a Redis of this test's own, which it may kill and restart (as tests/canvas/test_degradation)."""
    server = ThrowawayRedis().start()
    caches = {"default": {**settings.CACHES["default"], "LOCATION": server.url}}
    with override_settings(CACHES=caches, REDIS_URL=server.url):
        yield server
    server.stop()


def test_with_redis_down_the_context_is_read_from_the_store(cast, thread, written, own_redis):
    before = _context(cast, thread, **BOTH)  # cached in own_redis
    own_redis.stop()
    node = _node(cast, title="Written while Redis is down", content="Still listed.")
    degraded = _context(cast, thread, **BOTH)
    assert any(
        n["id"] == node["id"] and n["content"] == "Still listed." for n in degraded["data"]["canvas_context"]["nodes"]
    )
    assert degraded["meta"]["contentRevision"] != before["meta"]["contentRevision"]
    own_redis.start()  # empty again: rebuilt on the next read, the same answer
    assert _context(cast, thread, **BOTH) == degraded
