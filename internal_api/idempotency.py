"""Retention of the engine mutations' idempotency records (internal_api.models.IdempotencyRecord).

A record lets an engine retry a mutation with the same Idempotency-Key and get the first result back.
Retries come within seconds or minutes, so a record is kept IDEMPOTENCY_RECORD_RETENTION_HOURS (24 h by
default) and then deleted by the beat sweeper; after that the key is free again. A record left "in
progress" by a request whose process died goes the same way, which frees its key.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from internal_api.models import IdempotencyRecord

# Deleted in batches, each its own short statement, so a large backlog never holds one long transaction.
SWEEP_BATCH = 5000


def idempotency_records_sweep(*, now: datetime | None = None) -> int:
    """Delete the records older than the retention; returns how many went."""
    cutoff = (now or timezone.now()) - timedelta(hours=settings.IDEMPOTENCY_RECORD_RETENTION_HOURS)
    deleted = 0
    while True:
        batch = list(
            IdempotencyRecord.objects.filter(created_at__lt=cutoff)
            .order_by("created_at")
            .values_list("pk", flat=True)[:SWEEP_BATCH]
        )
        if not batch:
            return deleted
        deleted += IdempotencyRecord.objects.filter(pk__in=batch).delete()[0]
