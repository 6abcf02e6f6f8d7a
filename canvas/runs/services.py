"""Synthesis runs: creating, executing, cancelling and sweeping them (services), and reading them
(selectors). The workflow itself is canvas.runs.synthesis.graph; this module binds it to the run's row,
the memo's write path and Redis.

Life of a run: `run_create` inserts a queued row and enqueues `canvas.run_synthesis` on commit (a run
never executes inside a request). The worker's `run_execute` claims it (queued -> running, one
running run per deal, first queued first served), drafts through the graph, and `run_finish` decides
the final status. Whoever finishes a run first wins (a row lock and a status check), be it the
worker, a cancel that the worker did not confirm in time, a reset, or the dead-run sweeper; every
later writer of that run is refused inside the memo's serialized write, so nothing lands after a run
ended. Each finish records `head.last_run` on the memo ({run_id, missing_required, finished_at}),
which `incomplete_delivery_blocked` reads, and ends the run's event stream with workflow_finished
and done.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from datetime import datetime, timedelta

from celery.exceptions import SoftTimeLimitExceeded
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from canvas.memo.errors import MemoApproved, SectionNotFound, StoreUnavailable
from canvas.memo.markdown import parse_citations
from canvas.memo.store import CanvasDoc, blank_section, new_section, read_canvas
from canvas.memo.templates import get_template
from canvas.models import ACTIVE_RUN_STATUSES, RunStatus, SynthesisRun
from canvas.runs.synthesis import config, telemetry
from canvas.runs.synthesis.graph import RunContext, SectionPlan, SectionWriteRefused, run_graph
from canvas.runs.synthesis.retrieval import PassageIndex, load_metrics, load_passages
from canvas_project import events
from canvas_project.errors import ConflictError, InvalidInputError, NotFoundError
from canvas_project.observability import record_run_seconds
from deals.models import Deal, User

logger = logging.getLogger(__name__)

TERMINAL_RUN_STATUSES = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)
AI_AUTHOR = "AI drafter"
RUN_ORDERINGS = ("created_at", "-created_at", "finished_at", "-finished_at", "status", "-status")
DEFAULT_SECTION_SECONDS = 3.0


# --- errors ------------------------------------------------------------------------------------------
class RunNotFound(NotFoundError):
    code = "run_not_found"
    default_message = "This deal has no such run."


class RunConflict(ConflictError):
    """Another run of the deal is queued or running (one active run per deal)."""

    code = "run_active"


# --- plans ----------------------------------------------------------------------------------------------
def section_plans(*, deal: Deal, doc: CanvasDoc | None) -> dict[str, SectionPlan]:
    """What each section of the memo is about: the template's sections, plus the memo's custom ones
    (drafted from their title)."""
    template = doc.template if doc is not None else get_template(deal.template_key)
    plans = {
        spec.key: SectionPlan(spec.key, spec.title, float(spec.order), spec.required, spec.retrieval_query)
        for spec in template.sections
    }
    for key, section in doc.sections.items() if doc is not None else ():
        if key not in plans:
            plans[key] = SectionPlan(
                key,
                section.get("title") or key,
                float(section.get("order") or 99),
                bool(section.get("required")),
                section.get("title") or key,
            )
    return plans


def stream_url(run: SynthesisRun) -> str:
    return f"/api/canvas/{run.deal_id}/runs/{run.pk}/stream"


def _lock_deal_runs(deal_id) -> None:
    """Serialize run creation and claiming of one deal (transaction-scoped advisory lock)."""
    digest = hashlib.sha256(f"canvas-runs:{deal_id}".encode()).digest()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [int.from_bytes(digest[:8], "big", signed=True)])


def _enqueue(run_id) -> None:
    from canvas.runs.tasks import run_synthesis

    budget = config.time_budget_seconds()
    try:
        # a run stuck past its budget (a hung model call) is stopped, freeing the worker; the row is failed
        run_synthesis.apply_async(args=[str(run_id)], soft_time_limit=budget + 60, time_limit=budget + 120)
    except Exception:  # noqa: BLE001 - the broker is down: the row stays queued; the sweeper re-enqueues it
        logger.exception("could not enqueue run %s; the sweeper will retry", run_id)


# --- create -----------------------------------------------------------------------------------------------
def run_create(
    *, deal: Deal, user: User, kind: str, sections: list[str] | None, instructions: str, enqueue_on_conflict: bool
) -> SynthesisRun:
    """Queue a drafting run of `sections` (all of the template's when None) and enqueue it on commit.

    Raises InvalidInputError (unknown section in body.sections), SectionNotFound (regenerate of an
    unknown section), MemoApproved, RunConflict (another run is active and enqueue_on_conflict is off;
    names it), StoreUnavailable.
    """
    doc = read_canvas(deal.pk)
    if doc is not None and doc.state == "approved":
        raise MemoApproved()
    plans = section_plans(deal=deal, doc=doc)
    if sections is None:
        template = doc.template if doc is not None else get_template(deal.template_key)
        keys = [spec.key for spec in template.sections]
    else:
        keys = list(dict.fromkeys(sections))
        for index, key in enumerate(keys):
            if key not in plans:
                if kind == "regenerate":
                    raise SectionNotFound(f"This memo has no section {key!r}.")
                raise InvalidInputError(
                    f"This memo has no section {key!r}.",
                    loc=["body", "sections", index],
                    value=key,
                    code="unknown_section",
                )
    with transaction.atomic():
        _lock_deal_runs(deal.pk)
        active = SynthesisRun.objects.filter(deal=deal, status__in=ACTIVE_RUN_STATUSES).order_by("created_at").first()
        if active is not None and not enqueue_on_conflict:
            raise RunConflict(
                f"Run {active.pk} of this deal is {active.status}; wait for it, cancel it, or send "
                "?on_conflict=enqueue to queue this one behind it.",
                active_run_id=str(active.pk),
                active_run_status=active.status,
            )
        run = SynthesisRun.objects.create(
            deal=deal,
            kind=kind,
            requested_sections=keys,
            instructions=instructions,
            created_by=user,
            drafter=config.drafter_class().name,
        )
        transaction.on_commit(lambda: _enqueue(run.pk))
    events.emit(
        deal.pk,
        "run_queued",
        {"run_id": str(run.pk), "kind": kind, "sections": keys, "queued_behind": str(active.pk) if active else None},
        actor_id=user.pk,
    )
    return run


def estimated_seconds(*, run: SynthesisRun) -> int:
    """A guess from the deal's recent runs: their mean seconds per section, times the run's sections and
    those of the runs ahead of it in line."""
    recent = SynthesisRun.objects.filter(deal_id=run.deal_id, status=RunStatus.SUCCEEDED).exclude(trace_summary=[])[:10]
    elapsed = [node["elapsed"] for r in recent for node in r.trace_summary if node.get("elapsed") is not None]
    per_section = (sum(elapsed) / len(elapsed)) if elapsed else DEFAULT_SECTION_SECONDS
    ahead = sum(
        max(1, len(r.requested_sections) - len(r.sections_delivered))
        for r in SynthesisRun.objects.filter(
            deal_id=run.deal_id, status__in=ACTIVE_RUN_STATUSES, created_at__lt=run.created_at
        )
    )
    return max(1, round(per_section * (len(run.requested_sections) + ahead) + 1))


# --- execute ----------------------------------------------------------------------------------------------
def _claim(run_id) -> SynthesisRun | None:
    """queued -> running, unless another run of the deal runs or an older one waits (then None)."""
    deal_id = SynthesisRun.objects.filter(pk=run_id).values_list("deal_id", flat=True).first()
    if deal_id is None:
        return None
    with transaction.atomic():
        _lock_deal_runs(deal_id)
        run = SynthesisRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.status != RunStatus.QUEUED:
            return None
        if SynthesisRun.objects.filter(deal_id=deal_id, status=RunStatus.RUNNING).exists():
            return None  # the running run kicks the next queued one when it ends
        older = (
            SynthesisRun.objects.filter(deal_id=deal_id, status=RunStatus.QUEUED, created_at__lt=run.created_at)
            .order_by("created_at")
            .first()
        )
        if older is not None:
            transaction.on_commit(lambda: _enqueue(older.pk))
            return None
        now = timezone.now()
        run.status, run.started_at, run.heartbeat_at = RunStatus.RUNNING, now, now
        run.drafter = config.drafter_class().name
        run.save(update_fields=["status", "started_at", "heartbeat_at", "drafter", "updated_at"])
    return run


class _RunGuard:
    """Heartbeats (throttled) and the stop signal of one executing run: the Redis flag, or the row no
    longer running (cancelled without the flag, failed by the sweeper, reset)."""

    def __init__(self, run: SynthesisRun) -> None:
        self.run = run
        self._lock = threading.Lock()
        self._last_beat = 0.0
        self._last_row_check = time.monotonic()
        self._stopped = False

    def beat(self) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last_beat < config.heartbeat_seconds():
                return
            self._last_beat = now
        SynthesisRun.objects.filter(pk=self.run.pk, status=RunStatus.RUNNING).update(heartbeat_at=timezone.now())

    def cancelled(self) -> bool:
        if self._stopped:
            return True
        if telemetry.cancel_requested(self.run.deal_id, self.run.pk):
            self._stopped = True
            return True
        now = time.monotonic()
        if now - self._last_row_check >= max(1.0, config.heartbeat_seconds()):
            self._last_row_check = now
            status = SynthesisRun.objects.filter(pk=self.run.pk).values_list("status", flat=True).first()
            if status != RunStatus.RUNNING:
                self._stopped = True
        return self._stopped


def _record_section(run_id, key: str, outcome: str) -> None:
    field = "sections_delivered" if outcome == "delivered" else "sections_failed"
    with transaction.atomic():
        run = SynthesisRun.objects.select_for_update().only(field, "status").filter(pk=run_id).first()
        if run is None or run.status != RunStatus.RUNNING:
            return
        values = list(getattr(run, field))
        if key not in values:
            values.append(key)
        setattr(run, field, values)
        run.heartbeat_at = timezone.now()
        run.save(update_fields=[field, "heartbeat_at", "updated_at"])


def _write_ai_section(*, deal: Deal, user: User | None, run: SynthesisRun, plan: SectionPlan, markdown: str) -> int:
    """Write a drafted section through the memo's write path; returns the new version.

    Raises SectionWriteRefused (the run ended or was cancelled meanwhile: checked inside the
    serialized write, so nothing lands after a cancel), MemoApproved, StoreUnavailable.
    """
    from canvas.memo.services import _write_memo

    def mutate(doc: CanvasDoc, now: str) -> list[str] | None:
        status = SynthesisRun.objects.filter(pk=run.pk).values_list("status", flat=True).first()
        if status != RunStatus.RUNNING or telemetry.cancel_requested(run.deal_id, run.pk):
            raise SectionWriteRefused()
        section = doc.sections.get(plan.key)
        if section is None:
            spec = doc.template.section(plan.key)
            section = (
                blank_section(spec, now=now)
                if spec is not None
                else new_section(
                    key=plan.key, title=plan.title, order=plan.order, required=plan.required, custom=True, now=now
                )
            )
            doc.sections[plan.key] = section
        section.update(
            markdown=markdown,
            source="ai",
            delivery="delivered",
            citations=parse_citations(markdown),
            state="draft",
            updated_at=now,
            updated_by=None,
            updated_by_name=AI_AUTHOR,
            run_id=str(run.pk),
        )
        doc.head["is_blank"] = False
        # on a memo never stored before, every section must be written, or the others would be lost
        return [plan.key] if doc.exists else list(doc.sections)

    outcome = _write_memo(
        deal=deal, user=user, base_version=None, mutate=mutate, snapshot_reason=None, event="run_section_delivered"
    )
    return outcome.doc.version


def _write_section_failed(*, deal: Deal, user: User | None, run: SynthesisRun, key: str) -> None:
    """Mark an empty section's delivery failed (a section with text keeps it, and its delivery)."""
    from canvas.memo.services import _write_memo

    def mutate(doc: CanvasDoc, now: str) -> list[str] | None:
        section = doc.sections.get(key)
        if section is None or (section.get("markdown") or "").strip() or section.get("delivery") == "failed":
            return None
        section["delivery"] = "failed"
        return [key] if doc.exists else list(doc.sections)

    _write_memo(
        deal=deal, user=user, base_version=None, mutate=mutate, snapshot_reason=None, event="run_section_failed"
    )


def run_execute(*, run_id) -> str:
    """Claim and execute a queued run (the Celery task's body); returns its final status, or "skipped"
    when it was not claimable (not queued any more, or waiting behind another run of the deal)."""
    run = _claim(run_id)
    if run is None:
        return "skipped"
    deal = Deal.objects.get(pk=run.deal_id)
    user = User.objects.filter(pk=run.created_by_id).first() if run.created_by_id else None
    started = time.monotonic()
    telemetry.emit_run_event(
        deal.pk,
        run.pk,
        "workflow_started",
        {
            "inputs": {"kind": run.kind, "sections": run.requested_sections, "instructions": run.instructions},
            "drafter": run.drafter,
        },
    )
    events.emit(
        deal.pk,
        "run_started",
        {"run_id": str(run.pk), "kind": run.kind, "sections": run.requested_sections},
        actor_id=run.created_by_id,
    )
    telemetry.discourse_emit(
        deal.pk,
        "run",
        {"run_id": str(run.pk), "agent": "synthesis", "text": f"Drafting {len(run.requested_sections)} section(s)."},
    )
    try:
        results = _execute(run, deal, user)
    except SoftTimeLimitExceeded:
        finished = run_finish(
            run_id=run.pk,
            status=RunStatus.FAILED,
            elapsed=time.monotonic() - started,
            error=f"The run was stopped {config.time_budget_seconds() + 60} s after it started "
            "(its time budget plus a minute).",
        )
        return finished.status if finished else _status_of(run.pk)
    except Exception as exc:  # noqa: BLE001 - any failure ends the run failed, with its reason
        logger.exception("run %s failed", run.pk)
        finished = run_finish(
            run_id=run.pk,
            status=RunStatus.FAILED,
            error=f"{exc.__class__.__name__}: {exc}",
            elapsed=time.monotonic() - started,
        )
        return finished.status if finished else _status_of(run.pk)
    status, error = _outcome(run, results)
    finished = run_finish(
        run_id=run.pk, status=status, error=error, results=results, elapsed=time.monotonic() - started
    )
    return finished.status if finished else _status_of(run.pk)


def _status_of(run_id) -> str:
    return SynthesisRun.objects.filter(pk=run_id).values_list("status", flat=True).first() or "unknown"


def _execute(run: SynthesisRun, deal: Deal, user: User | None) -> list[dict]:
    from canvas_project.store import get_checkpointer

    doc = read_canvas(deal.pk)
    plans = section_plans(deal=deal, doc=doc)
    sections = [key for key in run.requested_sections if key in plans]
    guard = _RunGuard(run)
    drafter = config.drafter_class()()
    ctx = RunContext(
        deal_id=str(deal.pk),
        deal_name=deal.name,
        template_key=doc.template.key if doc else get_template(deal.template_key).key,
        run_id=str(run.pk),
        plans=plans,
        index=PassageIndex(load_passages(deal_id=deal.pk)),
        metrics=load_metrics(deal=deal),
        drafter=drafter,
        instructions=run.instructions,
        top_k=config.top_k(),
        deadline=time.monotonic() + config.time_budget_seconds(),
        write_section=lambda key, markdown: _write_ai_section(
            deal=deal, user=user, run=run, plan=plans[key], markdown=markdown
        ),
        mark_failed=lambda key, reason: _write_section_failed(deal=deal, user=user, run=run, key=key),
        record=lambda key, outcome: _record_section(run.pk, key, outcome),
        beat=guard.beat,
        cancelled=guard.cancelled,
    )
    return run_graph(
        ctx=ctx,
        sections=sections,
        thread_id=run.thread_id,
        checkpointer=get_checkpointer(),
        max_concurrency=config.max_concurrency(),
    )


def _outcome(run: SynthesisRun, results: list[dict]) -> tuple[str, str]:
    delivered = [r for r in results if r["status"] == "delivered"]
    failed = [r for r in results if r["status"] == "failed"]
    if any(r["status"] == "cancelled" for r in results):
        return RunStatus.CANCELLED, "Cancelled on request."
    if results and not delivered:
        reasons = "; ".join(f"{r['section_key']}: {r['error']}" for r in failed[:3])
        return RunStatus.FAILED, f"No section could be drafted. {reasons}".strip()
    if failed:
        reasons = "; ".join(f"{r['section_key']}: {r['error']}" for r in failed[:3])
        return RunStatus.SUCCEEDED, f"{len(failed)} section(s) failed. {reasons}"
    return RunStatus.SUCCEEDED, ""


# --- finish -----------------------------------------------------------------------------------------------
def run_finish(
    *,
    run_id,
    status: str,
    error: str = "",
    results: list[dict] | None = None,
    elapsed: float | None = None,
    only_if: tuple[str, ...] = tuple(ACTIVE_RUN_STATUSES),
) -> SynthesisRun | None:
    """End a run with `status` if it is still in one of `only_if`; returns it, or None when someone else
    ended it first. Records head.last_run on the memo, closes the event stream (workflow_finished,
    done), emits run_finished, and kicks the next queued run of the deal."""
    with transaction.atomic():
        run = SynthesisRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.status not in only_if:
            return None
        delivered = list(run.sections_delivered)
        failed = [k for k in run.sections_failed if k not in delivered]
        missing = [k for k in run.requested_sections if k not in delivered and k not in failed]
        run.status, run.error, run.finished_at = status, error, timezone.now()
        run.sections_failed, run.sections_missing = failed, missing
        if results is not None:
            run.trace_summary = [
                {"section_key": r["section_key"], "status": r["status"], "elapsed": r["elapsed"], "error": r["error"]}
                for r in results
            ]
            usage = {"drafter": run.drafter, "sections": len(results), "words": 0, "citations": 0, "passages": 0}
            for r in results:
                for name, value in (r.get("usage") or {}).items():
                    if isinstance(value, int | float):
                        usage[name] = usage.get(name, 0) + value
            run.usage = usage
        if elapsed is not None:
            run.usage = {**run.usage, "elapsed_seconds": round(elapsed, 3)}
        run.save()
    # from its start, or from its creation for a run that never started (cancelled or failed while queued)
    record_run_seconds(status=status, seconds=(run.finished_at - (run.started_at or run.created_at)).total_seconds())
    deal = Deal.objects.get(pk=run.deal_id)
    _record_last_run(deal, run)
    inputs = {"kind": run.kind, "sections": run.requested_sections, "instructions": run.instructions}
    outputs = {"delivered": delivered, "missing": missing, "failed": failed}
    took = (run.finished_at - run.started_at).total_seconds() if run.started_at else 0.0
    if status == RunStatus.FAILED:
        telemetry.emit_run_event(run.deal_id, run.pk, "error", {"message": error or "The run failed."})
    telemetry.emit_run_event(
        run.deal_id,
        run.pk,
        "workflow_finished",
        {"status": status, "inputs": inputs, "outputs": outputs, "elapsed_time": round(took, 3), "error": error},
    )
    telemetry.emit_run_event(run.deal_id, run.pk, "done", {"status": status})
    events.emit(
        run.deal_id, "run_finished", {"run_id": str(run.pk), "status": status, **outputs}, actor_id=run.created_by_id
    )
    telemetry.discourse_emit(
        run.deal_id,
        "run",
        {
            "run_id": str(run.pk),
            "agent": "synthesis",
            "text": f"Run {status}: {len(delivered)} delivered, {len(missing)} missing, {len(failed)} failed.",
        },
    )
    _kick_next(run.deal_id)
    return run


def _record_last_run(deal: Deal, run: SynthesisRun) -> None:
    """head.last_run = {run_id, status, missing_required, delivered, missing, failed, finished_at}; a
    snapshot when the run delivered anything (a restore point of what the AI wrote)."""
    from canvas.memo.services import _write_memo

    try:
        doc = read_canvas(deal.pk)
    except StoreUnavailable:
        logger.warning("last_run of run %s not recorded: the Store is unavailable", run.pk)
        return
    plans = section_plans(deal=deal, doc=doc)
    missing_required = [
        k for k in run.requested_sections if k not in run.sections_delivered and k in plans and plans[k].required
    ]
    last_run = {
        "run_id": str(run.pk),
        "status": run.status,
        "missing_required": missing_required,
        "delivered": list(run.sections_delivered),
        "missing": list(run.sections_missing),
        "failed": list(run.sections_failed),
        "finished_at": run.finished_at.isoformat(),
    }

    def mutate(doc: CanvasDoc, now: str) -> list[str] | None:
        doc.head["last_run"] = last_run
        return [] if doc.exists else list(doc.sections)

    try:
        _write_memo(
            deal=deal,
            user=None,
            base_version=None,
            mutate=mutate,
            snapshot_reason=f"drafting run {run.pk} {run.status}" if run.sections_delivered else None,
            event="run_recorded",
        )
    except MemoApproved:
        logger.info("last_run of run %s not recorded: the memo was approved meanwhile", run.pk)
    except StoreUnavailable:
        logger.warning("last_run of run %s not recorded: the Store is unavailable", run.pk)


def _kick_next(deal_id) -> None:
    nxt = (
        SynthesisRun.objects.filter(deal_id=deal_id, status=RunStatus.QUEUED)
        .order_by("created_at")
        .values_list("pk", flat=True)
        .first()
    )
    if nxt is not None:
        transaction.on_commit(lambda: _enqueue(nxt))


# --- cancel -----------------------------------------------------------------------------------------------
def run_cancel(*, deal: Deal, run_id: uuid.UUID, user: User) -> SynthesisRun:
    """Cancel a run and return it in its final state (idempotent: a finished run is returned as is).

    A queued run is cancelled at once. A running one gets the cancel flag, which its drafters check
    between and inside nodes; when the worker has not ended it within SYNTHESIS_CANCEL_WAIT_SECONDS
    (dead or stuck), the run is cancelled here. Sections delivered before the cancel stay.
    Raises RunNotFound.
    """
    run = run_get(deal=deal, run_id=run_id)
    if run.status in TERMINAL_RUN_STATUSES:
        return run
    SynthesisRun.objects.filter(pk=run.pk, cancel_requested_at__isnull=True).update(cancel_requested_at=timezone.now())
    try:
        telemetry.request_cancel(run.deal_id, run.pk)
    except telemetry.REDIS_ERRORS:
        logger.warning("cancel flag of run %s not set: Redis unavailable; the worker reads the row", run.pk)
    events.emit(deal.pk, "run_cancel_requested", {"run_id": str(run.pk)}, actor_id=user.pk)
    run_finish(
        run_id=run.pk, status=RunStatus.CANCELLED, error="Cancelled before it started.", only_if=(RunStatus.QUEUED,)
    )
    deadline = time.monotonic() + config.cancel_wait_seconds()
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.status in TERMINAL_RUN_STATUSES:
            return run
        time.sleep(0.1)
    run_finish(
        run_id=run.pk,
        status=RunStatus.CANCELLED,
        error=f"Cancelled; the worker did not confirm within {config.cancel_wait_seconds():g} s.",
    )
    run.refresh_from_db()
    return run


# --- dead runs ----------------------------------------------------------------------------------------------
def runs_sweep_dead(*, deal_id=None, now: datetime | None = None) -> list[str]:
    """Fail every running run without a heartbeat within SYNTHESIS_DEAD_RUN_SECONDS, and every run
    active for longer than SYNTHESIS_MAX_RUN_SECONDS; re-enqueue queued runs whose message was lost.
    Returns the ids of the runs it failed."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=config.dead_run_seconds())
    too_old = now - timedelta(seconds=config.max_run_seconds())
    active = SynthesisRun.objects.filter(status__in=ACTIVE_RUN_STATUSES)
    if deal_id is not None:
        active = active.filter(deal_id=deal_id)
    silent = Q(status=RunStatus.RUNNING) & (
        Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True, started_at__lt=stale)
    )
    failed = []
    for run in active.filter(silent | Q(created_at__lt=too_old)).only("pk", "status", "created_at"):
        if run.created_at < too_old:
            reason = f"The run was still {run.status} after {config.max_run_seconds() // 3600} hours; it is dead."
        else:
            reason = (
                f"The worker sent no heartbeat for {config.dead_run_seconds()} s (killed or stuck); the run is dead."
            )
        if run_finish(run_id=run.pk, status=RunStatus.FAILED, error=reason) is not None:
            failed.append(str(run.pk))
    waiting = active.filter(status=RunStatus.QUEUED, created_at__lt=stale)
    for deal in waiting.values_list("deal_id", flat=True).distinct():
        if not SynthesisRun.objects.filter(deal_id=deal, status=RunStatus.RUNNING).exists():
            _kick_next(deal)
    return failed


# --- reset --------------------------------------------------------------------------------------------------
def canvas_reset(*, deal: Deal, user: User) -> dict:
    """Return the memo to blank, keeping what it was as a restorable version; cancel the deal's active
    runs; delete its run streams, traces, cancel flags, brush findings, discourse and cached session
    (Redis) and its LangGraph checkpoint threads. Run rows stay as history.

    Raises MemoApproved (an approved memo must be reopened first), StoreUnavailable, redis errors.
    """
    from canvas.memo.services import _write_memo
    from canvas_project.store import delete_deal_threads

    doc = read_canvas(deal.pk)
    if doc is not None and doc.state == "approved":
        raise MemoApproved("The memo is approved; an owner must reopen it before it can be reset.")
    cancelled = []
    for run in SynthesisRun.objects.filter(deal=deal, status__in=ACTIVE_RUN_STATUSES):
        try:
            telemetry.request_cancel(deal.pk, run.pk)
        except telemetry.REDIS_ERRORS:
            pass  # the worker also stops when it sees its row cancelled
        ended = run_finish(run_id=run.pk, status=RunStatus.CANCELLED, error="Cancelled by a reset of the canvas.")
        if ended is not None:
            cancelled.append(str(run.pk))

    restorable = None
    if doc is not None and doc.exists and (doc.populated_keys() or any(s.get("custom") for s in doc.sections.values())):
        versions = doc.head.get("versions") or []
        if versions and versions[-1] == doc.version:
            restorable = doc.version
        else:
            outcome = _write_memo(
                deal=deal,
                user=user,
                base_version=None,
                mutate=lambda d, now: [],
                snapshot_reason="before reset",
                event="memo_snapshot",
            )
            restorable = outcome.doc.version

    def blank(doc: CanvasDoc, now: str) -> list[str] | None:
        template = doc.template
        changed = list(doc.sections)
        doc.sections = {spec.key: blank_section(spec, now=now) for spec in template.sections}
        changed += [k for k in doc.sections if k not in changed]
        doc.head.update(state="draft", is_blank=True, last_run=None)
        return changed

    outcome = _write_memo(
        deal=deal, user=user, base_version=None, mutate=blank, snapshot_reason="reset", event="memo_reset"
    )
    threads = delete_deal_threads(deal.pk)
    removed = telemetry.clear_deal_run_state(deal.pk)
    return {
        "success": True,
        "version": outcome.doc.version,
        "restorable_version": restorable,
        "cancelled_runs": cancelled,
        "checkpoint_threads_deleted": threads,
        "redis_keys_deleted": removed,
    }


# --- debug ----------------------------------------------------------------------------------------------------
def section_debug(*, deal: Deal, section_key: str, inputs: dict) -> dict:
    """Run one drafter synchronously on the deal's sources (or on `inputs` overrides); nothing is written.

    Raises SectionNotFound, StoreUnavailable.
    """
    from canvas.runs.synthesis.drafters import DraftFailed, DraftRequest
    from canvas.runs.synthesis.retrieval import Passage

    doc = read_canvas(deal.pk)
    plans = section_plans(deal=deal, doc=doc)
    plan = plans.get(section_key)
    if plan is None:
        raise SectionNotFound(f"This memo has no section {section_key!r}.")
    instructions = inputs.get("instructions") or ""
    query = inputs.get("retrieval_query") or plan.retrieval_query
    if instructions:
        query = f"{query} {instructions}"
    if inputs.get("passages") is not None:
        passages = [
            Passage(str(p.get("document_id") or ""), p["filename"], p["page"], p["text"]) for p in inputs["passages"]
        ]
    else:
        passages = load_passages(deal_id=deal.pk)
    metrics = inputs["metrics"] if inputs.get("metrics") is not None else load_metrics(deal=deal)
    top_k = inputs.get("top_k") or config.top_k()
    started = time.monotonic()
    hits = PassageIndex(passages).search(query, top_k)
    drafter = config.drafter_class()()
    deltas: list[str] = []
    request = DraftRequest(
        deal_name=deal.name,
        template_key=doc.template.key if doc else deal.template_key,
        section_key=section_key,
        title=plan.title,
        order=plan.order,
        required=plan.required,
        retrieval_query=query,
        instructions=instructions,
        hits=hits,
        metrics=metrics,
    )
    deadline = time.monotonic() + min(120, config.time_budget_seconds())
    error, markdown, usage = None, "", {}
    try:
        draft = drafter.draft(
            request, emit=deltas.append, should_stop=lambda: "time_budget" if time.monotonic() > deadline else None
        )
        markdown, usage = draft.markdown, draft.usage
    except DraftFailed as exc:
        error = str(exc)
    except Exception as exc:  # noqa: BLE001 - debugging shows the drafter's failure instead of a 500
        error = f"{exc.__class__.__name__}: {exc}"
    return {
        "section_key": section_key,
        "drafter": drafter.name,
        "inputs": {
            "retrieval_query": query,
            "instructions": instructions,
            "top_k": top_k,
            "passages_searched": len(passages),
            "metrics": sorted(metrics),
        },
        "passages": [{**h.passage.source, "score": h.score, "text": h.passage.text[:1000]} for h in hits],
        "markdown": markdown,
        "citations": parse_citations(markdown),
        "deltas": len(deltas),
        "usage": usage,
        "error": error,
        "elapsed_ms": round((time.monotonic() - started) * 1000, 1),
    }


# --- selectors --------------------------------------------------------------------------------------------------
def run_get(*, deal: Deal, run_id: uuid.UUID) -> SynthesisRun:
    """Raises RunNotFound (unknown, or a run of another deal)."""
    run = SynthesisRun.objects.select_related("created_by").filter(pk=run_id, deal=deal).first()
    if run is None:
        raise RunNotFound()
    return run


def run_list(
    *,
    deal: Deal,
    statuses: list[str] | None = None,
    created_by=None,
    created_after=None,
    created_before=None,
    ordering: str = "-created_at",
    page: int = 1,
    page_size: int = 20,
) -> dict:
    runs = SynthesisRun.objects.filter(deal=deal).select_related("created_by")
    if statuses:
        runs = runs.filter(status__in=statuses)
    if created_by is not None:
        runs = runs.filter(created_by_id=created_by)
    if created_after is not None:
        runs = runs.filter(created_at__gte=created_after)
    if created_before is not None:
        runs = runs.filter(created_at__lt=created_before)
    if ordering not in RUN_ORDERINGS:
        ordering = "-created_at"
    runs = runs.order_by(ordering, "-pk" if ordering.startswith("-") else "pk")
    count = runs.count()
    results = list(runs[(page - 1) * page_size : page * page_size])
    return {"count": count, "page": page, "page_size": page_size, "results": results}


def run_trace_get(*, deal: Deal, run_id: uuid.UUID) -> dict:
    """The run's per-node trace from Redis (10 minutes after its last node), else only the summary kept on
    the row. Raises RunNotFound, redis errors."""
    run = run_get(deal=deal, run_id=run_id)
    nodes = telemetry.trace_read(run.deal_id, run.pk)
    return {
        "run_id": str(run.pk),
        "status": run.status,
        "expired": nodes is None,
        "nodes": nodes or [],
        "summary": run.trace_summary,
    }
