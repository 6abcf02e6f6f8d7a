"""Canvas endpoints under /api/canvas/{deal_id}. Thin: validate, call one service/selector, serialize."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, OpenApiTypes, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from canvas.memo import export, selectors, services, session
from canvas.memo.errors import ExportRefused
from canvas.memo.serializers import (
    CanvasSaveInput,
    CanvasSaveOutput,
    CanvasSectionOutput,
    CanvasSessionResponse,
    CommentCreateInput,
    CommentOutput,
    CommentQueryInput,
    DocumentStateRefusedResponse,
    DocumentStateResponse,
    ExportQueryInput,
    FeedbackInput,
    FeedbackOutput,
    MemoTemplateOutput,
    PageQueryInput,
    ProgressOutput,
    ReadinessOutput,
    SectionApprovalOutput,
    SectionApproveInput,
    SectionUpdateInput,
    SectionUpdateOutput,
    VersionDetailOutput,
    VersionDiffOutput,
    VersionPageOutput,
    VersionRestoreInput,
)
from canvas.memo.templates import TEMPLATES
from canvas.review import selectors as review_selectors
from canvas.review import services as review_services
from canvas_project import ratelimit
from canvas_project.api.schema import error_responses
from canvas_project.api.validation import RequestValidationError, parse_body, parse_path_uuid, parse_query
from deals.errors import RoleTooLow
from deals.permissions import DealScopedAPIView, RequireCommenter, RequireEditor, RequireOwner, RequireViewer

KEY_PARAM = OpenApiParameter("key", OpenApiTypes.STR, OpenApiParameter.PATH, description="Section key.")
N_PARAM = OpenApiParameter("n", OpenApiTypes.INT, OpenApiParameter.PATH, description="Version number.")
CID_PARAM = OpenApiParameter("cid", OpenApiTypes.INT, OpenApiParameter.PATH, description="Condition id.")
COMMENT_PARAM = OpenApiParameter("comment_id", OpenApiTypes.UUID, OpenApiParameter.PATH)
READ_ERRORS = error_responses(401, 403, 404, 503)
WRITE_ERRORS = error_responses(401, 403, 404, 409, 422, 503)
# writes of the memo itself: with collaboration off, one that would change a section locked by someone else is 423
MEMO_WRITE_ERRORS = error_responses(401, 403, 404, 409, 422, 423, 503)


def parse_path_int(value: str, name: str) -> int:
    """Raises RequestValidationError (422 at path.<name>) unless value is a positive integer."""
    if not value.isdigit() or int(value) < 1 or len(value) > 12:
        raise RequestValidationError(
            [
                {
                    "loc": ["path", name],
                    "msg": "Input should be a positive integer.",
                    "type": "int_parsing",
                    "input": value,
                    "ctx": {},
                }
            ]
        )
    return int(value)


class TemplateListApi(APIView):
    @extend_schema(
        operation_id="canvas_templates",
        summary="Memo templates and their sections",
        responses={200: MemoTemplateOutput(many=True), **error_responses(401)},
        tags=["canvas"],
    )
    def get(self, request):
        return Response(MemoTemplateOutput(list(TEMPLATES.values()), many=True).data)


class CanvasSessionApi(DealScopedAPIView):
    guards = {"GET": RequireViewer}
    # The hottest endpoint: the token's user id is enough (the access query checks the user is active),
    # which saves loading the user row (bench/canvas_get).
    jwt_stateless_user = True

    @extend_schema(
        operation_id="canvas_get",
        summary="Get or create the canvas session",
        description="The memo with its document state, sections and the caller's permissions. Cached in Redis "
        "for 48 h; with Redis down it is read from the Store and `initialization_warning` says so.",
        responses={200: CanvasSessionResponse, **READ_ERRORS},
        tags=["canvas"],
    )
    def get(self, request, deal_id):
        ctx = self.deal_access
        # the cached body goes out as it is (no parse, no re-render): see canvas.session
        body = services.canvas_session_bytes(deal=ctx.deal, role=ctx.role, user=request.user)
        return HttpResponse(body, content_type="application/json")


class CanvasRefreshApi(DealScopedAPIView):
    guards = {"POST": RequireEditor}

    @extend_schema(
        operation_id="canvas_refresh",
        summary="Force-refresh the session from the Store (editor)",
        description="Rebuilds the cached session from the LangGraph Store. Counts against the shared per-user "
        "'generate' rate limit (429 with Retry-After).",
        request=None,
        responses={200: CanvasSessionResponse, **error_responses(401, 403, 404, 422, 429, 503)},
        tags=["canvas"],
    )
    def post(self, request, deal_id):
        ctx = self.deal_access
        ratelimit.consume(ratelimit.generate_bucket(), request.user.pk)
        return Response(services.canvas_refresh(deal=ctx.deal, role=ctx.role, user=request.user))


class CanvasSaveApi(DealScopedAPIView):
    guards = {"POST": RequireEditor}

    @extend_schema(
        operation_id="canvas_save",
        summary="Save the whole memo (editor)",
        description="Splits the markdown into sections by `##` headings (unknown headings become custom sections) "
        "and writes those that changed as one new version. 409 with `current_version` when `base_version` is "
        "stale; 413 over the size limit; with collaboration off, 423 naming the holder and expiry when it would "
        "change a section locked by someone else (nothing is written; leave such sections exactly as they are).",
        request=CanvasSaveInput,
        responses={200: CanvasSaveOutput, **error_responses(401, 403, 404, 409, 413, 422, 423, 503)},
        tags=["canvas"],
    )
    def post(self, request, deal_id):
        body = parse_body(CanvasSaveInput, request)
        outcome = services.canvas_save(
            deal=self.deal_access.deal,
            user=request.user,
            content=body["content"],
            base_version=body.get("base_version"),
        )
        return Response(
            {
                "success": True,
                "version": outcome.memo.version,
                "document_state": str(outcome.memo.state),
                "changed_sections": outcome.changed,
                "saved": outcome.wrote,
            }
        )


class SectionApi(DealScopedAPIView):
    guards = {"PUT": RequireEditor}

    @extend_schema(
        operation_id="canvas_section_update",
        summary="Edit one section (editor)",
        description="`base_version` is the memo version the edit was made on: 409 with `current_version` only when "
        "this section was written after it (or the memo has not reached it); edits of other sections meanwhile do "
        "not make it stale. Without `base_version` the edit is last-writer-wins. With collaboration off, another "
        "user's section lock answers 423.",
        parameters=[KEY_PARAM],
        request=SectionUpdateInput,
        responses={200: SectionUpdateOutput, **error_responses(401, 403, 404, 409, 413, 422, 423, 503)},
        tags=["canvas"],
    )
    def put(self, request, deal_id, key):
        body = parse_body(SectionUpdateInput, request)
        deal = self.deal_access.deal
        outcome = services.section_update(
            deal=deal,
            user=request.user,
            key=key,
            markdown=body["markdown"],
            title=body.get("title"),
            base_version=body.get("base_version"),
        )
        section = outcome.memo.sections[key]
        payload = session.section_view(section)
        return Response(
            {
                "success": True,
                "version": outcome.memo.version,
                "document_state": str(outcome.memo.state),
                "section": CanvasSectionOutput(payload).data,
            }
        )


def _transition_response(result) -> Response:
    return Response(
        {
            "success": result.success,
            "from_state": result.from_state,
            "to_state": result.to_state,
            "error": result.error,
            "details": result.details,
        }
    )


class CanvasApproveApi(DealScopedAPIView):
    guards = {"POST": RequireOwner}

    @extend_schema(
        operation_id="canvas_approve",
        summary="Approve the memo (owner)",
        description="editing -> approved, only when `can_finalize`; mints an immutable approval snapshot. "
        "Refused transitions answer 409 with the same shape and `success: false`.",
        request=None,
        responses={
            200: DocumentStateResponse,
            409: OpenApiResponse(DocumentStateRefusedResponse, description="Transition refused."),
            **error_responses(401, 403, 404, 503),
        },
        tags=["canvas"],
    )
    def post(self, request, deal_id):
        ctx = self.deal_access
        return _transition_response(services.memo_approve(deal=ctx.deal, user=request.user, role=ctx.role))


class CanvasReopenApi(DealScopedAPIView):
    guards = {"POST": RequireOwner}

    @extend_schema(
        operation_id="canvas_reopen",
        summary="Reopen an approved memo (owner)",
        request=None,
        responses={
            200: DocumentStateResponse,
            409: OpenApiResponse(DocumentStateRefusedResponse, description="Transition refused."),
            **error_responses(401, 403, 404, 503),
        },
        tags=["canvas"],
    )
    def post(self, request, deal_id):
        return _transition_response(services.memo_reopen(deal=self.deal_access.deal, user=request.user))


class SectionApproveApi(DealScopedAPIView):
    guards = {"POST": RequireEditor}

    @extend_schema(
        operation_id="canvas_section_approve",
        summary="Approve a section (editor)",
        description="Without conditions the section becomes `approved`; with up to 3 conditions it is `reviewed` "
        "until they are all resolved. Unresolved comments on the section block approval (409) unless an owner "
        "sends `force`.",
        parameters=[KEY_PARAM],
        request=SectionApproveInput,
        responses={200: SectionApprovalOutput, **MEMO_WRITE_ERRORS},
        tags=["review"],
    )
    def post(self, request, deal_id, key):
        body = parse_body(SectionApproveInput, request)
        ctx = self.deal_access
        result = review_services.section_approve(
            deal=ctx.deal,
            user=request.user,
            role=ctx.role,
            key=key,
            comment=body["comment"],
            reviewer_role=body["role"],
            quality_score=body.get("quality_score"),
            conditions=body["conditions"],
            force=body["force"],
        )
        return Response(SectionApprovalOutput(result).data)


class ConditionResolveApi(DealScopedAPIView):
    guards = {"POST": RequireEditor}

    @extend_schema(
        operation_id="canvas_condition_resolve",
        summary="Resolve an approval condition (editor)",
        description="Resolving the last condition promotes the section to `approved` (`auto_promoted`).",
        parameters=[KEY_PARAM, CID_PARAM],
        request=None,
        responses={200: SectionApprovalOutput, **MEMO_WRITE_ERRORS},
        tags=["review"],
    )
    def post(self, request, deal_id, key, cid):
        result = review_services.condition_resolve(
            deal=self.deal_access.deal, user=request.user, section_key=key, condition_id=parse_path_int(cid, "cid")
        )
        return Response(SectionApprovalOutput(result).data)


class FeedbackApi(DealScopedAPIView):
    guards = {"POST": RequireCommenter}

    @extend_schema(
        operation_id="canvas_feedback",
        summary="Rate a section (commenter)",
        request=FeedbackInput,
        responses={201: FeedbackOutput, **WRITE_ERRORS},
        tags=["review"],
    )
    def post(self, request, deal_id):
        body = parse_body(FeedbackInput, request)
        feedback = review_services.feedback_create(deal=self.deal_access.deal, user=request.user, **body)
        return Response(FeedbackOutput(feedback).data, status=status.HTTP_201_CREATED)


class CommentCollectionApi(DealScopedAPIView):
    guards = {"GET": RequireViewer, "POST": RequireCommenter}

    @extend_schema(
        operation_id="canvas_comments_list",
        summary="Comment threads (viewer)",
        parameters=[CommentQueryInput],
        responses={200: CommentOutput(many=True), **error_responses(401, 403, 404, 422)},
        tags=["review"],
    )
    def get(self, request, deal_id):
        query = parse_query(CommentQueryInput, request)
        comments = review_selectors.comments_of_deal(
            deal=self.deal_access.deal, section_key=query.get("section_key"), resolved=query.get("resolved")
        )
        return Response(CommentOutput(comments, many=True).data)

    @extend_schema(
        operation_id="canvas_comments_create",
        summary="Comment on a section, or reply (commenter)",
        request=CommentCreateInput,
        responses={201: CommentOutput, **WRITE_ERRORS},
        tags=["review"],
    )
    def post(self, request, deal_id):
        body = parse_body(CommentCreateInput, request)
        comment = review_services.comment_create(
            deal=self.deal_access.deal,
            user=request.user,
            section_key=body.get("section_key", ""),
            body=body["body"],
            parent_id=body.get("parent_id"),
        )
        return Response(CommentOutput(comment).data, status=status.HTTP_201_CREATED)


class CommentResolveApi(DealScopedAPIView):
    guards = {"POST": RequireCommenter}

    @extend_schema(
        operation_id="canvas_comment_resolve",
        summary="Resolve a comment thread (its author, or an editor)",
        parameters=[COMMENT_PARAM],
        request=None,
        responses={200: CommentOutput, **WRITE_ERRORS},
        tags=["review"],
    )
    def post(self, request, deal_id, comment_id):
        ctx = self.deal_access
        comment = review_services.comment_resolve(
            deal=ctx.deal, user=request.user, role=ctx.role, comment_id=parse_path_uuid(comment_id, "comment_id")
        )
        return Response(CommentOutput(comment).data)


class ReadinessApi(DealScopedAPIView):
    guards = {"GET": RequireViewer}

    @extend_schema(
        operation_id="canvas_readiness",
        summary="Readiness score with its reasons (viewer)",
        responses={200: ReadinessOutput, **READ_ERRORS},
        tags=["review"],
    )
    def get(self, request, deal_id):
        report = selectors.readiness_get(deal=self.deal_access.deal)
        return Response({**report, "gate": settings.CANVAS_READINESS_GATE})


class ProgressApi(DealScopedAPIView):
    guards = {"GET": RequireViewer}

    @extend_schema(
        operation_id="canvas_progress",
        summary="Which sections have content (viewer)",
        responses={200: ProgressOutput, **error_responses(401, 403, 404)},
        tags=["canvas"],
    )
    def get(self, request, deal_id):
        return Response(selectors.progress_get(deal=self.deal_access.deal))


class VersionListApi(DealScopedAPIView):
    guards = {"GET": RequireViewer}

    @extend_schema(
        operation_id="canvas_versions",
        summary="Version snapshots, newest first (viewer)",
        parameters=[PageQueryInput],
        responses={200: VersionPageOutput, **error_responses(401, 403, 404, 422, 503)},
        tags=["versions"],
    )
    def get(self, request, deal_id):
        query = parse_query(PageQueryInput, request)
        return Response(selectors.versions_page(deal=self.deal_access.deal, **query))


class VersionDetailApi(DealScopedAPIView):
    guards = {"GET": RequireViewer}

    @extend_schema(
        operation_id="canvas_version",
        summary="One version snapshot (viewer)",
        parameters=[N_PARAM],
        responses={200: VersionDetailOutput, **error_responses(401, 403, 404, 422, 503)},
        tags=["versions"],
    )
    def get(self, request, deal_id, n):
        snapshot = selectors.version_get(deal=self.deal_access.deal, version=parse_path_int(n, "n"))
        return Response(VersionDetailOutput(snapshot).data)


class VersionDiffApi(DealScopedAPIView):
    guards = {"GET": RequireViewer}

    @extend_schema(
        operation_id="canvas_version_diff",
        summary="Diff of a version against the current memo (viewer)",
        parameters=[N_PARAM],
        responses={200: VersionDiffOutput, **error_responses(401, 403, 404, 422, 503)},
        tags=["versions"],
    )
    def get(self, request, deal_id, n):
        return Response(selectors.version_diff(deal=self.deal_access.deal, version=parse_path_int(n, "n")))


class VersionRestoreApi(DealScopedAPIView):
    guards = {"POST": RequireEditor}

    @extend_schema(
        operation_id="canvas_version_restore",
        summary="Restore a version as a new version (editor)",
        parameters=[N_PARAM],
        request=VersionRestoreInput,
        responses={200: CanvasSaveOutput, **MEMO_WRITE_ERRORS},
        tags=["versions"],
    )
    def post(self, request, deal_id, n):
        body = parse_body(VersionRestoreInput, request)
        outcome = services.version_restore(
            deal=self.deal_access.deal,
            user=request.user,
            version=parse_path_int(n, "n"),
            base_version=body.get("base_version"),
        )
        return Response(
            {
                "success": True,
                "version": outcome.memo.version,
                "document_state": str(outcome.memo.state),
                "changed_sections": outcome.changed,
                "saved": outcome.wrote,
            }
        )


class ExportApi(DealScopedAPIView):
    guards = {"GET": RequireViewer}

    @extend_schema(
        operation_id="canvas_export",
        summary="Export the memo as Markdown or Word",
        description="Allowed when `can_export`: not blank, not blocked, and editor or higher or the memo approved. "
        "`version` exports an approval snapshot instead (viewers included).",
        parameters=[ExportQueryInput],
        responses={
            (200, "text/markdown"): OpenApiResponse(OpenApiTypes.STR, description="The memo as Markdown."),
            (200, "application/vnd.openxmlformats-officedocument.wordprocessingml.document"): OpenApiResponse(
                OpenApiTypes.BINARY, description="The memo as a Word document."
            ),
            **error_responses(401, 403, 404, 409, 422, 503),
        },
        tags=["canvas"],
    )
    def get(self, request, deal_id):
        query = parse_query(ExportQueryInput, request)
        ctx = self.deal_access
        deal = ctx.deal
        if "version" in query:
            snapshot = selectors.version_get(deal=deal, version=query["version"])
            if not snapshot.get("approval"):
                raise ExportRefused("Only approval snapshots can be exported by version.")
            sections = sorted(snapshot["sections"].values(), key=lambda s: (s.get("order", 0), s["key"]))
            subtitle = f"Approved version {snapshot['version']} ({snapshot['created_at'][:10]})"
        else:
            current = services.canvas_session_get(deal=deal, role=ctx.role, user=request.user)
            if not current["can_export"]:
                if not current["is_blank"] and not current["incomplete_delivery_blocked"]:
                    raise RoleTooLow("Viewers and commenters can export only an approved memo.")
                raise ExportRefused(_export_refusal(current))
            sections = list(current["sections"].values())
            subtitle = f"Version {current['version']} ({current['document_state']})"
        stem = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in deal.name)[:80] or "memo"
        if query["format"] == "docx":
            body = export.memo_docx(title=deal.name, sections=sections, subtitle=subtitle)
            response = HttpResponse(
                body, content_type="application/vnd.openxmlformats-officedocument.wordprocessingml.document"
            )
            response["Content-Disposition"] = f'attachment; filename="{stem}.docx"'
            return response
        response = HttpResponse(
            export.memo_markdown(title=deal.name, sections=sections), content_type="text/markdown; charset=utf-8"
        )
        response["Content-Disposition"] = f'attachment; filename="{stem}.md"'
        return response


def _export_refusal(current: dict) -> str:
    if current["is_blank"]:
        return "A blank memo cannot be exported."
    return "Export is blocked: the last drafting run left required sections empty."
