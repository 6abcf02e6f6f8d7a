"""Versions (list, get, diff, restore, retention) and export (md, docx, approval snapshots)."""

from __future__ import annotations

import io

import pytest
from docx import Document

from canvas.memo.store import read_memo
from tests.canvas.conftest import canvas_url, save
from tests.conftest import ROLES, expected_status


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("suffix", ["versions", "versions/1", "versions/1/diff"])
def test_role_matrix_version_reads(cast, written, role, suffix):
    response = cast.client(role).get(canvas_url(cast.deal, suffix))
    assert response.status_code == expected_status(role, minimum="viewer", ok=200)


@pytest.mark.parametrize("role", ROLES)
def test_role_matrix_restore(cast, written, role):
    response = cast.client(role).post(canvas_url(cast.deal, "versions/1/restore"), {}, format="json")
    assert response.status_code == expected_status(role, minimum="editor", ok=200)


def test_every_durable_write_is_a_titled_snapshot_with_reason_and_author(cast, written):
    cast.client("editor").put(canvas_url(cast.deal, "sections/risks"), {"markdown": "Rates."}, format="json")
    page = cast.client("viewer").get(canvas_url(cast.deal, "versions")).json()
    assert len(page["results"]) == 2 and page["current_version"] == 2
    newest, oldest = page["results"]
    assert (newest["version"], newest["reason"], newest["author"]) == (2, "section risks edited", "editor")
    assert (oldest["version"], oldest["reason"], oldest["author"]) == (1, "save", "owner")
    assert newest["title"].startswith("Riverside Apartments_20") and len(newest["title"].split("_")) == 7
    detail = cast.client("viewer").get(canvas_url(cast.deal, "versions/1")).json()
    assert "Rates." not in detail["markdown"] and detail["sections"]["risks"]["markdown"]


def test_versions_paginate(cast):
    for n in range(5):
        save(cast.client("editor"), cast.deal, f"## Risks and Mitigants\n\nDraft {n}.")
    first = cast.client("viewer").get(canvas_url(cast.deal, "versions") + "?page_size=2").json()
    assert [v["version"] for v in first["results"]] == [5, 4]
    page = cast.client("viewer").get(first["next"]).json()
    assert [v["version"] for v in page["results"]] == [3, 2]
    assert page["current_version"] == 5


def test_diff_against_the_current_memo(cast, written):
    cast.client("editor").put(canvas_url(cast.deal, "sections/risks"), {"markdown": "Rates."}, format="json")
    body = cast.client("viewer").get(canvas_url(cast.deal, "versions/1/diff")).json()
    assert body["from_version"] == 1 and body["to_version"] == 2
    assert body["sections_changed"] == ["risks"]
    assert "+Rates." in body["diff"]


def test_restore_is_itself_a_new_version(cast, written):
    original = read_memo(cast.deal.pk).sections["risks"].markdown
    cast.client("editor").put(canvas_url(cast.deal, "sections/risks"), {"markdown": "Rates."}, format="json")
    response = cast.client("editor").post(
        canvas_url(cast.deal, "versions/1/restore"), {"base_version": 2}, format="json"
    )
    assert response.status_code == 200 and response.json()["version"] == 3
    assert read_memo(cast.deal.pk).sections["risks"].markdown == original
    newest = cast.client("viewer").get(canvas_url(cast.deal, "versions")).json()["results"][0]
    assert newest["reason"] == "restored from version 1"
    stale = cast.client("editor").post(canvas_url(cast.deal, "versions/1/restore"), {"base_version": 2}, format="json")
    assert stale.status_code == 409


@pytest.mark.parametrize(
    ("suffix", "status"), [("versions/99", 404), ("versions/abc", 422), ("versions/0", 422), ("versions/99/diff", 404)]
)
def test_unknown_and_malformed_versions(cast, written, suffix, status):
    response = cast.client("viewer").get(canvas_url(cast.deal, suffix))
    assert response.status_code == status
    if status == 422:
        assert response.json()["detail"][0]["loc"] == ["path", "n"]


def test_retention_keeps_the_newest_n_and_every_approval_snapshot(cast, written, settings):
    settings.CANVAS_VERSION_RETENTION = 3
    owner = cast.client("owner")
    owner.post(canvas_url(cast.deal, "approve"))  # version 2, an approval snapshot
    owner.post(canvas_url(cast.deal, "reopen"))  # version 3, no snapshot (no content change)
    for n in range(5):
        save(
            cast.client("editor"),
            cast.deal,
            cast.client("editor").get(canvas_url(cast.deal)).json()["markdown_content"] + f"\n## Note {n}\n\nx\n",
        )
    kept = [v["version"] for v in cast.client("viewer").get(canvas_url(cast.deal, "versions")).json()["results"]]
    assert kept == [8, 7, 6, 2]
    assert cast.client("viewer").get(canvas_url(cast.deal, "versions/1")).status_code == 404


# --- export ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("role", ROLES)
def test_role_matrix_export_before_approval(cast, written, role):
    response = cast.client(role).get(canvas_url(cast.deal, "export"))
    assert response.status_code == expected_status(role, minimum="editor", ok=200)


@pytest.mark.parametrize("role", ROLES)
def test_role_matrix_export_after_approval(cast, written, role):
    cast.client("owner").post(canvas_url(cast.deal, "approve"))
    response = cast.client(role).get(canvas_url(cast.deal, "export"))
    assert response.status_code == expected_status(role, minimum="viewer", ok=200)


def test_markdown_export(cast, written):
    response = cast.client("editor").get(canvas_url(cast.deal, "export") + "?format=md")
    assert response["Content-Type"].startswith("text/markdown")
    assert 'filename="Riverside_Apartments.md"' in response["Content-Disposition"]
    text = response.content.decode()
    assert text.startswith("# Riverside Apartments") and "## Risks and Mitigants" in text


def test_docx_export_has_headings_tables_and_notes(cast, written):
    table = (
        "| Metric | Value |\n|---|---|\n| NOI | $2,450,000[^t] |\n| Cap rate | 5.9% |\n\n"
        "[^t]: Underwriting Model.xlsx, p. 2"
    )
    cast.client("editor").put(canvas_url(cast.deal, "sections/financial_analysis"), {"markdown": table}, format="json")
    response = cast.client("editor").get(canvas_url(cast.deal, "export") + "?format=docx")
    assert response.status_code == 200
    document = Document(io.BytesIO(response.content))
    headings = [p.text for p in document.paragraphs if p.style.name.startswith("Heading")]
    assert "Executive Summary" in headings and "Financial Analysis" in headings
    assert document.tables[0].cell(1, 0).text == "NOI"
    assert document.tables[0].cell(1, 1).text.startswith("$2,450,000")
    texts = [p.text for p in document.paragraphs]
    assert any("Underwriting Model.xlsx, p. 2" in t for t in texts)
    assert any("Offering Memorandum.pdf, p. 4" in t for t in texts)


def test_a_blank_memo_cannot_be_exported(cast):
    created = cast.client("owner").post("/api/canvas/blank", {"deal_name": "Blank"}, format="json").json()
    response = cast.client("owner").get(f"/api/canvas/{created['deal_id']}/export")
    assert response.status_code == 409 and "blank" in response.json()["detail"]


def test_an_approval_snapshot_exports_by_version_even_after_edits(cast, written):
    owner = cast.client("owner")
    owner.post(canvas_url(cast.deal, "approve"))
    owner.post(canvas_url(cast.deal, "reopen"))
    cast.client("editor").put(canvas_url(cast.deal, "sections/risks"), {"markdown": "Changed."}, format="json")
    response = cast.client("viewer").get(canvas_url(cast.deal, "export") + "?format=md&version=2")
    assert response.status_code == 200
    assert "Changed." not in response.content.decode()
    not_approval = cast.client("viewer").get(canvas_url(cast.deal, "export") + "?version=1")
    assert not_approval.status_code == 409


@pytest.mark.parametrize("query", ["format=pdf", "version=0", "version=x"])
def test_bad_export_queries_are_422(cast, written, query):
    response = cast.client("editor").get(canvas_url(cast.deal, "export") + f"?{query}")
    assert response.status_code == 422 and response.json()["detail"][0]["loc"][0] == "query"
