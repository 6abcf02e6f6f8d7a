"""Celery tasks of the canvas app. Thin: each calls one service.

Beat: `canvas.sweep_dead_runs` every 60 s fails runs whose worker stopped sending heartbeats (killed
or stuck) or that outlived SYNTHESIS_MAX_RUN_SECONDS, and re-enqueues queued runs whose message was
lost. The same sweep runs whenever a deal's runs are listed. `canvas.sweep_run_checkpoints` every hour
bounds the runs' LangGraph checkpoints (canvas.runs.retention).
"""

from __future__ import annotations

from celery import shared_task

from canvas.runs import services as runs
from canvas.runs.retention import run_checkpoints_sweep


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
