"""Bounded checkpoint data of drafting runs (the hourly beat task `canvas.sweep_run_checkpoints`).

A run checkpoints its workflow on thread `deal:<D>:run:<id>` (LangGraph's PostgresSaver): one checkpoint per
super-step, each with its channel blobs. Once the run is terminal only its latest checkpoint can matter
(what a run record, a debug read or a resume would load), so the sweep prunes the rest with LangGraph's own
`prune(strategy="keep_latest")`; RUN_CHECKPOINT_RETENTION_DAYS after the run finished the thread goes
entirely. A thread whose run row no longer exists (a deleted deal whose cleanup did not finish) goes too.
Queued and running runs are never touched.

The sweep pages through the checkpoint threads that exist (not through every run ever made), so its cost
follows what is still stored.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from canvas.models import TERMINAL_RUN_STATUSES, SynthesisRun
from canvas_project.store import checkpoint_threads_page, prune_threads, threads_with_history

logger = logging.getLogger(__name__)


@dataclass
class SweepResult:
    deleted: int = 0  # threads deleted whole
    pruned: int = 0  # threads cut down to their latest checkpoint

    def __str__(self) -> str:
        return f"{self.deleted} threads deleted, {self.pruned} pruned to their latest checkpoint"


def _run_id(thread_id: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(thread_id.rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return None


def run_checkpoints_sweep(*, now: datetime | None = None, batch: int | None = None) -> SweepResult:
    now = now or timezone.now()
    batch = batch or settings.CHECKPOINT_SWEEP_BATCH
    cutoff = now - timedelta(days=settings.RUN_CHECKPOINT_RETENTION_DAYS)
    result = SweepResult()
    after = ""
    while page := checkpoint_threads_page("run", after=after, limit=batch):
        after = page[-1]
        ids = {thread: _run_id(thread) for thread in page}
        runs = {
            run.pk: run
            for run in SynthesisRun.objects.filter(pk__in=[i for i in ids.values() if i]).only(
                "pk", "deal_id", "status", "finished_at"
            )
        }
        expired, finished = [], []
        for thread, run_id in ids.items():
            run = runs.get(run_id)
            if run is None or str(run.deal_id) not in thread:
                expired.append(thread)  # an orphan: its run (or its deal) is gone
            elif run.status in TERMINAL_RUN_STATUSES:
                (expired if (run.finished_at or now) < cutoff else finished).append(thread)
        prune_threads(expired, keep_latest=False)
        result.deleted += len(expired)
        for thread in threads_with_history(finished):
            try:
                prune_threads([thread], keep_latest=True)
            except Exception:  # noqa: BLE001 - a concurrent change of that thread; the next sweep retries it
                logger.warning("pruning checkpoint thread %s failed; retried at the next sweep", thread, exc_info=True)
                continue
            result.pruned += 1
    if result.deleted or result.pruned:
        logger.info("run checkpoints: %s", result)
    return result
