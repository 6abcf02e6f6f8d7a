"""Synthesis endpoints: drafting under /api/canvas/{deal_id} (generate, debug, reset), the deal's runs
(list, one run, cancel, trace), a section's regenerate, and the prompt catalogue.

Thin: validate, call one service or selector, serialize. Deal scoping and the minimum role of each
action come from deals.viewsets.DealScopedViewSet.

A run never executes inside a request: generate and regenerate create the run row, enqueue it on
commit and answer 202. The run streams (SSE) are async views in canvas.runs.streams; POST /generate
with `Accept: text/event-stream` answers with that same stream instead of the JSON.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, OpenApiTypes, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from canvas.memo.viewsets import MemoWriteViewSet
from canvas.runs import inputs as run_inputs
from canvas.runs import selectors as run_selectors
from canvas.runs import services as runs
from canvas.runs.serializers import (
    CancelInput,
    ConflictQueryInput,
    DebugInput,
    DebugOutput,
    GenerateInput,
    GenerateInputSchemaOutput,
    GenerateOutput,
    PromptCatalogueOutput,
    RegenerateInput,
    RegenerateOutput,
    ResetOutput,
    ResumeInput,
    RunConflictOutput,
    RunNotWaitingOutput,
    RunOutput,
    RunPageOutput,
    RunQueryInput,
    RunTraceOutput,
    resolve_multitask_strategy,
)
from canvas.runs.streams import run_event_response
from canvas.runs.synthesis import config, prompts
from canvas_project import ratelimit
from canvas_project.api.conditional import IF_MATCH_PARAM, PRECONDITION_FAILED
from canvas_project.api.pagination import CursorPagination
from canvas_project.api.schema import error_responses
from canvas_project.api.validation import parse_body, parse_path_uuid, parse_query
from canvas_project.sse.schema import event_union_ref
from deals.models import DealRole
from deals.viewsets import DealScopedViewSet

RUN_PARAM = OpenApiParameter(
    "run_id",
    OpenApiTypes.UUID,
    OpenApiParameter.PATH,
    description="The run's id; a malformed one is 422, an unknown one 404.",
)
KEY_PARAM = OpenApiParameter("key", OpenApiTypes.STR, OpenApiParameter.PATH, description="Section key.")
TAGS = ["synthesis"]
EVENT_STREAM = "text/event-stream"
RUN_CONFLICT = OpenApiResponse(RunConflictOutput, description="Another run of the deal is active; it is named.")
STREAM_DESCRIPTION = (
    "The run's events as server-sent events, from its first event to `done`: workflow_started, node_started, "
    "message (section text deltas), message_end, node_finished, input_required and input_received (a run that "
    "paused for input, and its answer), workflow_finished, error, done. Each has `id:` "
    "(resume with Last-Event-ID on GET /runs/{run_id}/stream), `event:` and `data:` (JSON)."
)


def _wants_event_stream(request) -> bool:
    return EVENT_STREAM in request.META.get("HTTP_ACCEPT", "")


def _run_accepted(run, **extra) -> Response:
    return Response(
        {"run_id": str(run.pk), "status": run.status, "stream_url": runs.stream_url(run), **extra},
        status=status.HTTP_202_ACCEPTED,
    )


class PromptViewSet(viewsets.ViewSet):
    """GET /api/canvas/prompts: the prompt templates the drafters use (any signed-in user)."""

    @extend_schema(
        operation_id="canvas_prompts",
        summary="The prompt templates the drafters use",
        responses={200: PromptCatalogueOutput, **error_responses(401)},
        tags=TAGS,
    )
    def list(self, request):
        drafter = config.drafter_class()
        return Response(
            PromptCatalogueOutput(
                {
                    "drafter": drafter.name,
                    "model": config.llm_model() or None,
                    "prompts": [p.__dict__ for p in prompts.PROMPTS],
                }
            ).data
        )


class DraftingViewSet(MemoWriteViewSet):
    """Drafting the memo of one deal: /api/canvas/{deal_id}/generate, /debug and /reset."""

    # Only @action routes: the plain /api/canvas/{deal_id} is canvas.memo's CanvasViewSet.
    lookup_field = "deal_id"
    minimum_roles = {
        "generate": DealRole.EDITOR,
        "generate_input_schema": DealRole.VIEWER,
        "debug": DealRole.EDITOR,
        "reset": DealRole.OWNER,
    }

    def perform_content_negotiation(self, request, force=False):
        # generate with Accept: text/event-stream asks for the run's stream; every other answer (errors)
        # stays JSON. The other actions negotiate as usual.
        if self.action == "generate" and _wants_event_stream(request):
            return JSONRenderer(), JSONRenderer.media_type
        return super().perform_content_negotiation(request, force)

    @extend_schema(
        operation_id="canvas_generate",
        summary="Draft the memo with the synthesis workflow (editor)",
        description="Queues a run of the drafting workflow (one drafter per section, each section written to the "
        "memo as it is finished) and answers 202 with its id and stream URL; the run executes on a worker, never "
        "in this request. One active run per deal: `multitask_strategy` says what happens while another run is "
        "active: `reject` (default: 409 naming it), `enqueue`, `interrupt` (it is cancelled keeping what it wrote) or "
        "`rollback` (it is cancelled and the sections it wrote return to their content before it, as a new memo "
        "version); `?on_conflict=enqueue` is the older spelling of enqueue (disagreeing with the body: 422). "
        "Counts against the shared per-user 'generate' rate limit. With `Accept: text/event-stream` the answer "
        "is the run's event stream instead (200). " + STREAM_DESCRIPTION,
        parameters=[ConflictQueryInput],
        request=GenerateInput,
        responses={
            202: GenerateOutput,
            (200, EVENT_STREAM): OpenApiResponse(
                event_union_ref("RunEvent"), description="The run's event stream: one of RunEvent each."
            ),
            409: RUN_CONFLICT,
            **error_responses(401, 403, 404, 422, 429, 503),
        },
        tags=TAGS,
    )
    @action(detail=True, methods=["post"])
    def generate(self, request, deal_id):
        body = parse_body(GenerateInput, request)
        query = parse_query(ConflictQueryInput, request)
        strategy = resolve_multitask_strategy(body, query)
        ratelimit.consume(ratelimit.generate_bucket(), request.user.pk)
        run = runs.run_create(
            deal=self.deal_access.deal,
            user=request.user,
            kind="generate",
            sections=body.get("sections"),
            instructions=body["instructions"],
            multitask_strategy=strategy,
            webhook=body.get("webhook"),
        )
        if _wants_event_stream(request):
            return run_event_response(run.deal_id, run.pk)
        return _run_accepted(run)

    @extend_schema(
        operation_id="canvas_generate_input_schema",
        summary="What a drafting run may ask when it pauses for input (viewer)",
        description="A run whose required sections find nothing to draft from (no documents, or nothing relevant) "
        "pauses in `waiting_input` and asks for notes on those sections (its `input_request`). This describes that "
        "form ahead of time, like an input form: the memo's sections (key, title, required), the JSON Schema of the "
        "body of POST /runs/{run_id}/resume for all of them, the deal's ready documents, the longest note and how "
        "long a paused run waits before it is cancelled.",
        responses={200: GenerateInputSchemaOutput, **error_responses(401, 403, 404, 503)},
        tags=TAGS,
    )
    @action(detail=True, methods=["get"], url_path="generate/input-schema", url_name="generate-input-schema")
    def generate_input_schema(self, request, deal_id):
        return Response(GenerateInputSchemaOutput(run_inputs.generate_input_schema(deal=self.deal_access.deal)).data)

    @extend_schema(
        operation_id="canvas_debug",
        summary="Run one drafter synchronously; nothing is written (editor)",
        description="Retrieves and drafts one section with the configured drafter, optionally on given passages, "
        "figures, query or instructions, and returns what it would write with the passages it used. The memo, "
        "the runs and Redis are untouched. Counts against the shared 'generate' rate limit.",
        request=DebugInput,
        responses={200: DebugOutput, **error_responses(401, 403, 404, 422, 429, 503)},
        tags=TAGS,
    )
    @action(detail=True, methods=["post"])
    def debug(self, request, deal_id):
        body = parse_body(DebugInput, request)
        ratelimit.consume(ratelimit.generate_bucket(), request.user.pk)
        result = runs.section_debug(
            deal=self.deal_access.deal, section_key=body["section_key"], inputs=body.get("inputs") or {}
        )
        return Response(DebugOutput(result).data)

    @extend_schema(
        operation_id="canvas_reset",
        summary="Reset the canvas to blank (owner)",
        description="Cancels the deal's active runs; deletes its run streams, traces, brush findings, agent "
        "discourse, cached session and LangGraph checkpoints; and returns the memo to a blank draft as a new "
        "version. What the memo held stays restorable (`restorable_version`). Run records stay as history. "
        "An approved memo must be reopened first (409). With collaboration off, a section locked by someone else "
        "that the reset would blank is 423 (naming the holder and expiry), before any run is cancelled or anything "
        "deleted.",
        parameters=[IF_MATCH_PARAM],
        request=None,
        responses={200: ResetOutput, **PRECONDITION_FAILED, **error_responses(401, 403, 404, 409, 423, 503)},
        tags=TAGS,
    )
    @action(detail=True, methods=["post"])
    def reset(self, request, deal_id):
        return Response(ResetOutput(runs.canvas_reset(deal=self.deal_access.deal, user=request.user)).data)


class RunViewSet(DealScopedViewSet):
    """/api/canvas/{deal_id}/runs: the deal's drafting runs, one run, its cancel and its trace."""

    lookup_field = "run_id"
    minimum_roles = {
        "list": DealRole.VIEWER,
        "retrieve": DealRole.VIEWER,
        "cancel": DealRole.EDITOR,
        "resume": DealRole.EDITOR,
        "run_trace": DealRole.VIEWER,
    }

    @extend_schema(
        operation_id="canvas_runs_list",
        summary="Drafting runs of the deal, newest first (viewer)",
        description="Filter by `status` (one or several, comma-separated), `created_by` (`me` or a user id) and "
        "a creation window; paginated; `ordering` by creation, finish or status. Listing also fails dead runs "
        "(no heartbeat within the dead-run window, or older than 4 hours).",
        parameters=[RunQueryInput],
        responses={200: RunPageOutput, **error_responses(401, 403, 404, 422)},
        tags=TAGS,
    )
    def list(self, request, deal_id):
        query = parse_query(RunQueryInput, request)
        deal = self.deal_access.deal
        runs.runs_sweep_dead(deal_id=deal.pk)
        created_by = query.get("created_by")
        found = run_selectors.run_list(
            deal=deal,
            statuses=query.get("status"),
            created_by=request.user.pk if created_by == "me" else created_by,
            created_after=query.get("created_after"),
            created_before=query.get("created_before"),
            ordering=query["ordering"],
        )
        paginator = CursorPagination()
        return Response(RunPageOutput(paginator.envelope(paginator.paginate_queryset(found, request))).data)

    @extend_schema(
        operation_id="canvas_run",
        summary="One run: status, timings, sections, usage, error (viewer)",
        parameters=[RUN_PARAM],
        responses={200: RunOutput, **error_responses(401, 403, 404, 422)},
        tags=TAGS,
    )
    def retrieve(self, request, deal_id, run_id):
        deal = self.deal_access.deal
        run = run_selectors.run_get(deal=deal, run_id=parse_path_uuid(run_id, "run_id"))
        if run.status in runs.ACTIVE_RUN_STATUSES and runs.runs_sweep_dead(deal_id=deal.pk):
            run.refresh_from_db()
        return Response(RunOutput(run).data)

    @extend_schema(
        operation_id="canvas_run_cancel",
        summary="Cancel a run, keeping or rolling back what it wrote (editor)",
        description="Body optional: `action` `interrupt` (default: sections delivered before the cancel stay) or "
        "`rollback` (every section the run wrote returns to its content before the run, as one new memo version, "
        "once the run is terminal; a section someone changed after the run wrote it is left as it is); `wait`. "
        "A queued run is cancelled at once; a running one is signalled (its drafters check between and inside "
        "nodes). `wait=false` (default): the answer waits until it has stopped, or ends it itself after "
        "SYNTHESIS_CANCEL_WAIT_SECONDS (its later writes are refused); 200 with the final state. `wait=true`: the "
        "answer blocks on the run's stream until its worker has ended it, 200, or answers 202 with the run as it "
        "is after SYNTHESIS_CANCEL_WAIT_MAX_SECONDS (30 s); the worker ends it at its next check. Idempotent: a "
        "finished run is returned as it is, except that `rollback` of a run cancelled without rollback rolls it "
        "back then (once). The run records `cancel_action` and `rolled_back_sections`.",
        parameters=[RUN_PARAM],
        request=CancelInput,
        responses={
            200: RunOutput,
            202: OpenApiResponse(RunOutput, description="wait=true and the run had not ended in time: as it is."),
            **error_responses(401, 403, 404, 422),
        },
        tags=TAGS,
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, deal_id, run_id):
        run_uuid = parse_path_uuid(run_id, "run_id")
        body = parse_body(CancelInput, request)
        run = runs.run_cancel(
            deal=self.deal_access.deal, run_id=run_uuid, user=request.user, action=body["action"], wait=body["wait"]
        )
        ended = run.status not in runs.ACTIVE_RUN_STATUSES
        return Response(RunOutput(run).data, status=status.HTTP_200_OK if ended else status.HTTP_202_ACCEPTED)

    @extend_schema(
        operation_id="canvas_run_resume",
        summary="Answer a run that waits for input; it continues from its checkpoint (editor)",
        description="A run pauses in `waiting_input` when required sections find nothing to draft from; its "
        "`input_request` names them with the JSON Schema of this body. `inputs.notes` gives notes per asked section: "
        "they become a cited source of that section ('Analyst notes (<you>, <date>)'). Sections without notes are "
        "drafted again from the deal's documents as they are now (so empty `inputs` after uploading documents "
        "retries retrieval); one still without material is delivered as missing (the run succeeds and lists it in "
        "`sections_missing`): a run never asks twice. Sections already drafted are not redrafted. Answers 202 with "
        "the run, queued again; follow it on its stream (`input_received`, then the drafting, to `done`). 409 when "
        "the run is not waiting for input (naming its status) or the memo was approved meanwhile; 422 for a note "
        "on a section the run did not ask about. Counts against the shared 'generate' rate limit.",
        parameters=[RUN_PARAM],
        request=ResumeInput,
        responses={
            202: RunOutput,
            409: OpenApiResponse(RunNotWaitingOutput, description="The run is not waiting for input."),
            **error_responses(401, 403, 404, 422, 429, 503),
        },
        tags=TAGS,
    )
    @action(detail=True, methods=["post"])
    def resume(self, request, deal_id, run_id):
        run_uuid = parse_path_uuid(run_id, "run_id")
        body = parse_body(ResumeInput, request)
        ratelimit.consume(ratelimit.generate_bucket(), request.user.pk)
        run = run_inputs.run_resume(
            deal=self.deal_access.deal, run_id=run_uuid, user=request.user, notes=body["inputs"].get("notes") or {}
        )
        return Response(RunOutput(run).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        operation_id="canvas_run_trace",
        summary="Per-node trace of a run: inputs, outputs, elapsed (viewer)",
        description="Kept in Redis for 10 minutes after the run's last node (`expired` after that); the per-section "
        "summary stays on the run.",
        parameters=[RUN_PARAM],
        responses={200: RunTraceOutput, **error_responses(401, 403, 404, 422, 503)},
        tags=TAGS,
    )
    # Not named `trace`: APIView.dispatch takes an attribute named after the HTTP method, so an action called
    # `trace` would answer the TRACE method too (with the action's code) instead of 405.
    @action(detail=True, methods=["get"], url_path="trace", url_name="trace")
    def run_trace(self, request, deal_id, run_id):
        trace = run_selectors.run_trace_get(deal=self.deal_access.deal, run_id=parse_path_uuid(run_id, "run_id"))
        return Response(RunTraceOutput(trace).data)


class SectionDraftingViewSet(DealScopedViewSet):
    """POST /api/canvas/{deal_id}/sections/{key}/regenerate: redraft one section."""

    # Only @action routes: the plain section route is canvas.memo's SectionViewSet.
    lookup_field = "key"
    minimum_roles = {"regenerate": DealRole.EDITOR}

    @extend_schema(
        operation_id="canvas_section_regenerate",
        summary="Redraft one section (editor)",
        description="Queues a run for this section only and answers 202 with its id and an estimate of how long "
        "it takes (from the deal's recent runs and the queue). Same rules as generate: the shared rate limit, "
        "one active run per deal (`multitask_strategy`: reject with 409, enqueue, interrupt or rollback; "
        "`?on_conflict=enqueue` as an alias). The previous text stays restorable.",
        parameters=[KEY_PARAM, ConflictQueryInput],
        request=RegenerateInput,
        responses={202: RegenerateOutput, 409: RUN_CONFLICT, **error_responses(401, 403, 404, 422, 429, 503)},
        tags=TAGS,
    )
    @action(detail=True, methods=["post"])
    def regenerate(self, request, deal_id, key):
        body = parse_body(RegenerateInput, request)
        query = parse_query(ConflictQueryInput, request)
        strategy = resolve_multitask_strategy(body, query)
        ratelimit.consume(ratelimit.generate_bucket(), request.user.pk)
        run = runs.run_create(
            deal=self.deal_access.deal,
            user=request.user,
            kind="regenerate",
            sections=[key],
            instructions=body["instructions"],
            multitask_strategy=strategy,
            webhook=body.get("webhook"),
        )
        return _run_accepted(run, estimated_seconds=runs.estimated_seconds(run=run))
