"""Reads of runs: one run, a deal's runs, a run's trace."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from django.db.models import DateTimeField, QuerySet, Value
from django.db.models.functions import Coalesce

from canvas.models import ACTIVE_RUN_STATUSES, SynthesisRun
from canvas.runs.errors import RunNotFound
from canvas.runs.synthesis import telemetry
from canvas_project.replicas import replica_reads
from deals.models import Deal

END_OF_TIME = datetime(9999, 12, 31, tzinfo=UTC)
RUN_ORDERINGS = ("created_at", "-created_at", "finished_at", "-finished_at", "status", "-status")


def active_run_ids(*, deal_id) -> list[str]:
    """Ids of the deal's runs that are queued, running or waiting for input."""
    runs = SynthesisRun.objects.filter(deal_id=deal_id, status__in=ACTIVE_RUN_STATUSES)
    return [str(pk) for pk in runs.values_list("pk", flat=True)]


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
) -> QuerySet[SynthesisRun]:
    """The deal's runs, filtered, in `ordering` then by id (a unique tie-breaker for the cursor); from a
    replica when usable (canvas_project.replicas)."""
    runs = replica_reads(SynthesisRun.objects).filter(deal=deal).select_related("created_by")
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
    if ordering.lstrip("-") == "finished_at":
        # a keyset cursor cannot compare NULL: an unfinished run sorts as finished at the end of time, where
        # PostgreSQL puts NULLs anyway (last ascending, first descending)
        runs = runs.annotate(finished_sort=Coalesce("finished_at", Value(END_OF_TIME, output_field=DateTimeField())))
        ordering = ordering.replace("finished_at", "finished_sort")
    return runs.order_by(ordering, "-pk" if ordering.startswith("-") else "pk")


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
