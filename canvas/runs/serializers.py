"""Request and response serializers of the synthesis endpoints (runs, regenerate, debug, reset, prompts).
Inputs end in Input, outputs in Output; names are unique across the project."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail

from canvas.memo.serializers import CitationOutput
from canvas.models import CancelAction, RunStatus
from canvas.runs.selectors import RUN_ORDERINGS
from canvas.runs.services import MultitaskStrategy, stream_url
from canvas.runs.synthesis.human_input import NOTE_MAX_CHARS, REASON_NO_DOCUMENTS, REASON_NO_MATERIAL
from canvas_project.api.fields import StrictCharField, StrictUUIDField
from canvas_project.api.pagination import PageEnvelope, PageQueryInput
from canvas_project.api.rules import StrictBooleanField, comma_separated_field, uuid_or_me_field
from canvas_project.api.validation import RequestValidationError
from canvas_project.webhooks import shown_url

MAX_INSTRUCTIONS = 2000
RUN_KINDS = ("generate", "regenerate")
SECTION_OUTCOMES = ("delivered", "failed", "cancelled", "skipped_locked", "missing", "needs_input")


def one_of(values, **kwargs) -> StrictCharField:
    """A string output listing its values. (An enum here would collide in the OpenAPI components with the
    other `status` and `kind` enums of the project; ENUM_NAME_OVERRIDES in settings would name them.)"""
    listed = ", ".join(f"`{v}`" for v in values)
    help_text = kwargs.pop("help_text", "")
    return StrictCharField(help_text=f"One of {listed}. {help_text}".strip(), **kwargs)


# --- generate / regenerate -----------------------------------------------------------------------------
MULTITASK_STRATEGY_HELP = (
    "What to do while another run of the deal is active: `reject` (default) answers 409 naming it; `enqueue` "
    "queues this run behind it; `interrupt` cancels it (and any run queued behind it) keeping the sections it "
    "wrote, then this run starts; `rollback` cancels them and returns every section they wrote to its content "
    "before that run (a new memo version), then this run starts. The cancelled runs record `superseded_by`."
)


WEBHOOK_HELP = (
    "A URL the run record (as GET /runs/{run_id} answers it) is POSTed to once the run ends (succeeded, failed or "
    "cancelled), signed with the org's webhook secret: `X-Canvas-Signature: v1=<hex HMAC-SHA256 of "
    '"<X-Canvas-Timestamp>.<body>">`. `http` or `https`, no user info, a host this service\'s '
    "WEBHOOK_ALLOWED_HOSTS allows and that resolves to no private, loopback, link-local or metadata address "
    "(unless listed); redirects are not followed. Failed deliveries are retried with exponential backoff "
    "(WEBHOOK_MAX_ATTEMPTS); each attempt is listed in the run's `webhook_deliveries`. A refused URL, or an org "
    "without a webhook secret (POST /api/orgs/{org_id}/webhook-secret), is 422 and no run is created."
)


def webhook_field() -> StrictCharField:
    return StrictCharField(required=False, max_length=2048, help_text=WEBHOOK_HELP)


def multitask_strategy_field() -> serializers.ChoiceField:
    return serializers.ChoiceField(
        choices=[s.value for s in MultitaskStrategy], required=False, help_text=MULTITASK_STRATEGY_HELP
    )


class GenerateInput(serializers.Serializer):
    sections = serializers.ListField(
        child=StrictCharField(max_length=64),
        required=False,
        allow_empty=False,
        min_length=1,
        max_length=50,
        help_text="Section keys to draft; all of the template's sections when omitted.",
    )
    instructions = StrictCharField(
        max_length=MAX_INSTRUCTIONS,
        required=False,
        allow_blank=True,
        default="",
        help_text="Extra guidance for the drafters (also steers retrieval).",
    )
    multitask_strategy = multitask_strategy_field()
    webhook = webhook_field()


class ConflictQueryInput(serializers.Serializer):
    on_conflict = serializers.ChoiceField(
        choices=["reject", "enqueue"],
        required=False,
        help_text="The older spelling of `multitask_strategy` (reject or enqueue only; default reject). Sent with "
        "a `multitask_strategy` that says otherwise: 422.",
    )


def resolve_multitask_strategy(body: dict, query: dict) -> str:
    """The body's multitask_strategy, or the query's on_conflict alias; both given and disagreeing: 422."""
    strategy, alias = body.get("multitask_strategy"), query.get("on_conflict")
    if strategy is not None and alias is not None and strategy != alias:
        raise RequestValidationError(
            [
                {
                    "loc": ["body", "multitask_strategy"],
                    "msg": f"multitask_strategy={strategy} disagrees with ?on_conflict={alias}; send one of them.",
                    "type": "value_error",
                    "input": strategy,
                    "ctx": {"on_conflict": alias},
                }
            ]
        )
    return strategy or alias or MultitaskStrategy.REJECT


class GenerateOutput(serializers.Serializer):
    run_id = StrictUUIDField()
    status = one_of(RunStatus.values)
    stream_url = StrictCharField(help_text="GET it with Accept: text/event-stream to follow the run.")


class RegenerateInput(serializers.Serializer):
    instructions = StrictCharField(max_length=MAX_INSTRUCTIONS, required=False, allow_blank=True, default="")
    multitask_strategy = multitask_strategy_field()
    webhook = webhook_field()


class RegenerateOutput(GenerateOutput):
    estimated_seconds = serializers.IntegerField(
        min_value=1, help_text="A guess from the deal's recent runs and the queue."
    )


class RunConflictOutput(serializers.Serializer):
    detail = StrictCharField()
    active_run_id = StrictUUIDField()
    active_run_status = one_of(RunStatus.values)


# --- runs ------------------------------------------------------------------------------------------------
class TraceSummaryItemOutput(serializers.Serializer):
    section_key = StrictCharField()
    status = one_of(
        SECTION_OUTCOMES,
        help_text="cancelled: stopped before it was written. skipped_locked: drafted but not written, because "
        "someone holds the section's lock (collaboration off). missing: nothing to draft from, even after the run "
        "asked for input. needs_input: nothing to draft from; the run asked (it is waiting for input).",
    )
    elapsed = serializers.FloatField()
    error = StrictCharField(allow_null=True)


class RunUsageOutput(serializers.Serializer):
    drafter = StrictCharField(required=False)
    sections = serializers.IntegerField(required=False)
    words = serializers.IntegerField(required=False)
    citations = serializers.IntegerField(required=False)
    passages = serializers.IntegerField(required=False)
    figures = serializers.IntegerField(required=False)
    input_tokens = serializers.IntegerField(required=False)
    output_tokens = serializers.IntegerField(required=False)
    elapsed_seconds = serializers.FloatField(required=False)


class SkippedLockedSectionOutput(serializers.Serializer):
    section_key = StrictCharField()
    holder = StrictCharField(allow_null=True, help_text="The lock holder's display name.")
    holder_id = StrictCharField(help_text="The lock holder's user id.")
    expires_at = StrictCharField(help_text="When the lock expires (ISO 8601), as it was when the run met it.")


class WebhookDeliveryOutput(serializers.Serializer):
    attempt = serializers.IntegerField(min_value=1)
    at = StrictCharField(help_text="When the attempt started (ISO 8601).")
    status_code = serializers.IntegerField(allow_null=True, help_text="The receiver's HTTP status; null: no answer.")
    error = StrictCharField(allow_null=True, help_text="Why the attempt failed; null when it delivered.")
    duration_ms = serializers.FloatField()
    delivered = serializers.BooleanField(help_text="The receiver answered 2xx.")
    next_attempt_at = StrictCharField(
        allow_null=True,
        help_text="When the next attempt is due (ISO 8601); null: none is planned (delivered, or given up).",
    )


WEBHOOK_STATUS_HELP = (
    "null: the run has no webhook. `pending`: no attempt yet (the run has not ended, or its delivery is queued); "
    "`retrying`: the last attempt failed and another is planned; `delivered`; `failed`: given up (attempts used "
    "up, or the target is now refused)."
)


# --- human input ---------------------------------------------------------------------------------------------
class InputSectionOutput(serializers.Serializer):
    key = StrictCharField()
    title = StrictCharField()
    required = serializers.BooleanField()


class InputRequestOutput(serializers.Serializer):
    reason = one_of(
        (REASON_NO_DOCUMENTS, REASON_NO_MATERIAL),
        help_text="no_documents: the deal has no ready documents (upload some, then resume with empty inputs). "
        "no_material: its documents hold nothing for these sections.",
    )
    message = StrictCharField(help_text="What the run needs, as a sentence for a person.")
    sections = InputSectionOutput(
        many=True,
        help_text="The sections it found nothing to draft from (it paused because at least one is required).",
    )
    documents = serializers.IntegerField(help_text="The deal's documents with text when the run asked.")
    schema = serializers.DictField(
        help_text="JSON Schema (2020-12) of the body of POST /runs/{run_id}/resume: optional notes per section."
    )
    requested_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(
        help_text="Without an answer by then (RUN_INPUT_TIMEOUT_SECONDS, 24 h) the run is cancelled."
    )


class InputAnswerOutput(serializers.Serializer):
    notes = serializers.DictField(child=StrictCharField(), help_text="Section key -> the notes given.")
    label = StrictCharField(help_text="How the notes are cited in the sections they name.")
    by = StrictUUIDField(help_text="Who answered.")
    by_name = StrictCharField()


class RunOutput(serializers.Serializer):
    id = StrictUUIDField()
    deal_id = StrictUUIDField()
    kind = one_of(RUN_KINDS)
    status = one_of(RunStatus.values)
    drafter = StrictCharField(allow_blank=True)
    requested_sections = serializers.ListField(child=StrictCharField())
    instructions = StrictCharField(allow_blank=True)
    sections_delivered = serializers.ListField(child=StrictCharField())
    sections_missing = serializers.ListField(
        child=StrictCharField(), help_text="Requested but never drafted (cancelled, or the run died)."
    )
    sections_failed = serializers.ListField(child=StrictCharField())
    sections_skipped_locked = SkippedLockedSectionOutput(
        many=True,
        help_text="Drafted but left as they were, because someone held their lock (collaboration off; the AI "
        "never writes a locked section): each with the lock's holder and expiry. The run still succeeds.",
    )
    usage = RunUsageOutput()
    error = StrictCharField(allow_blank=True)
    trace_summary = TraceSummaryItemOutput(many=True)
    created_by = StrictUUIDField(source="created_by_id", allow_null=True)
    created_by_name = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    heartbeat_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    cancel_requested_at = serializers.DateTimeField(allow_null=True)
    cancel_action = StrictCharField(
        allow_blank=True,
        help_text="`interrupt` (what it wrote stays) or `rollback` (what it wrote was reverted); empty when no "
        "cancel was asked.",
    )
    rolled_back_sections = serializers.ListField(
        child=StrictCharField(),
        help_text="Sections a rollback returned to their content before this run (a section changed by someone "
        "else after the run wrote it is left as it is, and not listed).",
    )
    superseded_by = serializers.UUIDField(
        allow_null=True, help_text="The run whose multitask_strategy (interrupt or rollback) cancelled this one."
    )
    webhook = serializers.SerializerMethodField(
        help_text="The webhook this run's record is POSTed to when it ends, without its query (which may hold a "
        "token); null: none."
    )
    webhook_status = serializers.SerializerMethodField(help_text=WEBHOOK_STATUS_HELP)
    webhook_deliveries = WebhookDeliveryOutput(many=True, help_text="Each delivery attempt, oldest first.")
    resume_count = serializers.IntegerField(
        help_text="How many times the run was resumed from its last checkpoint by another worker after its worker "
        "died (no heartbeat within SYNTHESIS_DEAD_RUN_SECONDS); at most RUN_MAX_RESUMES, then the run fails."
    )
    input_request = InputRequestOutput(
        allow_null=True,
        help_text="What the run asked for when it paused for input (status waiting_input); kept after the answer. "
        "Null when it never asked.",
    )
    input_requested_at = serializers.DateTimeField(allow_null=True)
    input_answer = InputAnswerOutput(allow_null=True, help_text="The answer it was resumed with; null before.")
    input_answered_at = serializers.DateTimeField(allow_null=True)
    elapsed_seconds = serializers.SerializerMethodField()
    thread_id = StrictCharField(help_text="The LangGraph checkpoint thread of the run.")
    stream_url = serializers.SerializerMethodField()

    def get_created_by_name(self, run) -> str | None:
        return run.created_by.display_name if run.created_by_id and run.created_by else None

    def get_webhook(self, run) -> str | None:
        return shown_url(run.webhook_url) if run.webhook_url else None

    def get_webhook_status(self, run) -> str | None:
        if not run.webhook_url:
            return None
        if not run.webhook_deliveries:
            return "pending"
        last = run.webhook_deliveries[-1]
        if last.get("delivered"):
            return "delivered"
        return "retrying" if last.get("next_attempt_at") else "failed"

    def get_elapsed_seconds(self, run) -> float | None:
        if run.started_at is None:
            return None
        end = run.finished_at or run.heartbeat_at or run.started_at
        return round((end - run.started_at).total_seconds(), 3)

    def get_stream_url(self, run) -> str:

        return stream_url(run)


class CancelInput(serializers.Serializer):
    action = serializers.ChoiceField(
        choices=list(CancelAction.values),
        required=False,
        default=CancelAction.INTERRUPT,
        help_text="`interrupt` (default) keeps the sections the run delivered; `rollback` returns every section it "
        "wrote to its content before the run, as a new memo version.",
    )
    wait = StrictBooleanField(
        required=False,
        default=False,
        help_text="true: answer once the worker has ended the run (at most SYNTHESIS_CANCEL_WAIT_MAX_SECONDS, 30 s; "
        "else 202 with the run as it is). false (default): the run is ended within SYNTHESIS_CANCEL_WAIT_SECONDS, "
        "by its worker or by the cancel itself.",
    )


NOTES_HELP = (
    "Section key -> what you know about it, for sections the run asked about (`input_request.sections`; another key: "
    "422). Cited as 'Analyst notes (<you>, <date>)' in the section. A section left out, or blank, is drafted from the "
    "deal's documents as they are now, else delivered as missing."
)


class ResumeInputsInput(serializers.Serializer):
    notes = serializers.DictField(
        child=StrictCharField(max_length=NOTE_MAX_CHARS, allow_blank=True),
        required=False,
        default=dict,
        help_text=NOTES_HELP,
    )

    def to_internal_value(self, data):
        # unlike other nested inputs, an unknown key here is refused: a typo ("note") would resume the run without
        # its notes, and a run never asks twice
        if isinstance(data, dict):
            extra = [key for key in data if key not in self.fields]
            if extra:
                raise serializers.ValidationError(
                    {key: [ErrorDetail("Extra inputs are not permitted.", code="extra_forbidden")] for key in extra}
                )
        return super().to_internal_value(data)


@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": False,
        "description": "Empty (or left out) after uploading documents: retrieval runs again for every asked section.",
        "properties": {
            "notes": {
                "type": "object",
                "description": NOTES_HELP,
                "additionalProperties": {"type": "string", "maxLength": NOTE_MAX_CHARS},
            }
        },
    }
)
class ResumeInputsField(ResumeInputsInput):
    """ResumeInputsInput as the body's `inputs`, documented with `additionalProperties: false`."""


class ResumeInput(serializers.Serializer):
    inputs = ResumeInputsField(required=False, default=dict)


class RunNotWaitingOutput(serializers.Serializer):
    detail = StrictCharField()
    run_status = one_of(
        RunStatus.values,
        required=False,
        help_text="What the run is instead of waiting_input (absent when the 409 is an approved memo).",
    )


class GenerateInputSchemaOutput(serializers.Serializer):
    deal_id = StrictUUIDField()
    template_key = StrictCharField()
    sections = InputSectionOutput(
        many=True, help_text="Every section of the memo: what a run may ask about (required ones make it pause)."
    )
    documents = serializers.IntegerField(help_text="The deal's ready documents (0: a run will ask for all sections).")
    schema = serializers.DictField(
        help_text="JSON Schema (2020-12) of the body of POST /runs/{run_id}/resume, for every section; a paused run's "
        "`input_request.schema` narrows it to the sections it asks about."
    )
    note_max_chars = serializers.IntegerField()
    timeout_seconds = serializers.IntegerField(help_text="How long a paused run waits (RUN_INPUT_TIMEOUT_SECONDS).")


class RunQueryInput(PageQueryInput):
    status = comma_separated_field(RunStatus.values, "status")
    created_by = uuid_or_me_field("runs")
    created_after = serializers.DateTimeField(required=False, help_text="ISO 8601; inclusive.")
    created_before = serializers.DateTimeField(required=False, help_text="ISO 8601; exclusive.")
    ordering = serializers.ChoiceField(
        choices=list(RUN_ORDERINGS),
        required=False,
        default="-created_at",
        help_text="Then by id. `finished_at`: unfinished runs last (first with `-`). A cursor belongs to its "
        "ordering; a run that changes status or finishes while you page may move past your cursor.",
    )

    def validate_status(self, value: str) -> list[str]:
        return value.split(",")  # the field's pattern admits only known statuses, comma-separated

    # created_before at or before created_after is an empty window (an empty page), not an error: JSON Schema
    # cannot compare two parameters, and the window is well-formed.


class RunPageOutput(PageEnvelope):
    results = RunOutput(many=True)


class TracePassageOutput(serializers.Serializer):
    document_id = StrictCharField()
    filename = StrictCharField()
    page = serializers.IntegerField()
    score = serializers.FloatField()


class TraceInputsOutput(serializers.Serializer):
    retrieval_query = StrictCharField()
    top_k = serializers.IntegerField()
    instructions = StrictCharField(allow_blank=True)
    passages = TracePassageOutput(many=True, required=False)


class TraceNodeOutput(serializers.Serializer):
    node = StrictCharField(
        help_text="`draft_section` (one per section drafted), or `run_resumed` (the run continued from its last "
        "checkpoint on another worker after its worker died; no section_key or inputs)."
    )
    section_key = StrictCharField(required=False)
    drafter = StrictCharField()
    inputs = TraceInputsOutput(required=False)
    outputs = serializers.DictField(
        help_text="draft_section: status, version, usage, citations; run_resumed: resume_count, max_resumes, "
        "delivered (sections already delivered, not drafted again), remaining."
    )
    error = StrictCharField(allow_null=True)
    elapsed = serializers.FloatField(help_text="Seconds.")


class RunTraceOutput(serializers.Serializer):
    run_id = StrictUUIDField()
    status = one_of(RunStatus.values)
    expired = serializers.BooleanField(help_text="The per-node trace is kept 10 minutes; the summary stays.")
    nodes = TraceNodeOutput(many=True)
    summary = TraceSummaryItemOutput(many=True)


# --- debug -------------------------------------------------------------------------------------------------
class DebugPassageInput(serializers.Serializer):
    document_id = StrictCharField(required=False, allow_blank=True, max_length=64)
    filename = StrictCharField(max_length=255)
    page = serializers.IntegerField(min_value=1)
    text = StrictCharField(max_length=50_000)


class DebugMetricSourceInput(serializers.Serializer):
    document_id = StrictCharField(required=False, allow_blank=True, max_length=64)
    filename = StrictCharField(max_length=255)
    page = serializers.IntegerField(min_value=1)


class DebugMetricInput(serializers.Serializer):
    value = serializers.FloatField()
    unit = StrictCharField(max_length=16)
    text = StrictCharField(required=False, allow_blank=True, max_length=500)
    source = DebugMetricSourceInput()


class DebugInputsInput(serializers.Serializer):
    retrieval_query = StrictCharField(required=False, max_length=500)
    instructions = StrictCharField(required=False, allow_blank=True, max_length=MAX_INSTRUCTIONS)
    top_k = serializers.IntegerField(required=False, min_value=1, max_value=20)
    passages = DebugPassageInput(
        many=True, required=False, max_length=500, help_text="Search these instead of the deal's documents."
    )
    metrics = serializers.DictField(
        child=DebugMetricInput(), required=False, help_text="Use these figures instead of the deal's intel."
    )


class DebugInput(serializers.Serializer):
    section_key = StrictCharField(max_length=64)
    inputs = DebugInputsInput(required=False, default=dict)


class DebugPassageOutput(TracePassageOutput):
    text = StrictCharField(allow_blank=True)


class DebugEffectiveInputsOutput(serializers.Serializer):
    retrieval_query = StrictCharField()
    instructions = StrictCharField(allow_blank=True)
    top_k = serializers.IntegerField()
    passages_searched = serializers.IntegerField()
    metrics = serializers.ListField(child=StrictCharField())


class DebugOutput(serializers.Serializer):
    section_key = StrictCharField()
    drafter = StrictCharField()
    inputs = DebugEffectiveInputsOutput()
    passages = DebugPassageOutput(many=True)
    markdown = StrictCharField(allow_blank=True)
    citations = CitationOutput(many=True)
    deltas = serializers.IntegerField(help_text="How many message deltas the drafter streamed.")
    usage = serializers.DictField()
    error = StrictCharField(allow_null=True)
    elapsed_ms = serializers.FloatField()


# --- reset ---------------------------------------------------------------------------------------------------
class ResetOutput(serializers.Serializer):
    success = serializers.BooleanField()
    version = serializers.IntegerField(help_text="The version of the blank memo.")
    restorable_version = serializers.IntegerField(
        allow_null=True, help_text="POST /versions/{n}/restore with it to get the memo back; null when it was empty."
    )
    cancelled_runs = serializers.ListField(child=StrictUUIDField())
    checkpoint_threads_deleted = serializers.IntegerField()
    redis_keys_deleted = serializers.IntegerField()


# --- prompts -------------------------------------------------------------------------------------------------
class PromptOutput(serializers.Serializer):
    key = StrictCharField()
    title = StrictCharField()
    purpose = StrictCharField()
    template = StrictCharField()
    variables = serializers.ListField(child=StrictCharField())


class PromptCatalogueOutput(serializers.Serializer):
    drafter = StrictCharField(help_text="The drafter in use: default (offline) or llm.")
    model = StrictCharField(allow_null=True, help_text="CANVAS_LLM_MODEL when the LLM drafter is in use.")
    prompts = PromptOutput(many=True)
