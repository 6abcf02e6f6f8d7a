"""The memo's endpoints: the canvas under /api/canvas/{deal_id} (session, refresh, save, lifecycle,
readiness, progress, export), its sections and its versions, and the template catalogue.

Thin: validate, call one service or selector, serialize. Deal scoping and the minimum role of each
action come from deals.viewsets.DealScopedViewSet.
"""

from __future__ import annotations

import orjson
from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, OpenApiTypes, extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from canvas.memo import export, selectors, services, session
from canvas.memo.errors import ExportRefused
from canvas.memo.serializers import (
    CanvasSaveInput,
    CanvasSaveOutput,
    CanvasSectionOutput,
    CanvasSessionResponse,
    DocumentStateRefusedResponse,
    DocumentStateResponse,
    ExportQueryInput,
    MemoTemplateOutput,
    ProgressOutput,
    ReadinessOutput,
    SectionUpdateInput,
    SectionUpdateOutput,
    VersionDetailOutput,
    VersionDiffOutput,
    VersionPageOutput,
    VersionRestoreInput,
)
from canvas.memo.services import TransitionResult
from canvas.memo.templates import TEMPLATES
from canvas.memo.writes import WriteOutcome
from canvas_project import ratelimit
from canvas_project.api.conditional import (
    CONDITIONAL_READ_PARAMS,
    IF_MATCH_PARAM,
    NOT_MODIFIED,
    PRECONDITION_FAILED,
    conditional_json,
    none_match,
    not_modified,
    strong_etag,
    tagged,
    with_if_match,
)
from canvas_project.api.pagination import CursorPagination, PageQueryInput
from canvas_project.api.schema import error_responses
from canvas_project.api.validation import parse_body, parse_path_int, parse_query
from canvas_project.errors import DomainError
from deals.errors import RoleTooLow
from deals.models import DealRole
from deals.viewsets import DealScopedViewSet

KEY_PARAM = OpenApiParameter("key", OpenApiTypes.STR, OpenApiParameter.PATH, description="Section key.")
N_PARAM = OpenApiParameter("n", OpenApiTypes.INT, OpenApiParameter.PATH, description="Version number.")
READ_ERRORS = error_responses(401, 403, 404, 503)
WRITE_ERRORS = error_responses(401, 403, 404, 409, 422, 503)
TRANSITION_RESPONSES = {
    200: DocumentStateResponse,
    409: OpenApiResponse(DocumentStateRefusedResponse, description="Transition refused."),
    **error_responses(401, 403, 404, 503),
}
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def _write_response(outcome: WriteOutcome) -> Response:
    return Response(
        {
            "success": True,
            "version": outcome.memo.version,
            "document_state": str(outcome.memo.state),
            "changed_sections": outcome.changed,
            "saved": outcome.wrote,
        }
    )


def _transition_response(result: TransitionResult) -> Response:
    return Response(
        {
            "success": result.success,
            "from_state": result.from_state,
            "to_state": result.to_state,
            "error": result.error,
            "details": result.details,
        }
    )


def _export_refusal(current: dict) -> str:
    if current["is_blank"]:
        return "A blank memo cannot be exported."
    return "Export is blocked: the last drafting run left required sections empty."


class TemplateViewSet(viewsets.ViewSet):
    """GET /api/canvas/templates: the catalogue of memo templates (any signed-in user)."""

    @extend_schema(
        operation_id="canvas_templates",
        summary="Memo templates and their sections",
        responses={200: MemoTemplateOutput(many=True), **error_responses(401)},
        tags=["canvas"],
    )
    def list(self, request):
        return Response(MemoTemplateOutput(list(TEMPLATES.values()), many=True).data)


class MemoWriteViewSet(DealScopedViewSet):
    """Base of the viewsets whose actions write the memo: a stale If-Match answers 412 with the caller's
    current ETag of GET /api/canvas/{deal_id}."""

    def current_etag(self) -> str | None:
        ctx = self.deal_access
        try:
            ctx.deal.refresh_from_db(fields=["memo_version"])  # the write that lost may have moved it
            return services.canvas_session_tagged(deal=ctx.deal, role=ctx.role, user=self.request.user)[1]
        except DomainError:  # the Store is down: the 412 still says current_version
            return None


class CanvasViewSet(MemoWriteViewSet):
    """The memo of one deal: /api/canvas/{deal_id} and its operations."""

    lookup_field = "deal_id"
    minimum_roles = {
        "retrieve": DealRole.VIEWER,
        "refresh": DealRole.EDITOR,
        "save": DealRole.EDITOR,
        "approve": DealRole.OWNER,
        "reopen": DealRole.OWNER,
        "readiness": DealRole.VIEWER,
        "progress": DealRole.VIEWER,
        "export": DealRole.VIEWER,
    }
    # The hottest endpoint: the token's user id is enough (the access query checks the user is active),
    # which saves loading the user row (bench/canvas_get).
    stateless_user_actions = ("retrieve",)

    @extend_schema(
        operation_id="canvas_get",
        summary="Get or create the canvas session",
        description="The memo with its document state, sections and the caller's permissions. Cached in Redis "
        "for 48 h; with Redis down it is read from the Store and `initialization_warning` says so. Sends a "
        'strong `ETag` (`"v<version>-<hex>"`, per body: it covers the caller\'s role-dependent fields); '
        "`If-None-Match` with it answers 304 with no body while it is current. Send it as `If-Match` on a write "
        "instead of `base_version`.",
        parameters=CONDITIONAL_READ_PARAMS,
        responses={200: CanvasSessionResponse, **NOT_MODIFIED, **READ_ERRORS},
        tags=["canvas"],
    )
    def retrieve(self, request, deal_id):
        ctx = self.deal_access
        # the cached body goes out as it is (no parse, no re-render): see canvas.memo.session
        body, etag = services.canvas_session_tagged(deal=ctx.deal, role=ctx.role, user=request.user)
        if none_match(request, etag):
            return not_modified(etag)
        return tagged(HttpResponse(body, content_type="application/json"), etag)

    @extend_schema(
        operation_id="canvas_refresh",
        summary="Force-refresh the session from the Store (editor)",
        description="Rebuilds the cached session from the LangGraph Store. Counts against the shared per-user "
        "'generate' rate limit (429 with Retry-After).",
        request=None,
        responses={200: CanvasSessionResponse, **error_responses(401, 403, 404, 422, 429, 503)},
        tags=["canvas"],
    )
    @action(detail=True, methods=["post"])
    def refresh(self, request, deal_id):
        ctx = self.deal_access
        ratelimit.consume(ratelimit.generate_bucket(), request.user.pk)
        return Response(services.canvas_refresh(deal=ctx.deal, role=ctx.role, user=request.user))

    @extend_schema(
        operation_id="canvas_save",
        summary="Save the whole memo (editor)",
        description="Splits the markdown into sections by `##` headings (unknown headings become custom sections) "
        "and writes those that changed as one new version. 409 with `current_version` when `base_version` is "
        "stale; 413 over the size limit. With collaboration off, a save that would change a section locked by "
        "someone else answers 423 naming the holder and writes nothing; leave locked sections as they are.",
        parameters=[IF_MATCH_PARAM],
        request=CanvasSaveInput,
        responses={
            200: CanvasSaveOutput,
            **PRECONDITION_FAILED,
            **error_responses(401, 403, 404, 409, 413, 422, 423, 503),
        },
        tags=["canvas"],
    )
    @action(detail=True, methods=["post"])
    def save(self, request, deal_id):
        body = parse_body(CanvasSaveInput, request)
        outcome = services.canvas_save(
            deal=self.deal_access.deal,
            user=request.user,
            content=body["content"],
            base_version=with_if_match(body.get("base_version")),
        )
        return _write_response(outcome)

    @extend_schema(
        operation_id="canvas_approve",
        summary="Approve the memo (owner)",
        description="editing -> approved, only when `can_finalize`; mints an immutable approval snapshot. "
        "Refused transitions answer 409 with the same shape and `success: false`.",
        parameters=[IF_MATCH_PARAM],
        request=None,
        responses={**TRANSITION_RESPONSES, **PRECONDITION_FAILED},
        tags=["canvas"],
    )
    @action(detail=True, methods=["post"])
    def approve(self, request, deal_id):
        ctx = self.deal_access
        return _transition_response(services.memo_approve(deal=ctx.deal, user=request.user, role=ctx.role))

    @extend_schema(
        operation_id="canvas_reopen",
        summary="Reopen an approved memo (owner)",
        parameters=[IF_MATCH_PARAM],
        request=None,
        responses={**TRANSITION_RESPONSES, **PRECONDITION_FAILED},
        tags=["canvas"],
    )
    @action(detail=True, methods=["post"])
    def reopen(self, request, deal_id):
        return _transition_response(services.memo_reopen(deal=self.deal_access.deal, user=request.user))

    @extend_schema(
        operation_id="canvas_readiness",
        summary="Readiness score with its reasons (viewer)",
        responses={200: ReadinessOutput, **READ_ERRORS},
        tags=["review"],
    )
    @action(detail=True, methods=["get"])
    def readiness(self, request, deal_id):
        report = selectors.readiness_get(deal=self.deal_access.deal)
        return Response({**report, "gate": settings.CANVAS_READINESS_GATE})

    @extend_schema(
        operation_id="canvas_progress",
        summary="Which sections have content (viewer)",
        responses={200: ProgressOutput, **error_responses(401, 403, 404)},
        tags=["canvas"],
    )
    @action(detail=True, methods=["get"])
    def progress(self, request, deal_id):
        return Response(selectors.progress_get(deal=self.deal_access.deal))

    @extend_schema(
        operation_id="canvas_export",
        summary="Export the memo as Markdown or Word",
        description="Allowed when `can_export`: not blank, not blocked, and editor or higher or the memo approved. "
        "`version` exports an approval snapshot instead (viewers included). Sends an `ETag` (strong for Markdown; "
        "weak for Word, whose zip carries its write time) and answers `If-None-Match` with 304.",
        parameters=[ExportQueryInput, *CONDITIONAL_READ_PARAMS],
        responses={
            (200, "text/markdown"): OpenApiResponse(OpenApiTypes.STR, description="The memo as Markdown."),
            (200, DOCX): OpenApiResponse(OpenApiTypes.BINARY, description="The memo as a Word document."),
            **NOT_MODIFIED,
            **error_responses(401, 403, 404, 409, 422, 503),
        },
        tags=["canvas"],
    )
    @action(detail=True, methods=["get"])
    def export(self, request, deal_id):
        query = parse_query(ExportQueryInput, request)
        ctx = self.deal_access
        deal = ctx.deal
        fmt = query["format"].encode()
        if "version" in query:
            snapshot = selectors.version_get(deal=deal, version=query["version"])
            if not snapshot.get("approval"):
                raise ExportRefused("Only approval snapshots can be exported by version.")
            # an approval snapshot never changes: its number, the format and the title make the body
            etag = strong_etag(b"export", fmt, deal.name.encode(), b"%d" % snapshot["version"])
            if none_match(request, etag):
                return not_modified(_weak(etag, fmt))
            sections = sorted(snapshot["sections"].values(), key=lambda s: (s.get("order", 0), s["key"]))
            subtitle = f"Approved version {snapshot['version']} ({snapshot['created_at'][:10]})"
        else:
            body, session_etag = services.canvas_session_tagged(deal=deal, role=ctx.role, user=request.user)
            # the session's tag covers the memo and the caller's `can_export`: a client holding this tag was
            # allowed to export this very memo
            etag = strong_etag(b"export", fmt, deal.name.encode(), session_etag.encode(), version=deal.memo_version)
            if none_match(request, etag):
                return not_modified(_weak(etag, fmt))
            current = orjson.loads(body)
            if not current["can_export"]:
                if not current["is_blank"] and not current["incomplete_delivery_blocked"]:
                    raise RoleTooLow("Viewers and commenters can export only an approved memo.")
                raise ExportRefused(_export_refusal(current))
            sections = list(current["sections"].values())
            subtitle = f"Version {current['version']} ({current['document_state']})"
        stem = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in deal.name)[:80] or "memo"
        if query["format"] == "docx":
            response = HttpResponse(
                export.memo_docx(title=deal.name, sections=sections, subtitle=subtitle), content_type=DOCX
            )
            response["Content-Disposition"] = f'attachment; filename="{stem}.docx"'
            return tagged(response, _weak(etag, fmt))
        response = HttpResponse(
            export.memo_markdown(title=deal.name, sections=sections), content_type="text/markdown; charset=utf-8"
        )
        response["Content-Disposition"] = f'attachment; filename="{stem}.md"'
        return tagged(response, etag)


def _weak(etag: str, fmt: bytes) -> str:
    """A Word file's bytes differ on every render (its zip records the write time): its tag is weak."""
    return f"W/{etag}" if fmt == b"docx" else etag


class SectionViewSet(MemoWriteViewSet):
    """PUT /api/canvas/{deal_id}/sections/{key}: one section's text."""

    lookup_field = "key"
    minimum_roles = {"update": DealRole.EDITOR}

    @extend_schema(
        operation_id="canvas_section_update",
        summary="Edit one section (editor)",
        description="`base_version` is the memo version the edit was made on: 409 with `current_version` only when "
        "this section was written after it (or the memo has not reached it); edits of other sections meanwhile do "
        "not make it stale. Without `base_version` the edit is last-writer-wins. With collaboration off the "
        "editor must hold the section's lock: 423 names the holder and expiry (or says to take the lock).",
        parameters=[IF_MATCH_PARAM, KEY_PARAM],
        request=SectionUpdateInput,
        responses={
            200: SectionUpdateOutput,
            **PRECONDITION_FAILED,
            **error_responses(401, 403, 404, 409, 413, 422, 423, 503),
        },
        tags=["canvas"],
    )
    def update(self, request, deal_id, key):
        body = parse_body(SectionUpdateInput, request)
        outcome = services.section_update(
            deal=self.deal_access.deal,
            user=request.user,
            key=key,
            markdown=body["markdown"],
            title=body.get("title"),
            base_version=with_if_match(body.get("base_version")),
        )
        return Response(
            {
                "success": True,
                "version": outcome.memo.version,
                "document_state": str(outcome.memo.state),
                "section": CanvasSectionOutput(
                    session.deal_section_view(self.deal_access.deal, outcome.memo.sections[key])
                ).data,
            }
        )


class VersionViewSet(MemoWriteViewSet):
    """/api/canvas/{deal_id}/versions: the memo's snapshots, a diff against now, and restore."""

    lookup_field = "n"
    minimum_roles = {
        "list": DealRole.VIEWER,
        "retrieve": DealRole.VIEWER,
        "diff": DealRole.VIEWER,
        "restore": DealRole.EDITOR,
    }

    @extend_schema(
        operation_id="canvas_versions",
        summary="Version snapshots, newest first (viewer)",
        description='Sends a strong `ETag` (`"v<memo version>-<hex>"`); `If-None-Match` with it answers 304.',
        parameters=[PageQueryInput, *CONDITIONAL_READ_PARAMS],
        responses={200: VersionPageOutput, **NOT_MODIFIED, **error_responses(401, 403, 404, 422, 503)},
        tags=["versions"],
    )
    def list(self, request, deal_id):
        parse_query(PageQueryInput, request)
        deal = self.deal_access.deal
        numbers, approvals, current = selectors.version_numbers(deal=deal)
        paginator = CursorPagination()
        chosen = paginator.paginate_sequence(numbers, request, key=lambda n: (n,), descending=True)
        results = selectors.version_summaries(deal=deal, numbers=chosen, approvals=approvals)
        page = VersionPageOutput(paginator.envelope(results, current_version=current)).data
        return conditional_json(request, page, version=current)

    @extend_schema(
        operation_id="canvas_version",
        summary="One version snapshot (viewer)",
        description="A snapshot never changes: its strong `ETag` stays; `If-None-Match` with it answers 304.",
        parameters=[N_PARAM, *CONDITIONAL_READ_PARAMS],
        responses={200: VersionDetailOutput, **NOT_MODIFIED, **error_responses(401, 403, 404, 422, 503)},
        tags=["versions"],
    )
    def retrieve(self, request, deal_id, n):
        snapshot = selectors.version_get(deal=self.deal_access.deal, version=parse_path_int(n, "n"))
        return conditional_json(request, VersionDetailOutput(snapshot).data)

    @extend_schema(
        operation_id="canvas_version_diff",
        summary="Diff of a version against the current memo (viewer)",
        parameters=[N_PARAM],
        responses={200: VersionDiffOutput, **error_responses(401, 403, 404, 422, 503)},
        tags=["versions"],
    )
    @action(detail=True, methods=["get"])
    def diff(self, request, deal_id, n):
        return Response(selectors.version_diff(deal=self.deal_access.deal, version=parse_path_int(n, "n")))

    @extend_schema(
        operation_id="canvas_version_restore",
        summary="Restore a version as a new version (editor)",
        description="With collaboration off, a restore that would change a section locked by someone else answers "
        "423 and writes nothing.",
        parameters=[IF_MATCH_PARAM, N_PARAM],
        request=VersionRestoreInput,
        responses={200: CanvasSaveOutput, **PRECONDITION_FAILED, **error_responses(401, 403, 404, 409, 422, 423, 503)},
        tags=["versions"],
    )
    @action(detail=True, methods=["post"])
    def restore(self, request, deal_id, n):
        body = parse_body(VersionRestoreInput, request)
        outcome = services.version_restore(
            deal=self.deal_access.deal,
            user=request.user,
            version=parse_path_int(n, "n"),
            base_version=with_if_match(body.get("base_version")),
        )
        return _write_response(outcome)
