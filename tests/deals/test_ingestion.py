"""Ingestion: digitization, deal intel, intake, crops, the stuck-ingestion sweeper."""

from __future__ import annotations

import io
import json
import os
import time
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from PIL import Image

from canvas_project import keys
from canvas_project.redis_client import get_redis
from deals.documents.ingestion.intel import Passage, extract_metrics
from deals.documents.intel import (
    deal_intel_get,
    deal_passages,
    document_crop_get,
    document_digitization_get,
    intake_summary_get,
)
from deals.documents.services import document_ingest, fail_stuck_ingestions
from deals.documents.tasks import sweep_stuck_ingestions
from deals.models import Document, DocumentPage, FileState
from tests.deals import fixtures_documents as docs

pytestmark = pytest.mark.django_db

OM_PAGE_1 = "Riverside Apartments offering memorandum. Purchase price: $41,500,000 for the fee simple."
OM_PAGE_2 = "The property has 240 units built in 1998. In-place NOI of $2,450,000, a cap rate of 5.9%."
UW_SHEET = "| Metric | Value |\n| --- | --- |\n| Levered IRR | 14.2% |\n| Equity Multiple | 1.85x |\n| LTV | 65% |"


def _ready_document(deal, filename, kind, pages, state=FileState.READY):
    doc = Document.objects.create(
        deal=deal,
        file=f"x/{filename}",
        filename=filename,
        content_type="x",
        kind=kind,
        size=1,
        sha256="0" * 64,
        state=state,
        pages=len(pages),
    )
    for number, text in enumerate(pages, start=1):
        DocumentPage.objects.create(document=doc, deal=deal, page_number=number, text=text)
    return doc


def test_it_extracts_intel_from_document_pages_with_sources(cast):
    om = _ready_document(cast.deal, "om.pdf", "pdf", [OM_PAGE_1, OM_PAGE_2])
    uw = _ready_document(cast.deal, "uw.xlsx", "xlsx", [UW_SHEET])
    _ready_document(cast.deal, "later.pdf", "pdf", ["Purchase price: $99,000,000"], state=FileState.PROCESSING)

    intel = deal_intel_get(deal=cast.deal)

    metrics = intel["metrics"]
    assert intel["documents"] == 2
    assert metrics["purchase_price"]["value"] == 41_500_000
    assert metrics["purchase_price"]["source"] == {"document_id": str(om.pk), "filename": "om.pdf", "page": 1}
    assert metrics["noi"]["value"] == 2_450_000 and metrics["noi"]["source"]["page"] == 2
    assert metrics["cap_rate"] == {
        "value": 5.9,
        "unit": "%",
        "text": "cap rate of 5.9%",
        "source": {"document_id": str(om.pk), "filename": "om.pdf", "page": 2},
    }
    assert metrics["units"]["value"] == 240 and metrics["year_built"]["value"] == 1998
    assert metrics["irr"]["value"] == 14.2 and metrics["irr"]["source"]["document_id"] == str(uw.pk)
    assert metrics["equity_multiple"]["value"] == 1.85 and metrics["equity_multiple"]["unit"] == "x"
    assert metrics["ltv"]["value"] == 65
    # cached in the registry's key for 24 h
    assert json.loads(get_redis().get(keys.deal_intel_key(cast.deal.pk)))["metrics"] == metrics
    assert 0 < get_redis().ttl(keys.deal_intel_key(cast.deal.pk)) <= keys.DEAL_INTEL_TTL


def test_it_serves_intel_from_the_cache(cast):
    get_redis().set(keys.deal_intel_key(cast.deal.pk), json.dumps({"metrics": {}, "documents": 7, "computed_at": "x"}))
    assert deal_intel_get(deal=cast.deal)["documents"] == 7


def test_it_recomputes_intel_when_redis_is_down(cast, settings, monkeypatch):
    import redis

    _ready_document(cast.deal, "om.pdf", "pdf", [OM_PAGE_1])

    def down(*args, **kwargs):
        raise redis.exceptions.ConnectionError("down")

    monkeypatch.setattr("redis.Redis.get", down)
    monkeypatch.setattr("redis.Redis.set", down)
    assert deal_intel_get(deal=cast.deal)["metrics"]["purchase_price"]["value"] == 41_500_000
    assert intake_summary_get(deal=cast.deal)["key_facts"]["purchase_price"]["value"] == 41_500_000


def test_it_lists_passages_of_ready_documents(cast):
    om = _ready_document(cast.deal, "om.pdf", "pdf", [OM_PAGE_1, OM_PAGE_2])
    _ready_document(cast.deal, "bad.pdf", "pdf", ["nothing"], state=FileState.FAILED)
    assert deal_passages(deal_id=cast.deal.pk) == [
        {"document_id": str(om.pk), "filename": "om.pdf", "page": 1, "text": OM_PAGE_1},
        {"document_id": str(om.pk), "filename": "om.pdf", "page": 2, "text": OM_PAGE_2},
    ]


# --- end to end, on the real Celery worker ----------------------------------------------------------
@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


def _upload(client, deal, name: str, content: bytes) -> dict:
    response = client.post(
        f"/api/deals/{deal.pk}/documents", {"file": SimpleUploadedFile(name, content)}, format="multipart"
    )
    assert response.status_code == 201, response.content
    return response.json()


def _wait_settled(document_id, timeout: float = 60.0) -> Document:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = Document.objects.get(pk=document_id)
        if doc.state in (FileState.READY, FileState.FAILED):
            return doc
        time.sleep(0.05)
    raise AssertionError(f"document {document_id} still {doc.state} after {timeout}s")


@pytest.mark.both_brokers
@pytest.mark.django_db(transaction=True)
def test_end_to_end_pdf_and_xlsx_on_the_worker(cast, celery_worker, media):
    client = cast.client("editor")
    redis = get_redis()

    pdf = _upload(client, cast.deal, "Riverside OM.pdf", docs.offering_memorandum_pdf())
    om = _wait_settled(pdf["id"])
    assert (om.state, om.error, om.pages) == (FileState.READY, "", 3)
    assert om.processing_started_at is not None and om.processed_at >= om.processing_started_at
    pages = list(DocumentPage.objects.filter(document=om).order_by("page_number"))
    assert [p.page_number for p in pages] == [1, 2, 3]
    assert "Purchase price: $41,500,000" in pages[0].text and "NOI" not in pages[0].text
    assert "NOI of $2,450,000" in pages[1].text and "cap rate of 5.9%" in pages[1].text
    assert "240 units" in pages[2].text and "occupancy 94%" in pages[2].text
    # the drawn rent table comes back as a pipe table
    assert "| Unit type | Count | Avg rent |" in pages[2].text and "| 2 bed | 96 | $1,610 |" in pages[2].text

    cache = json.loads(redis.get(keys.digitization_key(cast.deal.pk, om.pk)))
    assert [(p["page"], p["text"]) for p in cache["pages"]] == [(p.page_number, p.text) for p in pages]
    assert cache["sha256"] == om.sha256
    assert 0 < redis.ttl(keys.digitization_key(cast.deal.pk, om.pk)) <= keys.DIGITIZATION_TTL
    # the figure on page 1 is cropped into Redis, tracked in the deal's index
    assert [(c["index"], c["page"], c["width"], c["height"]) for c in cache["crops"]] == [(0, 1, 96, 64)]
    crop_key = keys.image_crop_key(cast.deal.pk, om.pk, 0)
    with Image.open(io.BytesIO(redis.get(crop_key))) as image:
        assert image.size == (96, 64)
    assert 0 < redis.ttl(crop_key) <= keys.IMAGE_CROP_TTL
    index = redis.smembers(keys.index_key(cast.deal.pk))
    assert {crop_key.encode(), keys.digitization_key(cast.deal.pk, om.pk).encode()} <= index
    assert document_crop_get(deal_id=cast.deal.pk, document_id=om.pk, index=0) == redis.get(crop_key)
    assert document_digitization_get(deal_id=cast.deal.pk, document_id=om.pk) == cache

    intel = client.get(f"/api/deals/{cast.deal.pk}/intel").json()["metrics"]
    source = {"document_id": str(om.pk), "filename": "Riverside OM.pdf"}
    assert intel["purchase_price"] == {
        "value": 41_500_000,
        "unit": "USD",
        "text": "Purchase price: $41,500,000",
        "source": {**source, "page": 1},
    }
    assert (intel["noi"]["value"], intel["noi"]["source"]["page"]) == (2_450_000, 2)
    assert (intel["cap_rate"]["value"], intel["cap_rate"]["source"]["page"]) == (5.9, 2)
    assert (intel["units"]["value"], intel["units"]["source"]["page"]) == (240, 3)
    assert (intel["occupancy"]["value"], intel["occupancy"]["source"]["page"]) == (94, 3)
    assert (intel["square_feet"]["value"], intel["year_built"]["value"]) == (212_500, 1998)
    assert "irr" not in intel

    intake = client.get(f"/api/deals/{cast.deal.pk}/intake").json()
    assert intake["missing"] == ["Underwriting model (XLSX)"] and intake["complete"] is False
    assert intake["documents"][0]["fills"] == "offering_memorandum"
    assert intake["key_facts"]["cap_rate"]["value"] == 5.9

    xlsx = _upload(client, cast.deal, "Underwriting model.xlsx", docs.underwriting_xlsx())
    uw = _wait_settled(xlsx["id"])
    assert (uw.state, uw.pages) == (FileState.READY, 2)
    sheets = list(DocumentPage.objects.filter(document=uw).order_by("page_number"))
    assert [s.label for s in sheets] == ["Returns", "Cash flow"]
    assert "| Levered IRR | 14.2% | 5-year hold |" in sheets[0].text
    assert "| Equity multiple | 1.85x |  |" in sheets[0].text
    assert "| LTV | 65% | Senior loan |" in sheets[0].text

    # the intel cache was rebuilt when the workbook finished: the model's figures are there now
    intel = client.get(f"/api/deals/{cast.deal.pk}/intel").json()
    uw_source = {"document_id": str(uw.pk), "filename": "Underwriting model.xlsx", "page": 1}
    assert intel["documents"] == 2
    assert (intel["metrics"]["irr"]["value"], intel["metrics"]["irr"]["source"]) == (14.2, uw_source)
    assert intel["metrics"]["equity_multiple"]["value"] == 1.85
    assert intel["metrics"]["ltv"]["value"] == 65 and intel["metrics"]["dscr"]["value"] == 1.45
    assert intel["metrics"]["purchase_price"]["source"]["document_id"] == str(om.pk)  # first in upload order
    intake = client.get(f"/api/deals/{cast.deal.pk}/intake").json()
    assert intake["missing"] == [] and intake["complete"] is True and intake["pages"] == 5
    assert deal_passages(deal_id=cast.deal.pk)[3] == {
        "document_id": str(uw.pk),
        "filename": "Underwriting model.xlsx",
        "page": 1,
        "text": sheets[0].text,
    }

    # deleting the memorandum removes its pages, file and keys; intel falls back to the workbook
    path = om.file.path
    assert client.delete(f"/api/deals/{cast.deal.pk}/documents/{om.pk}").status_code == 204
    assert not DocumentPage.objects.filter(document_id=om.pk).exists()
    assert not os.path.exists(path)
    assert redis.exists(keys.digitization_key(cast.deal.pk, om.pk), crop_key) == 0
    assert crop_key.encode() not in redis.smembers(keys.index_key(cast.deal.pk))
    intel = client.get(f"/api/deals/{cast.deal.pk}/intel").json()["metrics"]
    assert intel["purchase_price"]["source"] == uw_source and "cap_rate" not in intel
    assert client.get(f"/api/deals/{cast.deal.pk}/intake").json()["missing"] == ["Offering memorandum (PDF)"]


@pytest.mark.django_db(transaction=True)
def test_a_corrupt_pdf_fails_with_a_reason(cast, celery_worker, media):
    client = cast.client("editor")
    doc = _wait_settled(_upload(client, cast.deal, "broken.pdf", docs.corrupt_pdf())["id"])
    assert doc.state == FileState.FAILED
    assert doc.error.startswith("The PDF could not be read")
    assert not DocumentPage.objects.filter(document=doc).exists()
    row = client.get(f"/api/deals/{cast.deal.pk}/documents/{doc.pk}").json()
    assert row["state"] == "failed" and row["error"] == doc.error
    intake = client.get(f"/api/deals/{cast.deal.pk}/intake").json()
    assert intake["counts"]["failed"] == 1
    assert intake["missing"] == ["Offering memorandum (PDF)", "Underwriting model (XLSX)"]


@pytest.mark.django_db(transaction=True)
def test_each_ingest_sweeps_stalled_ones_first(cast, celery_worker, media):
    stalled = _ready_document(cast.deal, "stuck.pdf", "pdf", [], state=FileState.PROCESSING)
    started = timezone.now() - timedelta(minutes=21)
    Document.objects.filter(pk=stalled.pk).update(processing_started_at=started)
    upload = _upload(cast.client("editor"), cast.deal, "notes.md", b"# Notes\n\nNOI of $1.2 million.")
    doc = _wait_settled(upload["id"])
    assert doc.state == FileState.READY
    stalled.refresh_from_db()
    assert (stalled.state, stalled.error) == (FileState.FAILED, "ingestion stalled for more than 20 minutes")


# --- ingestion service, without the worker --------------------------------------------------------
def _queued(deal, name: str, content: bytes) -> Document:
    from deals.documents.ingestion.sniff import sniff_document

    sniffed = sniff_document(io.BytesIO(content), name)
    doc = Document(
        deal=deal,
        filename=name,
        content_type=sniffed.content_type,
        kind=sniffed.kind,
        size=len(content),
        sha256="0" * 64,
    )
    doc.file.save(name, ContentFile(content), save=False)
    doc.save()
    return doc


def _pages(doc) -> list[str]:
    rows = DocumentPage.objects.filter(document=doc).order_by("page_number")
    return list(rows.values_list("text", flat=True))


def test_docx_paragraphs_and_tables_in_order(cast, media):
    doc = _queued(cast.deal, "notes.docx", docs.memo_docx())
    assert document_ingest(document_id=doc.pk).state == FileState.READY
    (text,) = _pages(doc)
    assert text.index("# Investment committee notes") < text.index("94% occupied")
    assert text.index("94% occupied") < text.index("| DSCR | 1.45x |")
    assert text.index("| DSCR | 1.45x |") < text.index("second quarter")


def test_csv_is_a_markdown_table_chunked_with_its_header(cast, media):
    rows = "\n".join(f"{n},Tenant {n},{1000 + n}" for n in range(400))
    doc = _queued(cast.deal, "rent_roll.csv", ("unit,tenant,rent\n" + rows).encode())
    assert document_ingest(document_id=doc.pk).state == FileState.READY
    pages = _pages(doc)
    assert len(pages) > 1
    assert all(p.startswith("| unit | tenant | rent |\n| --- | --- | --- |") for p in pages)
    assert all(len(p) <= 3200 for p in pages)
    body_rows = [line for p in pages for line in p.splitlines()[2:]]
    assert len(body_rows) == 400 and body_rows[-1] == "| 399 | Tenant 399 | 1399 |"
    labels = list(DocumentPage.objects.filter(document=doc).order_by("page_number").values_list("label", flat=True))
    assert labels[0].startswith("rows 1-")


def test_text_is_chunked_into_pages_of_about_3000_characters(cast, media):
    content = docs.long_text(10_000)
    doc = _queued(cast.deal, "market.txt", content)
    assert document_ingest(document_id=doc.pk).state == FileState.READY
    pages = _pages(doc)
    assert len(pages) == 4 and all(len(p) <= 3000 for p in pages)
    assert " ".join(" ".join(pages).split()) == " ".join(content.decode().split())


def test_a_pdf_without_text_fails_and_says_why(cast, media):
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas as pdf_canvas

    out = io.BytesIO()
    pdf = pdf_canvas.Canvas(out)
    pdf.drawImage(ImageReader(io.BytesIO(docs.png_bytes())), 72, 600, width=96, height=64)
    pdf.showPage()
    pdf.save()
    doc = document_ingest(document_id=_queued(cast.deal, "scan.pdf", out.getvalue()).pk)
    assert doc.state == FileState.FAILED and "OCR" in doc.error


def test_a_password_protected_pdf_fails_and_says_why(cast, media):
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    writer.append(PdfReader(io.BytesIO(docs.offering_memorandum_pdf())))
    writer.encrypt(user_password="secret", owner_password="owner")
    out = io.BytesIO()
    writer.write(out)
    doc = document_ingest(document_id=_queued(cast.deal, "locked.pdf", out.getvalue()).pk)
    assert doc.state == FileState.FAILED and "password" in doc.error


def test_a_damaged_workbook_fails(cast, media):
    content = docs.underwriting_xlsx()
    doc = _queued(cast.deal, "model.xlsx", content)
    doc.file.storage.delete(doc.file.name)
    doc.file.save("model.xlsx", ContentFile(content[: len(content) // 2]), save=True)
    result = document_ingest(document_id=doc.pk)
    assert result.state == FileState.FAILED and "workbook could not be read" in result.error


def test_ingestion_is_done_once(cast, media):
    doc = _queued(cast.deal, "notes.txt", b"Purchase price: $5,000,000")
    assert document_ingest(document_id=doc.pk).state == FileState.READY
    assert document_ingest(document_id=doc.pk) is None  # a duplicate delivery finds it ready
    assert DocumentPage.objects.filter(document=doc).count() == 1


def test_a_redelivered_task_reingests_a_document_left_processing(cast, media):
    doc = _queued(cast.deal, "notes.txt", b"Purchase price: $5,000,000")
    Document.objects.filter(pk=doc.pk).update(state=FileState.PROCESSING, processing_started_at=timezone.now())
    DocumentPage.objects.create(document=doc, deal=cast.deal, page_number=7, text="half-written")
    assert document_ingest(document_id=doc.pk).state == FileState.READY
    assert _pages(doc) == ["Purchase price: $5,000,000"]


def test_ingestion_works_with_redis_down(cast, media, monkeypatch):
    import redis

    def down(*args, **kwargs):
        raise redis.exceptions.ConnectionError("down")

    monkeypatch.setattr("redis.client.Pipeline.execute", down)
    monkeypatch.setattr("redis.Redis.get", down)
    monkeypatch.setattr("redis.Redis.set", down)
    monkeypatch.setattr("redis.Redis.delete", down)
    doc = document_ingest(document_id=_queued(cast.deal, "om.pdf", docs.offering_memorandum_pdf()).pk)
    assert doc.state == FileState.READY and doc.pages == 3
    assert deal_intel_get(deal=cast.deal)["metrics"]["noi"]["value"] == 2_450_000


def test_a_document_deleted_while_it_was_digitized_leaves_nothing(cast, media, monkeypatch):
    from deals.documents.ingestion import digitize as digitize_module

    doc = _queued(cast.deal, "om.pdf", docs.offering_memorandum_pdf())
    real = digitize_module.digitize

    def digitize_then_vanish(kind, data):
        result = real(kind, data)
        Document.objects.filter(pk=doc.pk).delete()
        return result

    monkeypatch.setattr("deals.documents.services.digitize", digitize_then_vanish)
    assert document_ingest(document_id=doc.pk) is None
    assert not DocumentPage.objects.filter(document_id=doc.pk).exists()
    assert (
        get_redis().exists(keys.digitization_key(cast.deal.pk, doc.pk), keys.image_crop_key(cast.deal.pk, doc.pk, 0))
        == 0
    )


# --- the stuck-ingestion sweeper ------------------------------------------------------------------
def test_the_sweeper_fails_ingestions_stalled_for_more_than_20_minutes(cast):
    stalled = _ready_document(cast.deal, "stuck.pdf", "pdf", [], state=FileState.PROCESSING)
    recent = _ready_document(cast.deal, "busy.pdf", "pdf", [], state=FileState.PROCESSING)
    queued = _ready_document(cast.deal, "waiting.pdf", "pdf", [], state=FileState.QUEUED)
    now = timezone.now()
    Document.objects.filter(pk=stalled.pk).update(processing_started_at=now - timedelta(minutes=21))
    Document.objects.filter(pk=recent.pk).update(processing_started_at=now - timedelta(minutes=19))
    get_redis().set(keys.intake_key(cast.deal.pk), "{}")

    assert fail_stuck_ingestions() == 1
    assert sweep_stuck_ingestions() == 0  # the beat task runs the same sweep

    states = dict(Document.objects.values_list("filename", "state"))
    assert states == {"stuck.pdf": "failed", "busy.pdf": "processing", "waiting.pdf": "queued"}
    stalled.refresh_from_db()
    assert stalled.error == "ingestion stalled for more than 20 minutes" and stalled.processed_at is not None
    assert json.loads(get_redis().get(keys.intake_key(cast.deal.pk)))["counts"]["failed"] == 1
    del queued


@pytest.mark.both_brokers
@pytest.mark.django_db(transaction=True)
def test_the_sweeper_enqueues_again_a_document_whose_message_was_lost(cast, celery_worker, media):
    # an upload while the broker was down committed its row but never reached the queue
    lost = _queued(cast.deal, "notes.md", b"# Notes\n\nNOI of $1.2 million.")
    recent = _queued(cast.deal, "recent.md", b"# Recent\n")  # its message may still be on its way
    Document.objects.filter(pk=lost.pk).update(updated_at=timezone.now() - timedelta(minutes=21))
    assert sweep_stuck_ingestions() == 0  # nothing failed
    assert _wait_settled(lost.pk).state == FileState.READY
    assert Document.objects.get(pk=recent.pk).state == FileState.QUEUED


def test_a_task_past_its_time_limit_fails_the_document(cast, media, monkeypatch):
    from celery.exceptions import SoftTimeLimitExceeded

    from deals.documents.tasks import ingest_document

    doc = _queued(cast.deal, "notes.txt", b"text")

    def slow(**kwargs):
        Document.objects.filter(pk=doc.pk).update(state=FileState.PROCESSING)
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr("deals.documents.services.document_ingest", slow)
    assert ingest_document.run(str(doc.pk)) == "failed"
    doc.refresh_from_db()
    assert doc.state == FileState.FAILED and "15 minutes" in doc.error


# --- intel phrasing and intake rules --------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "name", "value"),
    [
        ("The asking price of $41.5 million reflects", "purchase_price", 41_500_000),
        ("Net operating income: $2.45MM in year one", "noi", 2_450_000),
        ("offered at a 6.25% cap rate", "cap_rate", 6.25),
        ("| Going-in cap rate | 5.9% |", "cap_rate", 5.9),
        ("The asset is 96.5% leased", "occupancy", 96.5),
        ("Physical occupancy: 93%", "occupancy", 93),
        ("a 312-unit community", "units", 312),
        ("Unit count | 180 |", "units", 180),
        ("totaling 185,000 SF of space", "square_feet", 185_000),
        ("Net rentable area | 98,400 RSF", "square_feet", 98_400),
        ("projected unlevered IRR of 9.8%", "irr", 9.8),
        ("a 2.1x equity multiple", "equity_multiple", 2.1),
        ("loan-to-value of 60%", "ltv", 60),
        ("debt service coverage ratio of 1.32x", "dscr", 1.32),
        ("Year built: 2004", "year_built", 2004),
    ],
)
def test_intel_reads_common_phrasings(text, name, value):
    assert extract_metrics([Passage("d", "f.pdf", 1, text)])[name]["value"] == pytest.approx(value)


@pytest.mark.parametrize(
    "text",
    [
        "$172,917 per unit",
        "IRR sensitivity table",
        "cap rate compression of 250 basis points",
        "occupancy 940%",
        "built in 1066",
    ],
)
def test_intel_ignores_implausible_or_valueless_mentions(text):
    assert extract_metrics([Passage("d", "f.pdf", 1, text)]) == {}


def test_intake_rules_follow_the_deal_template(cast):
    cast.deal.template_key = "refinance"
    cast.deal.save()
    _ready_document(cast.deal, "appraisal.docx", "docx", ["Appraised value"])
    _ready_document(cast.deal, "t12.csv", "csv", ["| month | noi |"], state=FileState.PROCESSING)
    summary = intake_summary_get(deal=cast.deal)
    assert {r["key"]: r["status"] for r in summary["requirements"]} == {
        "property_overview": "received",
        "operating_statements": "pending",
    }
    assert summary["missing"] == [] and summary["complete"] is False
    assert summary["counts"] == {"queued": 0, "processing": 1, "ready": 1, "failed": 0}


def test_intake_prefers_the_document_whose_name_says_what_it_is(cast):
    _ready_document(cast.deal, "market_report.pdf", "pdf", ["Submarket rents"])
    om = _ready_document(cast.deal, "Riverside_OM.pdf", "pdf", ["Confidential offering memorandum"])
    summary = intake_summary_get(deal=cast.deal)
    requirement = summary["requirements"][0]
    assert requirement["status"] == "received" and requirement["document_ids"][0] == str(om.pk)
    assert [d["fills"] for d in summary["documents"]] == [None, "offering_memorandum"]


def test_a_value_next_to_its_label_wins_over_a_later_one():
    from deals.documents.ingestion.intel import Passage, extract_metrics

    text = "The loan is sized at a 67.5% LTV, at a fixed interest rate of 5.25% for ten years."
    metrics = extract_metrics([Passage(document_id="d", filename="OM.pdf", page=3, text=text)])
    assert metrics["ltv"]["value"] == 67.5
