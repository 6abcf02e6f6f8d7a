"""Celery tasks of the internal API app. Thin: each calls one service.

Beat: `internal_api.sweep_idempotency_records` every hour deletes engine idempotency records older than
IDEMPOTENCY_RECORD_RETENTION_HOURS; `internal_api.sweep_chat_threads` every hour deletes chat threads idle
CHAT_RETENTION_DAYS and prunes quiet threads' checkpoints to the latest (internal_api.retention).
"""

from __future__ import annotations

from celery import shared_task

from internal_api.idempotency import idempotency_records_sweep
from internal_api.retention import chat_threads_sweep


@shared_task(name="internal_api.sweep_idempotency_records", ignore_result=True)
def sweep_idempotency_records() -> int:
    """Delete expired idempotency records; returns how many."""
    return idempotency_records_sweep()


@shared_task(name="internal_api.sweep_chat_threads", ignore_result=True)
def sweep_chat_threads() -> str:
    return str(chat_threads_sweep())
