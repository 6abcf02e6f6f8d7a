"""Celery tasks of the canvas app. Thin: each calls one service.

Beat: `canvas.sweep_dead_runs` every 60 s fails runs whose worker stopped sending heartbeats (killed
or stuck) or that outlived SYNTHESIS_MAX_RUN_SECONDS, and re-enqueues queued runs whose message was
lost. The same sweep runs whenever a deal's runs are listed. `canvas.sweep_run_checkpoints` every hour
bounds the runs' LangGraph checkpoints (canvas.runs.retention).

`canvas.deliver_run_webhook` POSTs an ended run's record to its webhook, and retries itself with backoff
(canvas.runs.webhook_delivery).
"""

from __future__ import annotations

from celery import shared_task

from canvas.runs import services as runs
from canvas.runs.retention import run_checkpoints_sweep
from canvas.runs.webhook_delivery import run_webhook_deliver
from canvas.runs.webhooks import WEBHOOK_TASK


@shared_task(name=runs.RUN_TASK, acks_late=True, ignore_result=True)
def run_synthesis(run_id: str) -> str:
    """Execute one queued run; returns its final status ("skipped" when it was not claimable)."""
    return runs.run_execute(run_id=run_id)


@shared_task(name="canvas.sweep_dead_runs", ignore_result=True)
def sweep_dead_runs() -> int:
    return len(runs.runs_sweep_dead())


@shared_task(name="canvas.sweep_run_checkpoints", ignore_result=True)
def sweep_run_checkpoints() -> str:
    return str(run_checkpoints_sweep())


@shared_task(name=WEBHOOK_TASK, bind=True, acks_late=True, ignore_result=True, max_retries=None)
def deliver_run_webhook(self, run_id: str) -> None:
    """One delivery attempt; a failed one that has attempts left is retried after its backoff (the attempts are
    counted on the run, WEBHOOK_MAX_ATTEMPTS in all, so Celery's own retry count is not the bound)."""
    retry_in = run_webhook_deliver(run_id=run_id)
    if retry_in is not None:
        raise self.retry(countdown=retry_in)
