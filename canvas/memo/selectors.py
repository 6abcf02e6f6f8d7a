"""Reads of the memo: its readiness and progress, its versions, and the review signals readiness uses."""

from __future__ import annotations

import difflib
import json
import logging

import redis
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DEFAULT_DB_ALIAS
from django.db.models import Avg

from canvas.memo.errors import SectionNotFound, VersionNotFound
from canvas.memo.readiness import ReviewSignals, compute_readiness
from canvas.memo.store import read_memo, read_snapshots
from canvas.memo.templates import MemoTemplate, get_template
from canvas.memo.types import Memo
from canvas.models import ACTIVE_RUN_STATUSES, ApprovalCondition, SectionFeedback, SynthesisRun
from canvas_project import keys
from canvas_project.errors import StoreUnavailable
from canvas_project.redis_client import get_redis
from canvas_project.replicas import reads_from_replica
from deals.models import Deal

logger = logging.getLogger(__name__)
REDIS_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


def active_run_ids(*, deal_id) -> list[str]:
    """Ids of the deal's runs that are queued or running."""
    return [
        str(pk)
        for pk in SynthesisRun.objects.filter(deal_id=deal_id, status__in=ACTIVE_RUN_STATUSES).values_list(
            "pk", flat=True
        )
    ]


def review_signals(*, deal_id) -> ReviewSignals:
    ratings = {
        row["section_key"]: float(row["avg"])
        for row in SectionFeedback.objects.filter(deal_id=deal_id).values("section_key").annotate(avg=Avg("rating"))
    }
    open_conditions = ApprovalCondition.objects.filter(deal_id=deal_id, resolved=False).count()
    return ReviewSignals(ratings=ratings, unresolved_conditions=open_conditions)


def deal_template(deal: Deal) -> MemoTemplate:
    return get_template(deal.template_key)


def memo_or_template(deal: Deal) -> Memo:
    """The stored memo, or the blank one its template lays out (not stored). Raises StoreUnavailable."""
    memo = read_memo(deal.pk)
    if memo is None:
        memo = Memo.new(
            deal_id=deal.pk, template_key=deal.template_key, is_blank=deal.created_blank, created_by=None, now=""
        )
    return memo


def require_memo_section(deal: Deal, key: str) -> None:
    """Raises SectionNotFound unless the memo (or, before its first write, its template) has the section.
    Raises StoreUnavailable."""
    memo = read_memo(deal.pk)
    keys_known = set(memo.sections) if memo else {s.key for s in deal_template(deal).sections}
    if key not in keys_known:
        raise SectionNotFound(f"This memo has no section {key!r}.")


def readiness_get(*, deal: Deal) -> dict:
    """The readiness report, from `canvas:readiness:{D}` when current. Its inputs (ratings, open conditions)
    are read from a replica when one is usable. Raises StoreUnavailable."""
    key = keys.readiness_key(deal.pk)
    client = get_redis()
    try:
        raw = client.get(key)
        if raw is not None:
            cached = json.loads(raw)
            if cached.get("version") == deal.memo_version:
                return cached
    except REDIS_ERRORS:
        client = None
    memo = memo_or_template(deal)
    with reads_from_replica() as alias:
        signals = review_signals(deal_id=deal.pk)
    report = {**compute_readiness(memo, signals), "version": memo.version}
    # a replica's answer may be behind the primary by up to REPLICA_MAX_LAG_SECONDS: served, never cached for all
    if client is not None and alias == DEFAULT_DB_ALIAS:
        try:
            client.set(key, json.dumps(report, cls=DjangoJSONEncoder), ex=keys.READINESS_TTL)
        except REDIS_ERRORS:
            logger.warning("readiness of deal %s not cached: Redis unavailable", deal.pk)
    return report


def progress_get(*, deal: Deal) -> dict:
    """{populated, total, sections, store_available}; from the deal row when the Store is down. Read from a
    replica when one is usable and has the deal's current memo_version."""
    try:
        memo = read_memo(deal.pk, from_replica=True, at_least_version=deal.memo_version)
    except StoreUnavailable:
        return {
            "populated": deal.sections_populated,
            "total": deal.sections_total,
            "sections": {},
            "store_available": False,
        }
    if memo is None:
        template = deal_template(deal)
        return {
            "populated": 0,
            "total": len(template.sections),
            "sections": {s.key: False for s in template.sections},
            "store_available": True,
        }
    sections = {s.key: s.populated for s in memo.ordered_sections()}
    return {"populated": sum(sections.values()), "total": len(sections), "sections": sections, "store_available": True}


def version_numbers(*, deal: Deal) -> tuple[list[int], set[int], int]:
    """(the snapshots' version numbers, those of approval snapshots, the memo's version): from a replica when
    one is usable and has the deal's current memo_version. Raises StoreUnavailable."""
    memo = read_memo(deal.pk, from_replica=True, at_least_version=deal.memo_version)
    if memo is None:
        return [], set(), 0
    return list(memo.versions), set(memo.approval_versions), memo.version


def version_summaries(*, deal: Deal, numbers: list[int], approvals: set[int]) -> list[dict]:
    """Summaries of these snapshots, in the order given (from a replica when one is usable: a snapshot never
    changes). Raises StoreUnavailable."""
    snapshots = {s["version"]: s for s in read_snapshots(deal.pk, numbers, from_replica=True)}
    return [
        {k: snapshots[n].get(k) for k in ("version", "title", "reason", "author", "author_id", "created_at", "state")}
        | {"approval": n in approvals}
        for n in numbers
        if n in snapshots
    ]


def version_get(*, deal: Deal, version: int) -> dict:
    """One snapshot, from a replica when one is usable (a snapshot never changes; one the replica has not
    replayed yet is read from the primary). Raises VersionNotFound, StoreUnavailable."""
    found = read_snapshots(deal.pk, [version], from_replica=True)
    if not found:
        raise VersionNotFound()
    return found[0]


def version_diff(*, deal: Deal, version: int) -> dict:
    """Unified diff from the snapshot to the current memo. Raises VersionNotFound, StoreUnavailable."""
    snapshot = version_get(deal=deal, version=version)
    memo = read_memo(deal.pk, from_replica=True, at_least_version=deal.memo_version)
    current_md = memo.markdown() if memo else ""
    current_sections = {k: s.markdown for k, s in (memo.sections.items() if memo else [])}
    old_sections = {k: s.get("markdown") or "" for k, s in snapshot["sections"].items()}
    diff = "".join(
        difflib.unified_diff(
            snapshot["markdown"].splitlines(keepends=True),
            current_md.splitlines(keepends=True),
            fromfile=f"version {version}",
            tofile=f"version {memo.version if memo else 0} (current)",
        )
    )
    return {
        "from_version": version,
        "to_version": memo.version if memo else 0,
        "diff": diff,
        "sections_added": sorted(set(current_sections) - set(old_sections)),
        "sections_removed": sorted(set(old_sections) - set(current_sections)),
        "sections_changed": sorted(
            k for k in set(old_sections) & set(current_sections) if old_sections[k] != current_sections[k]
        ),
    }
