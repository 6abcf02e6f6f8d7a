"""Celery tasks of the internal API app. Thin: each calls one service.

Beat: `internal_api.sweep_idempotency_records` every hour deletes engine idempotency records older than
IDEMPOTENCY_RECORD_RETENTION_HOURS.
"""

from __future__ import annotations

from celery import shared_task

from internal_api.idempotency import idempotency_records_sweep


@shared_task(name="internal_api.sweep_idempotency_records", ignore_result=True)
def sweep_idempotency_records() -> int:
    """Delete expired idempotency records; returns how many."""
    return idempotency_records_sweep()
