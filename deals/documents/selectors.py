"""Reads of deal documents."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet

from deals.documents.errors import DocumentNotFound
from deals.models import Deal, Document


def document_list(*, deal: Deal) -> QuerySet[Document]:
    return Document.objects.filter(deal=deal).order_by("created_at", "pk")


def document_get(*, deal: Deal, document_id: uuid.UUID) -> Document:
    """The document of that deal. Raises DocumentNotFound (another deal's document is not found either)."""
    document = Document.objects.filter(deal=deal, pk=document_id).first()
    if document is None:
        raise DocumentNotFound()
    return document
