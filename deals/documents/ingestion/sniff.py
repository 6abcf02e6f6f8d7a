"""What a file really is, from its bytes (never from the client's Content-Type).

- PDF: the `%PDF-` header within the first 1 KB (where the PDF spec allows it).
- XLSX / DOCX: a ZIP whose [Content_Types].xml declares the workbook / document main part.
- CSV, TXT, MD: by extension, when the content is UTF-8 text without NUL bytes.
Anything else (an executable renamed .pdf, a plain ZIP, a legacy .xls, Latin-1 text) is refused.
"""

from __future__ import annotations

import codecs
import zipfile
from dataclasses import dataclass
from typing import BinaryIO

from deals.documents.errors import UnsupportedDocumentType

CONTENT_TYPES = {
    "pdf": "application/pdf",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "csv": "text/csv; charset=utf-8",
    "txt": "text/plain; charset=utf-8",
    "md": "text/markdown; charset=utf-8",
}
TEXT_EXTENSIONS = {"csv": "csv", "txt": "txt", "text": "txt", "md": "md", "markdown": "md"}
_XLSX_MAIN = b"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"
_DOCX_MAIN = b"application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
_ZIP_MAGIC = b"PK\x03\x04"
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class SniffedType:
    kind: str
    content_type: str


def _extension(filename: str) -> str:
    return filename.rsplit(".", 1)[-1].lower() if "." in filename else ""


def _office_kind(stream: BinaryIO) -> str | None:
    try:
        with zipfile.ZipFile(stream) as archive:
            manifest = archive.read("[Content_Types].xml")
    except (zipfile.BadZipFile, KeyError, OSError, EOFError, ValueError, RuntimeError, NotImplementedError):
        return None
    if _XLSX_MAIN in manifest:
        return "xlsx"
    if _DOCX_MAIN in manifest:
        return "docx"
    return None


def _is_utf8_text(stream: BinaryIO) -> bool:
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        while chunk := stream.read(_CHUNK):
            if b"\x00" in chunk:
                return False
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def sniff_document(stream: BinaryIO, filename: str) -> SniffedType:
    """The kind of the file. Raises UnsupportedDocumentType for anything not accepted."""
    stream.seek(0)
    head = stream.read(1024)
    stream.seek(0)
    kind: str | None = None
    if b"%PDF-" in head:
        kind = "pdf"
    elif head.startswith(_ZIP_MAGIC):
        kind = _office_kind(stream)
    else:
        text_kind = TEXT_EXTENSIONS.get(_extension(filename))
        if text_kind and _is_utf8_text(stream):
            kind = text_kind
    stream.seek(0)
    if kind is None:
        raise UnsupportedDocumentType(
            "Unsupported file type: upload a PDF, XLSX, DOCX, or UTF-8 CSV, TXT or MD file "
            "(the content is checked, not the name)."
        )
    return SniffedType(kind=kind, content_type=CONTENT_TYPES[kind])
