"""The memo as text: splitting markdown into sections, assembling it back, reading citations.

Pure functions, no I/O. A memo is a sequence of `## Heading` sections; headings that match a
template section (by title or key, case- and punctuation-insensitive) fill that section, others
become custom sections. Text before the first `##` (other than a leading `# title` line) goes to a
custom "Introduction" section so nothing typed is ever dropped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from canvas.memo.templates import MemoTemplate

HEADING_RE = re.compile(r"^##[ \t]+(?P<title>.+?)[ \t]*#*[ \t]*$")
TITLE_RE = re.compile(r"^#[ \t]+.+$")
FOOTNOTE_DEF_RE = re.compile(r"^\[\^(?P<id>[^\]\s]+)\]:[ \t]*(?P<text>.+)$", re.MULTILINE)
FOOTNOTE_REF_RE = re.compile(r"\[\^(?P<id>[^\]\s]+)\](?!:)")
PAGE_RE = re.compile(r"^(?P<doc>.+?),?\s+(?:p\.|page|pp\.)\s*(?P<page>\d+)", re.IGNORECASE)
FENCE_RE = re.compile(r"^(```|~~~)")
INTRO_KEY = "introduction"
CUSTOM_PREFIX = "custom_"
MAX_KEY_LENGTH = 64


@dataclass(frozen=True)
class ParsedSection:
    key: str
    title: str
    markdown: str
    custom: bool


@dataclass
class ParsedMemo:
    sections: list[ParsedSection] = field(default_factory=list)

    def by_key(self) -> dict[str, ParsedSection]:
        return {s.key: s for s in self.sections}


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def slugify_key(title: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_") or "section"
    return (CUSTOM_PREFIX + slug)[:MAX_KEY_LENGTH].rstrip("_")


def split_markdown(content: str, template: MemoTemplate) -> ParsedMemo:
    """Split a whole memo into sections. Headings inside fenced code blocks are not headings."""
    lookup: dict[str, tuple[str, str]] = {}
    for spec in template.sections:
        lookup[_norm(spec.title)] = (spec.key, spec.title)
        lookup[_norm(spec.key)] = (spec.key, spec.title)

    chunks: list[tuple[str | None, list[str]]] = [(None, [])]
    in_fence = False
    lines = content.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    for index, line in enumerate(lines):
        if FENCE_RE.match(line.strip()):
            in_fence = not in_fence
        match = None if in_fence else HEADING_RE.match(line)
        if match:
            chunks.append((match.group("title"), []))
        elif index == 0 and TITLE_RE.match(line) and not chunks[0][1]:
            continue  # the memo's `# Title` line is the deal name, not content
        else:
            chunks[-1][1].append(line)

    memo = ParsedMemo()
    seen: set[str] = set()
    for title, body_lines in chunks:
        body = "\n".join(body_lines).strip("\n").rstrip()
        if title is None:
            if body.strip():
                memo.sections.append(ParsedSection(INTRO_KEY, "Introduction", body, custom=True))
                seen.add(INTRO_KEY)
            continue
        known = lookup.get(_norm(title))
        key, canonical, custom = (known[0], known[1], False) if known else (slugify_key(title), title.strip(), True)
        base, n = key, 2
        while key in seen:  # the same heading twice: keep both, never merge silently
            key = f"{base}_{n}"[:MAX_KEY_LENGTH]
            n += 1
            custom = True
        seen.add(key)
        memo.sections.append(ParsedSection(key, canonical, body, custom))
    return memo


def assemble_markdown(sections: list[dict]) -> str:
    """The whole memo from ordered sections ({title, markdown}); empty sections keep their heading."""
    parts = []
    for section in sections:
        body = section.get("markdown") or ""
        parts.append(f"## {section['title']}\n\n{body}".rstrip() + "\n")
    return "\n".join(parts)


def parse_citations(markdown: str) -> list[dict]:
    """Footnote definitions `[^n]: Offering Memorandum.pdf, p. 12` as {id, text, document, page}."""
    citations = []
    for match in FOOTNOTE_DEF_RE.finditer(markdown or ""):
        text = match.group("text").strip()
        page_match = PAGE_RE.match(text)
        citations.append(
            {
                "id": match.group("id"),
                "text": text,
                "document": page_match.group("doc").strip() if page_match else None,
                "page": int(page_match.group("page")) if page_match else None,
            }
        )
    return citations


def with_document_ids(citations: list[dict], documents: Mapping[str, str]) -> list[dict]:
    """The citations with `document_id`: the id of the document their `document` (a filename) names, from
    `documents` (filename -> id, the unambiguous names only), else None. The other fields stay as they are."""
    return [{**c, "document_id": documents.get(c["document"]) if c.get("document") else None} for c in citations]


def word_count(markdown: str) -> int:
    return len(re.findall(r"[A-Za-z0-9$%][\w$%.,'-]*", FOOTNOTE_DEF_RE.sub("", markdown or "")))


def has_figures(markdown: str) -> bool:
    body = FOOTNOTE_DEF_RE.sub("", markdown or "")
    return bool(re.search(r"\$\s?\d|\d+(\.\d+)?\s?%|\b\d{1,3}(,\d{3})+\b|\b\d+(\.\d+)?x\b", body))


def has_citation(markdown: str) -> bool:
    return bool(FOOTNOTE_REF_RE.search(markdown or ""))
