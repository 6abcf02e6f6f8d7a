"""Chat threads of a deal, and the idempotency records of engine mutations."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class ChatThread(models.Model):
    """A conversation of one user with one agent about one deal (LangGraph thread deal:<D>:chat:<id>)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    deal = models.ForeignKey("deals.Deal", on_delete=models.CASCADE, related_name="chat_threads")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_threads")
    agent_id = models.CharField(max_length=64)
    title = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        indexes = [models.Index(fields=["deal", "user", "-updated_at"], name="chatthread_deal_user")]

    def __str__(self) -> str:
        return self.title or f"thread {self.pk}"

    @property
    def langgraph_thread_id(self) -> str:
        return f"deal:{self.deal_id}:chat:{self.pk}"


class IdempotencyRecord(models.Model):
    """The first result of an engine mutation, replayed for a repeated Idempotency-Key.

    Kept IDEMPOTENCY_RECORD_RETENTION_HOURS, then deleted by the beat sweeper
    (internal_api.idempotency.idempotency_records_sweep)."""

    scope = models.CharField(max_length=200, help_text="user and project of the trusted claims")
    key = models.CharField(max_length=200)
    request_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField()
    response = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["scope", "key"], name="uniq_idempotency_scope_key")]
        indexes = [models.Index(fields=["created_at"], name="idempotency_created_at")]  # the sweeper's range

    def __str__(self) -> str:
        return f"{self.scope} {self.key}"
