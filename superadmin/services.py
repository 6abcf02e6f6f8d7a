"""The purge of per-deal Redis state (and, when asked, of the deals' LangGraph checkpoint threads).

One entry point, `deals_purge`, used alike by the API, the Django admin and `manage.py purge_deals`;
each call leaves one PurgeAudit row. What exists is read from the key registry (canvas_project.keys) through
canvas_project.keyspace; nothing here spells a key.

Decisions (see README "Superadmin purge"):
- by_deal never scans: fixed names plus the deal's index. A deal id that PostgreSQL does not know is
  still purged: its Redis leftovers (a deal deleted in PostgreSQL while Redis kept its state) are
  exactly what a superadmin wants gone. The org_id check needs the deal's row, so it applies only when
  the deal exists.
- all takes every deal PostgreSQL knows by its registry names first (one script call per deal, no
  walk), then walks the keyspace once per primary (SCAN + UNLINK in pipelined batches) for what is
  left: deals PostgreSQL no longer has, untracked keys. A dry run is the walk alone. With org_id it
  keeps to that org's deals (an unknown org is a 422). Deals with an active run are skipped, not refused,
  when checkpoints are included without force: one busy deal does not block a fleet-wide cleanup.
- Protected families (runs) and checkpoint threads go only with include_checkpoints; while a run of
  the deal is queued or running that is refused (by_deal) or the deal skipped (all), unless forced.
- Always recoverable: PostgreSQL rows are never touched, only the Saver's checkpoint threads on request.
"""

from __future__ import annotations

import getpass
import logging
import time
import uuid
from dataclasses import asdict, dataclass, field

from django.utils import timezone

from canvas.memo.selectors import active_run_ids
from canvas_project import keyspace, store
from canvas_project.errors import DomainError
from canvas_project.observability import metrics
from deals.models import Deal
from superadmin import selectors
from superadmin.errors import ActiveRunConflict, DealOrgMismatch, OrgUnknown, PurgeInputInvalid
from superadmin.models import PurgeAudit, PurgeSource, PurgeStatus

logger = logging.getLogger(__name__)

MODE_ALL = "all"
MODE_BY_DEAL = "by_deal"
MODES = (MODE_ALL, MODE_BY_DEAL)
SKIP_REASONS = (keyspace.SKIP_RECENT_ACTIVITY, keyspace.SKIP_ACTIVE_RUN)


@dataclass
class PurgeResult:
    mode: str
    dry_run: bool
    include_checkpoints: bool
    deals_considered: int = 0
    deals_purged: int = 0
    deals_skipped: list[dict[str, str]] = field(default_factory=list)  # [{deal_id, reason}]
    keys_by_family: dict[str, int] = field(default_factory=keyspace.empty_counts)
    keys_total: int = 0
    checkpoint_threads_deleted: int = 0  # in a dry run: that would be deleted
    duration_ms: int = 0
    audit_id: str | None = None

    @property
    def summary(self) -> str:
        """The outcome in the purge's one wording: "would purge N keys of M deals" (dry run) or "purged N keys of
        M deals", then the checkpoint threads when they were included and the deals skipped when there are any.
        The command prints it, the admin shows it, the API returns it."""
        text = purge_wording(dry_run=self.dry_run, keys=self.keys_total, deals=self.deals_purged)
        if self.include_checkpoints:
            text += f", {self.checkpoint_threads_deleted} checkpoint threads"
        if self.deals_skipped:
            text += f", {len(self.deals_skipped)} deals skipped"
        return text

    def as_dict(self) -> dict:
        return {**asdict(self), "summary": self.summary}


def purge_wording(*, dry_run: bool, keys: int, deals: int) -> str:
    """ "would purge N keys of M deals" on a dry run, "purged N keys of M deals" otherwise: every report of a
    purge (the command's summary and progress, the admin's pages and messages, the API's `summary`) says it so."""
    return f"{'would purge' if dry_run else 'purged'} {keys} keys of {deals} deals"


def _check_input(
    *, mode: str, deal_id, org_id, exclude_active_within_secs: int | None
) -> tuple[str | None, str | None]:
    """Normalised (deal_id, org_id). Raises PurgeInputInvalid, which the API reads as a 422."""
    if mode not in MODES:
        raise PurgeInputInvalid(f"mode must be one of {', '.join(MODES)}.", loc=["body", "mode"], value=mode)
    ids: dict[str, str | None] = {}
    for name, value in (("deal_id", deal_id), ("org_id", org_id)):
        try:
            ids[name] = None if value in (None, "") else keyspace.normalise_deal_id(value)
        except ValueError:
            raise PurgeInputInvalid(
                "Input should be a valid UUID.", loc=["body", name], value=str(value), code="uuid_parsing"
            ) from None
    if mode == MODE_BY_DEAL and ids["deal_id"] is None:
        raise PurgeInputInvalid("deal_id is required when mode is by_deal.", loc=["body", "deal_id"], code="missing")
    if mode == MODE_ALL and ids["deal_id"] is not None:
        raise PurgeInputInvalid("deal_id is only used by mode by_deal.", loc=["body", "deal_id"], value=ids["deal_id"])
    if exclude_active_within_secs is not None and exclude_active_within_secs < 0:
        raise PurgeInputInvalid(
            "exclude_active_within_secs must be 0 or more.",
            loc=["body", "exclude_active_within_secs"],
            value=exclude_active_within_secs,
            code="greater_than_equal",
        )
    return ids["deal_id"], ids["org_id"]


def deals_purge(
    *,
    mode: str,
    deal_id: uuid.UUID | str | None = None,
    org_id: uuid.UUID | str | None = None,
    include_checkpoints: bool = False,
    exclude_active_within_secs: int | None = None,
    dry_run: bool = True,
    force: bool = False,
    source: str,
    actor=None,
    progress: keyspace.ProgressCallback | None = None,
) -> PurgeResult:
    """Purge per-deal Redis state (mode all or by_deal) and record one PurgeAudit row.

    Raises PurgeInputInvalid (bad mode, missing or malformed ids, negative seconds: nothing audited),
    DealOrgMismatch and OrgUnknown (422, audited as refused), ActiveRunConflict (by_deal with
    include_checkpoints while a run is active and not forced; audited as refused), and redis or
    database errors as they come (audited as failed; a failure mid-way may leave part purged, which
    is always safe: every purged key is rebuilt from PostgreSQL and files).
    """
    deal, org = _check_input(
        mode=mode, deal_id=deal_id, org_id=org_id, exclude_active_within_secs=exclude_active_within_secs
    )
    parameters = {
        "mode": mode,
        "deal_id": deal,
        "org_id": org,
        "include_checkpoints": include_checkpoints,
        "exclude_active_within_secs": exclude_active_within_secs,
        "dry_run": dry_run,
        "force": force,
    }
    audit = PurgeAudit.objects.create(
        actor=actor if getattr(actor, "pk", None) else None,
        actor_label=_actor_label(actor, source),
        source=source,
        mode=mode,
        deal_id=deal,
        org_id=org,
        dry_run=dry_run,
        include_checkpoints=include_checkpoints,
        parameters=parameters,
        started_at=timezone.now(),
    )
    started = time.monotonic()
    result = PurgeResult(mode=mode, dry_run=dry_run, include_checkpoints=include_checkpoints, audit_id=str(audit.pk))
    try:
        if mode == MODE_BY_DEAL:
            _purge_one(
                result,
                deal_id=deal,
                org_id=org,
                include_checkpoints=include_checkpoints,
                exclude_active_within_secs=exclude_active_within_secs,
                dry_run=dry_run,
                force=force,
            )
        else:
            _purge_every(
                result,
                org_id=org,
                include_checkpoints=include_checkpoints,
                exclude_active_within_secs=exclude_active_within_secs,
                dry_run=dry_run,
                force=force,
                progress=progress,
            )
    except DomainError as exc:
        _finish(audit, started, status=PurgeStatus.REFUSED, error=exc.message)
        raise
    except Exception as exc:
        logger.exception("purge %s failed", audit.pk)
        _finish(audit, started, status=PurgeStatus.FAILED, error=failure_text(exc))
        raise
    result.keys_total = sum(result.keys_by_family.values())
    result.duration_ms = _finish(audit, started, status=PurgeStatus.SUCCEEDED, result=result)
    return result


def failure_text(exc: BaseException) -> str:
    """How a failed purge is recorded and told: the error, then its notes (on a cluster, the node that
    failed, and any other node that failed too)."""
    notes = "; ".join(getattr(exc, "__notes__", ()))
    return f"{exc.__class__.__name__}: {exc}" + (f" ({notes})" if notes else "")


def _actor_label(actor, source: str) -> str:
    if getattr(actor, "pk", None):
        return actor.get_username()
    if source == PurgeSource.COMMAND:
        try:
            return f"{getpass.getuser()} (shell)"
        except Exception:  # no login name in some containers
            return "shell"
    return ""


def _finish(
    audit: PurgeAudit, started: float, *, status: str, result: PurgeResult | None = None, error: str = ""
) -> int:
    duration_ms = int((time.monotonic() - started) * 1000)
    audit.status = status
    audit.error = error[:2000]
    audit.finished_at = timezone.now()
    audit.duration_ms = duration_ms
    if result is not None:
        result.duration_ms = duration_ms
        audit.result = result.as_dict()
        audit.keys_total = result.keys_total
    audit.save(update_fields=["status", "error", "finished_at", "duration_ms", "result", "keys_total"])
    metrics.purges.labels(source=audit.source, mode=audit.mode, dry_run=str(audit.dry_run).lower(), status=status).inc()
    if result is not None and not result.dry_run:
        for family, count in result.keys_by_family.items():
            if count:
                metrics.purged_keys.labels(family=family).inc(count)
    return duration_ms


def _purge_one(
    result: PurgeResult,
    *,
    deal_id: str,
    org_id: str | None,
    include_checkpoints: bool,
    exclude_active_within_secs: int | None,
    dry_run: bool,
    force: bool,
) -> None:
    record = Deal.objects.filter(pk=deal_id).only("org_id").first()
    if record is not None and org_id is not None and str(record.org_id) != org_id:
        raise DealOrgMismatch(org_id=org_id, deal_org_id=str(record.org_id))
    if include_checkpoints and not force:
        runs = active_run_ids(deal_id=deal_id)
        if runs:
            raise ActiveRunConflict(deal_id=deal_id, run_ids=runs)
    client = keyspace.purge_redis_client()
    result.deals_considered = 1
    if exclude_active_within_secs is not None and keyspace.deal_recently_active(
        client=client, deal_id=deal_id, within_secs=exclude_active_within_secs
    ):
        result.deals_skipped.append({"deal_id": deal_id, "reason": keyspace.SKIP_RECENT_ACTIVITY})
        return
    counts = keyspace.purge_deal_keys(
        client=client, deal_id=deal_id, include_protected=include_checkpoints, dry_run=dry_run
    )
    result.keys_by_family.update(counts)
    if include_checkpoints:
        result.checkpoint_threads_deleted = _purge_threads(deal_id, dry_run=dry_run)
    result.deals_purged = 1


def _purge_every(
    result: PurgeResult,
    *,
    org_id: str | None,
    include_checkpoints: bool,
    exclude_active_within_secs: int | None,
    dry_run: bool,
    force: bool,
    progress: keyspace.ProgressCallback | None,
) -> None:
    allowed: set[str] | None = None
    if org_id is not None:
        allowed = selectors.deal_ids_of_org(org_id=org_id)
        if allowed is None:
            raise OrgUnknown(org_id=org_id)
    pre_skips: dict[str, str] = {}
    threaded: set[str] = set()
    if include_checkpoints:
        if not force:
            pre_skips = dict.fromkeys(selectors.deals_with_active_runs(deal_ids=allowed), keyspace.SKIP_ACTIVE_RUN)
        threaded = selectors.deals_with_checkpoint_threads(deal_ids=allowed)
    outcome = keyspace.purge_all_keys(
        client=keyspace.purge_redis_client(),
        include_protected=include_checkpoints,
        dry_run=dry_run,
        deals=allowed if allowed is not None else selectors.all_deal_ids(),
        allowed=allowed,
        pre_skips=pre_skips,
        active_within_secs=exclude_active_within_secs,
        progress=progress,
    )
    skipped = dict(outcome.skipped)
    # Deals known only by their checkpoint threads: no Redis keys, so no recent events; an active run
    # still keeps their threads unless forced.
    for deal in threaded - outcome.deals_seen:
        if deal in pre_skips:
            skipped[deal] = pre_skips[deal]
    considered = outcome.deals_seen | threaded
    for deal in sorted(threaded - set(skipped)):
        result.checkpoint_threads_deleted += _purge_threads(deal, dry_run=dry_run)
    result.keys_by_family.update(outcome.counts)
    result.deals_considered = len(considered)
    result.deals_skipped = [{"deal_id": deal, "reason": reason} for deal, reason in sorted(skipped.items())]
    result.deals_purged = len(considered) - len(skipped)


def _purge_threads(deal_id: str, *, dry_run: bool) -> int:
    if dry_run:
        return len(store.deal_thread_ids(deal_id))
    return store.delete_deal_threads(deal_id)
