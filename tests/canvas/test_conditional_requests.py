"""Conditional requests (canvas_project.api.conditional): strong ETags, If-None-Match -> 304 without a body,
If-Match on memo writes -> 412 with current_version and the current ETag when stale."""

from __future__ import annotations

import re

import pytest
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from canvas.memo import session
from internal_api.models import ChatThread
from tests.canvas.conftest import canvas_url, save

TAG = re.compile(r'^"v([0-9]+)-[0-9a-f]+"$')


def _get(client, deal, etag=None, suffix=""):
    headers = {"HTTP_IF_NONE_MATCH": etag} if etag else {}
    return client.get(canvas_url(deal, suffix), **headers)


# --- the canvas GET ------------------------------------------------------------------------------
def test_the_canvas_get_sends_a_strong_etag_that_names_the_version(cast, written):
    response = _get(cast.client("viewer"), cast.deal)
    assert response.status_code == 200
    etag = response["ETag"]
    assert TAG.match(etag) and TAG.match(etag).group(1) == str(written["version"])
    assert "Authorization" in response["Vary"] and "no-cache" in response["Cache-Control"]


def test_if_none_match_answers_304_without_a_body(cast, written):
    client = cast.client("viewer")
    etag = _get(client, cast.deal)["ETag"]
    response = _get(client, cast.deal, etag)
    assert response.status_code == 304 and response.content == b"" and response["ETag"] == etag
    # in a list of tags, weak or not, and `*`
    assert _get(client, cast.deal, f'"v0-00", W/{etag}').status_code == 304
    assert _get(client, cast.deal, "*").status_code == 304
    # another tag: the full body
    other = _get(client, cast.deal, '"v1-0000"')
    assert other.status_code == 200 and other.json()["version"] == written["version"]


def test_the_etag_stays_equal_while_nothing_changes_and_changes_after_a_save(cast, written):
    client = cast.client("viewer")
    first = _get(client, cast.deal)["ETag"]
    assert _get(client, cast.deal)["ETag"] == first
    # the cache rebuilt from the Store gives the same body, hence the same tag
    session.cache_drop(cast.deal.pk)
    assert _get(client, cast.deal)["ETag"] == first
    assert save(cast.client("editor"), cast.deal, "## Risks\n\nRates may rise.").status_code == 200
    after = _get(client, cast.deal, first)
    assert after.status_code == 200 and after["ETag"] != first
    assert TAG.match(after["ETag"]).group(1) == str(written["version"] + 1)


def test_callers_whose_bodies_differ_get_different_tags(cast, written):
    viewer = _get(cast.client("viewer"), cast.deal)
    editor = _get(cast.client("editor"), cast.deal)
    assert viewer.json()["can_edit"] is False and editor.json()["can_edit"] is True
    assert viewer["ETag"] != editor["ETag"]
    # the viewer's tag does not get the editor a 304 (the editor's body differs)
    assert _get(cast.client("editor"), cast.deal, viewer["ETag"]).status_code == 200
    # equal bodies, equal tags: two callers of the same role
    assert _get(cast.client("owner"), cast.deal)["ETag"] == _get(cast.client("owner"), cast.deal)["ETag"]


def test_a_renamed_deal_changes_the_tag(cast, written):
    client = cast.client("viewer")
    before = _get(client, cast.deal)["ETag"]
    cast.deal.name = "Riverside Apartments II"
    cast.deal.save(update_fields=["name"])
    response = _get(client, cast.deal, before)
    assert response.status_code == 200 and response.json()["deal_name"] == "Riverside Apartments II"


def test_a_304_needs_access(cast, written):
    etag = _get(cast.client("viewer"), cast.deal)["ETag"]
    assert _get(cast.client("outsider"), cast.deal, etag).status_code == 404
    assert _get(cast.client("anonymous"), cast.deal, etag).status_code == 401


# --- versions, export, the internal context --------------------------------------------------------
def test_versions_list_and_detail_answer_304(cast, written):
    client = cast.client("viewer")
    listed = client.get(canvas_url(cast.deal, "versions"))
    assert TAG.match(listed["ETag"])
    assert client.get(canvas_url(cast.deal, "versions"), HTTP_IF_NONE_MATCH=listed["ETag"]).status_code == 304
    detail = client.get(canvas_url(cast.deal, "versions/1"))
    again = client.get(canvas_url(cast.deal, "versions/1"), HTTP_IF_NONE_MATCH=detail["ETag"])
    assert again.status_code == 304 and again.content == b""
    save(cast.client("editor"), cast.deal, "## Risks\n\nRates may rise.")
    # the list changed; snapshot 1 did not
    assert client.get(canvas_url(cast.deal, "versions"), HTTP_IF_NONE_MATCH=listed["ETag"]).status_code == 200
    assert client.get(canvas_url(cast.deal, "versions/1"), HTTP_IF_NONE_MATCH=detail["ETag"]).status_code == 304


@pytest.mark.parametrize("fmt", ["md", "docx"])
def test_export_answers_304_until_the_memo_changes(cast, written, fmt):
    client = cast.client("editor")
    url = canvas_url(cast.deal, f"export?format={fmt}")
    first = client.get(url)
    assert first.status_code == 200 and first["ETag"].startswith("W/" if fmt == "docx" else '"v')
    assert client.get(url, HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 304
    # a viewer may not export an unapproved memo, and the editor's tag does not change that
    assert cast.client("viewer").get(url, HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 403
    save(client, cast.deal, "## Risks\n\nRates may rise.")
    assert client.get(url, HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 200


def test_the_internal_context_answers_304(cast, written):
    thread = ChatThread.objects.create(deal=cast.deal, user=cast.users["editor"], agent_id="strategy")
    headers = {
        "HTTP_AUTHORIZATION": "Bearer test-engine-token-primary",
        "HTTP_X_CONTRACT_VERSION": "2026-02",
        "HTTP_X_USER_ID": str(cast.users["editor"].pk),
        "HTTP_X_PROJECT_ID": str(cast.deal.pk),
        "HTTP_X_THREAD_ID": str(thread.pk),
    }
    params = {"agentId": "strategy", "projectId": str(cast.deal.pk), "threadId": str(thread.pk)}
    first = APIClient().get("/api/internal/canvas/context", params, **headers)
    assert first.status_code == 200 and first.json()["success"] is True
    again = APIClient().get("/api/internal/canvas/context", params, HTTP_IF_NONE_MATCH=first["ETag"], **headers)
    assert again.status_code == 304 and again.content == b""
    save(cast.client("editor"), cast.deal, "## Risks\n\nRates may rise.")
    changed = APIClient().get("/api/internal/canvas/context", params, HTTP_IF_NONE_MATCH=first["ETag"], **headers)
    assert changed.status_code == 200


# --- If-Match on writes ----------------------------------------------------------------------------
def _save_if_match(client, deal, etag, content="## Risks\n\nRates may rise.", **body):
    return client.post(canvas_url(deal, "save"), {"content": content, **body}, format="json", HTTP_IF_MATCH=etag)


def test_a_save_with_the_current_etag_writes(cast, written):
    client = cast.client("editor")
    etag = _get(client, cast.deal)["ETag"]
    response = _save_if_match(client, cast.deal, etag)
    assert response.status_code == 200, response.content
    assert _get(client, cast.deal).json()["version"] == written["version"] + 1


def test_a_stale_etag_is_412_with_the_current_version_and_etag_and_writes_nothing(cast, written):
    client = cast.client("editor")
    stale = _get(client, cast.deal)["ETag"]
    assert save(cast.client("owner"), cast.deal, "## Risks\n\nSomeone else.").status_code == 200
    response = _save_if_match(client, cast.deal, stale, content="## Risks\n\nMine.")
    assert response.status_code == 412, response.content
    body = response.json()
    current = _get(client, cast.deal)
    assert body["current_version"] == written["version"] + 1 == current.json()["version"]
    assert body["current_etag"] == current["ETag"] == response["ETag"]
    assert "Mine." not in current.json()["markdown_content"]
    # the tag the 412 gave works
    assert _save_if_match(client, cast.deal, body["current_etag"], content="## Risks\n\nMine.").status_code == 200


@pytest.mark.parametrize("header", ['"h-abc"', "*", '"v1-aa", "v2-bb"', "garbage", 'W/"v999-00"'])
def test_an_if_match_that_names_no_current_version_is_412(cast, written, header):
    response = _save_if_match(cast.client("editor"), cast.deal, header)
    assert response.status_code == 412, response.content
    assert response.json()["current_version"] == written["version"]


def test_if_match_and_base_version_must_agree(cast, written):
    client = cast.client("editor")
    etag = _get(client, cast.deal)["ETag"]
    response = _save_if_match(client, cast.deal, etag, base_version=written["version"] - 1)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["header", "If-Match"]
    assert _get(client, cast.deal).json()["version"] == written["version"]  # nothing written
    agreeing = _save_if_match(client, cast.deal, etag, base_version=written["version"])
    assert agreeing.status_code == 200


def test_a_stale_base_version_without_if_match_is_still_409(cast, written):
    response = save(cast.client("editor"), cast.deal, "## Risks\n\nx", base_version=written["version"] - 1)
    assert response.status_code == 409 and response.json()["current_version"] == written["version"]


def test_section_put_and_restore_and_approve_honour_if_match(cast, written):
    editor, owner = cast.client("editor"), cast.client("owner")
    etag = _get(editor, cast.deal)["ETag"]
    moved = owner.put(canvas_url(cast.deal, "sections/risks"), {"markdown": "Moved on."}, format="json")
    assert moved.status_code == 200, moved.content
    # a section PUT: If-Match is its base_version; the risks section changed since: 412
    put = editor.put(canvas_url(cast.deal, "sections/risks"), {"markdown": "Mine."}, format="json", HTTP_IF_MATCH=etag)
    assert put.status_code == 412
    # ...another section did not change since that version: the write is allowed, as with base_version
    other = editor.put(
        canvas_url(cast.deal, "sections/market_analysis"), {"markdown": "Market."}, format="json", HTTP_IF_MATCH=etag
    )
    assert other.status_code == 200, other.content
    restore = editor.post(canvas_url(cast.deal, "versions/1/restore"), {}, format="json", HTTP_IF_MATCH=etag)
    assert restore.status_code == 412
    # a write that takes no base_version at all (reopen/approve) still honours If-Match, in memo_write
    approve = owner.post(canvas_url(cast.deal, "approve"), {}, format="json", HTTP_IF_MATCH=etag)
    assert approve.status_code == 412 and approve.json()["current_version"] == written["version"] + 2


# --- the schema --------------------------------------------------------------------------------------
def test_the_schema_documents_the_headers_304_and_412(db):
    document = SchemaGenerator().get_schema(request=None, public=True)
    reads = {
        "/api/canvas/{deal_id}": "get",
        "/api/canvas/{deal_id}/versions": "get",
        "/api/canvas/{deal_id}/versions/{n}": "get",
        "/api/canvas/{deal_id}/export": "get",
        "/api/internal/canvas/context": "get",
    }
    for path, method in reads.items():
        operation = document["paths"][path][method]
        assert "If-None-Match" in {p["name"] for p in operation["parameters"] if p["in"] == "header"}, path
        assert "304" in operation["responses"] and "ETag" in operation["responses"]["200"]["headers"], path
    writes = [
        ("/api/canvas/{deal_id}/save", "post"),
        ("/api/canvas/{deal_id}/sections/{key}", "put"),
        ("/api/canvas/{deal_id}/versions/{n}/restore", "post"),
        ("/api/canvas/{deal_id}/approve", "post"),
        ("/api/canvas/{deal_id}/suggestions/{suggestion_id}/accept", "post"),
    ]
    for path, method in writes:
        operation = document["paths"][path][method]
        assert "If-Match" in {p["name"] for p in operation["parameters"] if p["in"] == "header"}, path
        ref = operation["responses"]["412"]["content"]["application/json"]["schema"]["$ref"]
        assert ref.endswith("/PreconditionFailedError"), path
