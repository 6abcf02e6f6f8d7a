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
from enum import StrEnum

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from canvas.memo.errors import MemoApproved, SectionNotFound
from canvas.memo.markdown import parse_citations, with_document_ids
from canvas.memo.store import read_memo
from canvas.memo.templates import get_template
from canvas.memo.types import Delivery, DocumentState, Memo, Section, SectionState, Source
from canvas.memo.writes import LockRule, memo_write
from canvas.models import ACTIVE_RUN_STATUSES, TERMINAL_RUN_STATUSES, CancelAction, RunStatus, SynthesisRun
from canvas.runs.errors import RunConflict
from canvas.runs.selectors import run_get
from canvas.runs.synthesis import config, telemetry
from canvas.runs.synthesis.drafters import DraftFailed, DraftRequest, DraftStopped
from canvas.runs.synthesis.graph import (
    RunContext,
    RunSuperseded,
    SectionPlan,
    SectionWrite,
    SectionWriteRefused,
    run_graph,
)
from canvas.runs.synthesis.human_input import MISSING, InputRequired
from canvas.runs.synthesis.retrieval import Passage, PassageIndex, load_metrics, load_passages
from canvas.runs.webhooks import webhook_schedule, webhook_url_check
from canvas_project import events
from canvas_project.celery import app as celery_app
from canvas_project.errors import InvalidInputError, StoreUnavailable
from canvas_project.observability import record_run_seconds
from canvas_project.store import delete_deal_threads, get_checkpointer
from deals.documents.intel import document_ids_by_filename
from deals.models import Deal, User

logger = logging.getLogger(__name__)


class MultitaskStrategy(StrEnum):
    """What a new run does while another run of the deal is active (as LangGraph's Agent Server)."""

    REJECT = "reject"
    ENQUEUE = "enqueue"
    INTERRUPT = "interrupt"
    ROLLBACK = "rollback"


CANCEL_STRATEGIES = (MultitaskStrategy.INTERRUPT, MultitaskStrategy.ROLLBACK)
# A deal's queued runs wait while one of its runs is running or waiting for input.
HOLDING_RUN_STATUSES = (RunStatus.RUNNING, RunStatus.WAITING_INPUT)
RUN_TASK = "canvas.run_synthesis"  # canvas.runs.tasks.run_synthesis, enqueued by name
AI_AUTHOR = "AI drafter"
DEFAULT_SECTION_SECONDS = 3.0


# --- plans ----------------------------------------------------------------------------------------------
def section_plans(*, deal: Deal, memo: Memo | None) -> dict[str, SectionPlan]:
    """What each section of the memo is about: the template's sections, plus the memo's custom ones
    (drafted from their title)."""
    template = memo.template if memo is not None else get_template(deal.template_key)
    plans = {
        spec.key: SectionPlan(spec.key, spec.title, float(spec.order), spec.required, spec.retrieval_query)
        for spec in template.sections
    }
    for key, section in memo.sections.items() if memo is not None else ():
        if key not in plans:
            title = section.title or key
            plans[key] = SectionPlan(key, title, float(section.order or 99), section.required, title)
    return plans


def stream_url(run: SynthesisRun) -> str:
    return f"/api/canvas/{run.deal_id}/runs/{run.pk}/stream"


def _lock_deal_runs(deal_id) -> None:
    """Serialize run creation and claiming of one deal (transaction-scoped advisory lock)."""
    digest = hashlib.sha256(f"canvas-runs:{deal_id}".encode()).digest()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [int.from_bytes(digest[:8], "big", signed=True)])


def _enqueue(run_id) -> None:
    budget = config.time_budget_seconds()
    try:
        # a run stuck past its budget (a hung model call) is stopped, freeing the worker; the row is failed
        celery_app.send_task(RUN_TASK, args=[str(run_id)], soft_time_limit=budget + 60, time_limit=budget + 120)
    except Exception:  # noqa: BLE001 - the broker is down: the row stays queued; the sweeper re-enqueues it
        logger.exception("could not enqueue run %s; the sweeper will retry", run_id)
        return
    # the broker has it (publisher confirms): the sweeper leaves it alone for SYNTHESIS_DEAD_RUN_SECONDS
    SynthesisRun.objects.filter(pk=run_id).update(sent_at=timezone.now())


def run_enqueue_on_commit(run_id) -> None:
    """Send the run to a worker once the current transaction commits."""
    transaction.on_commit(lambda: _enqueue(run_id))


# --- create -----------------------------------------------------------------------------------------------
def run_create(
    *,
    deal: Deal,
    user: User,
    kind: str,
    sections: list[str] | None,
    instructions: str,
    enqueue_on_conflict: bool = False,
    multitask_strategy: str = MultitaskStrategy.REJECT,
    webhook: str | None = None,
) -> SynthesisRun:
    """Queue a drafting run of `sections` (all of the template's when None) and enqueue it on commit.

    `multitask_strategy` says what happens while another run of the deal is active: `reject` (RunConflict),
    `enqueue` (this run waits behind it; `enqueue_on_conflict=True` is the same), `interrupt` (the active
    runs are cancelled keeping what they wrote) or `rollback` (they are cancelled and what they wrote is
    reverted); the cancelled runs record `superseded_by`. They are ended here, before this answer: from
    then on their writes are refused inside the memo's serialized write, and a rollback reverts after that.
    `webhook`: a URL the run record is POSTed to, signed, once the run ends (canvas.runs.webhooks).

    Raises InvalidInputError (unknown section in body.sections), SectionNotFound (regenerate of an
    unknown section), MemoApproved, RunConflict (another run is active and the strategy is reject;
    names it), StoreUnavailable; InvalidInputError at body.webhook (a refused webhook URL, or an org without
    a webhook secret).
    """
    if enqueue_on_conflict:
        multitask_strategy = MultitaskStrategy.ENQUEUE
    memo = read_memo(deal.pk)
    if memo is not None and memo.state == DocumentState.APPROVED:
        raise MemoApproved()
    plans = section_plans(deal=deal, memo=memo)
    if sections is None:
        template = memo.template if memo is not None else get_template(deal.template_key)
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
    webhook_url = webhook_url_check(deal=deal, url=webhook) if webhook is not None else ""
    with transaction.atomic():
        _lock_deal_runs(deal.pk)
        active = SynthesisRun.objects.filter(deal=deal, status__in=ACTIVE_RUN_STATUSES).order_by("created_at").first()
        if active is not None and multitask_strategy == MultitaskStrategy.REJECT:
            raise RunConflict(
                f"Run {active.pk} of this deal is waiting for input; answer it (POST /runs/{active.pk}/resume), "
                "cancel it, or send multitask_strategy=interrupt to cancel it and start this one."
                if active.status == RunStatus.WAITING_INPUT
                else f"Run {active.pk} of this deal is {active.status}; wait for it, cancel it, or send "
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
            webhook_url=webhook_url,
        )
        superseded = []
        if active is not None and multitask_strategy in CANCEL_STRATEGIES:
            superseded = list(
                SynthesisRun.objects.filter(deal=deal, status__in=ACTIVE_RUN_STATUSES)
                .exclude(pk=run.pk)
                .values_list("pk", flat=True)
            )
            SynthesisRun.objects.filter(pk__in=superseded).update(
                cancel_action=str(multitask_strategy), superseded_by=run.pk, cancel_requested_at=timezone.now()
            )
            active = None  # the new run waits behind nobody
        transaction.on_commit(lambda: _enqueue(run.pk))
    for old_id in superseded:
        _end_cancelled(
            deal=deal,
            run_id=old_id,
            user=user,
            error=f"{'Interrupted' if multitask_strategy == MultitaskStrategy.INTERRUPT else 'Rolled back'} "
            f"by run {run.pk} (multitask_strategy={multitask_strategy}).",
        )
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
        if SynthesisRun.objects.filter(deal_id=deal_id, status__in=HOLDING_RUN_STATUSES).exists():
            return None  # the running (or waiting) run kicks the next queued one when it ends
        older = (
            SynthesisRun.objects.filter(deal_id=deal_id, status=RunStatus.QUEUED, created_at__lt=run.created_at)
            .order_by("created_at")
            .first()
        )
        if older is not None:
            transaction.on_commit(lambda: _enqueue(older.pk))
            return None
        now = timezone.now()
        run.status, run.heartbeat_at = RunStatus.RUNNING, now
        run.started_at = run.started_at or now  # a resumed run keeps its first start
        run.drafter = config.drafter_class().name
        run.save(update_fields=["status", "started_at", "heartbeat_at", "drafter", "updated_at"])
    return run


class _RunGuard:
    """Heartbeats (throttled) and the stop signal of one executing run: the Redis flag, or the row no
    longer running (cancelled without the flag, failed by the sweeper, reset), or resumed by another worker
    (its resume_count moved past the one this worker claimed: this worker was only silent, not dead)."""

    def __init__(self, run: SynthesisRun) -> None:
        self.run = run
        self.attempt = run.resume_count
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
        SynthesisRun.objects.filter(pk=self.run.pk, status=RunStatus.RUNNING, resume_count=self.attempt).update(
            heartbeat_at=timezone.now()
        )

    def superseded(self) -> bool:
        """Whether the run was resumed on another worker since this one claimed it."""
        count = SynthesisRun.objects.filter(pk=self.run.pk).values_list("resume_count", flat=True).first()
        return count is not None and count != self.attempt

    def cancelled(self) -> bool:
        if self._stopped:
            return True
        if telemetry.cancel_requested(self.run.deal_id, self.run.pk):
            self._stopped = True
            return True
        now = time.monotonic()
        if now - self._last_row_check >= max(1.0, config.heartbeat_seconds()):
            self._last_row_check = now
            row = SynthesisRun.objects.filter(pk=self.run.pk).values_list("status", "resume_count").first()
            if row != (RunStatus.RUNNING, self.attempt):
                self._stopped = True
        return self._stopped


RECORDED_OUTCOMES = {
    "delivered": "sections_delivered",
    "failed": "sections_failed",
    "skipped_locked": "sections_skipped_locked",
}


def _record_section(run_id, key: str, outcome: str, detail: dict | None = None, *, attempt: int = 0) -> None:
    """Add the section to the run row's list for its outcome (skipped_locked entries carry the lock); only
    while the run is running on `attempt` (its resume_count when this worker claimed it)."""
    field = RECORDED_OUTCOMES[outcome]
    with transaction.atomic():
        run = SynthesisRun.objects.select_for_update().only(field, "status", "resume_count").filter(pk=run_id).first()
        if run is None or run.status != RunStatus.RUNNING or run.resume_count != attempt:
            return
        values = list(getattr(run, field))
        entry = {"section_key": key, **detail} if detail is not None else key
        if all((v.get("section_key") if isinstance(v, dict) else v) != key for v in values):
            values.append(entry)
        setattr(run, field, values)
        run.heartbeat_at = timezone.now()
        run.save(update_fields=[field, "heartbeat_at", "updated_at"])


def _check_running_and_keep_before(run: SynthesisRun, key: str, before: Section | None) -> None:
    """Refuse the write (SectionWriteRefused) unless the run is still running and not asked to stop; else
    record the section as it is now on the run's `sections_before`, the first time the run writes it (what
    a rollback returns it to). Called inside the memo's serialized write, so the record is committed before
    the section is. A worker whose run was resumed elsewhere meanwhile (resume_count moved on) is refused
    too: only the worker of the current attempt writes."""
    if telemetry.cancel_requested(run.deal_id, run.pk):
        raise SectionWriteRefused()
    with transaction.atomic():
        row = (
            SynthesisRun.objects.select_for_update()
            .only("status", "sections_before", "resume_count")
            .filter(pk=run.pk)
            .first()
        )
        if row is None or row.status != RunStatus.RUNNING or row.resume_count != run.resume_count:
            raise SectionWriteRefused()
        if key not in row.sections_before:
            row.sections_before = {**row.sections_before, key: before.to_store() if before is not None else None}
            row.save(update_fields=["sections_before", "updated_at"])


def _write_ai_section(
    *, deal: Deal, user: User | None, run: SynthesisRun, plan: SectionPlan, markdown: str
) -> SectionWrite:
    """Write a drafted section through the memo's write path; a section someone holds the lock of (with
    collaboration off) is left as it is and reported as skipped.

    Raises SectionWriteRefused (the run ended or was cancelled meanwhile: checked inside the
    serialized write, so nothing lands after a cancel), MemoApproved, StoreUnavailable.
    """

    def change(memo: Memo, now: str) -> None:
        # inside the deal's serialized write: a cancel (and a rollback, which writes after it) sees this write
        # whole, or this write sees the cancel and is refused
        _check_running_and_keep_before(run, plan.key, memo.sections.get(plan.key))
        section = memo.sections.get(plan.key)
        if section is None:
            spec = memo.template.section(plan.key)
            section = memo.sections[plan.key] = (
                Section.blank(spec, now=now)
                if spec is not None
                else Section(key=plan.key, title=plan.title, order=plan.order, required=plan.required, custom=True)
            )
        section.markdown = markdown
        section.source = Source.AI
        section.delivery = Delivery.DELIVERED
        section.citations = parse_citations(markdown)
        section.state = SectionState.DRAFT
        section.updated_at = now
        section.updated_by = None
        section.updated_by_name = AI_AUTHOR
        section.run_id = str(run.pk)
        memo.is_blank = False

    outcome = memo_write(
        deal=deal,
        user=user,
        change=change,
        event="run_section_delivered",
        event_payload={"run_id": str(run.pk), "section_key": plan.key},
        locks=LockRule.SKIP,
    )
    lock = outcome.skipped_locked.get(plan.key)
    if lock is None:
        return SectionWrite(version=outcome.memo.version)
    events.emit(
        deal.pk,
        "run_section_skipped",
        {"run_id": str(run.pk), "section_key": plan.key, "reason": "skipped_locked", **lock.as_body()},
    )
    return SectionWrite(version=outcome.memo.version, locked_by=lock.as_body())


def _write_section_failed(*, deal: Deal, user: User | None, run: SynthesisRun, key: str) -> None:
    """Mark an empty section's delivery failed (a section with text keeps it, and its delivery)."""

    def change(memo: Memo, now: str) -> None:
        section = memo.sections.get(key)
        if section is not None and not section.populated:
            section.delivery = Delivery.FAILED

    memo_write(deal=deal, user=user, change=change, event="run_section_failed", locks=LockRule.SKIP)


def run_execute(*, run_id) -> str:
    """Claim and execute a queued run (the Celery task's body); returns its final status, or "skipped"
    when it was not claimable (not queued any more, or waiting behind another run of the deal)."""
    run = _claim(run_id)
    if run is None:
        return "skipped"
    deal = Deal.objects.get(pk=run.deal_id)
    user = User.objects.filter(pk=run.created_by_id).first() if run.created_by_id else None
    started = time.monotonic()
    if _after_crash(run):  # requeued by the sweeper after its worker died
        return _resume_execute(run=run, deal=deal, user=user, started=started)
    if run.input_answer is not None:
        return _continue_with_input(run, deal, user, started)
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
    return _execute_and_finish(run=run, deal=deal, user=user, started=started)


def _after_crash(run: SynthesisRun) -> bool:
    """Whether this claim follows the sweeper's requeue of a run whose worker died (not an answer to its
    question, which also queues it again, and may come after an earlier resume)."""
    if run.requeued_at is None:
        return False
    return run.input_answered_at is None or run.requeued_at > run.input_answered_at


def _execute_and_finish(
    *,
    run: SynthesisRun,
    deal: Deal,
    user: User | None,
    started: float,
    delivered_before: frozenset[str] | None = None,
    answer: dict | None = None,
) -> str:
    """Run the graph (from its checkpoint when `delivered_before` is given: a resume after a crash; with the
    human-input `answer` when it was answered) and end the run with its outcome, or pause it for input; every
    end is fenced by the attempt this worker claimed. Returns the run's status."""
    attempt = run.resume_count
    try:
        results = _execute(run, deal, user, delivered_before=delivered_before, answer=answer)
    except RunSuperseded:
        logger.warning("run %s: resumed on another worker meanwhile; this worker drops it", run.pk)
        return _status_of(run.pk)
    except InputRequired as paused:
        return _pause_for_input(run, paused.request)
    except SoftTimeLimitExceeded:
        finished = run_finish(
            run_id=run.pk,
            status=RunStatus.FAILED,
            elapsed=time.monotonic() - started,
            error=f"The run was stopped {config.time_budget_seconds() + 60} s after it started "
            "(its time budget plus a minute).",
            attempt=attempt,
        )
        return finished.status if finished else _status_of(run.pk)
    except Exception as exc:  # noqa: BLE001 - any failure ends the run failed, with its reason
        logger.exception("run %s failed", run.pk)
        finished = run_finish(
            run_id=run.pk,
            status=RunStatus.FAILED,
            error=f"{exc.__class__.__name__}: {exc}",
            elapsed=time.monotonic() - started,
            attempt=attempt,
        )
        return finished.status if finished else _status_of(run.pk)
    status, error = _outcome(run, results)
    finished = run_finish(
        run_id=run.pk,
        status=status,
        error=error,
        results=results,
        elapsed=time.monotonic() - started,
        attempt=attempt,
    )
    return finished.status if finished else _status_of(run.pk)


def _continue_with_input(run: SynthesisRun, deal: Deal, user: User | None, started: float) -> str:
    """A run resumed with its human-input answer: the graph goes on from its interrupt (the checkpoint)."""
    telemetry.discourse_emit(
        deal.pk,
        "run",
        {
            "run_id": str(run.pk),
            "agent": "synthesis",
            "text": f"Continuing with the answer: notes for {len(run.input_answer.get('notes') or {})} section(s).",
        },
    )
    return _execute_and_finish(run=run, deal=deal, user=user, started=started, answer=run.input_answer)


def _pause_for_input(run: SynthesisRun, request: dict) -> str:
    """The graph stopped at its human-input interrupt: running -> waiting_input, with `input_request` (what it
    needs, the JSON Schema of the answer, when it expires); the worker is free. A run asked to stop meanwhile is
    cancelled instead. Returns the run's status."""
    now = timezone.now()
    expires = now + timedelta(seconds=config.input_timeout_seconds())
    recorded = {**request, "requested_at": now.isoformat(), "expires_at": expires.isoformat()}
    with transaction.atomic():
        row = SynthesisRun.objects.select_for_update().filter(pk=run.pk).first()
        if row is None or row.status != RunStatus.RUNNING or row.resume_count != run.resume_count:
            return row.status if row is not None else "unknown"  # ended, or resumed by another worker
        stopping = telemetry.cancel_requested(run.deal_id, run.pk)
        if not stopping:
            row.status, row.input_request, row.input_requested_at = RunStatus.WAITING_INPUT, recorded, now
            row.heartbeat_at = now
            row.save(update_fields=["status", "input_request", "input_requested_at", "heartbeat_at", "updated_at"])
    if stopping:
        finished = run_finish(run_id=run.pk, status=RunStatus.CANCELLED, error="Cancelled on request.")
        return finished.status if finished else _status_of(run.pk)
    section_keys = [section["key"] for section in request.get("sections") or []]
    telemetry.emit_run_event(run.deal_id, run.pk, "input_required", {"input_request": recorded})
    events.emit(
        run.deal_id,
        "run_input_required",
        {
            "run_id": str(run.pk),
            "sections": section_keys,
            "reason": request.get("reason"),
            "expires_at": expires.isoformat(),
        },
        actor_id=run.created_by_id,
    )
    telemetry.discourse_emit(
        run.deal_id,
        "run",
        {"run_id": str(run.pk), "agent": "synthesis", "text": f"Waiting for input on {len(section_keys)} section(s)."},
    )
    return RunStatus.WAITING_INPUT


def _status_of(run_id) -> str:
    return SynthesisRun.objects.filter(pk=run_id).values_list("status", flat=True).first() or "unknown"


def _execute(
    run: SynthesisRun,
    deal: Deal,
    user: User | None,
    *,
    delivered_before: frozenset[str] | None = None,
    answer: dict | None = None,
) -> list[dict]:
    memo = read_memo(deal.pk)
    plans = section_plans(deal=deal, memo=memo)
    sections = [key for key in run.requested_sections if key in plans]
    guard = _RunGuard(run)
    drafter = config.drafter_class()()
    ctx = RunContext(
        deal_id=str(deal.pk),
        deal_name=deal.name,
        template_key=memo.template.key if memo else get_template(deal.template_key).key,
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
        record=lambda key, outcome, detail=None: _record_section(
            run.pk, key, outcome, detail, attempt=run.resume_count
        ),
        beat=guard.beat,
        cancelled=guard.cancelled,
        superseded=guard.superseded,
        delivered_before=delivered_before or frozenset(),
    )
    return run_graph(
        ctx=ctx,
        sections=sections,
        thread_id=run.thread_id,
        checkpointer=get_checkpointer(),
        max_concurrency=config.max_concurrency(),
        answer=answer,
        from_checkpoint=delivered_before is not None,
    )


def _outcome(run: SynthesisRun, results: list[dict]) -> tuple[str, str]:
    delivered = [r for r in results if r["status"] == "delivered"]
    failed = [r for r in results if r["status"] == "failed"]
    skipped = [r for r in results if r["status"] == "skipped_locked"]
    missing = [r["section_key"] for r in results if r["status"] == MISSING]
    if any(r["status"] == "cancelled" for r in results):
        return RunStatus.CANCELLED, "Cancelled on request."
    reasons = "; ".join(f"{r['section_key']}: {r['error']}" for r in failed[:3])
    if failed and not delivered:
        return RunStatus.FAILED, f"No section could be drafted. {reasons}".strip()
    notes = [f"{len(failed)} section(s) failed. {reasons}"] if failed else []
    if missing:
        # asked for input once, answered, still nothing to draft from: listed, and the run succeeds
        notes.append(f"{len(missing)} section(s) delivered as missing, nothing to draft from: {', '.join(missing)}.")
    if skipped:
        keys = ", ".join(r["section_key"] for r in skipped)
        notes.append(f"{len(skipped)} section(s) left as they were because someone holds their lock: {keys}.")
    return RunStatus.SUCCEEDED, " ".join(notes)


# --- finish -----------------------------------------------------------------------------------------------
def run_finish(
    *,
    run_id,
    status: str,
    error: str = "",
    results: list[dict] | None = None,
    elapsed: float | None = None,
    only_if: tuple[str, ...] = tuple(ACTIVE_RUN_STATUSES),
    attempt: int | None = None,
) -> SynthesisRun | None:
    """End a run with `status` if it is still in one of `only_if` (and, with `attempt`, still on that
    resume_count: a worker whose run was resumed elsewhere ends nothing); returns it, or None when someone
    else ended it first. Records head.last_run on the memo, closes the event stream (workflow_finished,
    done), emits run_finished, and kicks the next queued run of the deal."""
    with transaction.atomic():
        run = SynthesisRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.status not in only_if:
            return None
        if attempt is not None and run.resume_count != attempt:
            return None
        delivered = list(run.sections_delivered)
        failed = [k for k in run.sections_failed if k not in delivered]
        skipped = [entry["section_key"] for entry in run.sections_skipped_locked]
        missing = [k for k in run.requested_sections if k not in delivered and k not in failed and k not in skipped]
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
    if status == RunStatus.CANCELLED and run.cancel_action == CancelAction.ROLLBACK:
        # the run is terminal (committed above): any write of its worker from now on is refused
        run = _rollback(deal=deal, run=run)
    _record_last_run(deal, run)
    inputs = {"kind": run.kind, "sections": run.requested_sections, "instructions": run.instructions}
    outputs = {"delivered": delivered, "missing": missing, "failed": failed, "skipped_locked": skipped}
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
            "text": f"Run {status}: {len(delivered)} delivered, {len(missing)} missing, {len(failed)} failed"
            + (f", {len(skipped)} skipped (locked)." if skipped else "."),
        },
    )
    webhook_schedule(run=run)
    _kick_next(run.deal_id)
    return run


def _record_last_run(deal: Deal, run: SynthesisRun) -> None:
    """head.last_run = {run_id, status, missing_required, delivered, missing, failed, skipped_locked,
    finished_at}; a snapshot when the run delivered anything (a restore point of what the AI wrote)."""
    try:
        memo = read_memo(deal.pk)
    except StoreUnavailable:
        logger.warning("last_run of run %s not recorded: the Store is unavailable", run.pk)
        return
    plans = section_plans(deal=deal, memo=memo)
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
        "skipped_locked": [entry["section_key"] for entry in run.sections_skipped_locked],
        "finished_at": run.finished_at.isoformat(),
    }

    def change(memo: Memo, now: str) -> None:
        memo.last_run = last_run

    try:
        memo_write(
            deal=deal,
            user=None,
            change=change,
            snapshot=f"drafting run {run.pk} {run.status}" if run.sections_delivered else None,
            event="run_recorded",
        )
    except MemoApproved:
        logger.info("last_run of run %s not recorded: the memo was approved meanwhile", run.pk)
    except StoreUnavailable:
        logger.warning("last_run of run %s not recorded: the Store is unavailable", run.pk)


def _kick_next(deal_id, *, unless_sent_after: datetime | None = None) -> None:
    """Send the deal's oldest queued run to a worker on commit; with `unless_sent_after`, not if it was sent
    since then (the sweeper: its message is presumably still on the broker)."""
    nxt = (
        SynthesisRun.objects.filter(deal_id=deal_id, status=RunStatus.QUEUED)
        .order_by("created_at")
        .values_list("pk", "sent_at")
        .first()
    )
    if nxt is None:
        return
    run_id, sent_at = nxt
    if unless_sent_after is not None and sent_at is not None and sent_at >= unless_sent_after:
        return
    transaction.on_commit(lambda: _enqueue(run_id))


# --- cancel -----------------------------------------------------------------------------------------------
def _rollback(*, deal: Deal, run: SynthesisRun) -> SynthesisRun:
    """Return every section the (terminal) run wrote to its content before the run, as one new memo version
    (snapshotted); records `rolled_back_sections`. A section someone changed after the run wrote it (its
    `run_id` is no longer this run: a person's edit, or a later run's draft) is left as it is, and so is,
    with collaboration off, a section someone holds the lock of. Safe against the run's own late writes:
    it runs after the run is terminal, in the memo's serialized write, which refuses them from then on."""
    reverted: list[str] = []

    def change(memo: Memo, now: str) -> None:
        reverted.clear()
        before = SynthesisRun.objects.filter(pk=run.pk).values_list("sections_before", flat=True).first() or {}
        for key, stored in before.items():
            current = memo.sections.get(key)
            if current is None or current.run_id != str(run.pk) or current.source != Source.AI:
                continue  # changed since the run wrote it (a person's edit, a later run): that stays
            if stored is not None:
                memo.sections[key] = Section.from_store(stored)
            else:
                spec = memo.template.section(key)
                if spec is not None:
                    memo.sections[key] = Section.blank(spec, now=now)
                else:
                    memo.sections.pop(key)
            reverted.append(key)

    try:
        outcome = memo_write(
            deal=deal,
            user=None,
            change=change,
            event="run_rolled_back",
            event_payload={"run_id": str(run.pk)},
            snapshot=f"rollback of drafting run {run.pk}",
            locks=LockRule.SKIP,
        )
        rolled_back = [key for key in reverted if key not in outcome.skipped_locked]
    except MemoApproved:
        logger.info("run %s not rolled back: the memo is approved", run.pk)
        rolled_back = []
    with transaction.atomic():
        run = SynthesisRun.objects.select_for_update().get(pk=run.pk)
        run.cancel_action = CancelAction.ROLLBACK
        run.rolled_back_sections = sorted(set(run.rolled_back_sections) | set(rolled_back))
        run.save(update_fields=["cancel_action", "rolled_back_sections", "updated_at"])
    return run


def _end_cancelled(*, deal: Deal, run_id, user: User | None, error: str) -> None:
    """Raise the run's cancel flag and end it cancelled now (its writes are refused from then on; a run
    marked for rollback is reverted by run_finish)."""
    try:
        telemetry.request_cancel(deal.pk, run_id)
    except telemetry.REDIS_ERRORS:
        logger.warning("cancel flag of run %s not set: Redis unavailable; the worker reads the row", run_id)
    events.emit(deal.pk, "run_cancel_requested", {"run_id": str(run_id)}, actor_id=user.pk if user else None)
    run_finish(run_id=run_id, status=RunStatus.CANCELLED, error=error)


def run_cancel(
    *,
    deal: Deal,
    run_id: uuid.UUID,
    user: User,
    action: str = CancelAction.INTERRUPT,
    wait: bool = False,
) -> SynthesisRun:
    """Cancel a run and return it (idempotent: a finished run is returned as is).

    `action`: `interrupt` keeps the sections it delivered; `rollback` returns each section it wrote to its
    content before the run, as a new memo version, once the run is terminal (whoever ends it: run_finish
    reverts). A run already cancelled with `interrupt` (or by a multitask strategy) and cancelled again
    with `rollback` is rolled back then, once; any other finished run is returned as it is.

    `wait=False`: a queued run is cancelled at once; a running one gets the cancel flag, which its drafters
    check between and inside nodes; when the worker has not ended it within SYNTHESIS_CANCEL_WAIT_SECONDS
    (dead or stuck), the run is ended here (its later writes are refused). The run returned is terminal.
    `wait=True`: the worker itself must end it: the answer blocks on the run's event stream (XREAD BLOCK,
    until its `done` entry) for at most SYNTHESIS_CANCEL_WAIT_MAX_SECONDS; the run returned may still be
    running (the caller answers 202); the worker ends it at its next check, or the dead-run sweeper.
    Raises RunNotFound.
    """
    run = run_get(deal=deal, run_id=run_id)
    if run.status in TERMINAL_RUN_STATUSES:
        if (
            action == CancelAction.ROLLBACK
            and run.status == RunStatus.CANCELLED
            and run.cancel_action != CancelAction.ROLLBACK
        ):
            return _rollback(deal=deal, run=run)
        return run
    SynthesisRun.objects.filter(pk=run.pk, cancel_requested_at__isnull=True).update(cancel_requested_at=timezone.now())
    # a rollback asked by anyone wins over an interrupt: what it wrote goes, whoever ends it
    marked = SynthesisRun.objects.filter(pk=run.pk).exclude(cancel_action=CancelAction.ROLLBACK)
    marked.update(cancel_action=str(action))
    try:
        telemetry.request_cancel(run.deal_id, run.pk)
    except telemetry.REDIS_ERRORS:
        logger.warning("cancel flag of run %s not set: Redis unavailable; the worker reads the row", run.pk)
    events.emit(deal.pk, "run_cancel_requested", {"run_id": str(run.pk), "action": str(action)}, actor_id=user.pk)
    run_finish(
        run_id=run.pk,
        status=RunStatus.CANCELLED,
        error="Cancelled before it started." if run.started_at is None else "Cancelled while it waited to resume.",
        only_if=(RunStatus.QUEUED,),
    )
    # a run waiting for input has no worker: it ends now (its checkpoint stays until retention sweeps it)
    run_finish(
        run_id=run.pk,
        status=RunStatus.CANCELLED,
        error="Cancelled while waiting for input.",
        only_if=(RunStatus.WAITING_INPUT,),
    )
    waited = config.cancel_wait_max_seconds() if wait else config.cancel_wait_seconds()
    deadline = time.monotonic() + waited
    run.refresh_from_db()
    if run.status in TERMINAL_RUN_STATUSES:
        return run
    # the worker ends the run through run_finish, whose last stream entry is `done`: block on the stream
    try:
        telemetry.wait_run_done(run.deal_id, run.pk, deadline=deadline)
    except telemetry.REDIS_ERRORS:
        logger.warning("run %s: Redis unavailable during the cancel wait; the row is read at the deadline", run.pk)
        time.sleep(max(0.0, deadline - time.monotonic()))
    run.refresh_from_db()
    if run.status in TERMINAL_RUN_STATUSES or wait:
        return run
    run_finish(
        run_id=run.pk,
        status=RunStatus.CANCELLED,
        error=f"Cancelled; the worker did not confirm within {config.cancel_wait_seconds():g} s.",
    )
    run.refresh_from_db()
    return run


# --- dead runs and resume after a crash ------------------------------------------------------------------------
# A run whose worker died (SIGKILL, OOM, a lost machine) stops sending heartbeats. Celery's acks_late cannot
# resume it: with the Redis broker the unacknowledged message comes back only after the visibility timeout
# (an hour), with RabbitMQ at once, while the run still looks alive; either way the message says nothing
# about the run. So the dead-run sweeper decides: a silent run goes back to `queued` with resume_count + 1
# and its task is enqueued again; the worker that claims it continues the LangGraph thread from its last
# checkpoint. resume_count is also a fencing token: a worker that was only silent (stuck, not dead) finds
# its attempt superseded and every write, record and finish of it is refused.
def runs_sweep_dead(*, deal_id=None, now: datetime | None = None) -> list[str]:
    """Resume (up to RUN_MAX_RESUMES times) or fail every running run without a heartbeat within
    SYNTHESIS_DEAD_RUN_SECONDS; end cancelled, not resumed, such a run whose cancel was asked; fail every run
    active for longer than SYNTHESIS_MAX_RUN_SECONDS (a run resumed with input: since the answer); re-enqueue
    queued runs whose message was lost; cancel runs that waited for input too long (runs_expire_waiting).
    Returns the ids of the runs it failed, cancelled or resumed."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=config.dead_run_seconds())
    too_old = now - timedelta(seconds=config.max_run_seconds())
    active = SynthesisRun.objects.filter(status__in=ACTIVE_RUN_STATUSES)
    if deal_id is not None:
        active = active.filter(deal_id=deal_id)
    silent = Q(status=RunStatus.RUNNING) & (
        Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True, started_at__lt=stale)
    )
    # a run's age counts from its creation, or from the answer that resumed it; waiting for input expires apart
    old = (Q(input_answered_at__isnull=True, created_at__lt=too_old) | Q(input_answered_at__lt=too_old)) & ~Q(
        status=RunStatus.WAITING_INPUT
    )
    acted, resumed = [], []
    dead = active.filter(silent | old).only(
        "pk", "status", "created_at", "input_answered_at", "resume_count", "cancel_requested_at"
    )
    for run in dead:
        if (run.input_answered_at or run.created_at) < too_old:
            reason = f"The run was still {run.status} after {config.max_run_seconds() // 3600} hours; it is dead."
            ended = run_finish(run_id=run.pk, status=RunStatus.FAILED, error=reason)
        elif run.cancel_requested_at is not None:
            ended = run_finish(
                run_id=run.pk,
                status=RunStatus.CANCELLED,
                error="Cancelled; its worker stopped before confirming, so it was not resumed.",
                only_if=(RunStatus.RUNNING,),
            )
        elif run.resume_count < config.max_resumes():
            ended = _requeue_dead(run_id=run.pk, stale=stale)
            if ended is not None:
                resumed.append(run.pk)
        else:
            ended = run_finish(run_id=run.pk, status=RunStatus.FAILED, error=_dead_reason(run.resume_count))
        if ended is not None:
            acted.append(str(run.pk))
    waiting = active.filter(status=RunStatus.QUEUED, created_at__lt=stale).exclude(pk__in=resumed)
    for deal in waiting.values_list("deal_id", flat=True).distinct():
        if not SynthesisRun.objects.filter(deal_id=deal, status__in=HOLDING_RUN_STATUSES).exists():
            _kick_next(deal, unless_sent_after=stale)
    return acted + runs_expire_waiting(deal_id=deal_id, now=now)


def _dead_reason(resumes: int) -> str:
    reason = f"The worker sent no heartbeat for {config.dead_run_seconds()} s (killed or stuck)"
    if resumes or config.max_resumes():
        reason += f" after the run was resumed {resumes} time(s) (RUN_MAX_RESUMES={config.max_resumes()})"
    return reason + "; the run is dead."


def _requeue_dead(*, run_id, stale: datetime) -> SynthesisRun | None:
    """running -> queued with resume_count + 1, its task enqueued on commit, if the run is still running,
    still silent and nobody asked to cancel it; returns it, else None."""
    with transaction.atomic():
        run = SynthesisRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.status != RunStatus.RUNNING or run.cancel_requested_at is not None:
            return None
        if (run.heartbeat_at or run.started_at or run.created_at) >= stale:
            return None  # it beat meanwhile: alive after all
        run.status, run.requeued_at = RunStatus.QUEUED, timezone.now()
        run.resume_count += 1
        run.save(update_fields=["status", "resume_count", "requeued_at", "updated_at"])
        transaction.on_commit(lambda: _enqueue(run.pk))
    logger.warning("run %s: no heartbeat since %s; resuming it (resume %s)", run.pk, run.heartbeat_at, run.resume_count)
    return run


def _delivered_before(run: SynthesisRun, memo: Memo | None) -> frozenset[str]:
    """Sections the run delivered before its worker died: recorded on the row, or in the memo as this run's
    (written just before the worker died, not yet recorded)."""
    done = set(run.sections_delivered)
    for key, section in memo.sections.items() if memo is not None else ():
        if section.run_id == str(run.pk) and section.source == Source.AI and section.delivery == Delivery.DELIVERED:
            done.add(key)
    return frozenset(done & set(run.requested_sections))


def _resume_execute(*, run: SynthesisRun, deal: Deal, user: User | None, started: float) -> str:
    """Continue a run whose worker died from its last checkpoint: announce `run_resumed` (run stream, canvas
    events, trace, discourse) and run the graph on the same thread with no input."""
    if run.cancel_requested_at is not None:  # asked to stop while it waited: not resumed
        finished = run_finish(
            run_id=run.pk,
            status=RunStatus.CANCELLED,
            error="Cancelled while it waited to resume.",
            attempt=run.resume_count,
        )
        return finished.status if finished else _status_of(run.pk)
    done = _delivered_before(run, read_memo(deal.pk))
    ended = set(run.sections_failed) | {entry["section_key"] for entry in run.sections_skipped_locked}
    remaining = [key for key in run.requested_sections if key not in done and key not in ended]
    details = {
        "resume_count": run.resume_count,
        "max_resumes": config.max_resumes(),
        "delivered": sorted(done),
        "remaining": remaining,
    }
    telemetry.emit_run_event(deal.pk, run.pk, "run_resumed", details)
    telemetry.trace_append(
        deal.pk,
        run.pk,
        {
            "node": "run_resumed",
            "drafter": run.drafter,
            "outputs": details,
            "error": None,
            "elapsed": 0.0,
        },
    )
    events.emit(deal.pk, "run_resumed", {"run_id": str(run.pk), **details}, actor_id=run.created_by_id)
    telemetry.discourse_emit(
        deal.pk,
        "run",
        {
            "run_id": str(run.pk),
            "agent": "synthesis",
            "text": f"Resumed after its worker stopped (resume {run.resume_count} of {config.max_resumes()}): "
            f"{len(done)} section(s) already delivered, {len(remaining)} to go.",
        },
    )
    # elapsed from the run's first start: the time lost with the dead worker counts
    first_start = started - (timezone.now() - run.started_at).total_seconds() if run.started_at else started
    return _execute_and_finish(
        run=run, deal=deal, user=user, started=first_start, delivered_before=done, answer=run.input_answer
    )


def runs_expire_waiting(*, deal_id=None, now: datetime | None = None) -> list[str]:
    """Cancel every run that has waited for input longer than RUN_INPUT_TIMEOUT_SECONDS (what it drafted stays);
    returns their ids. Run by the beat sweeper with the dead runs, and whenever a deal's runs are listed."""
    now = now or timezone.now()
    timeout = config.input_timeout_seconds()
    expired = []
    waiting = SynthesisRun.objects.filter(
        status=RunStatus.WAITING_INPUT, input_requested_at__lt=now - timedelta(seconds=timeout)
    )
    if deal_id is not None:
        waiting = waiting.filter(deal_id=deal_id)
    for run_id in waiting.values_list("pk", flat=True):
        ended = run_finish(
            run_id=run_id,
            status=RunStatus.CANCELLED,
            error=f"Nobody answered within RUN_INPUT_TIMEOUT_SECONDS ({timeout} s); the run expired.",
            only_if=(RunStatus.WAITING_INPUT,),
        )
        if ended is not None:
            expired.append(str(run_id))
    return expired


# --- reset --------------------------------------------------------------------------------------------------
def canvas_reset(*, deal: Deal, user: User) -> dict:
    """Return the memo to blank, keeping what it was as a restorable version; cancel the deal's active
    runs; delete its run streams, traces, cancel flags, brush findings, discourse and cached session
    (Redis) and its LangGraph checkpoint threads. Run rows stay as history.

    The blanking is checked first (a dry run of the same write): an approved memo or, with collaboration
    off, a section locked by someone else refuses the reset before any run is cancelled or anything
    deleted.

    Raises MemoApproved (an approved memo must be reopened first), SectionLocked, StoreUnavailable,
    redis errors.
    """

    def blank(memo: Memo, now: str) -> None:
        blanked = {spec.key: Section.blank(spec, now=now) for spec in memo.template.sections}
        for key in blanked:  # an already blank section stays as it is
            old = memo.sections.get(key)
            if old is not None and not old.populated and old.state == SectionState.DRAFT:
                blanked[key] = old
        memo.sections = blanked
        memo.state = DocumentState.DRAFT
        memo.is_blank = True
        memo.last_run = None

    memo = read_memo(deal.pk)  # as it was before the reset
    try:
        memo_write(deal=deal, user=user, change=blank, event="memo_reset", dry_run=True)
    except MemoApproved:
        raise MemoApproved("The memo is approved; an owner must reopen it before it can be reset.") from None
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
    if memo is not None and (memo.populated_keys() or any(s.custom for s in memo.sections.values())):
        if memo.versions and memo.versions[-1] == memo.version:
            restorable = memo.version  # its latest version is a snapshot already
        else:
            outcome = memo_write(
                deal=deal,
                user=user,
                change=lambda m, now: None,
                snapshot="before reset",
                event="memo_snapshot",
                always=True,
            )
            restorable = outcome.memo.version

    outcome = memo_write(deal=deal, user=user, change=blank, snapshot="reset", event="memo_reset", always=True)
    threads = delete_deal_threads(deal.pk)
    removed = telemetry.clear_deal_run_state(deal.pk)
    return {
        "success": True,
        "version": outcome.memo.version,
        "restorable_version": restorable,
        "cancelled_runs": cancelled,
        "checkpoint_threads_deleted": threads,
        "redis_keys_deleted": removed,
    }


# --- debug ----------------------------------------------------------------------------------------------------
def section_debug(*, deal: Deal, section_key: str, inputs: dict) -> dict:
    """Run one drafter synchronously on the deal's sources (or on `inputs` overrides); nothing is written.

    Bounded to one section and SYNTHESIS_DEBUG_SECONDS (default 5 s) of drafting, so it fits in a request:
    the drafter checks the bound between the deltas it streams, and one still going then stops and `error`
    says so (a model call that blocks longer is bounded by its own client timeout). Whole drafts are runs
    (POST /generate).

    Raises SectionNotFound, StoreUnavailable.
    """
    memo = read_memo(deal.pk)
    plans = section_plans(deal=deal, memo=memo)
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
        template_key=memo.template.key if memo else deal.template_key,
        section_key=section_key,
        title=plan.title,
        order=plan.order,
        required=plan.required,
        retrieval_query=query,
        instructions=instructions,
        hits=hits,
        metrics=metrics,
    )
    deadline = time.monotonic() + min(settings.SYNTHESIS_DEBUG_SECONDS, config.time_budget_seconds())
    error, markdown, usage = None, "", {}
    try:
        draft = drafter.draft(
            request, emit=deltas.append, should_stop=lambda: "time_budget" if time.monotonic() > deadline else None
        )
        markdown, usage = draft.markdown, draft.usage
    except DraftFailed as exc:
        error = str(exc)
    except DraftStopped:
        error = (
            f"The drafter did not finish within SYNTHESIS_DEBUG_SECONDS ({settings.SYNTHESIS_DEBUG_SECONDS} s); "
            "draft the whole section with POST /generate or /sections/{key}/regenerate."
        )
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
        "citations": with_document_ids(parse_citations(markdown), document_ids_by_filename(deal_id=deal.pk)),
        "deltas": len(deltas),
        "usage": usage,
        "error": error,
        "elapsed_ms": round((time.monotonic() - started) * 1000, 1),
    }
