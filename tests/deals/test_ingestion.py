"""Ingestion: digitization, deal intel, intake, crops, the stuck-ingestion sweeper."""

from __future__ import annotations

import json

import pytest

from canvas import keys
from canvas_project.redis_client import get_redis
from deals.intel import deal_intel_get, deal_passages, intake_summary_get
from deals.models import Document, DocumentPage, FileState

pytestmark = pytest.mark.django_db

OM_PAGE_1 = "Riverside Apartments offering memorandum. Purchase price: $41,500,000 for the fee simple."
OM_PAGE_2 = "The property has 240 units built in 1998. In-place NOI of $2,450,000, a cap rate of 5.9%."
UW_SHEET = ("| Metric | Value |\n| --- | --- |\n| Levered IRR | 14.2% |\n| Equity Multiple | 1.85x |\n"
            "| LTV | 65% |")


def _ready_document(deal, filename, kind, pages, state=FileState.READY):
    doc = Document.objects.create(deal=deal, file=f"x/{filename}", filename=filename, content_type="x",
                                  kind=kind, size=1, sha256="0" * 64, state=state, pages=len(pages))
    for number, text in enumerate(pages, start=1):
        DocumentPage.objects.create(document=doc, deal=deal, page_number=number, text=text)
    return doc


def test_it_extracts_intel_from_document_pages_with_sources(cast):
    om = _ready_document(cast.deal, "om.pdf", "pdf", [OM_PAGE_1, OM_PAGE_2])
    uw = _ready_document(cast.deal, "uw.xlsx", "xlsx", [UW_SHEET])
    _ready_document(cast.deal, "later.pdf", "pdf", ["Purchase price: $99,000,000"],
                    state=FileState.PROCESSING)

    intel = deal_intel_get(deal=cast.deal)

    metrics = intel["metrics"]
    assert intel["documents"] == 2
    assert metrics["purchase_price"]["value"] == 41_500_000
    assert metrics["purchase_price"]["source"] == {"document_id": str(om.pk), "filename": "om.pdf", "page": 1}
    assert metrics["noi"]["value"] == 2_450_000 and metrics["noi"]["source"]["page"] == 2
    assert metrics["cap_rate"] == {"value": 5.9, "unit": "%", "text": "cap rate of 5.9%",
                                   "source": {"document_id": str(om.pk), "filename": "om.pdf", "page": 2}}
    assert metrics["units"]["value"] == 240 and metrics["year_built"]["value"] == 1998
    assert metrics["irr"]["value"] == 14.2 and metrics["irr"]["source"]["document_id"] == str(uw.pk)
    assert metrics["equity_multiple"]["value"] == 1.85 and metrics["equity_multiple"]["unit"] == "x"
    assert metrics["ltv"]["value"] == 65
    # cached in the registry's key for 24 h
    assert json.loads(get_redis().get(keys.deal_intel_key(cast.deal.pk)))["metrics"] == metrics
    assert 0 < get_redis().ttl(keys.deal_intel_key(cast.deal.pk)) <= keys.DEAL_INTEL_TTL


def test_it_serves_intel_from_the_cache(cast):
    get_redis().set(keys.deal_intel_key(cast.deal.pk), json.dumps({"metrics": {}, "documents": 7,
                                                                   "computed_at": "x"}))
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
