"""GET /api/deals/{id}/documents/{doc_id}/pages, /figures, /figures/{n} and POST .../reingest."""

from __future__ import annotations

import io

import pytest
import redis
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from canvas_project import keys
from canvas_project.redis_client import get_redis
from deals.documents import selectors as document_selectors
from deals.documents.ingestion import crops
from deals.documents.ingestion.digitize import Crop, Digitized, PageText, markdown_table, markdown_tables
from deals.documents.services import document_ingest
from deals.models import Document, FileState
from tests.deals import fixtures_documents as docs

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


def _url(deal, document, *parts) -> str:
    return "/".join([f"/api/deals/{deal.pk}/documents/{document.pk}", *map(str, parts)])


def _ingested(cast, name="Riverside OM.pdf", content=None) -> Document:
    """Uploaded through the API, then ingested here (the worker's task, in process)."""
    upload = SimpleUploadedFile(name, content if content is not None else docs.offering_memorandum_pdf())
    response = cast.client("editor").post(f"/api/deals/{cast.deal.pk}/documents", {"file": upload}, format="multipart")
    assert response.status_code == 201, response.content[:300]
    document = document_ingest(document_id=response.json()["id"])
    assert document is not None and document.state == FileState.READY, document and document.error
    return document


# --- pages ----------------------------------------------------------------------------------------------
def test_pages_give_each_page_its_text_and_tables(cast):
    om = _ingested(cast)
    body = cast.client("viewer").get(_url(cast.deal, om, "pages")).json()
    assert (body["document_id"], body["state"], body["next"], body["previous"]) == (str(om.pk), "ready", None, None)
    assert [p["page_number"] for p in body["results"]] == [1, 2, 3]
    assert "Purchase price: $41,500,000" in body["results"][0]["text"]
    assert body["results"][0]["tables"] == []
    rent = body["results"][2]
    assert "| 2 bed | 96 | $1,610 |" in rent["text"]  # the table stays in the text too
    assert rent["tables"] == [{"header": docs.RENT_TABLE[0], "rows": docs.RENT_TABLE[1:]}]


def test_pages_are_paginated(cast):
    om = _ingested(cast)
    client = cast.client("viewer")
    first = client.get(_url(cast.deal, om, "pages") + "?page_size=2").json()
    assert [p["page_number"] for p in first["results"]] == [1, 2]
    second = client.get(first["next"]).json()
    assert (second["document_id"], second["state"], second["next"]) == (str(om.pk), "ready", None)
    assert [p["page_number"] for p in second["results"]] == [3]
    assert client.get(_url(cast.deal, om, "pages") + "?page=3").status_code == 422  # retired
    bad = client.get(_url(cast.deal, om, "pages") + "?page_size=201")
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "page_size"]


def test_a_document_not_ingested_yet_has_no_pages(cast):
    upload = SimpleUploadedFile("notes.txt", b"Purchase price: $1,000,000\n")
    created = cast.client("editor").post(f"/api/deals/{cast.deal.pk}/documents", {"file": upload}, format="multipart")
    document = Document.objects.get(pk=created.json()["id"])
    body = cast.client("viewer").get(_url(cast.deal, document, "pages")).json()
    assert (body["state"], body["results"], body["next"]) == ("queued", [], None)


def test_another_deals_document_is_404_and_a_malformed_id_422(cast):
    from tests import factories

    other = factories.make_deal(cast.org, owner=cast.users["owner"], name="Elsewhere")
    om = _ingested(cast)
    for suffix in ("pages", "figures", "figures/1"):
        assert cast.client("owner").get(f"/api/deals/{other.pk}/documents/{om.pk}/{suffix}").status_code == 404
        malformed = cast.client("owner").get(f"/api/deals/{cast.deal.pk}/documents/nope/{suffix}")
        assert malformed.status_code == 422 and malformed.json()["detail"][0]["loc"] == ["path", "doc_id"]


@pytest.mark.parametrize(
    "rows",
    [
        [["Unit type", "Count"], ["1 bed", "120"]],
        [["a | b", "c"], ["", "d|e"], ["only one"]],  # escaped bars, empty and ragged cells
    ],
)
def test_markdown_tables_reads_back_what_markdown_table_writes(rows):
    width = max(len(r) for r in rows)
    padded = [[" ".join(c.split()) for c in r] + [""] * (width - len(r)) for r in rows]
    text = f"Before the table.\n\n{markdown_table(rows)}\n\nAfter | with a bar.\n| not | a table |"
    assert markdown_tables(text) == [padded]


# --- figures --------------------------------------------------------------------------------------------
def test_figures_are_listed_and_served_as_png(cast):
    om = _ingested(cast)
    client = cast.client("viewer")
    listing = client.get(_url(cast.deal, om, "figures")).json()
    assert listing["document_id"] == str(om.pk) and listing["cached"] is True and listing["digitized_at"]
    [figure] = listing["figures"]
    assert {k: figure[k] for k in ("n", "page", "width", "height", "format", "available")} == {
        "n": 1,
        "page": 1,
        "width": 96,
        "height": 64,
        "format": "png",
        "available": True,
    }
    image = client.get(_url(cast.deal, om, "figures", 1), HTTP_ACCEPT="image/png")  # as an <img> asks for it
    assert image.status_code == 200, image.content[:300]
    assert image["Content-Type"] == "image/png" and image["X-Content-Type-Options"] == "nosniff"
    assert image.content.startswith(PNG_SIGNATURE)
    with Image.open(io.BytesIO(image.content)) as decoded:
        assert decoded.size == (96, 64)


def test_a_figure_stored_as_jpeg_is_answered_as_png(cast):
    om = _ingested(cast)
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (10, 120, 200)).save(out, format="JPEG")
    crop = Crop(page=2, name="Im7.jpg", image_format="jpeg", width=40, height=30, data=out.getvalue())
    assert crops.digitization_cache_write(document=om, digitized=Digitized(pages=[PageText(1, "x")], crops=[crop]))
    listed = cast.client("viewer").get(_url(cast.deal, om, "figures")).json()["figures"]
    assert [(f["n"], f["page"], f["format"]) for f in listed] == [(1, 2, "jpeg")]
    image = cast.client("viewer").get(_url(cast.deal, om, "figures", 1))
    assert image["Content-Type"] == "image/png" and image.content.startswith(PNG_SIGNATURE)
    with Image.open(io.BytesIO(image.content)) as decoded:
        assert decoded.size == (40, 30)


def test_an_expired_figure_is_404_and_says_so(cast):
    om = _ingested(cast)
    get_redis().unlink(keys.image_crop_key(cast.deal.pk, om.pk, 0))  # its 24 hours are over
    client = cast.client("viewer")
    assert client.get(_url(cast.deal, om, "figures")).json()["figures"][0]["available"] is False
    response = client.get(_url(cast.deal, om, "figures", 1))
    assert response.status_code == 404 and response["Content-Type"] == "application/json"
    detail = response.json()["detail"]
    assert "Figure 1 has expired from the cache" in detail and "re-ingest the document" in detail


def test_when_the_digitization_record_expired_no_figure_is_known(cast):
    om = _ingested(cast)
    get_redis().unlink(keys.digitization_key(cast.deal.pk, om.pk), keys.image_crop_key(cast.deal.pk, om.pk, 0))
    listing = cast.client("viewer").get(_url(cast.deal, om, "figures")).json()
    assert (listing["cached"], listing["digitized_at"], listing["figures"]) == (False, None, [])
    assert "expired" in cast.client("viewer").get(_url(cast.deal, om, "figures", 1)).json()["detail"]


@pytest.mark.parametrize(
    ("n", "status", "says"),
    [
        ("2", 404, "This document has no figure 2; it has 1."),
        ("51", 404, "This document has no figure 51: at most 50 are cropped."),
        ("0", 422, None),
        ("x", 422, None),
        ("9223372036854775808", 422, None),
    ],
)
def test_a_figure_that_does_not_exist(cast, n, status, says):
    om = _ingested(cast)
    response = cast.client("viewer").get(_url(cast.deal, om, "figures", n))
    assert response.status_code == status
    if says:
        assert response.json()["detail"] == says
    else:
        assert response.json()["detail"][0]["loc"] == ["path", "n"]


def test_documents_other_than_pdfs_have_no_figures(cast):
    sheet = _ingested(cast, "Underwriting.xlsx", docs.underwriting_xlsx())
    assert cast.client("viewer").get(_url(cast.deal, sheet, "figures")).json()["figures"] == []
    response = cast.client("viewer").get(_url(cast.deal, sheet, "figures", 1))
    assert response.status_code == 404 and response.json()["detail"] == "This document is XLSX: only PDFs have figures."


def test_redis_down_is_503_not_expired(cast, monkeypatch):
    om = _ingested(cast)

    def down(**kwargs):
        raise redis.exceptions.ConnectionError("refused")

    monkeypatch.setattr(document_selectors.crops, "figures_read", down)
    monkeypatch.setattr(document_selectors.crops, "figure_read", down)
    for suffix in ("figures", "figures/1"):
        response = cast.client("viewer").get(_url(cast.deal, om, suffix))
        assert response.status_code == 503 and "Redis is unavailable" in response.json()["detail"]


# --- reingest -------------------------------------------------------------------------------------------
def test_reingest_queues_the_document_and_brings_its_figures_back(
    cast, django_capture_on_commit_callbacks, monkeypatch
):
    om = _ingested(cast)
    get_redis().unlink(keys.image_crop_key(cast.deal.pk, om.pk, 0))
    sent = []
    monkeypatch.setattr("deals.documents.services.celery_app.send_task", lambda name, args: sent.append((name, args)))
    with django_capture_on_commit_callbacks(execute=True):
        response = cast.client("editor").post(_url(cast.deal, om, "reingest"))
    assert response.status_code == 202, response.content[:300]
    assert response.json()["id"] == str(om.pk) and response.json()["state"] == "queued"
    assert sent == [("deals.ingest_document", [str(om.pk)])]
    document_ingest(document_id=om.pk)  # what the worker does with that message
    assert cast.client("viewer").get(_url(cast.deal, om, "figures")).json()["figures"][0]["available"] is True
    assert cast.client("viewer").get(_url(cast.deal, om, "figures", 1)).status_code == 200


def test_reingest_is_for_editors(cast):
    om = _ingested(cast)
    for role, status in (("viewer", 403), ("commenter", 403), ("outsider", 404), ("anonymous", 401)):
        assert cast.client(role).post(_url(cast.deal, om, "reingest")).status_code == status
    assert Document.objects.get(pk=om.pk).state == FileState.READY
