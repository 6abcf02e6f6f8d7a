"""Errors of deal documents and their ingestion, each with a stable code."""

from canvas_project.errors import NotFoundError, UnsupportedMediaTypeError


class DocumentNotFound(NotFoundError):
    code = "document_not_found"
    default_message = "Document not found."


class UnsupportedDocumentType(UnsupportedMediaTypeError):
    """The uploaded bytes are none of the accepted kinds; the API answers 415."""

    default_message = "Unsupported file type."


class DigitizationError(Exception):
    """A document could not be read; `str()` is the human reason stored on the document."""


class FigureNotFound(NotFoundError):
    """No such figure: past the document's figures, a document with none, or a crop gone from Redis (24 h)."""

    code = "figure_not_found"
    default_message = "Figure not found."
