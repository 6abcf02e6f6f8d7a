"""Suggestion endpoints under /api/canvas/{deal_id}/suggestions. Thin: validate, call one service or
selector, serialize. Business rules live in canvas.review.services."""

from __future__ import annotations

import uuid

from drf_spectacular.utils import OpenApiParameter, OpenApiTypes, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from canvas.memo.serializers import (
    CanvasSectionOutput,
    CommentCreateInput,
    CommentOutput,
    CommentQueryInput,
    FeedbackInput,
    FeedbackOutput,
    SectionApprovalOutput,
    SectionApproveInput,
)
from canvas.memo.session import section_view
from canvas.models import SuggestionKind, SuggestionStatus
from canvas.review import selectors as review_selectors
from canvas.review import services as review_services
from canvas.review import suggestions
from canvas_project.api.fields import StrictCharField
from canvas_project.api.schema import error_responses
from canvas_project.api.validation import parse_body, parse_path_int, parse_path_uuid, parse_query
from deals.models import DocumentState
from deals.permissions import DealScopedAPIView, RequireCommenter, RequireEditor, RequireViewer

KEY_PARAM = OpenApiParameter("key", OpenApiTypes.STR, OpenApiParameter.PATH, description="Section key.")
CID_PARAM = OpenApiParameter("cid", OpenApiTypes.INT, OpenApiParameter.PATH, description="Condition id.")
COMMENT_PARAM = OpenApiParameter("comment_id", OpenApiTypes.UUID, OpenApiParameter.PATH)
WRITE_ERRORS = error_responses(401, 403, 404, 409, 422, 503)

SUGGESTION_PARAM = OpenApiParameter(
    "suggestion_id",
    OpenApiTypes.UUID,
    OpenApiParameter.PATH,
    description="The suggestion's id; a malformed one is 422, an unknown one 404.",
)
TAGS = ["suggestions"]


# --- serializers ------------------------------------------------------------------------------------------
class SuggestionCreateInput(serializers.Serializer):
    section_key = StrictCharField(max_length=64)
    kind = serializers.ChoiceField(choices=SuggestionKind.choices)
    anchor_text = StrictCharField(
        max_length=suggestions.MAX_ANCHOR_CHARS,
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        default="",
        help_text="The exact text the change is anchored to (case, whitespace and markdown count). Required "
        "for delete and replace; for insert, the text after which `content` goes, or empty to append to the "
        "section.",
    )
    occurrence = serializers.IntegerField(
        min_value=1,
        max_value=100_000,
        required=False,
        default=1,
        help_text="Which match of the anchor (1-based, counted left to right without overlaps).",
    )
    content = StrictCharField(
        max_length=suggestions.MAX_CONTENT_CHARS,
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        default="",
        help_text="The new text, inserted exactly as given: required for insert and replace, empty for "
        "delete. An append (empty anchor) is separated from existing text by a blank line unless either side "
        "already has a line break there.",
    )
    comment = StrictCharField(
        max_length=suggestions.MAX_COMMENT_CHARS,
        required=False,
        allow_blank=True,
        default="",
        help_text="Why the change is proposed.",
    )

    def validate(self, attrs):
        kind, anchor, content = attrs["kind"], attrs["anchor_text"], attrs["content"]
        problems: dict[str, str] = {}
        if kind in (SuggestionKind.DELETE, SuggestionKind.REPLACE) and not anchor:
            problems["anchor_text"] = f"A {kind} needs the text it changes."
        if kind == SuggestionKind.DELETE and content:
            problems["content"] = "A delete carries no content."
        if kind == SuggestionKind.INSERT and not content:
            problems["content"] = "An insert needs content."
        if kind == SuggestionKind.REPLACE and not content:
            problems["content"] = "A replace needs content; use a delete to remove text."
        if kind == SuggestionKind.REPLACE and anchor and content == anchor:
            problems["content"] = "The replacement is the same as the anchor text."
        if not anchor and attrs["occurrence"] != 1:
            problems["occurrence"] = "An occurrence applies only to a non-empty anchor text."
        if problems:
            raise serializers.ValidationError(problems, code="value_error")
        return attrs


class SuggestionQueryInput(serializers.Serializer):
    status = serializers.ChoiceField(choices=SuggestionStatus.choices, required=False)
    section_key = StrictCharField(max_length=64, required=False)
    author = StrictCharField(
        required=False, max_length=36, help_text="`me` for the caller's own suggestions, or a user id."
    )

    def validate_author(self, value: str) -> str:
        if value != "me":
            try:
                uuid.UUID(value)
            except ValueError:
                message = "Use `me` or a user id (UUID)."
                raise serializers.ValidationError(message, code="value_error") from None
        return value


class SuggestionAcceptInput(serializers.Serializer):
    base_version = serializers.IntegerField(
        min_value=0, required=False, allow_null=True, help_text="The memo version the editor saw; 409 when stale."
    )


class SuggestionOutput(serializers.Serializer):
    id = serializers.UUIDField()
    section_key = StrictCharField()
    kind = serializers.ChoiceField(choices=SuggestionKind.choices)
    anchor_text = StrictCharField(allow_blank=True)
    occurrence = serializers.IntegerField()
    content = StrictCharField(allow_blank=True)
    comment = StrictCharField(allow_blank=True)
    status = serializers.ChoiceField(choices=SuggestionStatus.choices)
    author_id = serializers.UUIDField(allow_null=True)
    author = StrictCharField(source="author.display_name", allow_null=True, default=None)
    decided_by_id = serializers.UUIDField(allow_null=True)
    decided_by = StrictCharField(source="decided_by.display_name", allow_null=True, default=None)
    decided_at = serializers.DateTimeField(allow_null=True)
    base_version = serializers.IntegerField(help_text="The memo version when it was proposed.")
    applied_version = serializers.IntegerField(allow_null=True, help_text="The memo version its acceptance made.")
    anchor_matches = serializers.BooleanField(
        allow_null=True,
        default=None,
        help_text="Pending only: whether it still applies to the current text (false: accepting is a 409). "
        "Null once decided, or when the memo cannot be read right now.",
    )
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class SuggestionAcceptOutput(serializers.Serializer):
    success = serializers.BooleanField()
    version = serializers.IntegerField(help_text="The memo's new version.")
    document_state = serializers.ChoiceField(choices=DocumentState.choices)
    suggestion = SuggestionOutput()
    section = CanvasSectionOutput()


# --- endpoints --------------------------------------------------------------------------------------------
class SuggestionCollectionApi(DealScopedAPIView):
    guards = {"GET": RequireViewer, "POST": RequireCommenter}

    @extend_schema(
        operation_id="canvas_suggestions_list",
        summary="Suggestions, newest first (viewer)",
        description="Filter by `status`, `section_key` and `author` (`me` or a user id). Pending suggestions "
        "say whether they still apply to the current text (`anchor_matches`).",
        parameters=[SuggestionQueryInput],
        responses={200: SuggestionOutput(many=True), **error_responses(401, 403, 404, 422)},
        tags=TAGS,
    )
    def get(self, request, deal_id):
        query = parse_query(SuggestionQueryInput, request)
        author = query.get("author")
        author_id = request.user.pk if author == "me" else (uuid.UUID(author) if author else None)
        found = review_selectors.suggestion_list(
            deal=self.deal_access.deal,
            status=query.get("status"),
            section_key=query.get("section_key"),
            author_id=author_id,
        )
        return Response(SuggestionOutput(found, many=True).data)

    @extend_schema(
        operation_id="canvas_suggestions_create",
        summary="Propose an insert, delete or replace in a section (commenter)",
        description="The anchor must occur in the section's current text (422 at `anchor_text` or "
        "`occurrence` otherwise); an unknown section is 404. Emits `suggestion_created`.",
        request=SuggestionCreateInput,
        responses={201: SuggestionOutput, **error_responses(401, 403, 404, 422, 503)},
        tags=TAGS,
    )
    def post(self, request, deal_id):
        body = parse_body(SuggestionCreateInput, request)
        suggestion = review_services.suggestion_create(deal=self.deal_access.deal, user=request.user, **body)
        return Response(SuggestionOutput(suggestion).data, status=status.HTTP_201_CREATED)


class SuggestionAcceptApi(DealScopedAPIView):
    guards = {"POST": RequireEditor}

    @extend_schema(
        operation_id="canvas_suggestion_accept",
        summary="Accept a suggestion: apply it as a new memo version (editor)",
        description="Applies the change to the section's current text, as a new version with a snapshot, "
        "and emits `suggestion_accepted`. 409 when the suggestion is not pending, when its anchor no longer "
        "matches (it stays pending; the body has `current_version`), when `base_version` is stale, or when "
        "the memo is approved; 423 when another user holds the section's lock; 413 when the section would "
        "exceed the size limit.",
        parameters=[SUGGESTION_PARAM],
        request=SuggestionAcceptInput,
        responses={200: SuggestionAcceptOutput, **error_responses(401, 403, 404, 409, 413, 422, 423, 503)},
        tags=TAGS,
    )
    def post(self, request, deal_id, suggestion_id):
        suggestion_pk = parse_path_uuid(suggestion_id, "suggestion_id")
        body = parse_body(SuggestionAcceptInput, request)
        outcome = review_services.suggestion_accept(
            deal=self.deal_access.deal,
            user=request.user,
            suggestion_id=suggestion_pk,
            base_version=body.get("base_version"),
        )
        doc = outcome.write.memo
        return Response(
            SuggestionAcceptOutput(
                {
                    "success": True,
                    "version": doc.version,
                    "document_state": doc.state,
                    "suggestion": outcome.suggestion,
                    "section": section_view(outcome.section),
                }
            ).data
        )


class SuggestionRejectApi(DealScopedAPIView):
    guards = {"POST": RequireEditor}

    @extend_schema(
        operation_id="canvas_suggestion_reject",
        summary="Reject a suggestion (editor)",
        description="The memo is untouched. 409 when the suggestion is not pending. Emits `suggestion_rejected`.",
        parameters=[SUGGESTION_PARAM],
        request=None,
        responses={200: SuggestionOutput, **error_responses(401, 403, 404, 409, 422)},
        tags=TAGS,
    )
    def post(self, request, deal_id, suggestion_id):
        suggestion_pk = parse_path_uuid(suggestion_id, "suggestion_id")
        suggestion = review_services.suggestion_reject(
            deal=self.deal_access.deal, user=request.user, suggestion_id=suggestion_pk
        )
        return Response(SuggestionOutput(suggestion).data)


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
        responses={200: SectionApprovalOutput, **WRITE_ERRORS},
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
        responses={200: SectionApprovalOutput, **WRITE_ERRORS},
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
