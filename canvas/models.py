"""PostgreSQL records of the canvas (memo content itself lives in the LangGraph Store)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    WAITING_INPUT = "waiting_input", "Waiting for input"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


# A run waiting for input holds the deal's slot like a running one (a second run is rejected, queued behind it,
# or cancels it per its multitask_strategy) until it is resumed, cancelled, or expires.
ACTIVE_RUN_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.WAITING_INPUT)
TERMINAL_RUN_STATUSES = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


class CancelAction(models.TextChoices):
    """What a cancel does to the sections the run wrote: keep them, or revert them."""

    INTERRUPT = "interrupt", "Interrupt"
    ROLLBACK = "rollback", "Rollback"


class SynthesisRun(models.Model):
    """One run of the drafting workflow on a deal (LangGraph thread `deal:<D>:run:<id>`)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    deal = models.ForeignKey("deals.Deal", on_delete=models.CASCADE, related_name="runs")
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    kind = models.CharField(max_length=32, default="generate", help_text="generate or regenerate")
    requested_sections = models.JSONField(default=list, blank=True)
    instructions = models.TextField(blank=True, default="")
    webhook_url = models.TextField(
        blank=True,
        default="",
        help_text="Where the run record is POSTed, signed, once the run ends (canvas.runs.webhooks).",
    )
    webhook_deliveries = models.JSONField(
        default=list,
        blank=True,
        help_text="Each delivery attempt of the webhook: [{attempt, at, status_code, error, duration_ms, delivered, "
        "next_attempt_at}].",
    )
    sections_delivered = models.JSONField(default=list, blank=True)
    sections_missing = models.JSONField(default=list, blank=True)
    sections_failed = models.JSONField(default=list, blank=True)
    sections_skipped_locked = models.JSONField(
        default=list,
        blank=True,
        help_text="Sections left as they were because someone held their lock (collaboration off): "
        "[{section_key, holder, holder_id, expires_at}].",
    )
    usage = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True, default="")
    drafter = models.CharField(max_length=32, blank=True, default="", help_text="default (offline) or llm")
    trace_summary = models.JSONField(
        default=list,
        blank=True,
        help_text="Per node: section_key, status, elapsed (the full trace is in Redis for 10 minutes).",
    )
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    cancel_action = models.CharField(
        max_length=16,
        choices=CancelAction.choices,
        blank=True,
        default="",
        help_text="interrupt (what it wrote stays) or rollback (what it wrote is reverted); blank: not cancelled.",
    )
    sections_before = models.JSONField(
        default=dict,
        blank=True,
        help_text="Each section the run wrote, as it was before the run's first write of it (null: it did not "
        "exist); recorded inside the memo's serialized write, read by a rollback.",
    )
    rolled_back_sections = models.JSONField(
        default=list, blank=True, help_text="Sections a rollback returned to their content before the run."
    )
    superseded_by = models.UUIDField(
        null=True, blank=True, help_text="The run whose multitask_strategy (interrupt, rollback) cancelled this one."
    )
    resume_count = models.PositiveIntegerField(
        default=0,
        help_text="How many times the run was resumed from its last checkpoint after its worker died "
        "(at most RUN_MAX_RESUMES); also the fencing token of the worker executing it.",
    )
    requeued_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the dead-run sweeper last put the run back in the queue after its worker died (tells that "
        "resume from an answer to the run's question, which also queues it again).",
    )
    sent_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the run's task was last handed to the broker. A queued run is sent again by the sweeper "
        "only when this is older than SYNTHESIS_DEAD_RUN_SECONDS (its message was lost), not at every sweep.",
    )
    input_request = models.JSONField(
        null=True,
        blank=True,
        help_text="What the run asked for when it paused (status waiting_input): the sections without material "
        "and the JSON Schema of the answer (canvas.runs.synthesis.human_input). Kept after the answer.",
    )
    input_requested_at = models.DateTimeField(null=True, blank=True)
    input_answer = models.JSONField(
        null=True, blank=True, help_text="The answer it was resumed with: {notes: {section key: text}, by, by_name}."
    )
    input_answered_at = models.DateTimeField(null=True, blank=True)
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
        indexes = [
            models.Index(fields=["deal", "status"], name="run_deal_status"),
            models.Index(fields=["status", "heartbeat_at"], name="run_status_heartbeat"),
        ]

    def __str__(self) -> str:
        return f"run {self.pk} ({self.status})"

    @property
    def thread_id(self) -> str:
        return f"deal:{self.deal_id}:run:{self.pk}"


class ReviewerRole(models.TextChoices):
    ANALYST = "analyst", "Analyst"
    PARTNER = "partner", "Partner"
    REVIEWER = "reviewer", "Reviewer"


class SectionApproval(models.Model):
    """An editor's approval of one section, possibly with conditions still to resolve."""

    deal = models.ForeignKey("deals.Deal", on_delete=models.CASCADE, related_name="section_approvals")
    section_key = models.CharField(max_length=64)
    approved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    reviewer_role = models.CharField(max_length=16, choices=ReviewerRole.choices, default=ReviewerRole.REVIEWER)
    comment = models.CharField(max_length=500, blank=True, default="")
    quality_score = models.PositiveSmallIntegerField(null=True, blank=True)
    forced = models.BooleanField(default=False, help_text="Approved over unresolved comments by an owner.")
    memo_version = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["deal", "section_key", "-created_at"], name="approval_deal_section")]

    def __str__(self) -> str:
        return f"{self.section_key} approved by {self.approved_by}"


class ApprovalCondition(models.Model):
    approval = models.ForeignKey(SectionApproval, on_delete=models.CASCADE, related_name="conditions")
    deal = models.ForeignKey("deals.Deal", on_delete=models.CASCADE, related_name="approval_conditions")
    section_key = models.CharField(max_length=64)
    text = models.CharField(max_length=500)
    resolved = models.BooleanField(default=False)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [models.Index(fields=["deal", "resolved"], name="condition_deal_resolved")]

    def __str__(self) -> str:
        return self.text


class SectionFeedback(models.Model):
    """A reviewer's rating of one section (read by the readiness score)."""

    deal = models.ForeignKey("deals.Deal", on_delete=models.CASCADE, related_name="feedback")
    section_key = models.CharField(max_length=64)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    rating = models.PositiveSmallIntegerField()
    comment = models.CharField(max_length=2000, blank=True, default="")
    tags = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["deal", "section_key"], name="feedback_deal_section")]

    def __str__(self) -> str:
        return f"{self.rating}/5 on {self.section_key}"


class Comment(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    deal = models.ForeignKey("deals.Deal", on_delete=models.CASCADE, related_name="comments")
    section_key = models.CharField(max_length=64)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="replies")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    body = models.TextField(max_length=5000)
    resolved = models.BooleanField(default=False)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [models.Index(fields=["deal", "section_key", "resolved"], name="comment_deal_section")]

    def __str__(self) -> str:
        return self.body[:60]


class SuggestionKind(models.TextChoices):
    INSERT = "insert", "Insert"
    DELETE = "delete", "Delete"
    REPLACE = "replace", "Replace"


class SuggestionStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    ACCEPTED = "accepted", "Accepted"
    REJECTED = "rejected", "Rejected"


class Suggestion(models.Model):
    """A commenter's proposed change to one section, anchored to text in it; an editor accepts or rejects.

    The change targets the `occurrence`-th (1-based, non-overlapping) match of `anchor_text` in the
    section's markdown: insert puts `content` right after it (an empty anchor appends to the section),
    delete removes it, replace swaps it for `content`.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    deal = models.ForeignKey("deals.Deal", on_delete=models.CASCADE, related_name="suggestions")
    section_key = models.CharField(max_length=64)
    kind = models.CharField(max_length=16, choices=SuggestionKind.choices)
    anchor_text = models.TextField(max_length=2000, blank=True, default="")
    occurrence = models.PositiveIntegerField(default=1)
    content = models.TextField(max_length=20000, blank=True, default="")
    comment = models.TextField(max_length=2000, blank=True, default="")
    status = models.CharField(max_length=16, choices=SuggestionStatus.choices, default=SuggestionStatus.PENDING)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    applied_version = models.PositiveIntegerField(
        null=True, blank=True, help_text="The memo version its acceptance produced."
    )
    base_version = models.PositiveIntegerField(default=0, help_text="The memo version when it was proposed.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["deal", "status"], name="suggestion_deal_status")]

    def __str__(self) -> str:
        return f"{self.kind} on {self.section_key} ({self.status})"
