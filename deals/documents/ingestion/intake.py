"""The intake summary of a deal: what came in, what a memo of the deal's template still lacks, key facts.

Required documents per template (a requirement is met by a *ready* document of an accepted kind; a
document of that kind still queued or processing makes it `pending`; none makes it `missing`):
- acquisition: an offering memorandum (PDF) and an underwriting model (XLSX);
- development: a project description (PDF or DOCX) and a development budget or pro forma (XLSX);
- refinance: a property overview or appraisal (PDF or DOCX) and operating statements (XLSX or CSV).
Keywords in the filename or the first pages only say which document most likely fills a requirement
when several of the kind came in; they never make a requirement missing.

Cached in Redis (intake_key, 7 d), rebuilt when a document finishes ingesting or is deleted.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from canvas_project import keys
from canvas_project.redis_client import get_redis
from deals.documents.ingestion.intel import REDIS_ERRORS, deal_intel_cached
from deals.models import DocumentPage, FileState

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Requirement:
    key: str
    label: str
    kinds: tuple[str, ...]
    keywords: tuple[str, ...]


REQUIREMENTS: dict[str, tuple[Requirement, ...]] = {
    "acquisition": (
        Requirement(
            "offering_memorandum",
            "Offering memorandum (PDF)",
            ("pdf",),
            ("offering memorandum", "offering", "memorandum", "om"),
        ),
        Requirement(
            "underwriting_model",
            "Underwriting model (XLSX)",
            ("xlsx",),
            ("underwriting", "model", "pro forma", "proforma", "returns"),
        ),
    ),
    "development": (
        Requirement(
            "project_description",
            "Project description (PDF or DOCX)",
            ("pdf", "docx"),
            ("project", "development", "offering", "memorandum"),
        ),
        Requirement(
            "development_budget",
            "Development budget or pro forma (XLSX)",
            ("xlsx",),
            ("budget", "pro forma", "proforma", "model"),
        ),
    ),
    "refinance": (
        Requirement(
            "property_overview",
            "Property overview or appraisal (PDF or DOCX)",
            ("pdf", "docx"),
            ("appraisal", "overview", "property", "memorandum"),
        ),
        Requirement(
            "operating_statements",
            "Operating statements (XLSX or CSV)",
            ("xlsx", "csv"),
            ("operating", "t12", "t-12", "statement", "financials", "noi"),
        ),
    ),
}


def requirements_for(template_key: str) -> tuple[Requirement, ...]:
    return REQUIREMENTS.get(template_key) or REQUIREMENTS["acquisition"]


def _keyword_score(requirement: Requirement, filename: str, head_text: str) -> int:
    name = filename.lower().replace("_", " ").replace("-", " ")
    words = set(name.replace(".", " ").split())
    score = 0
    for keyword in requirement.keywords:
        if (keyword in words) if " " not in keyword and len(keyword) <= 3 else keyword in name:
            score += 2
        if len(keyword) > 3 and keyword in head_text:
            score += 1
    return score


def intake_summary_compute(*, deal) -> dict:

    documents = list(deal.documents.order_by("created_at", "pk"))
    heads: dict[str, str] = {}
    for doc_id, text in (
        DocumentPage.objects.filter(deal_id=deal.pk, page_number__lte=2)
        .order_by("document_id", "page_number")
        .values_list("document_id", "text")
    ):
        heads[str(doc_id)] = heads.get(str(doc_id), "") + text[:4000].lower()

    rows = [
        {
            "id": str(d.pk),
            "filename": d.filename,
            "kind": d.kind,
            "state": d.state,
            "pages": d.pages,
            "error": d.error or None,
            "fills": None,
        }
        for d in documents
    ]
    requirements = []
    for requirement in requirements_for(deal.template_key):
        candidates = [r for r in rows if r["kind"] in requirement.kinds and r["state"] != FileState.FAILED]
        ready = [r for r in candidates if r["state"] == FileState.READY]
        ready.sort(key=lambda r: -_keyword_score(requirement, r["filename"], heads.get(r["id"], "")))
        if ready:
            status, document_ids = "received", [r["id"] for r in ready]
            if ready[0]["fills"] is None:
                ready[0]["fills"] = requirement.key
        elif candidates:
            status, document_ids = "pending", [r["id"] for r in candidates]
        else:
            status, document_ids = "missing", []
        requirements.append(
            {
                "key": requirement.key,
                "label": requirement.label,
                "kinds": list(requirement.kinds),
                "status": status,
                "document_ids": document_ids,
            }
        )

    intel = deal_intel_cached(deal_id=deal.pk)
    return {
        "template_key": deal.template_key,
        "documents": rows,
        "counts": {state: sum(1 for r in rows if r["state"] == state) for state in FileState.values},
        "pages": sum(r["pages"] or 0 for r in rows if r["state"] == FileState.READY),
        "requirements": requirements,
        "missing": [r["label"] for r in requirements if r["status"] == "missing"],
        "complete": all(r["status"] == "received" for r in requirements),
        "key_facts": intel["metrics"],
        "computed_at": datetime.now(UTC).isoformat(),
    }


def intake_summary_refresh(*, deal) -> dict:
    summary = intake_summary_compute(deal=deal)
    try:
        get_redis().set(keys.intake_key(deal.pk), json.dumps(summary), ex=keys.INTAKE_TTL)
    except REDIS_ERRORS as exc:
        logger.warning("intake summary not cached (%s)", exc.__class__.__name__)
    return summary


def intake_summary_cached(*, deal) -> dict:
    """From Redis when cached, else computed and cached. Never raises for Redis."""
    try:
        raw = get_redis().get(keys.intake_key(deal.pk))
    except REDIS_ERRORS as exc:
        logger.warning("intake cache unavailable (%s); recomputing", exc.__class__.__name__)
        return intake_summary_compute(deal=deal)
    if raw:
        try:
            return json.loads(raw)
        except ValueError:
            logger.warning("intake cache of %s is not JSON; recomputing", deal.pk)
    return intake_summary_refresh(deal=deal)
