"""The readiness score of a memo: 0..100, a grade, and six weighted dimensions that explain themselves.

Pure scoring over the stored memo plus a few facts from PostgreSQL (review signals). Weights sum to 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from canvas.memo import markdown
from canvas.memo.types import DocumentState, Memo, Section, SectionState

WEIGHTS = {
    "section_quality": 0.25,
    "approval_status": 0.20,
    "completeness": 0.20,
    "freshness": 0.10,
    "model_integrity": 0.15,
    "decision_coverage": 0.10,
}
LABELS = {
    "section_quality": "Section quality",
    "approval_status": "Approval status",
    "completeness": "Completeness",
    "freshness": "Freshness",
    "model_integrity": "Model integrity",
    "decision_coverage": "Decision coverage",
}
SUBSTANTIAL_WORDS = 120
DECISION_KEYS = ("executive_summary", "risks", "recommendation")
FRESH_DAYS, STALE_DAYS = 14, 90


@dataclass(frozen=True)
class ReviewSignals:
    """What reviewers said, from PostgreSQL: mean rating per section (1..5) and open conditions."""

    ratings: dict[str, float]
    unresolved_conditions: int


def grade_for(score: int) -> str:
    for threshold, grade in ((90, "A"), (80, "B"), (70, "C"), (60, "D")):
        if score >= threshold:
            return grade
    return "F"


def _pct(part: float, whole: float) -> int:
    return round(100 * part / whole) if whole else 0


def _section_quality(memo: Memo, populated: list[Section], signals: ReviewSignals) -> tuple[int, str]:
    if not populated:
        return 0, "No section has content yet."
    scores = []
    for section in populated:
        text = section.markdown
        depth = min(1.0, markdown.word_count(text) / SUBSTANTIAL_WORDS)
        sourced = 1.0 if section.citations or markdown.has_citation(text) else 0.0
        heuristic = 0.7 * depth + 0.3 * sourced
        rating = signals.ratings.get(section.key)
        scores.append(0.5 * heuristic + 0.5 * (rating - 1) / 4 if rating is not None else heuristic)
    score = round(100 * sum(scores) / len(scores))
    rated = sum(1 for s in populated if s.key in signals.ratings)
    return score, (
        f"{len(populated)} sections with content average {score}/100 on depth and sourcing"
        + (f", {rated} rated by reviewers." if rated else "; none rated by reviewers yet.")
    )


def _approval_status(memo: Memo, sections: list[Section], signals: ReviewSignals) -> tuple[int, str]:
    if memo.state == DocumentState.APPROVED:
        return 100, "The memo is approved."
    approved = sum(1 for s in sections if s.state == SectionState.APPROVED)
    reviewed = sum(1 for s in sections if s.state == SectionState.REVIEWED)
    score = _pct(approved + 0.5 * reviewed, len(sections))
    why = f"{approved} of {len(sections)} sections approved"
    if reviewed:
        why += f", {reviewed} approved with conditions"
    if signals.unresolved_conditions:
        why += f"; {signals.unresolved_conditions} approval condition(s) open"
    return score, why + "."


def _completeness(memo: Memo, required: list[Section]) -> tuple[int, str]:
    if not required:
        return 100, "The template requires no section."
    filled = [s for s in required if s.populated]
    missing = [s.title for s in required if not s.populated]
    why = f"{len(filled)} of {len(required)} required sections have content"
    return _pct(len(filled), len(required)), why + (f"; missing: {', '.join(missing)}." if missing else ".")


def _freshness(memo: Memo, now: datetime) -> tuple[int, str]:
    stamp = memo.last_modified_at
    if not stamp:
        return 0, "Nothing has been written yet."
    age_days = max(0.0, (now - datetime.fromisoformat(stamp)).total_seconds() / 86400)
    if age_days <= FRESH_DAYS:
        score = 100
    else:
        score = max(0, round(100 * (STALE_DAYS - age_days) / (STALE_DAYS - FRESH_DAYS)))
    return (
        score,
        f"Last changed {age_days:.0f} day(s) ago (full marks within {FRESH_DAYS} days, none after {STALE_DAYS}).",
    )


def _model_integrity(populated: list[Section]) -> tuple[int, str]:
    with_figures = [s for s in populated if markdown.has_figures(s.markdown)]
    if not with_figures:
        return (50, "No figures to check yet.") if not populated else (100, "No section states figures.")
    cited = [s for s in with_figures if s.citations or markdown.has_citation(s.markdown)]
    uncited = [s.title for s in with_figures if s not in cited]
    why = f"{len(cited)} of {len(with_figures)} sections with figures cite their source"
    return _pct(len(cited), len(with_figures)), why + (f"; uncited: {', '.join(uncited)}." if uncited else ".")


def _decision_coverage(memo: Memo, signals: ReviewSignals) -> tuple[int, str]:
    present = [k for k in DECISION_KEYS if k in memo.sections]
    if not present:
        return 100, "The template has no decision sections."
    covered = [k for k in present if memo.sections[k].populated]
    score = _pct(len(covered), len(present))
    if signals.unresolved_conditions:
        score = max(0, score - 10 * signals.unresolved_conditions)
    titles = [memo.sections[k].title for k in present if k not in covered]
    why = f"{len(covered)} of {len(present)} decision sections written"
    if titles:
        why += f" (missing: {', '.join(titles)})"
    if signals.unresolved_conditions:
        why += f"; minus 10 per open approval condition ({signals.unresolved_conditions})"
    return score, why + "."


def compute_readiness(memo: Memo, signals: ReviewSignals, *, now: datetime | None = None) -> dict:
    """{score, grade, dimensions: [{key, label, score, weight, why}]} for the memo."""
    now = now or datetime.now(UTC)
    sections = memo.ordered_sections()
    populated = [s for s in sections if s.populated]
    required = [s for s in sections if s.required]
    results = {
        "section_quality": _section_quality(memo, populated, signals),
        "approval_status": _approval_status(memo, sections, signals),
        "completeness": _completeness(memo, required),
        "freshness": _freshness(memo, now),
        "model_integrity": _model_integrity(populated),
        "decision_coverage": _decision_coverage(memo, signals),
    }
    dimensions = [
        {"key": key, "label": LABELS[key], "score": results[key][0], "weight": WEIGHTS[key], "why": results[key][1]}
        for key in WEIGHTS
    ]
    score = round(sum(d["score"] * d["weight"] for d in dimensions))
    return {"score": score, "grade": grade_for(score), "dimensions": dimensions}
