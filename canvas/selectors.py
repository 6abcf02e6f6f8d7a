"""Reads of the canvas app."""

from __future__ import annotations

from canvas.models import ACTIVE_RUN_STATUSES, SynthesisRun


def active_run_ids(*, deal_id) -> list[str]:
    """Ids of the deal's runs that are queued or running."""
    return [str(pk) for pk in SynthesisRun.objects.filter(deal_id=deal_id, status__in=ACTIVE_RUN_STATUSES)
            .values_list("pk", flat=True)]
