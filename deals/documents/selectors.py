"""Reads of deal documents: the rows, their extracted pages, and the figures cropped from PDFs."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet

from canvas_project.errors import RedisUnavailable
from canvas_project.replicas import replica_reads
from deals.documents.errors import DocumentNotFound, FigureNotFound
from deals.documents.ingestion import crops
from deals.documents.ingestion.digitize import MAX_CROPS_PER_DOCUMENT, markdown_tables
from deals.documents.ingestion.intel import REDIS_ERRORS
from deals.models import Deal, Document, DocumentPage, FileState

FIGURES_KEPT = "figures are kept 24 hours after ingestion"


def document_list(*, deal: Deal) -> QuerySet[Document]:
    """The deal's documents, from a replica when usable (canvas_project.replicas)."""
    return replica_reads(Document.objects).filter(deal=deal).order_by("created_at", "pk")


def document_get(*, deal: Deal, document_id: uuid.UUID) -> Document:
    """The document of that deal. Raises DocumentNotFound (another deal's document is not found either)."""
    document = Document.objects.filter(deal=deal, pk=document_id).first()
    if document is None:
        raise DocumentNotFound()
    return document


def document_pages(*, document: Document) -> QuerySet[DocumentPage]:
    """The extracted pages of the document (none until it is ingested), in page order."""
    pages = DocumentPage.objects.filter(document=document).only("page_number", "label", "text")
    return pages.order_by("page_number", "pk")


def document_page_rows(pages: list[DocumentPage]) -> list[dict]:
    """[{page_number, label, text, tables: [{header, rows}]}] of some pages: their markdown tables parsed."""
    return [
        {
            "page_number": row.page_number,
            "label": row.label,
            "text": row.text,
            "tables": [{"header": table[0], "rows": table[1:]} for table in markdown_tables(row.text)],
        }
        for row in pages
    ]


def document_figures(*, document: Document) -> dict:
    """{document_id, cached, digitized_at, figures: [{n, page, name, format, width, height, bytes, available}]}.

    The figures come from the document's digitization record in Redis (kept 7 days); each says whether its
    image is still there (24 h). `cached` is false when the record is gone (or the document was never
    ingested): re-ingesting brings both back. Raises RedisUnavailable."""
    try:
        cache, present = crops.figures_read(deal_id=document.deal_id, document_id=document.pk)
    except REDIS_ERRORS:
        raise RedisUnavailable("Redis is unavailable, and the figures are kept there; try again shortly.") from None
    figures = [
        {
            "n": int(crop["index"]) + 1,
            "page": crop["page"],
            "name": crop["name"],
            "format": crop["format"],
            "width": crop["width"],
            "height": crop["height"],
            "bytes": crop["bytes"],
            "available": available,
        }
        for crop, available in zip((cache or {}).get("crops") or [], present, strict=True)
    ]
    return {
        "document_id": document.pk,
        "cached": cache is not None,
        "digitized_at": (cache or {}).get("digitized_at"),
        "figures": figures,
    }


def document_figure_png(*, document: Document, n: int) -> bytes:
    """Figure `n` (1-based, as document_figures numbers them) as PNG bytes.

    Raises FigureNotFound with a sentence saying why (no such figure, or its crop expired from Redis) and
    RedisUnavailable."""
    if n > MAX_CROPS_PER_DOCUMENT:
        raise FigureNotFound(f"This document has no figure {n}: at most {MAX_CROPS_PER_DOCUMENT} are cropped.")
    try:
        data, cache = crops.figure_read(deal_id=document.deal_id, document_id=document.pk, index=n - 1)
    except REDIS_ERRORS:
        raise RedisUnavailable("Redis is unavailable, and the figures are kept there; try again shortly.") from None
    if data is None:
        if document.kind != "pdf":
            raise FigureNotFound(f"This document is {document.kind.upper()}: only PDFs have figures.")
        if cache is not None and n > len(cache.get("crops") or []):
            count = len(cache.get("crops") or [])
            raise FigureNotFound(f"This document has no figure {n}; it has {count}.")
        raise FigureNotFound(
            f"Figure {n} has expired from the cache ({FIGURES_KEPT}, or the document is not ingested yet): "
            "re-ingest the document to crop its figures again."
        )
    try:
        return crops.as_png(data)
    except ValueError:
        raise FigureNotFound(f"Figure {n} could not be decoded as an image.") from None


def document_ids_by_filename(*, deal_id) -> dict[str, str]:
    """Filename -> id of the deal's documents whose name says which document it is: the only document of that
    name, or the only ready one among several. Citations name a document by its filename
    (canvas.memo.markdown.parse_citations); an ambiguous name resolves to nothing rather than to a guess."""
    named: dict[str, list[tuple[str, str]]] = {}
    for filename, pk, state in Document.objects.filter(deal_id=deal_id).values_list("filename", "pk", "state"):
        named.setdefault(filename, []).append((str(pk), state))
    resolved = {}
    for filename, documents in named.items():
        ready = [pk for pk, state in documents if state == FileState.READY]
        if len(documents) == 1:
            resolved[filename] = documents[0][0]
        elif len(ready) == 1:
            resolved[filename] = ready[0]
    return resolved
