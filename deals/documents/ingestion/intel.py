"""Deal intel: the headline metrics of a deal, found by pattern over the text of its documents.

Each metric is looked for with a few phrasings ("Purchase price: $41,500,000", "NOI of $2.45 million",
"cap rate of 5.9%", "240 units", "94% occupied", a pipe-table row "| Levered IRR | 14.2% |") and a
plausibility range, so that "5.9" next to "units" is not read as a unit count. The first plausible
match in document order (documents by upload time, then page) wins: an offering memorandum usually
states the asking terms before it discusses alternatives.

Results are cached in Redis (deal_intel_key, 24 h) and dropped whenever a document of the deal
finishes ingesting or is deleted. Redis being down never fails a read: the metrics are recomputed.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import redis

from canvas_project import keys
from canvas_project.redis_client import get_redis
from deals.models import DocumentPage, FileState

logger = logging.getLogger(__name__)

# Redis failures that mean "no cache right now", never "fail the read".
REDIS_ERRORS: tuple[type[BaseException], ...] = (redis.exceptions.RedisError, OSError)

_NUM = r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"
_SCALE = r"(?:\s*(?P<scale>billion|bn|million|mm|mil|m|thousand|k)\b)?"
_MONEY = r"(?P<cur>\$|USD\s?|US\$)\s*" + _NUM + _SCALE
_PCT = _NUM + r"\s*(?:%|percent\b)"
_MULT = _NUM + r"\s*(?:x|×)(?![a-z])"
# Between a label and its value: a colon, "of", "is", a table cell border, a few filler words.
_GAP = r"[^\n\d$%]{0,40}?"

_SCALES = {"billion": 1e9, "bn": 1e9, "million": 1e6, "mm": 1e6, "mil": 1e6, "m": 1e6, "thousand": 1e3, "k": 1e3}


@dataclass(frozen=True)
class MetricSpec:
    name: str
    unit: str
    hint: re.Pattern[str]  # a cheap word the metric's phrasings all contain; patterns run only near it
    patterns: tuple[re.Pattern[str], ...]
    plausible: Callable[[float], bool]


def _rx(*parts: str) -> re.Pattern[str]:
    return re.compile("".join(parts), re.IGNORECASE)


def _number(match: re.Match[str]) -> float:
    value = float(match.group("num").replace(",", ""))
    scale = (match.groupdict().get("scale") or "").lower()
    return value * _SCALES.get(scale, 1.0)


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec(
        "purchase_price",
        "USD",
        _rx(r"price"),
        (
            _rx(r"\b(?:purchase|asking|acquisition|offering|contract|sale|sales)\s+price", _GAP, _MONEY),
            _rx(r"\bpriced?\s+at", _GAP, _MONEY),
        ),
        lambda v: 10_000 <= v <= 50e9,
    ),
    MetricSpec(
        "noi",
        "USD",
        _rx(r"\bNOI\b|net\s+operating"),
        (_rx(r"\b(?:NOI|net\s+operating\s+income)\b", _GAP, _MONEY),),
        lambda v: 1_000 <= v <= 5e9,
    ),
    MetricSpec(
        "cap_rate",
        "%",
        _rx(r"\bcap"),
        (
            _rx(r"\b(?:cap(?:italization)?\.?\s+rate|going[- ]in\s+cap)\b", _GAP, _PCT),
            _rx(_PCT, r"\s+(?:going[- ]in\s+)?cap(?:italization)?\s+rate\b"),
        ),
        lambda v: 0.5 <= v <= 25,
    ),
    MetricSpec(
        "units",
        "units",
        _rx(r"unit|homes|apartments"),
        (
            _rx(
                r"(?<![\d.,$])",
                _NUM,
                r"[- ](?:apartment\s+|residential\s+|multifamily\s+)?(?:units?|homes|apartments)\b",
            ),
            _rx(
                r"\b(?:unit\s+count|number\s+of\s+units|total\s+units|units)\b",
                r"[^\n\d$%]{0,20}?",
                r"(?<![\d.,$])",
                _NUM,
                r"(?![\d.,]*\s*(?:%|x\b|sf\b|square))",
            ),
        ),
        lambda v: 1 <= v <= 100_000 and float(v).is_integer(),
    ),
    MetricSpec(
        "square_feet",
        "sf",
        _rx(r"square|sq|sf\b|rsf|gsf|\bNRA\b|\bGLA\b|rentable"),
        (
            _rx(
                r"(?<![\d.,$])",
                _NUM,
                r"\s*(?:rentable\s+|net\s+rentable\s+|gross\s+)?",
                r"(?:square\s+feet|sq\.?\s*ft\.?|sf|rsf|nrsf|gsf)\b",
            ),
            _rx(r"\b(?:square\s+(?:feet|footage)|rentable\s+area|NRA|GLA)\b", r"[^\n\d$%]{0,20}?", _NUM, r"(?!\s*%)"),
        ),
        lambda v: 100 <= v <= 100e6,
    ),
    MetricSpec(
        "occupancy",
        "%",
        _rx(r"occup|leased"),
        (_rx(r"\b(?:occupancy|occupied|leased)\b", _GAP, _PCT), _rx(_PCT, r"\s+(?:occupied|leased|occupancy)\b")),
        lambda v: 0 < v <= 100,
    ),
    MetricSpec(
        "irr",
        "%",
        _rx(r"\bIRR\b|internal\s+rate"),
        (
            _rx(r"\bIRR\b", _GAP, _PCT),
            _rx(r"\binternal\s+rate\s+of\s+return\b", _GAP, _PCT),
            _rx(_PCT, r"\s+(?:levered\s+|unlevered\s+)?IRR\b"),
        ),
        lambda v: -50 <= v <= 100,
    ),
    MetricSpec(
        "equity_multiple",
        "x",
        _rx(r"multiple|\bEM\b|MOIC"),
        (
            _rx(r"\b(?:equity\s+multiple|EM|MOIC)\b", _GAP, _MULT),
            _rx(_MULT, r"\s+equity\s+multiple\b"),
            _rx(r"\bequity\s+multiple\b", r"[^\n\d$%]{0,20}?", _NUM, r"(?!\s*%)"),
        ),
        lambda v: 0.1 <= v <= 20,
    ),
    MetricSpec(
        "ltv",
        "%",
        _rx(r"\bLTV\b|loan[- ]to[- ]value"),
        (_rx(r"\b(?:LTV|loan[- ]to[- ]value)\b", _GAP, _PCT), _rx(_PCT, r"\s+(?:LTV|loan[- ]to[- ]value)\b")),
        lambda v: 0 < v <= 100,
    ),
    MetricSpec(
        "dscr",
        "x",
        _rx(r"\bDSCR\b|debt\s+service"),
        (
            _rx(r"\b(?:DSCR|debt\s+service\s+coverage(?:\s+ratio)?)\b", _GAP, _MULT),
            _rx(r"\b(?:DSCR|debt\s+service\s+coverage(?:\s+ratio)?)\b", r"[^\n\d$%]{0,20}?", _NUM, r"(?!\s*%)"),
        ),
        lambda v: 0.1 <= v <= 10,
    ),
    MetricSpec(
        "year_built",
        "year",
        _rx(r"built|constructed|completed|vintage"),
        (
            _rx(
                r"\b(?:year\s+built|built\s+in|constructed\s+in|completed\s+in|vintage)\b",
                r"[^\n\d$%]{0,20}?",
                r"(?P<num>1[89]\d{2}|20\d{2})\b",
            ),
        ),
        lambda v: 1800 <= v <= datetime.now(UTC).year + 5,
    ),
)
METRIC_NAMES = tuple(spec.name for spec in METRICS)


@dataclass(frozen=True)
class Passage:
    """One page of a ready document: the unit of metric extraction and of the drafters' retrieval."""

    document_id: str
    filename: str
    page: int
    text: str

    @property
    def source(self) -> dict:
        return {"document_id": self.document_id, "filename": self.filename, "page": self.page}


def _snippet(text: str, match: re.Match[str]) -> str:
    start, end = match.span()
    return " ".join(text[start:end].split())[:200]


def extract_metrics(passages: Iterable[Passage]) -> dict[str, dict]:
    """name -> {value, unit, text, source} for every metric found in the passages (in their order)."""
    found: dict[str, dict] = {}
    for passage in passages:
        for spec in METRICS:
            if spec.name in found:
                continue
            hit = _first_hit(spec, passage.text)
            if hit is not None:
                match, value = hit
                found[spec.name] = {
                    "value": value,
                    "unit": spec.unit,
                    "text": _snippet(passage.text, match),
                    "source": passage.source,
                }
        if len(found) == len(METRICS):
            break
    return {name: found[name] for name in METRIC_NAMES if name in found}


# How far around a hint word a phrasing may reach (label, filler of up to 40 characters, the number).
_BEFORE_HINT, _AFTER_HINT = 60, 90


def _first_hit(spec: MetricSpec, text: str) -> tuple[re.Match[str], float] | None:
    """The first plausible match near an occurrence of the spec's hint word.

    Searching only windows around the hint keeps extraction linear in the hints rather than in every
    digit of the text (value-first phrasings such as "94% occupied" would otherwise be tried at each
    number). finditer's pos/endpos keep the whole string visible to lookbehinds and \\b, so a window
    edge never cuts a number into a smaller one.
    """
    for hint in spec.hint.finditer(text):
        low, high = max(0, hint.start() - _BEFORE_HINT), min(len(text), hint.end() + _AFTER_HINT)
        candidates = [
            (match, value)
            for pattern in spec.patterns
            for match in pattern.finditer(text, low, high)
            if spec.plausible(value := _number(match))
        ]
        if candidates:
            # the tightest phrasing wins: in "a 67.5% LTV, at a fixed rate of 5.25%" the value next to
            # the label (67.5%) binds closer than the one a label-first pattern reaches past a comma
            return min(candidates, key=lambda pair: (len(pair[0].group(0)), pair[0].start()))
    return None


# --- passages and the cache -------------------------------------------------------------------
def ready_passages(*, deal_id) -> list[Passage]:
    """Every page of the deal's ready documents, in upload then page order."""

    rows = (
        DocumentPage.objects.filter(deal_id=deal_id, document__state=FileState.READY)
        .order_by("document__created_at", "document_id", "page_number")
        .values_list("document_id", "document__filename", "page_number", "text")
    )
    return [Passage(str(doc_id), filename, page, text) for doc_id, filename, page, text in rows]


def deal_intel_compute(*, deal_id) -> dict:
    passages = ready_passages(deal_id=deal_id)
    return {
        "metrics": extract_metrics(passages),
        "documents": len({p.document_id for p in passages}),
        "computed_at": datetime.now(UTC).isoformat(),
    }


def deal_intel_cached(*, deal_id) -> dict:
    """From Redis when cached, else computed from PostgreSQL and cached. Never raises for Redis."""
    key = keys.deal_intel_key(deal_id)
    try:
        raw = get_redis().get(key)
        if raw:
            return json.loads(raw)
    except REDIS_ERRORS as exc:
        logger.warning("deal intel cache unavailable (%s); recomputing", exc.__class__.__name__)
        return deal_intel_compute(deal_id=deal_id)
    except ValueError:
        logger.warning("deal intel cache of %s is not JSON; recomputing", deal_id)
    intel = deal_intel_compute(deal_id=deal_id)
    try:
        # NX: a document that finished while we computed has already written fresher intel; keep it.
        get_redis().set(key, json.dumps(intel), ex=keys.DEAL_INTEL_TTL, nx=True)
    except REDIS_ERRORS as exc:
        logger.warning("deal intel not cached (%s)", exc.__class__.__name__)
    return intel


def deal_intel_replace(*, deal_id, intel: dict) -> None:
    """Replace the cached intel with `intel` (computed by the caller, e.g. inside the transaction that makes a
    document ready, so that the cache changes the moment that commits)."""
    try:
        get_redis().set(keys.deal_intel_key(deal_id), json.dumps(intel), ex=keys.DEAL_INTEL_TTL)
    except REDIS_ERRORS as exc:
        logger.warning("deal intel not cached (%s)", exc.__class__.__name__)


def deal_intel_invalidate(*, deal_id) -> None:
    try:
        get_redis().delete(keys.deal_intel_key(deal_id))
    except REDIS_ERRORS as exc:
        logger.warning("deal intel cache not dropped (%s)", exc.__class__.__name__)
