"""Celery tasks of the deals app. Thin: each calls one service.

Beat: `deals.sweep_stuck_ingestions` every 5 minutes fails documents stuck in processing (the same sweep
also runs at the start of every ingestion) and re-enqueues documents queued for 20 minutes whose
message was lost.
"""

from __future__ import annotations

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded

from deals.documents import services as document_services

# A task still digitizing after 15 minutes is stopped, well before the 20-minute stall sweep.
INGEST_SOFT_TIME_LIMIT = 15 * 60


@shared_task(
    name=document_services.INGEST_TASK,
    acks_late=True,
    soft_time_limit=INGEST_SOFT_TIME_LIMIT,
    time_limit=INGEST_SOFT_TIME_LIMIT + 60,
)
def ingest_document(document_id: str) -> str | None:
    """Digitize one document; returns its final state, or None when there was nothing to do."""
    try:
        document = document_services.document_ingest(document_id=document_id)
    except SoftTimeLimitExceeded:
        document_services.document_fail(
            document_id=document_id, reason="ingestion took longer than 15 minutes and was stopped"
        )
        return "failed"
    return document.state if document is not None else None


@shared_task(name="deals.sweep_stuck_ingestions")
def sweep_stuck_ingestions() -> int:
    """Fail stalled ingestions and re-enqueue lost ones; returns how many it failed."""
    failed = document_services.fail_stuck_ingestions()
    document_services.requeue_lost_ingestions()
    return failed
