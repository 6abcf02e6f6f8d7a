"""Brushes: check passes over the memo that point at what a reviewer should fix.

- figures: numbers in the memo that disagree with deal intel (price, NOI, cap rate, occupancy, IRR...),
- citations: paragraphs and bullets that state figures without a footnote,
- completeness: required sections that are empty or thin,
- all: every check.

Each finding says where, what and why, with evidence, and carries a ready-to-post suggestion payload
(the body of POST /suggestions) when there is a concrete fix: the intel figure in place of the memo's,
a footnote to the page that supports an uncited figure, a drafted text for an empty or thin section.
With `create_suggestions` the fixes are filed as pending suggestions through canvas.review.suggestions.

A pass is cached in the brush_findings family (`canvas:brush:{D}:<brush_id>`, 24 h, tracked in the
deal's index) and listed by GET /brush. Brushes are deterministic and read-only on the memo.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
from django.core.serializers.json import DjangoJSONEncoder

from canvas.memo import markdown as memo
from canvas.memo.errors import SectionNotFound
from canvas.memo.selectors import memo_or_template
from canvas.memo.types import Memo, Section
from canvas.review.errors import BrushesUnavailable
from canvas.review.services import suggestion_create
from canvas.runs.synthesis import telemetry
from canvas.runs.synthesis.drafters import DefaultDrafter, DraftFailed, DraftRequest, format_metric
from canvas.runs.synthesis.retrieval import PassageIndex, load_metrics, load_passages
from canvas_project import events, keys
from canvas_project.errors import DomainError
from canvas_project.redis_client import get_redis
from deals.models import Deal, User

logger = logging.getLogger(__name__)
REDIS_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)

BRUSHES = {
    "figures": "numbers in the memo that disagree with deal intel",
    "citations": "figures stated without a citation",
    "completeness": "required sections missing or thin",
    "all": "every check",
}
FINDING_KINDS = ("figure_mismatch", "uncited_figure", "missing_section", "thin_section")
SEVERITIES = ("error", "warning", "info")
THIN_WORDS = 40
MAX_LISTED = 50

_NUM = r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"
_SCALE = r"(?:\s*(?P<scale>billion|bn|million|mm|m|thousand|k)\b)?"
_MONEY = r"\$\s*" + _NUM + _SCALE
_PCT = _NUM + r"\s*%"
_MULT = _NUM + r"\s*x\b"
# label ... value within one clause: no digits, currency, sentence ends or semicolons in between
_GAP = r"[^\n\d$%.;]{0,30}?"
_CAP = r"(?<!exit )(?<!terminal )(?<!reversion )\b(?:going[- ]in\s+)?cap(?:italization)?\s+rate(?!s)"
_SCALES = {"billion": 1e9, "bn": 1e9, "million": 1e6, "mm": 1e6, "m": 1e6, "thousand": 1e3, "k": 1e3}

MENTION_PATTERNS: dict[str, tuple[re.Pattern[str], ...]] = {
    name: tuple(re.compile(p, re.IGNORECASE) for p in patterns)
    for name, patterns in {
        "purchase_price": (r"\b(?:purchase|asking|acquisition|contract)\s+price" + _GAP + _MONEY,),
        "noi": (r"\b(?:NOI|net\s+operating\s+income)\b" + _GAP + _MONEY,),
        "cap_rate": (_CAP + _GAP + _PCT, _PCT + r"\s+" + _CAP),
        "occupancy": (r"\b(?:occupancy|occupied|leased)\b" + _GAP + _PCT, _PCT + r"\s+(?:occupied|leased|occupancy)\b"),
        "irr": (r"\bIRR\b" + _GAP + _PCT, _PCT + r"\s+(?:levered\s+|unlevered\s+)?IRR\b"),
        "equity_multiple": (r"\bequity\s+multiple\b" + _GAP + _MULT, _MULT + r"\s+equity\s+multiple\b"),
        "ltv": (r"\b(?:LTV|loan[- ]to[- ]value)\b" + _GAP + _PCT, _PCT + r"\s+(?:LTV|loan[- ]to[- ]value)\b"),
        "dscr": (r"\b(?:DSCR|debt\s+service\s+coverage(?:\s+ratio)?)\b" + _GAP + _MULT,),
        "units": (
            r"\b(?:comprises|comprising|totals?|totalling|totaling|of)\s+"
            + _NUM
            + r"[- ](?:apartment\s+|residential\s+)?units\b",
        ),
        "square_feet": (_NUM + r"\s*(?:rentable\s+|net\s+rentable\s+|gross\s+)?(?:square\s+feet|sq\.?\s?ft\.?|sf)\b",),
        "year_built": (r"\b(?:built\s+in|year\s+built|constructed\s+in)\s*(?:of\s+)?(?P<num>1[89]\d\d|20\d\d)\b",),
    }.items()
}


@dataclass(frozen=True)
class Mention:
    metric: str
    value: float
    text: str  # the value as written (the anchor of a fix)
    start: int  # offset of `text` in the section's markdown


def _value(match: re.Match[str]) -> float:
    number = float(match.group("num").replace(",", ""))
    scale = (match.groupdict().get("scale") or "").lower()
    return number * _SCALES.get(scale, 1.0)


def _body(markdown: str) -> str:
    """The section without its footnote definitions (whose page numbers are not figures)."""
    return memo.FOOTNOTE_DEF_RE.sub(lambda m: " " * len(m.group(0)), markdown or "")


def find_mentions(markdown: str) -> list[Mention]:
    """Every figure of a known metric stated in the text, in order."""
    body = _body(markdown)
    found: dict[tuple[str, int], Mention] = {}
    for name, patterns in MENTION_PATTERNS.items():
        for pattern in patterns:
            for match in pattern.finditer(body):
                start, end = match.span("num")
                if name in ("purchase_price", "noi"):  # the anchor includes the $ and a written scale
                    start = body.rfind("$", match.start(), start)
                    end = match.end("scale") if match.group("scale") else end
                elif name in ("cap_rate", "occupancy", "irr", "ltv", "equity_multiple", "dscr"):
                    tail = re.match(r"\s*(%|x)", body[end : end + 4])
                    end = end + tail.end() if tail else end
                found.setdefault((name, start), Mention(name, _value(match), body[start:end], start))
    return sorted(found.values(), key=lambda m: m.start)


def _agrees(metric: str, stated: float, intel: float) -> bool:
    if metric in ("purchase_price", "noi"):
        return abs(stated - intel) <= max(1.0, 0.005 * abs(intel))
    if metric in ("units", "square_feet", "year_built"):
        return round(stated) == round(intel)
    return abs(stated - intel) <= 0.05 + 1e-9


def _occurrence(markdown: str, anchor: str, start: int) -> int:
    return markdown[:start].count(anchor) + 1


def _finding(kind: str, severity: str, section_key: str, message: str, evidence: dict, suggestion: dict | None) -> dict:
    return {
        "id": uuid.uuid4().hex[:12],
        "kind": kind,
        "severity": severity,
        "section_key": section_key,
        "message": message,
        "evidence": evidence,
        "suggestion": suggestion,
        "suggestion_id": None,
    }


# --- checks -----------------------------------------------------------------------------------------------
def check_figures(doc: Memo, sections: list[Section], metrics: dict[str, dict]) -> list[dict]:
    findings = []
    for section in sections:
        markdown = section.markdown
        for mention in find_mentions(markdown):
            intel = metrics.get(mention.metric)
            if intel is None or _agrees(mention.metric, mention.value, float(intel["value"])):
                continue
            correct = format_metric(mention.metric, intel)
            if mention.metric in ("units", "square_feet"):
                correct = f"{float(intel['value']):,.0f}"
            source = intel.get("source") or {}
            findings.append(
                _finding(
                    "figure_mismatch",
                    "error",
                    section.key,
                    f"{section.title} states {mention.metric.replace('_', ' ')} as {mention.text}, but the deal's "
                    f"documents say {format_metric(mention.metric, intel)} ({source.get('filename')}, p. "
                    f"{source.get('page')}).",
                    {
                        "metric": mention.metric,
                        "memo_text": mention.text,
                        "memo_value": mention.value,
                        "intel_value": float(intel["value"]),
                        "intel_unit": intel.get("unit"),
                        "intel_text": intel.get("text"),
                        "source": source,
                    },
                    {
                        "section_key": section.key,
                        "kind": "replace",
                        "anchor_text": mention.text,
                        "occurrence": _occurrence(markdown, mention.text, mention.start),
                        "content": correct,
                        "comment": f"Deal intel gives {format_metric(mention.metric, intel)} "
                        f"({source.get('filename')}, p. {source.get('page')}).",
                    },
                )
            )
    return findings


def _claims(markdown: str) -> list[tuple[str, int]]:
    """(line, offset) of each paragraph line or bullet, footnote definitions and headings excluded."""
    out, offset = [], 0
    for line in markdown.split("\n"):
        text = line.rstrip()
        if text.strip() and not memo.FOOTNOTE_DEF_RE.match(text) and not text.lstrip().startswith("#"):
            out.append((text, offset))
        offset += len(line) + 1
    return out


def check_citations(doc: Memo, sections: list[Section], index: PassageIndex) -> list[dict]:
    findings = []
    for section in sections:
        markdown = section.markdown
        used = {c["id"] for c in memo.parse_citations(markdown)}
        added = 0
        for line, offset in _claims(markdown):
            if not memo.has_figures(line) or memo.has_citation(line):
                continue
            hits = index.search(line, 1)
            suggestion = None
            evidence: dict = {"memo_text": line}
            if hits:
                hit = hits[0]
                added += 1
                note = f"{section.key}.src{added}"
                while note in used:
                    added += 1
                    note = f"{section.key}.src{added}"
                used.add(note)
                evidence["source"] = {**hit.passage.source, "score": hit.score}
                suggestion = {
                    "section_key": section.key,
                    "kind": "insert",
                    "anchor_text": line,
                    "occurrence": _occurrence(markdown, line, offset),
                    "content": f"[^{note}]\n\n[^{note}]: {hit.passage.filename}, p. {hit.passage.page}",
                    "comment": f"The best matching page of the deal's documents is {hit.passage.filename}, "
                    f"p. {hit.passage.page}; check that it supports the figure.",
                }
            findings.append(
                _finding(
                    "uncited_figure",
                    "warning",
                    section.key,
                    f"{section.title} states a figure without a citation: \u201c{line[:120]}\u201d"
                    + ("" if hits else " No page of the deal's documents matches it."),
                    evidence,
                    suggestion,
                )
            )
    return findings


def _drafted(deal: Deal, doc: Memo, section: Section, index: PassageIndex, metrics: dict) -> str | None:
    spec = doc.template.section(section.key)
    request = DraftRequest(
        deal_name=deal.name,
        template_key=doc.template.key,
        section_key=section.key,
        title=section.title,
        order=float(section.order or 0),
        required=section.required,
        retrieval_query=spec.retrieval_query if spec else section.title,
        instructions="",
        hits=index.search(spec.retrieval_query if spec else section.title, 6),
        metrics=metrics,
    )
    try:
        return DefaultDrafter().draft(request, emit=lambda _delta: None, should_stop=lambda: None).markdown
    except DraftFailed:
        return None


def _addition(existing: str, draft: str) -> str | None:
    """What a draft adds to a section's text: its paragraphs the section does not already have, with the
    footnote definitions they cite. A cited note the section already defines the same way is not
    repeated; one it defines differently is renumbered. None when the draft adds nothing."""
    known_blocks = {block.strip() for block in existing.split("\n\n") if block.strip()}
    known_notes = {c["id"]: c["text"] for c in memo.parse_citations(existing)}
    drafted_notes = {c["id"]: c["text"] for c in memo.parse_citations(draft)}
    body = memo.FOOTNOTE_DEF_RE.sub("", draft)
    blocks = [b.strip() for b in body.split("\n\n") if b.strip() and b.strip() not in known_blocks]
    if not blocks:
        return None
    text = "\n\n".join(blocks)
    notes = []
    for note in dict.fromkeys(m.group("id") for m in memo.FOOTNOTE_REF_RE.finditer(text)):
        source = drafted_notes.get(note)
        if source is None or known_notes.get(note) == source:
            continue
        new_id, n = note, 1
        while new_id in known_notes or (new_id != note and new_id in drafted_notes):
            n += 1
            new_id = f"{note}.{n}"
        if new_id != note:
            text = text.replace(f"[^{note}]", f"[^{new_id}]")
        notes.append(f"[^{new_id}]: {source}")
        known_notes[new_id] = source
    return text + ("\n\n" + "\n".join(notes) if notes else "")


def check_completeness(
    deal: Deal, doc: Memo, sections: list[Section], index: PassageIndex, metrics: dict
) -> list[dict]:
    findings = []
    for section in sections:
        if not section.required:
            continue
        markdown = section.markdown
        words = memo.word_count(markdown)
        if markdown.strip() and words >= THIN_WORDS:
            continue
        missing = not markdown.strip()
        draft = _drafted(deal, doc, section, index, metrics)
        addition = draft if missing else _addition(markdown, draft or "")
        suggestion = None
        if addition:
            suggestion = {
                "section_key": section.key,
                "kind": "insert",
                "anchor_text": "",
                "occurrence": 1,
                "content": addition,
                "comment": "Drafted from the deal's documents by the completeness brush; review before accepting.",
            }
        findings.append(
            _finding(
                "missing_section" if missing else "thin_section",
                "error" if missing else "warning",
                section.key,
                f"The required section {section.title} is empty."
                if missing
                else f"The required section {section.title} has {words} words; aim for at least {THIN_WORDS}.",
                {"words": words, "required": True},
                suggestion,
            )
        )
    return findings


# --- services ---------------------------------------------------------------------------------------------
def brush_run(*, deal: Deal, user: User, brush: str, section_key: str | None, create_suggestions: bool) -> dict:
    """Run a brush over the memo (or one section), cache its findings and return them.

    Raises SectionNotFound, StoreUnavailable.
    """
    doc = memo_or_template(deal)
    sections = doc.ordered_sections()
    if section_key is not None:
        sections = [s for s in sections if s.key == section_key]
        if not sections:
            raise SectionNotFound(f"This memo has no section {section_key!r}.")
    metrics = load_metrics(deal=deal)
    index = PassageIndex(load_passages(deal_id=deal.pk))
    findings: list[dict] = []
    if brush in ("figures", "all"):
        findings += check_figures(doc, sections, metrics)
    if brush in ("citations", "all"):
        findings += check_citations(doc, sections, index)
    if brush in ("completeness", "all"):
        findings += check_completeness(deal, doc, sections, index, metrics)
    if create_suggestions:
        _file_suggestions(deal, user, findings)
    result = {
        "brush_id": uuid.uuid4().hex,
        "brush": brush,
        "section_key": section_key,
        "memo_version": doc.version,
        "created_at": datetime.now(UTC).isoformat(),
        "created_by": str(user.pk),
        "findings": findings,
    }
    _cache(deal, result)
    events.emit(
        deal.pk,
        "brush_completed",
        {"brush_id": result["brush_id"], "brush": brush, "findings": len(findings)},
        actor_id=user.pk,
    )
    telemetry.discourse_emit(
        deal.pk,
        "brush",
        {
            "agent": f"brush:{brush}",
            "brush_id": result["brush_id"],
            "text": f"The {brush} brush found {len(findings)} issue(s).",
        },
    )
    return result


def _file_suggestions(deal: Deal, user: User, findings: list[dict]) -> None:

    for finding in findings:
        payload = finding["suggestion"]
        if payload is None:
            continue
        try:
            suggestion = suggestion_create(deal=deal, user=user, **payload)
        except DomainError as exc:  # the section changed under the brush: leave the payload to post later
            logger.info("brush finding %s not filed as a suggestion: %s", finding["id"], exc)
            continue
        finding["suggestion_id"] = str(suggestion.pk)


def _cache(deal: Deal, result: dict) -> None:
    key = keys.brush_key(deal.pk, result["brush_id"])
    try:
        with get_redis().pipeline(transaction=False) as pipe:
            pipe.set(key, json.dumps(result, cls=DjangoJSONEncoder), ex=keys.BRUSH_TTL)
            keys.track_variable_key(pipe, deal.pk, key)
            pipe.execute()
    except REDIS_ERRORS:
        logger.warning("brush %s of deal %s not cached: Redis unavailable", result["brush_id"], deal.pk)


def brush_list(*, deal: Deal, section_key: str | None = None, index_members=None) -> list[dict]:
    """The deal's cached brush passes, newest first (at most 50). `index_members`: the deal's index set
    (keys.index_key) when the caller has already read it in one of its own round trips. Raises
    BrushesUnavailable."""
    client = get_redis()
    try:
        members = client.smembers(keys.index_key(deal.pk)) if index_members is None else index_members
        names = [n.decode() if isinstance(n, bytes) else n for n in members]
        names = [n for n in names if (found := keys.classify(n)) is not None and found[0] == "brush_findings"]
        raw = client.mget(names) if names else []
    except REDIS_ERRORS as exc:
        raise BrushesUnavailable() from exc
    results = [json.loads(item) for item in raw if item]
    if section_key is not None:
        results = [r for r in results if r.get("section_key") in (None, section_key)]
        for r in results:
            r["findings"] = [f for f in r["findings"] if f["section_key"] == section_key]
    results.sort(key=lambda r: r["created_at"], reverse=True)
    return results[:MAX_LISTED]
