"""The purge audit: one row per purge, whoever started it and however it ended."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class PurgeSource(models.TextChoices):
    API = "api", "API"
    ADMIN = "admin", "Django admin"
    COMMAND = "command", "manage.py purge_deals"


class PurgeStatus(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    REFUSED = "refused", "Refused"  # a rule said no (org mismatch, active run): nothing was deleted
    FAILED = "failed", "Failed"  # an error mid-way (e.g. Redis went away): part may be deleted


class PurgeAudit(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Who, in words, kept when the user row goes (and for the command, which has no user).
    actor_label = models.CharField(max_length=200, blank=True, default="")
    source = models.CharField(max_length=16, choices=PurgeSource.choices)
    mode = models.CharField(max_length=16)
    deal_id = models.UUIDField(null=True, blank=True, db_index=True)
    org_id = models.UUIDField(null=True, blank=True)
    dry_run = models.BooleanField()
    include_checkpoints = models.BooleanField(default=False)
    parameters = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=PurgeStatus.choices, default=PurgeStatus.RUNNING)
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True, default="")
    keys_total = models.PositiveBigIntegerField(default=0)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["-started_at"], name="purgeaudit_started")]
        verbose_name = "purge audit record"

    def __str__(self) -> str:
        scope = f"deal {self.deal_id}" if self.deal_id else "all deals"
        what = "dry run" if self.dry_run else "purge"
        return f"{what} of {scope} by {self.actor_label or 'unknown'} ({self.status})"
