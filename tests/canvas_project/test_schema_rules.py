"""Each rule the server enforces beyond a field's type is in the OpenAPI document, and the server refuses
what the document refuses: for every rule, the schema's keyword, a request breaking it (422, or the
internal contract's 400) with nothing written, and a request keeping it that passes validation."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client

from canvas.models import Comment, Suggestion
from deals.models import Deal, DealAccess, OrgMembership
from internal_api.models import ChatThread
from tests import factories
from tests.canvas.conftest import canvas_url, full_memo, save

NO_NUL = "^[^\\u0000]*$"


@pytest.fixture(scope="module")
def schema(django_db_blocker) -> dict:
    from drf_spectacular.generators import SchemaGenerator

    with django_db_blocker.unblock():
        return json.loads(json.dumps(SchemaGenerator().get_schema(request=None, public=True), default=str))


def component(schema: dict, name: str) -> dict:
    return schema["components"]["schemas"][name]


def parameter(schema: dict, path: str, method: str, name: str) -> dict:
    found = [p for p in schema["paths"][path][method]["parameters"] if p["name"] == name]
    assert found, f"{method.upper()} {path} documents no parameter {name}"
    return found[0]["schema"]


def ecma_search(pattern: str, value: str):
    """re.search as a JSON Schema validator runs a pattern: ECMA's `$` ends the text (Python's also matches
    before a final newline)."""
    return re.search(pattern.replace("$", r"\Z"), value)


def _locs(response) -> list:
    assert response.status_code == 422, response.content[:300]
    return [item["loc"] for item in response.json()["detail"]]


# --- exactly one of / at least one of --------------------------------------------------------------------
def test_members_take_exactly_one_of_email_or_user_id(cast, schema):
    assert component(schema, "MemberAddInputRequest")["oneOf"] == [{"required": ["email"]}, {"required": ["user_id"]}]
    url = f"/api/orgs/{cast.org.pk}/members"
    before = OrgMembership.objects.count()
    outsider = cast.users["outsider"]
    both = cast.client("owner").post(url, {"email": outsider.email, "user_id": str(outsider.pk)}, format="json")
    assert _locs(both) == [["body"]]
    assert _locs(cast.client("owner").post(url, {"role": "member"}, format="json")) == [["body"]]
    assert OrgMembership.objects.count() == before
    # a colleague (someone sharing another of the owner's orgs) is added directly; strangers are invited
    colleague = factories.make_user("colleague")
    factories.add_member(factories.make_org("Org C", admin=cast.users["owner"]), colleague)
    assert cast.client("owner").post(url, {"user_id": str(colleague.pk)}, format="json").status_code == 201


def test_grants_take_exactly_one_of_email_or_user_id(cast, schema):
    assert component(schema, "GrantCreateInputRequest")["oneOf"] == [{"required": ["email"]}, {"required": ["user_id"]}]
    url = f"/api/deals/{cast.deal.pk}/access"
    member = cast.users["member"]
    before = DealAccess.objects.count()
    body = {"email": member.email, "user_id": str(member.pk), "role": "viewer"}
    assert _locs(cast.client("owner").post(url, body, format="json")) == [["body"]]
    assert _locs(cast.client("owner").post(url, {"role": "viewer"}, format="json")) == [["body"]]
    assert DealAccess.objects.count() == before
    ok = cast.client("owner").post(url, {"email": member.email, "role": "viewer"}, format="json")
    assert ok.status_code in (200, 201), ok.content


def test_a_deal_patch_names_at_least_one_field(cast, schema):
    assert component(schema, "DealUpdateInputRequest")["anyOf"] == [
        {"required": [f]} for f in ("name", "description", "visibility")
    ]
    response = cast.client("owner").patch(f"/api/deals/{cast.deal.pk}", {}, format="json")
    assert _locs(response) == [["body"]]
    renamed = cast.client("owner").patch(f"/api/deals/{cast.deal.pk}", {"name": "Riverside II"}, format="json")
    assert renamed.status_code == 200 and Deal.objects.get(pk=cast.deal.pk).name == "Riverside II"


def test_a_node_patch_names_at_least_one_field(cast, schema):
    assert component(schema, "NodeUpdateInputRequest")["anyOf"] == [
        {"required": ["status"]},
        {"required": ["title"]},
        {"required": ["content"]},
    ]
    editor = cast.client("editor")
    node = editor.post(canvas_url(cast.deal, "nodes"), {"type": "strategy_item", "title": "Hold"}, format="json")
    assert node.status_code == 201, node.content
    url = canvas_url(cast.deal, f"nodes/{node.json()['id']}")
    assert _locs(editor.patch(url, {}, format="json")) == [["body"]]
    assert editor.patch(url, {"title": "Hold 7 years"}, format="json").status_code == 200


def test_a_comment_names_a_section_or_a_parent_and_null_is_no_parent(cast, schema):
    rule = component(schema, "CommentCreateInputRequest")["anyOf"]
    assert rule == [
        {"required": ["section_key"]},
        {"required": ["parent_id"], "properties": {"parent_id": {"not": {"enum": [None]}}}},
    ]
    url = canvas_url(cast.deal, "comments")
    commenter = cast.client("commenter")
    assert _locs(commenter.post(url, {"body": "Priced?"}, format="json")) == [["body"]]
    assert _locs(commenter.post(url, {"body": "Priced?", "parent_id": None}, format="json")) == [["body"]]
    assert not Comment.objects.exists()


# --- patterns --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["someone", "me ", "ME", "0", "{12345678-1234-1234-1234-123456789012}", "me\n"])
def test_me_or_a_user_id_is_a_pattern(cast, schema, value):
    for path, name in (("/api/canvas/{deal_id}/runs", "created_by"), ("/api/canvas/{deal_id}/suggestions", "author")):
        pattern = parameter(schema, path, "get", name)["pattern"]
        assert ecma_search(pattern, value) is None
        response = cast.client("viewer").get(path.replace("{deal_id}", str(cast.deal.pk)), {name: value})
        assert _locs(response) == [["query", name]]


@pytest.mark.parametrize("value", ["me", "0b6a7ad2-5f2c-4a3e-9a63-0f5cbb1e6a2e"])
def test_me_or_a_user_id_is_accepted(cast, value):
    assert cast.client("viewer").get(canvas_url(cast.deal, "runs"), {"created_by": value}).status_code == 200
    assert cast.client("viewer").get(canvas_url(cast.deal, "suggestions"), {"author": value}).status_code == 200


def test_run_statuses_are_a_comma_separated_pattern(cast, schema):
    pattern = parameter(schema, "/api/canvas/{deal_id}/runs", "get", "status")["pattern"]
    assert ecma_search(pattern, "queued,running") and not ecma_search(pattern, "queued, running")
    viewer = cast.client("viewer")
    for bad in ("queued,bogus", "queued,", ",queued", "queued, running"):
        assert _locs(viewer.get(canvas_url(cast.deal, "runs"), {"status": bad})) == [["query", "status"]]
    assert viewer.get(canvas_url(cast.deal, "runs"), {"status": "queued,running"}).status_code == 200


@pytest.mark.parametrize("value", ["section", "comment", "Strategy", "x", "strategy-item", "9lives", "a\n"])
def test_node_types_are_a_pattern_and_not_a_derived_type(cast, schema, value):
    field = component(schema, "NodeCreateInputRequest")["properties"]["type"]
    assert field["pattern"] == "^[a-z][a-z0-9_]{1,39}$"
    assert field["not"]["enum"] == ["section", "suggestion", "comment", "approval_condition", "brush_finding"]
    response = cast.client("editor").post(canvas_url(cast.deal, "nodes"), {"type": value, "title": "T"}, format="json")
    assert _locs(response) == [["body", "type"]]


def test_link_types_are_a_pattern(cast, schema):
    assert component(schema, "LinkInputRequest")["properties"]["type"]["pattern"] == "^[a-z][a-z0-9_]{1,39}$"
    editor = cast.client("editor")
    ids = [
        editor.post(canvas_url(cast.deal, "nodes"), {"type": "risk", "title": t}, format="json").json()["id"]
        for t in ("A", "B")
    ]
    url = canvas_url(cast.deal, f"nodes/{ids[0]}/links")
    assert _locs(editor.post(url, {"to": ids[1], "type": "Supports"}, format="json")) == [["body", "type"]]
    assert editor.post(url, {"to": ids[1], "type": "supports"}, format="json").status_code in (200, 201)


@pytest.mark.parametrize("header, query", [("abc", None), ("1-1\n", None), ("١-٠", None), (None, "x"), ("1-0", "x")])
def test_stream_ids_are_a_pattern_checked_in_header_and_query(cast, schema, header, query):
    for name in ("Last-Event-ID", "last_event_id"):
        assert parameter(schema, "/api/canvas/{deal_id}/events", "get", name)["pattern"] == (
            "^([0-9]{1,20}-[0-9]{1,20})?$"
        )
    headers = {"HTTP_LAST_EVENT_ID": header} if header is not None else {}
    params = {"last_event_id": query} if query is not None else {}
    response = cast.client("viewer").get(canvas_url(cast.deal, "events"), params, **headers)
    assert response.status_code == 422
    loc = response.json()["detail"][0]["loc"]
    assert loc == (["query", "last_event_id"] if header in (None, "1-0") else ["header", "Last-Event-ID"])


@pytest.mark.parametrize("key, ok", [("", False), ("a b", False), ("k" * 201, False), ("ключ", False), ("k-1", True)])
def test_the_idempotency_key_is_a_pattern(cast, schema, key, ok):
    pattern = parameter(schema, "/api/internal/canvas/mutations", "post", "Idempotency-Key")["pattern"]
    assert bool(ecma_search(pattern, key)) is ok
    thread = ChatThread.objects.create(deal=cast.deal, user=cast.users["editor"], agent_id="strategy")
    response = Client().post(
        "/api/internal/canvas/mutations",
        {"agent_id": "strategy", "mutations": []},
        content_type="application/json",
        HTTP_AUTHORIZATION="Bearer test-engine-token-primary",
        HTTP_X_CONTRACT_VERSION="2026-02",
        HTTP_X_USER_ID=str(cast.users["editor"].pk),
        HTTP_X_PROJECT_ID=str(cast.deal.pk),
        HTTP_X_THREAD_ID=str(thread.pk),
        HTTP_IDEMPOTENCY_KEY=key,
    )
    if ok:
        assert response.status_code != 400 or response.json()["error"]["code"] != "missing_idempotency_key"
    else:
        assert response.status_code == 400 and response.json()["error"]["code"] == "missing_idempotency_key"


# --- types -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [0, 1, "true", "yes", None])
def test_collaboration_takes_a_real_boolean(cast, schema, value):
    assert component(schema, "CollabModeInputRequest")["properties"]["enabled"] == {"type": "boolean"}
    response = cast.client("owner").patch(canvas_url(cast.deal, "collab"), {"enabled": value}, format="json")
    assert _locs(response) == [["body", "enabled"]]
    assert Deal.objects.get(pk=cast.deal.pk).collab_enabled is True


@pytest.mark.parametrize("step", [None, 1, "op", [1]])
def test_collaboration_steps_are_objects(cast, schema, step):
    items = component(schema, "StepsPushInputRequest")["properties"]["steps"]["items"]
    assert items["type"] == "object"
    body = {"version": 0, "client_id": "c1", "steps": [step]}
    response = cast.client("editor").post(canvas_url(cast.deal, "collab/steps"), body, format="json")
    assert _locs(response) == [["body", "steps", 0]]


def test_generate_takes_at_least_one_section_when_it_names_any(cast, schema):
    assert component(schema, "GenerateInputRequest")["properties"]["sections"]["minItems"] == 1
    response = cast.client("editor").post(canvas_url(cast.deal, "generate"), {"sections": []}, format="json")
    assert _locs(response) == [["body", "sections"]]


def test_text_with_a_nul_character_is_refused_as_the_schema_says(cast, schema):
    assert component(schema, "CommentCreateInputRequest")["properties"]["body"]["pattern"] == NO_NUL
    assert parameter(schema, "/api/canvas/{deal_id}/suggestions", "get", "section_key")["pattern"] == NO_NUL
    response = cast.client("commenter").post(
        canvas_url(cast.deal, "comments"), {"body": "a\x00b", "section_key": "executive_summary"}, format="json"
    )
    assert response.status_code in (400, 422) and "NUL" in response.content.decode()
    assert not Comment.objects.exists()


# --- rules per mode or kind --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "body",
    [
        {"mode": "by_deal"},
        {"mode": "by_deal", "deal_id": None},
        {"mode": "all", "deal_id": "00000000-0000-0000-0000-000000000001"},
    ],
)
def test_purge_names_a_deal_exactly_when_by_deal(cast, schema, body):
    branches = component(schema, "PurgeDealsBodyRequest")["oneOf"]
    assert branches[0]["required"] == ["mode", "deal_id"]
    assert branches[1]["properties"]["deal_id"] == {"not": {"type": "string"}}
    response = cast.client("superadmin").post("/api/superadmin/purge_deals", body, format="json")
    assert _locs(response) == [["body", "deal_id"]]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"kind": "delete"}, "anchor_text"),
        ({"kind": "delete", "anchor_text": "123 Main Street", "content": "x"}, "content"),
        ({"kind": "insert"}, "content"),
        ({"kind": "insert", "content": "x", "occurrence": 2}, "occurrence"),
        ({"kind": "replace", "anchor_text": "123 Main Street"}, "content"),
    ],
)
def test_a_suggestion_keeps_the_rules_of_its_kind(cast, schema, body, field):
    branches = component(schema, "SuggestionCreateInputRequest")["oneOf"]
    assert [sorted(b["required"]) for b in branches] == [["content"], ["anchor_text"], ["anchor_text", "content"]]
    assert save(cast.client("owner"), cast.deal, full_memo()).status_code == 200
    payload = {"section_key": "executive_summary", **body}
    response = cast.client("commenter").post(canvas_url(cast.deal, "suggestions"), payload, format="json")
    assert ["body", field] in _locs(response)
    assert not Suggestion.objects.exists()


@pytest.mark.parametrize("value", [0, 1, "true", None])
def test_body_booleans_are_real_booleans(cast, schema, value):
    assert component(schema, "PurgeDealsBodyRequest")["properties"]["dry_run"]["type"] == "boolean"
    body = {"mode": "by_deal", "deal_id": str(cast.deal.pk), "dry_run": value}
    response = cast.client("superadmin").post("/api/superadmin/purge_deals", body, format="json")
    assert _locs(response) == [["body", "dry_run"]]


@pytest.mark.parametrize("value", [0, 12345, "0" * 32, "{" + "0" * 8 + "-0000-0000-0000-" + "0" * 12 + "}"])
def test_uuids_are_canonical_text(cast, schema, value):
    assert component(schema, "PurgeDealsBodyRequest")["properties"]["deal_id"]["format"] == "uuid"
    response = cast.client("superadmin").post(
        "/api/superadmin/purge_deals", {"mode": "by_deal", "deal_id": value}, format="json"
    )
    assert _locs(response) == [["body", "deal_id"]]


@pytest.mark.parametrize("body", [{"op": "link"}, {"op": "link", "source": "a", "target": "b"}, {"op": "create_node"}])
def test_an_engine_mutation_names_what_its_op_needs(cast, schema, body):
    branches = component(schema, "MutationInputRequest")["oneOf"]
    assert [b["required"] for b in branches] == [
        ["op", "node"],
        ["op", "suggestion"],
        ["op", "source", "target", "type"],
    ]
    thread = ChatThread.objects.create(deal=cast.deal, user=cast.users["editor"], agent_id="strategy")
    response = Client().post(
        "/api/internal/canvas/mutations",
        {"agent_id": "strategy", "mutations": [body]},
        content_type="application/json",
        HTTP_AUTHORIZATION="Bearer test-engine-token-primary",
        HTTP_X_CONTRACT_VERSION="2026-02",
        HTTP_X_USER_ID=str(cast.users["editor"].pk),
        HTTP_X_PROJECT_ID=str(cast.deal.pk),
        HTTP_X_THREAD_ID=str(thread.pk),
        HTTP_IDEMPOTENCY_KEY="k-1",
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_body"
    assert "needs" in response.json()["error"]["message"]


@pytest.mark.parametrize("path", ["versions/0", "versions/0/diff", "versions/1234567890123"])
def test_integer_path_parameters_are_positive(cast, schema, path):
    assert parameter(schema, "/api/canvas/{deal_id}/versions/{n}", "get", "n") == {
        "type": "integer",
        "minimum": 1,
        "maximum": 999_999_999_999,
    }
    response = cast.client("viewer").get(canvas_url(cast.deal, path))
    assert _locs(response) == [["path", "n"]]
