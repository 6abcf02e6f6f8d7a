"""Export of the memo as Markdown or Word (.docx).

Word export: `##` sections become Heading 1, `###` Heading 2; pipe tables become Word tables; bold and
italic runs are kept; footnote references `[^n]` become superscript numbers and their definitions a
numbered "Notes" list at the end of the section (python-docx has no native footnote API, so the
notes are end-of-section notes, numbered across the memo).
"""

from __future__ import annotations

import io
import re

from docx import Document
from docx.shared import Pt

from canvas.memo import markdown as memo

TABLE_ROW_RE = re.compile(r"^\s*\|.*\|\s*$")
TABLE_SEP_RE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")
INLINE_RE = re.compile(r"(\*\*[^*]+\*\*|\*[^*]+\*|\[\^[^\]\s]+\])")


def memo_markdown(*, title: str, sections: list[dict]) -> str:
    return f"# {title}\n\n" + memo.assemble_markdown(sections)


def _add_runs(paragraph, text: str, notes: dict[str, int]) -> None:
    for part in INLINE_RE.split(text):
        if not part:
            continue
        if part.startswith("**") and part.endswith("**"):
            paragraph.add_run(part[2:-2]).bold = True
        elif part.startswith("[^"):
            number = notes.setdefault(part[2:-1], len(notes) + 1)
            paragraph.add_run(str(number)).font.superscript = True
        elif part.startswith("*") and part.endswith("*") and len(part) > 2:
            paragraph.add_run(part[1:-1]).italic = True
        else:
            paragraph.add_run(part)


def _cells(row: str) -> list[str]:
    return [cell.strip() for cell in row.strip().strip("|").split("|")]


def _add_table(document, rows: list[str], notes: dict[str, int]) -> None:
    header = _cells(rows[0])
    body = [_cells(r) for r in rows[2:]]
    table = document.add_table(rows=1 + len(body), cols=len(header))
    table.style = "Table Grid"
    for row_index, cells in enumerate([header, *body]):
        for col_index in range(len(header)):
            text = cells[col_index] if col_index < len(cells) else ""
            paragraph = table.rows[row_index].cells[col_index].paragraphs[0]
            _add_runs(paragraph, text, notes)
            if row_index == 0:
                for run in paragraph.runs:
                    run.bold = True


def _add_section(document, section: dict, notes: dict[str, int]) -> None:
    document.add_heading(section["title"], level=1)
    text = section.get("markdown") or ""
    definitions = {c["id"]: c["text"] for c in memo.parse_citations(text)}
    lines = memo.FOOTNOTE_DEF_RE.sub("", text).split("\n")
    used_before = set(notes)
    index = 0
    while index < len(lines):
        line = lines[index]
        if TABLE_ROW_RE.match(line) and index + 1 < len(lines) and TABLE_SEP_RE.match(lines[index + 1]):
            block = [line, lines[index + 1]]
            index += 2
            while index < len(lines) and TABLE_ROW_RE.match(lines[index]):
                block.append(lines[index])
                index += 1
            _add_table(document, block, notes)
            continue
        stripped = line.strip()
        if stripped.startswith("### "):
            document.add_heading(stripped[4:], level=2)
        elif stripped.startswith(("- ", "* ")):
            _add_runs(document.add_paragraph(style="List Bullet"), stripped[2:], notes)
        elif re.match(r"^\d+\. ", stripped):
            _add_runs(document.add_paragraph(style="List Number"), stripped.split(" ", 1)[1], notes)
        elif stripped:
            _add_runs(document.add_paragraph(), stripped, notes)
        index += 1
    new_notes = [(ref, n) for ref, n in notes.items() if ref not in used_before]
    if new_notes:
        heading = document.add_paragraph()
        heading.add_run("Notes").bold = True
        for ref, number in sorted(new_notes, key=lambda item: item[1]):
            note = document.add_paragraph()
            note.add_run(f"{number}. ").bold = True
            note.add_run(definitions.get(ref, "(source not given)")).font.size = Pt(9)


def memo_docx(*, title: str, sections: list[dict], subtitle: str = "") -> bytes:
    document = Document()
    document.add_heading(title, level=0)
    if subtitle:
        document.add_paragraph(subtitle).italic = True
    notes: dict[str, int] = {}
    for section in sections:
        _add_section(document, section, notes)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()
