"""PostgreSQL records of the canvas (memo content itself lives in the LangGraph Store)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_RUN_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING)


class SynthesisRun(models.Model):
    """One run of the drafting workflow on a deal (LangGraph thread `deal:<D>:run:<id>`)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    deal = models.ForeignKey("deals.Deal", on_delete=models.CASCADE, related_name="runs")
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    kind = models.CharField(max_length=32, default="generate", help_text="generate or regenerate")
    requested_sections = models.JSONField(default=list, blank=True)
    instructions = models.TextField(blank=True, default="")
    sections_delivered = models.JSONField(default=list, blank=True)
    sections_missing = models.JSONField(default=list, blank=True)
    sections_failed = models.JSONField(default=list, blank=True)
    usage = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["deal", "status"], name="run_deal_status")]

    def __str__(self) -> str:
        return f"run {self.pk} ({self.status})"

    @property
    def thread_id(self) -> str:
        return f"deal:{self.deal_id}:run:{self.pk}"
