"""Digitization: a document's bytes -> its pages of text (tables as markdown pipe tables) and figures.

PDF goes through pypdf rather than pdfplumber: pypdf is pure Python with no pdfminer underneath, about
an order of magnitude faster per page, and gives us the page's embedded images for crops. Its layout
mode keeps the columns of a drawn table apart, which is enough to rebuild tables as pipe tables
(`_layout_to_markdown`); pdfplumber's ruling-line table finder would add little for the tables of
offering memoranda (mostly unruled) at several times the cost.

Workbooks: one page per sheet (openpyxl, read-only, data_only=True, so formulas read as the values
Excel last cached; a workbook written by a program that never computed them has empty formula cells).
DOCX: paragraphs and tables in body order, chunked like text. CSV: one markdown table, chunked with the
header repeated. TXT/MD: chunked into ~3000-character pages at paragraph, then line, boundaries.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import re
from dataclasses import dataclass, field

from deals.documents.errors import DigitizationError

logger = logging.getLogger(__name__)

PAGE_CHARS = 3000
MAX_SHEET_ROWS = 2000
MAX_CROPS_PER_DOCUMENT = 50
MIN_CROP_SIDE = 16
MAX_CROP_BYTES = 4 * 1024 * 1024


@dataclass
class PageText:
    number: int
    text: str
    label: str = ""


@dataclass
class Crop:
    page: int
    name: str
    image_format: str
    width: int
    height: int
    data: bytes


@dataclass
class Digitized:
    pages: list[PageText]
    crops: list[Crop] = field(default_factory=list)


def clean_text(text: str) -> str:
    """Text PostgreSQL can store: no NUL characters, no lone surrogates."""
    text = text.replace("\x00", "")
    return text.encode("utf-8", "replace").decode("utf-8")


# --- markdown tables ------------------------------------------------------------------------------
def _cell(value: str) -> str:
    return " ".join(value.split()).replace("|", "\\|")


def markdown_table(rows: list[list[str]]) -> str:
    """A pipe table; the first row is the header. Ragged rows are padded."""
    if not rows:
        return ""
    width = max(len(row) for row in rows)
    padded = [[_cell(c) for c in row] + [""] * (width - len(row)) for row in rows]
    lines = ["| " + " | ".join(padded[0]) + " |", "|" + " --- |" * width]
    lines.extend("| " + " | ".join(row) + " |" for row in padded[1:])
    return "\n".join(lines)


_TABLE_RULE = re.compile(r"^\|(?:\s*:?-{3,}:?\s*\|)+$")
_UNESCAPED_BAR = re.compile(r"(?<!\\)\|")


def _table_cells(line: str) -> list[str]:
    inner = line.strip()[1:-1] if line.strip().endswith("|") else line.strip()[1:]
    return [cell.strip().replace("\\|", "|") for cell in _UNESCAPED_BAR.split(inner)]


def markdown_tables(text: str) -> list[list[list[str]]]:
    """The pipe tables of a page's text (as markdown_table writes them: a header row, a `| --- |` rule, the
    rows), each as its rows of cells, the header first. Other text is left out."""
    lines = (text or "").splitlines()
    tables: list[list[list[str]]] = []
    index = 0
    while index + 1 < len(lines):
        header, rule = lines[index].strip(), lines[index + 1].strip()
        if not (header.startswith("|") and _TABLE_RULE.match(rule)):
            index += 1
            continue
        rows = [_table_cells(header)]
        index += 2
        while index < len(lines) and lines[index].strip().startswith("|"):
            rows.append(_table_cells(lines[index]))
            index += 1
        tables.append(rows)
    return tables


# --- chunking -------------------------------------------------------------------------------------
def _split_long(block: str, limit: int) -> list[str]:
    if len(block) <= limit:
        return [block]
    pieces: list[str] = []
    current = ""
    for line in block.split("\n"):
        while len(line) > limit:
            cut = line.rfind(" ", 0, limit)
            cut = cut if cut > limit // 2 else limit
            pieces.append((current + "\n" if current else "") + line[:cut])
            current, line = "", line[cut:].lstrip()
        if current and len(current) + 1 + len(line) > limit:
            pieces.append(current)
            current = line
        else:
            current = f"{current}\n{line}" if current else line
    if current:
        pieces.append(current)
    return pieces


def chunk_text(text: str, limit: int = PAGE_CHARS) -> list[str]:
    """~limit-character chunks, cut at blank lines, then lines, then words."""
    chunks: list[str] = []
    current = ""
    for paragraph in re.split(r"\n\s*\n", text.replace("\r\n", "\n").replace("\r", "\n")):
        paragraph = paragraph.strip("\n")
        if not paragraph.strip():
            continue
        for piece in _split_long(paragraph, limit):
            if current and len(current) + 2 + len(piece) > limit:
                chunks.append(current)
                current = piece
            else:
                current = f"{current}\n\n{piece}" if current else piece
    if current:
        chunks.append(current)
    return chunks


def _pages_from_chunks(chunks: list[str]) -> list[PageText]:
    return [PageText(number=n, text=chunk) for n, chunk in enumerate(chunks, start=1)]


# --- PDF ------------------------------------------------------------------------------------------
_COLUMN_GAP = re.compile(r"\s{3,}")


def _layout_to_markdown(text: str) -> str:
    """pypdf layout text -> prose lines plus pipe tables for runs of lines with aligned columns."""
    lines = [line.rstrip() for line in text.splitlines()]
    out: list[str] = []
    index = 0
    while index < len(lines):
        cells = _COLUMN_GAP.split(lines[index].strip())
        if len(cells) >= 2:
            block = [cells]
            probe = index + 1
            while probe < len(lines):
                nxt = _COLUMN_GAP.split(lines[probe].strip())
                if len(nxt) < 2 or abs(len(nxt) - len(cells)) > 1:
                    break
                block.append(nxt)
                probe += 1
            if len(block) >= 2:
                out.extend(["", markdown_table(block), ""])
                index = probe
                continue
        out.append(" ".join(lines[index].split()))
        index += 1
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip()


def _page_text(page) -> str:
    try:
        return _layout_to_markdown(page.extract_text(extraction_mode="layout"))
    except Exception:  # layout mode trips on some fonts; plain mode is the fallback
        logger.debug("pdf layout extraction failed; using plain mode", exc_info=True)
        return page.extract_text() or ""


def _has_image_xobject(resources, depth: int = 0) -> bool:
    """Whether the resources name an image XObject, directly or inside a form XObject (3 levels deep)."""
    resources = resources.get_object() if resources is not None else None
    xobjects = resources.get("/XObject") if resources else None
    if not xobjects:
        return False
    for ref in xobjects.get_object().values():
        xobject = ref.get_object()
        subtype = xobject.get("/Subtype")
        if subtype == "/Image":
            return True
        if subtype == "/Form" and depth < 3 and _has_image_xobject(xobject.get("/Resources"), depth + 1):
            return True
    return False


def _page_crops(page, number: int, budget: int) -> list[Crop]:
    """Figures of the page. Only XObject images: pypdf finds inline images by parsing the whole content
    stream (it doubled the time per page), and inline images are icons and rules rather than figures."""
    crops: list[Crop] = []
    try:
        if not _has_image_xobject(page.get("/Resources")):
            return crops
        images = list(page.images)
    except Exception:  # an undecodable image must not fail the text of the page
        logger.info("images of page %s could not be listed", number, exc_info=True)
        return crops
    for image in images:
        if len(crops) >= budget:
            break
        try:
            pil = image.image
            width, height = pil.size if pil is not None else (0, 0)
            data = image.data
        except Exception:
            logger.info("an image on page %s could not be decoded", number, exc_info=True)
            continue
        if min(width, height) < MIN_CROP_SIDE or len(data) > MAX_CROP_BYTES:
            continue
        image_format = (getattr(pil, "format", None) or image.name.rsplit(".", 1)[-1]).lower()
        crops.append(
            Crop(page=number, name=image.name, image_format=image_format, width=width, height=height, data=data)
        )
    return crops


def digitize_pdf(data: bytes) -> Digitized:
    # lazy (here and for XLSX, DOCX): each reader is imported by the worker that reads such a file, not by
    # every web process that imports this module for sniffing
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise DigitizationError("The PDF is password-protected; upload an unprotected copy.")
        page_objects = list(reader.pages)
    except DigitizationError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError) as exc:
        raise DigitizationError(f"The PDF could not be read; it looks damaged ({exc}).") from exc
    if not page_objects:
        raise DigitizationError("The PDF has no pages.")
    pages: list[PageText] = []
    crops: list[Crop] = []
    for number, page in enumerate(page_objects, start=1):
        try:
            text = _page_text(page)
        except Exception as exc:
            raise DigitizationError(f"Page {number} of the PDF could not be read ({exc}).") from exc
        pages.append(PageText(number=number, text=clean_text(text)))
        if len(crops) < MAX_CROPS_PER_DOCUMENT:
            crops.extend(_page_crops(page, number, MAX_CROPS_PER_DOCUMENT - len(crops)))
    if not any(p.text.strip() for p in pages):
        raise DigitizationError(
            "No text could be extracted from the PDF (a scanned document needs OCR, which is not supported)."
        )
    return Digitized(pages=pages, crops=crops)


# --- XLSX -----------------------------------------------------------------------------------------
def _format_number(value: float, number_format: str) -> str:
    fmt = number_format or "General"
    decimals_match = re.search(r"0\.(0+)", fmt)
    decimals = len(decimals_match.group(1)) if decimals_match else 0
    if "%" in fmt:
        return f"{value * 100:,.{decimals}f}%"
    if '"x"' in fmt.lower() or fmt.lower().endswith("x"):
        return f"{value:,.{decimals or 2}f}x"
    if "$" in fmt:
        return f"${value:,.{decimals}f}"
    if fmt != "General" and "," in fmt:
        return f"{value:,.{decimals}f}"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return f"{value:.10g}" if isinstance(value, float) else str(value)


def _cell_text(cell) -> str:
    value = cell.value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return _format_number(value, getattr(cell, "number_format", "General"))
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value)


def _sheet_markdown(sheet) -> str:
    rows: list[list[str]] = []
    extra_rows = 0
    for row in sheet.iter_rows():
        values = [_cell_text(cell) for cell in row]
        if not any(v.strip() for v in values):
            continue
        if len(rows) >= MAX_SHEET_ROWS:
            extra_rows += 1
            continue
        rows.append(values)
    if not rows:
        return ""
    used = [i for i in range(max(len(r) for r in rows)) if any(i < len(r) and r[i].strip() for r in rows)]
    trimmed = [[r[i] if i < len(r) else "" for i in used] for r in rows]
    text = f"## {sheet.title}\n\n" + markdown_table(trimmed)
    if extra_rows:
        text += f"\n\n({extra_rows} more rows not shown)"
    return text


def digitize_xlsx(data: bytes) -> Digitized:
    # lazy: see digitize_pdf
    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types (KeyError, InvalidFileException, zip errors)
        raise DigitizationError(f"The workbook could not be read; it looks damaged ({exc}).") from exc
    try:
        pages = []
        for number, sheet in enumerate(book.worksheets, start=1):
            try:
                text = _sheet_markdown(sheet)
            except Exception as exc:
                raise DigitizationError(f"Sheet {sheet.title!r} could not be read ({exc}).") from exc
            pages.append(PageText(number=number, text=clean_text(text), label=sheet.title[:255]))
    finally:
        book.close()
    if not any(p.text for p in pages):
        raise DigitizationError("The workbook has no data.")
    return Digitized(pages=pages)


# --- DOCX, CSV, text ------------------------------------------------------------------------------
def digitize_docx(data: bytes) -> Digitized:
    # lazy: see digitize_pdf
    from docx import Document as DocxDocument
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = DocxDocument(io.BytesIO(data))
        blocks: list[str] = []
        for item in document.iter_inner_content():
            if isinstance(item, Paragraph):
                text = item.text.strip()
                if not text:
                    continue
                style = (item.style.name if item.style is not None else "") or ""
                level = style.removeprefix("Heading ").strip()
                blocks.append(f"{'#' * int(level)} {text}" if style.startswith("Heading") and level.isdigit() else text)
            elif isinstance(item, Table):
                rows = [[cell.text for cell in row.cells] for row in item.rows]
                if rows:
                    blocks.append(markdown_table(rows))
    except Exception as exc:
        raise DigitizationError(f"The DOCX could not be read; it looks damaged ({exc}).") from exc
    chunks = chunk_text(clean_text("\n\n".join(blocks)))
    if not chunks:
        raise DigitizationError("The DOCX has no text.")
    return Digitized(pages=_pages_from_chunks(chunks))


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DigitizationError("The file is not UTF-8 text.") from exc


def digitize_csv(data: bytes) -> Digitized:
    text = _decode(data)
    try:
        dialect = csv.Sniffer().sniff(text[:8192], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    rows = [row for row in csv.reader(io.StringIO(text), dialect) if any(c.strip() for c in row)]
    if not rows:
        raise DigitizationError("The CSV file is empty.")
    header, body = rows[0], rows[1:]
    pages: list[PageText] = []
    batch: list[list[str]] = []
    size = 0
    start = 1
    for row in body:
        row_size = sum(len(c) + 3 for c in row) + 2
        if batch and size + row_size > PAGE_CHARS:
            pages.append(
                PageText(len(pages) + 1, markdown_table([header, *batch]), f"rows {start}-{start + len(batch) - 1}")
            )
            start += len(batch)
            batch, size = [], 0
        batch.append(row)
        size += row_size
    if batch or not pages:
        pages.append(
            PageText(
                len(pages) + 1,
                markdown_table([header, *batch]),
                f"rows {start}-{start + len(batch) - 1}" if batch else "header",
            )
        )
    for page in pages:
        page.text = clean_text(page.text)
    return Digitized(pages=pages)


def digitize_text(data: bytes) -> Digitized:
    chunks = chunk_text(clean_text(_decode(data)))
    if not chunks:
        raise DigitizationError("The file is empty.")
    return Digitized(pages=_pages_from_chunks(chunks))


DIGITIZERS = {
    "pdf": digitize_pdf,
    "xlsx": digitize_xlsx,
    "docx": digitize_docx,
    "csv": digitize_csv,
    "txt": digitize_text,
    "md": digitize_text,
}


def digitize(kind: str, data: bytes) -> Digitized:
    """Pages (1-based, contiguous) and figures of a document. Raises DigitizationError with a human reason."""
    digitizer = DIGITIZERS.get(kind)
    if digitizer is None:
        raise DigitizationError(f"Documents of kind {kind!r} cannot be digitized.")
    return digitizer(data)
