"""Errors of deal documents and their ingestion, each with a stable code."""

from canvas_project.errors import DomainError, NotFoundError


class DocumentNotFound(NotFoundError):
    code = "document_not_found"
    default_message = "Document not found."


class UnsupportedDocumentType(DomainError):
    """The uploaded bytes are none of the accepted kinds; the API answers 415."""

    code = "unsupported_media_type"
    default_message = "Unsupported file type."


class DigitizationError(Exception):
    """A document could not be read; `str()` is the human reason stored on the document."""
