"""What other apps may read of a deal's documents: intel, the intake summary, the passages, and which
document a filename names (document_ids_by_filename, for citations).

This is the public read API of ingestion (the synthesis drafters, brushes and the canvas import it);
nothing outside deals should reach into deals.documents.ingestion. None of these raise when Redis is down:
cached values are recomputed from PostgreSQL.
"""

from __future__ import annotations

from deals.documents.ingestion.crops import crop_get, digitization_cache_get
from deals.documents.ingestion.intake import intake_summary_cached
from deals.documents.ingestion.intel import METRIC_NAMES, Passage, deal_intel_cached, ready_passages
from deals.documents.selectors import document_ids_by_filename

__all__ = [
    "METRIC_NAMES",
    "Passage",
    "deal_intel_get",
    "deal_passages",
    "document_ids_by_filename",
    "document_crop_get",
    "document_digitization_get",
    "intake_summary_get",
]


def deal_intel_get(*, deal) -> dict:
    """{"metrics": {name: {"value": float, "unit": str, "text": str, "source": {"document_id",
    "filename", "page"}}}, "documents": n, "computed_at": iso}.

    Metric names: purchase_price (USD), noi (USD), cap_rate (%), units, square_feet (sf), occupancy (%),
    irr (%), equity_multiple (x), ltv (%), dscr (x), year_built; a metric not found is absent.
    `documents` counts the ready documents that have text.
    """
    return deal_intel_cached(deal_id=deal.pk)


def intake_summary_get(*, deal) -> dict:
    """{"template_key", "documents": [{id, filename, kind, state, pages, error, fills}], "counts",
    "pages", "requirements": [{key, label, kinds, status received|pending|missing, document_ids}],
    "missing": [label], "complete": bool, "key_facts": <deal_intel_get()["metrics"]>, "computed_at"}."""
    return intake_summary_cached(deal=deal)


def deal_passages(*, deal_id) -> list[dict]:
    """Every page of the deal's ready documents as {"document_id", "filename", "page", "text"}, in
    upload then page order: the retrieval corpus of the synthesis drafters."""
    return [
        {"document_id": p.document_id, "filename": p.filename, "page": p.page, "text": p.text}
        for p in ready_passages(deal_id=deal_id)
    ]


def document_digitization_get(*, deal_id, document_id) -> dict | None:
    """The digitization cache of a document ({document_id, filename, kind, sha256, pages: [{page, label,
    text}], crops: [{index, page, name, format, width, height, bytes}], digitized_at}), or None when it
    expired, Redis is down, or the document is not ingested. Pages are durable in DocumentPage."""
    return digitization_cache_get(deal_id=deal_id, document_id=document_id)


def document_crop_get(*, deal_id, document_id, index: int) -> bytes | None:
    """The bytes of figure `index` cropped from a PDF (format in the digitization cache), or None."""
    return crop_get(deal_id=deal_id, document_id=document_id, index=index)
