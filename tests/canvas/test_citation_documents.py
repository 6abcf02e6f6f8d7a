"""Citations carry the `document_id` of the document their footnote names (by filename), next to the fields
they always had (id, text, document, page): in the session, a section's write, /debug and the run stream."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from canvas.memo.markdown import parse_citations, with_document_ids
from canvas.runs.synthesis.drafters import Draft
from deals.documents.selectors import document_ids_by_filename
from deals.models import FileState
from tests.canvas.conftest import canvas_url
from tests.canvas.synthesis_corpus import make_corpus, make_document
from tests.deals import fixtures_documents as docs

OM = "Offering Memorandum.pdf"  # what full_memo()'s footnotes cite: "[^n]: Offering Memorandum.pdf, p. n+3"


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


def _citations(cast, role="viewer") -> list[dict]:
    sections = cast.client(role).get(canvas_url(cast.deal)).json()["sections"].values()
    return [citation for section in sections for citation in section["citations"]]


def test_session_citations_name_their_document_by_id(cast, written):
    om = make_document(cast.deal, OM, "pdf", ["p1"])
    cast.client("owner").post(canvas_url(cast.deal, "refresh"))  # a cache built before the document: rebuild
    citations = _citations(cast)
    assert len(citations) == 9
    first = citations[0]
    assert first == {
        "id": "1",
        "text": f"{OM}, p. 4",
        "document": OM,
        "document_id": str(om.pk),
        "page": 4,
    }
    assert {c["document_id"] for c in citations} == {str(om.pk)}


def test_a_citation_of_no_known_document_has_a_null_id(cast, written):
    make_document(cast.deal, "Rent Roll.xlsx", "xlsx", ["p1"])
    cast.client("owner").post(canvas_url(cast.deal, "refresh"))
    assert {(c["document"], c["document_id"]) for c in _citations(cast)} == {(OM, None)}


def test_the_link_follows_documents_coming_and_going(cast, written, django_capture_on_commit_callbacks, monkeypatch):
    monkeypatch.setattr("deals.documents.services.celery_app.send_task", lambda *args, **kwargs: None)
    assert {c["document_id"] for c in _citations(cast)} == {None}  # and the session is cached now
    upload = SimpleUploadedFile(OM, docs.offering_memorandum_pdf())
    with django_capture_on_commit_callbacks(execute=True):
        created = cast.client("editor").post(
            f"/api/deals/{cast.deal.pk}/documents", {"file": upload}, format="multipart"
        )
    assert created.status_code == 201, created.content[:300]
    assert {c["document_id"] for c in _citations(cast)} == {created.json()["id"]}  # no stale cached session
    with django_capture_on_commit_callbacks(execute=True):
        deleted = cast.client("editor").delete(f"/api/deals/{cast.deal.pk}/documents/{created.json()['id']}")
    assert deleted.status_code == 204
    assert {c["document_id"] for c in _citations(cast)} == {None}


def test_a_name_shared_by_documents_resolves_only_to_the_one_ready_document(cast):
    ready = make_document(cast.deal, OM, "pdf", ["p1"])
    make_document(cast.deal, OM, "pdf", ["p1"], state=FileState.FAILED)
    assert document_ids_by_filename(deal_id=cast.deal.pk) == {OM: str(ready.pk)}
    make_document(cast.deal, OM, "pdf", ["p1"])  # two ready documents of that name: which one is a guess
    assert document_ids_by_filename(deal_id=cast.deal.pk) == {}


def test_a_section_write_answers_linked_citations(cast, written):
    om = make_document(cast.deal, OM, "pdf", ["p1"])
    response = cast.client("editor").put(
        canvas_url(cast.deal, "sections/risks"),
        {"markdown": f"Rates may rise.[^9]\n\n[^9]: {OM}, p. 2"},
        format="json",
    )
    assert response.status_code == 200, response.content[:300]
    assert response.json()["section"]["citations"] == [
        {"id": "9", "text": f"{OM}, p. 2", "document": OM, "document_id": str(om.pk), "page": 2}
    ]


def test_debug_citations_are_linked(cast):
    documents = {d.filename: str(d.pk) for d in make_corpus(cast.deal)}
    body = cast.client("editor").post(
        canvas_url(cast.deal, "debug"), {"section_key": "financial_analysis"}, format="json"
    )
    citations = body.json()["citations"]
    assert citations and all(c["document_id"] == documents[c["document"]] for c in citations)


def test_the_run_streams_references_take_the_id_from_the_cited_passages():
    markdown = "NOI is $2.45M.[^1] Rents rose.[^2]\n\n[^1]: OM.pdf, p. 6\n\n[^2]: Rent Roll.xlsx, p. 1"
    sources = [
        {"document_id": "d-om", "filename": "OM.pdf", "page": 6, "score": 1.0},
        {"document_id": "d-rr1", "filename": "Rent Roll.xlsx", "page": 1, "score": 0.5},
        {"document_id": "d-rr2", "filename": "Rent Roll.xlsx", "page": 1, "score": 0.4},  # same name: ambiguous
    ]
    references = Draft(markdown=markdown, sources=sources).references
    assert [(r["id"], r["document"], r["page"], r["document_id"]) for r in references] == [
        ("1", "OM.pdf", 6, "d-om"),
        ("2", "Rent Roll.xlsx", 1, None),
    ]
    # the fields parse_citations always gave are unchanged
    assert [{k: r[k] for k in ("id", "text", "document", "page")} for r in references] == parse_citations(markdown)
    assert with_document_ids([{"id": "x", "text": "a note", "document": None, "page": None}], {"a": "b"}) == [
        {"id": "x", "text": "a note", "document": None, "page": None, "document_id": None}
    ]
