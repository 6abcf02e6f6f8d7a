"""Review's endpoints under /api/canvas/{deal_id}: suggestions, section approval and its conditions,
feedback, comments and brushes.

Thin: validate, call one service or selector, serialize. Business rules live in canvas.review.services
(and canvas.review.brushes); deal scoping and the minimum role of each action come from
deals.viewsets.DealScopedViewSet.
"""

from __future__ import annotations

import uuid

from drf_spectacular.utils import OpenApiParameter, OpenApiTypes, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from canvas.memo.session import deal_section_view
from canvas.memo.viewsets import MemoWriteViewSet
from canvas.review import brushes
from canvas.review import selectors as review_selectors
from canvas.review import services as review_services
from canvas.review.serializers import (
    BrushInput,
    BrushListOutput,
    BrushQueryInput,
    BrushResultOutput,
    CommentCreateInput,
    CommentOutput,
    CommentQueryInput,
    FeedbackInput,
    FeedbackOutput,
    SectionApprovalOutput,
    SectionApproveInput,
    SuggestionAcceptInput,
    SuggestionAcceptOutput,
    SuggestionCreateInput,
    SuggestionOutput,
    SuggestionQueryInput,
)
from canvas_project import ratelimit
from canvas_project.api.conditional import IF_MATCH_PARAM, PRECONDITION_FAILED, with_if_match
from canvas_project.api.pagination import CursorPagination, page_of, paginate
from canvas_project.api.schema import error_responses
from canvas_project.api.validation import parse_body, parse_path_int, parse_path_uuid, parse_query
from deals.models import DealRole
from deals.viewsets import DealScopedViewSet

KEY_PARAM = OpenApiParameter("key", OpenApiTypes.STR, OpenApiParameter.PATH, description="Section key.")
CID_PARAM = OpenApiParameter("cid", OpenApiTypes.INT, OpenApiParameter.PATH, description="Condition id.")
COMMENT_PARAM = OpenApiParameter("comment_id", OpenApiTypes.UUID, OpenApiParameter.PATH)
SUGGESTION_PARAM = OpenApiParameter(
    "suggestion_id",
    OpenApiTypes.UUID,
    OpenApiParameter.PATH,
    description="The suggestion's id; a malformed one is 422, an unknown one 404.",
)
WRITE_ERRORS = error_responses(401, 403, 404, 409, 422, 503)
# a section's state change: with collaboration off, a section locked by someone else is 423
SECTION_WRITE_ERRORS = error_responses(401, 403, 404, 409, 422, 423, 503)
SUGGESTION_TAGS = ["suggestions"]
REVIEW_TAGS = ["review"]
BRUSH_TAGS = ["synthesis"]


class SuggestionViewSet(MemoWriteViewSet):
    """/api/canvas/{deal_id}/suggestions: proposed changes to a section, and the editor's decision on them."""

    lookup_field = "suggestion_id"
    minimum_roles = {
        "list": DealRole.VIEWER,
        "create": DealRole.COMMENTER,
        "accept": DealRole.EDITOR,
        "reject": DealRole.EDITOR,
    }

    @extend_schema(
        operation_id="canvas_suggestions_list",
        summary="Suggestions, newest first (viewer)",
        description="Filter by `status`, `section_key` and `author` (`me` or a user id). Pending suggestions "
        "say whether they still apply to the current text (`anchor_matches`).",
        parameters=[SuggestionQueryInput],
        responses={200: page_of(SuggestionOutput), **error_responses(401, 403, 404, 422)},
        tags=SUGGESTION_TAGS,
    )
    def list(self, request, deal_id):
        query = parse_query(SuggestionQueryInput, request)
        author = query.get("author")
        author_id = request.user.pk if author == "me" else (uuid.UUID(author) if author else None)
        found = review_selectors.suggestion_list(
            deal=self.deal_access.deal,
            status=query.get("status"),
            section_key=query.get("section_key"),
            author_id=author_id,
        )
        paginator = CursorPagination()
        page = review_selectors.with_anchor_matches(
            deal=self.deal_access.deal, suggestions=paginator.paginate_queryset(found, request)
        )
        return Response(paginator.envelope(SuggestionOutput(page, many=True).data))

    @extend_schema(
        operation_id="canvas_suggestions_create",
        summary="Propose an insert, delete or replace in a section (commenter)",
        description="The anchor must occur in the section's current text (422 at `anchor_text` or "
        "`occurrence` otherwise); an unknown section is 404. Emits `suggestion_created`.",
        request=SuggestionCreateInput,
        responses={201: SuggestionOutput, **error_responses(401, 403, 404, 422, 503)},
        tags=SUGGESTION_TAGS,
    )
    def create(self, request, deal_id):
        body = parse_body(SuggestionCreateInput, request)
        suggestion = review_services.suggestion_create(deal=self.deal_access.deal, user=request.user, **body)
        return Response(SuggestionOutput(suggestion).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="canvas_suggestion_accept",
        summary="Accept a suggestion: apply it as a new memo version (editor)",
        description="Applies the change to the section's current text, as a new version with a snapshot, "
        "and emits `suggestion_accepted`. 409 when the suggestion is not pending, when its anchor no longer "
        "matches (it stays pending; the body has `current_version`), when `base_version` is stale, or when "
        "the memo is approved; 423 when another user holds the section's lock; 413 when the section would "
        "exceed the size limit.",
        parameters=[IF_MATCH_PARAM, SUGGESTION_PARAM],
        request=SuggestionAcceptInput,
        responses={
            200: SuggestionAcceptOutput,
            **PRECONDITION_FAILED,
            **error_responses(401, 403, 404, 409, 413, 422, 423, 503),
        },
        tags=SUGGESTION_TAGS,
    )
    @action(detail=True, methods=["post"])
    def accept(self, request, deal_id, suggestion_id):
        suggestion_pk = parse_path_uuid(suggestion_id, "suggestion_id")
        body = parse_body(SuggestionAcceptInput, request)
        outcome = review_services.suggestion_accept(
            deal=self.deal_access.deal,
            user=request.user,
            suggestion_id=suggestion_pk,
            base_version=with_if_match(body.get("base_version")),
        )
        doc = outcome.write.memo
        return Response(
            SuggestionAcceptOutput(
                {
                    "success": True,
                    "version": doc.version,
                    "document_state": doc.state,
                    "suggestion": outcome.suggestion,
                    "section": deal_section_view(self.deal_access.deal, outcome.section),
                }
            ).data
        )

    @extend_schema(
        operation_id="canvas_suggestion_reject",
        summary="Reject a suggestion (editor)",
        description="The memo is untouched. 409 when the suggestion is not pending. Emits `suggestion_rejected`.",
        parameters=[SUGGESTION_PARAM],
        request=None,
        responses={200: SuggestionOutput, **error_responses(401, 403, 404, 409, 422)},
        tags=SUGGESTION_TAGS,
    )
    @action(detail=True, methods=["post"])
    def reject(self, request, deal_id, suggestion_id):
        suggestion_pk = parse_path_uuid(suggestion_id, "suggestion_id")
        suggestion = review_services.suggestion_reject(
            deal=self.deal_access.deal, user=request.user, suggestion_id=suggestion_pk
        )
        return Response(SuggestionOutput(suggestion).data)


class SectionReviewViewSet(MemoWriteViewSet):
    """/api/canvas/{deal_id}/sections/{key}/approve and .../conditions/{cid}/resolve: a section's approval.

    The section's text (PUT /sections/{key}) is canvas.memo's SectionViewSet, on the same prefix."""

    lookup_field = "key"
    minimum_roles = {"approve": DealRole.EDITOR, "resolve_condition": DealRole.EDITOR}

    @extend_schema(
        operation_id="canvas_section_approve",
        summary="Approve a section (editor)",
        description="Without conditions the section becomes `approved`; with up to 3 conditions it is `reviewed` "
        "until they are all resolved. Unresolved comments on the section block approval (409) unless an owner "
        "sends `force`.",
        parameters=[IF_MATCH_PARAM, KEY_PARAM],
        request=SectionApproveInput,
        responses={200: SectionApprovalOutput, **SECTION_WRITE_ERRORS, **PRECONDITION_FAILED},
        tags=REVIEW_TAGS,
    )
    @action(detail=True, methods=["post"])
    def approve(self, request, deal_id, key):
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

    @extend_schema(
        operation_id="canvas_condition_resolve",
        summary="Resolve an approval condition (editor)",
        description="Resolving the last condition promotes the section to `approved` (`auto_promoted`).",
        parameters=[IF_MATCH_PARAM, KEY_PARAM, CID_PARAM],
        request=None,
        responses={200: SectionApprovalOutput, **SECTION_WRITE_ERRORS, **PRECONDITION_FAILED},
        tags=REVIEW_TAGS,
    )
    @action(detail=True, methods=["post"], url_path=r"conditions/(?P<cid>[^/]+)/resolve", url_name="condition-resolve")
    def resolve_condition(self, request, deal_id, key, cid):
        result = review_services.condition_resolve(
            deal=self.deal_access.deal, user=request.user, section_key=key, condition_id=parse_path_int(cid, "cid")
        )
        return Response(SectionApprovalOutput(result).data)


class FeedbackViewSet(DealScopedViewSet):
    """POST /api/canvas/{deal_id}/feedback: a member's rating of a section."""

    minimum_roles = {"create": DealRole.COMMENTER}

    @extend_schema(
        operation_id="canvas_feedback",
        summary="Rate a section (commenter)",
        request=FeedbackInput,
        responses={201: FeedbackOutput, **WRITE_ERRORS},
        tags=REVIEW_TAGS,
    )
    def create(self, request, deal_id):
        body = parse_body(FeedbackInput, request)
        feedback = review_services.feedback_create(deal=self.deal_access.deal, user=request.user, **body)
        return Response(FeedbackOutput(feedback).data, status=status.HTTP_201_CREATED)


class CommentViewSet(DealScopedViewSet):
    """/api/canvas/{deal_id}/comments: comment threads on sections, and resolving them."""

    lookup_field = "comment_id"
    # resolve admits commenters; the service lets only the thread's author, or an editor and up, resolve it
    minimum_roles = {"list": DealRole.VIEWER, "create": DealRole.COMMENTER, "resolve": DealRole.COMMENTER}

    @extend_schema(
        operation_id="canvas_comments_list",
        summary="Comment threads (viewer)",
        parameters=[CommentQueryInput],
        responses={200: page_of(CommentOutput), **error_responses(401, 403, 404, 422)},
        tags=REVIEW_TAGS,
    )
    def list(self, request, deal_id):
        query = parse_query(CommentQueryInput, request)
        comments = review_selectors.comments_of_deal(
            deal=self.deal_access.deal, section_key=query.get("section_key"), resolved=query.get("resolved")
        )
        return paginate(request, comments, serializer=CommentOutput)

    @extend_schema(
        operation_id="canvas_comments_create",
        summary="Comment on a section, or reply (commenter)",
        request=CommentCreateInput,
        responses={201: CommentOutput, **WRITE_ERRORS},
        tags=REVIEW_TAGS,
    )
    def create(self, request, deal_id):
        body = parse_body(CommentCreateInput, request)
        comment = review_services.comment_create(
            deal=self.deal_access.deal,
            user=request.user,
            section_key=body.get("section_key", ""),
            body=body["body"],
            parent_id=body.get("parent_id"),
        )
        return Response(CommentOutput(comment).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="canvas_comment_resolve",
        summary="Resolve a comment thread (its author, or an editor)",
        parameters=[COMMENT_PARAM],
        request=None,
        responses={200: CommentOutput, **WRITE_ERRORS},
        tags=REVIEW_TAGS,
    )
    @action(detail=True, methods=["post"])
    def resolve(self, request, deal_id, comment_id):
        ctx = self.deal_access
        comment = review_services.comment_resolve(
            deal=ctx.deal, user=request.user, role=ctx.role, comment_id=parse_path_uuid(comment_id, "comment_id")
        )
        return Response(CommentOutput(comment).data)


class BrushViewSet(DealScopedViewSet):
    """/api/canvas/{deal_id}/brush: check passes over the memo and their cached findings."""

    minimum_roles = {"list": DealRole.VIEWER, "create": DealRole.EDITOR}

    @extend_schema(
        operation_id="canvas_brush_list",
        summary="Cached brush findings, newest pass first (viewer)",
        description="The passes of the last 24 hours; with `section_key`, only that section's findings.",
        parameters=[BrushQueryInput],
        responses={200: BrushListOutput, **error_responses(401, 403, 404, 422, 503)},
        tags=BRUSH_TAGS,
    )
    def list(self, request, deal_id):
        query = parse_query(BrushQueryInput, request)
        results = brushes.brush_list(deal=self.deal_access.deal, section_key=query.get("section_key"))
        paginator = CursorPagination()
        page = paginator.paginate_sequence(
            results, request, key=lambda r: (r["created_at"], r["brush_id"]), descending=True
        )
        return Response(BrushListOutput(paginator.envelope(page)).data)

    @extend_schema(
        operation_id="canvas_brush_run",
        summary="Run a brush (check pass) over the memo (editor)",
        description="`figures`: numbers that disagree with deal intel; `citations`: figures without a citation; "
        "`completeness`: required sections missing or thin; `all`. Every finding carries a ready-to-post "
        "suggestion payload when there is a fix; `create_suggestions` files them as pending suggestions. The pass "
        "is cached for 24 hours. Counts against the shared 'generate' rate limit.",
        request=BrushInput,
        responses={201: BrushResultOutput, **error_responses(401, 403, 404, 422, 429, 503)},
        tags=BRUSH_TAGS,
    )
    def create(self, request, deal_id):
        body = parse_body(BrushInput, request)
        ratelimit.consume(ratelimit.generate_bucket(), request.user.pk)
        result = brushes.brush_run(
            deal=self.deal_access.deal,
            user=request.user,
            brush=body["brush"],
            section_key=body.get("section_key"),
            create_suggestions=body["create_suggestions"],
        )
        return Response(BrushResultOutput(result).data, status=status.HTTP_201_CREATED)
