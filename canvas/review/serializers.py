"""Request and response serializers of review: suggestions, section approval and its conditions, feedback,
comments and brushes. Inputs end in Input, outputs in Output; names are unique across the project."""

from __future__ import annotations

from rest_framework import serializers

from canvas.memo.serializers import SECTION_STATES, CanvasSectionOutput
from canvas.models import ReviewerRole, SuggestionKind, SuggestionStatus
from canvas.review import suggestions
from canvas.review.brushes import BRUSHES, FINDING_KINDS, SEVERITIES
from canvas_project.api.fields import StrictCharField, StrictUUIDField, one_of
from canvas_project.api.pagination import PageEnvelope, PageQueryInput
from canvas_project.api.rules import RuledSerializer, StrictBooleanField, uuid_or_me_field
from deals.models import DocumentState


# --- suggestions ---------------------------------------------------------------------------------------
class SuggestionCreateInput(RuledSerializer):
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

    @classmethod
    def schema_rules(cls) -> dict:
        """validate()'s rules per kind, as JSON Schema (`kind` is told apart with `not`: a bare enum here would be
        taken for another enum component by drf-spectacular). One rule is not expressible: a replace's content
        must differ from its anchor."""

        def kind_is(kind: str) -> dict:
            return {"not": {"enum": [other for other in SuggestionKind.values if other != kind]}}

        filled = {"minLength": 1}
        return {
            "oneOf": [
                {
                    "properties": {"kind": kind_is(SuggestionKind.INSERT), "content": filled},
                    "required": ["content"],
                    # an occurrence other than 1 needs an anchor
                    "anyOf": [
                        {"properties": {"anchor_text": filled}, "required": ["anchor_text"]},
                        {"properties": {"occurrence": {"maximum": 1}}},
                    ],
                },
                {
                    "properties": {
                        "kind": kind_is(SuggestionKind.DELETE),
                        "anchor_text": filled,
                        "content": {"maxLength": 0},
                    },
                    "required": ["anchor_text"],
                },
                {
                    "properties": {"kind": kind_is(SuggestionKind.REPLACE), "anchor_text": filled, "content": filled},
                    "required": ["anchor_text", "content"],
                },
            ]
        }

    def validate(self, attrs):
        attrs = super().validate(attrs)
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


class SuggestionQueryInput(PageQueryInput):
    status = serializers.ChoiceField(choices=SuggestionStatus.choices, required=False)
    section_key = StrictCharField(max_length=64, required=False)
    author = uuid_or_me_field("suggestions")


class SuggestionAcceptInput(serializers.Serializer):
    base_version = serializers.IntegerField(
        min_value=0, required=False, allow_null=True, help_text="The memo version the editor saw; 409 when stale."
    )


class SuggestionOutput(serializers.Serializer):
    id = StrictUUIDField()
    section_key = StrictCharField()
    kind = serializers.ChoiceField(choices=SuggestionKind.choices)
    anchor_text = StrictCharField(allow_blank=True)
    occurrence = serializers.IntegerField()
    content = StrictCharField(allow_blank=True)
    comment = StrictCharField(allow_blank=True)
    status = serializers.ChoiceField(choices=SuggestionStatus.choices)
    author_id = StrictUUIDField(allow_null=True)
    author = StrictCharField(source="author.display_name", allow_null=True, default=None)
    decided_by_id = StrictUUIDField(allow_null=True)
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


# --- section approval, feedback, comments ---------------------------------------------------------
class SectionApproveInput(serializers.Serializer):
    comment = StrictCharField(max_length=500, required=False, allow_blank=True, default="")
    role = serializers.ChoiceField(choices=ReviewerRole.choices, default=ReviewerRole.REVIEWER)
    quality_score = serializers.IntegerField(min_value=1, max_value=5, required=False, allow_null=True)
    conditions = serializers.ListField(
        child=StrictCharField(max_length=500), max_length=3, required=False, default=list
    )
    force = StrictBooleanField(default=False, help_text="Owner only: approve over unresolved comments.")


class ConditionOutput(serializers.Serializer):
    id = serializers.IntegerField()
    text = StrictCharField()
    resolved = serializers.BooleanField()
    resolved_by = StrictUUIDField(source="resolved_by_id", allow_null=True)
    resolved_at = serializers.DateTimeField(allow_null=True)


class SectionApprovalOutput(serializers.Serializer):
    approval_id = serializers.IntegerField(source="approval.pk")
    section_key = StrictCharField(source="approval.section_key")
    section_state = serializers.ChoiceField(choices=SECTION_STATES)
    approved_by = StrictUUIDField(source="approval.approved_by_id", allow_null=True)
    reviewer_role = StrictCharField(source="approval.reviewer_role")
    quality_score = serializers.IntegerField(source="approval.quality_score", allow_null=True)
    forced = serializers.BooleanField(source="approval.forced")
    conditions = ConditionOutput(many=True)
    all_conditions_resolved = serializers.BooleanField()
    auto_promoted = serializers.BooleanField(help_text="The section reached `approved` through this call.")


class FeedbackInput(serializers.Serializer):
    section_key = StrictCharField(max_length=64)
    rating = serializers.IntegerField(min_value=1, max_value=5)
    comment = StrictCharField(max_length=2000, required=False, allow_blank=True, default="")
    tags = serializers.ListField(child=StrictCharField(max_length=40), max_length=10, required=False, default=list)


class FeedbackOutput(serializers.Serializer):
    id = serializers.IntegerField()
    section_key = StrictCharField()
    rating = serializers.IntegerField()
    comment = StrictCharField()
    tags = serializers.ListField(child=StrictCharField())
    user_id = StrictUUIDField(allow_null=True)
    created_at = serializers.DateTimeField()


class CommentCreateInput(RuledSerializer):
    at_least_one_of = ("section_key", "parent_id")
    at_least_one_message = "Give section_key, or parent_id to reply."
    section_key = StrictCharField(
        max_length=64, required=False, help_text="Required unless parent_id is given (a reply)."
    )
    body = StrictCharField(max_length=5000)
    parent_id = StrictUUIDField(required=False, allow_null=True)


class CommentReplyOutput(serializers.Serializer):
    id = StrictUUIDField()
    body = StrictCharField()
    author_id = StrictUUIDField(allow_null=True)
    author = StrictCharField(source="author.display_name", allow_null=True, default=None)
    created_at = serializers.DateTimeField()


class CommentOutput(serializers.Serializer):
    id = StrictUUIDField()
    section_key = StrictCharField()
    parent_id = StrictUUIDField(allow_null=True)
    body = StrictCharField()
    author_id = StrictUUIDField(allow_null=True)
    author = StrictCharField(source="author.display_name", allow_null=True, default=None)
    resolved = serializers.BooleanField()
    resolved_by = StrictUUIDField(source="resolved_by_id", allow_null=True)
    resolved_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    replies = CommentReplyOutput(many=True, source="replies.all", required=False)


class CommentQueryInput(PageQueryInput):
    section_key = StrictCharField(max_length=64, required=False)
    resolved = serializers.BooleanField(required=False, allow_null=True, default=None)


# --- brushes -------------------------------------------------------------------------------------------------
class BrushInput(serializers.Serializer):
    brush = serializers.ChoiceField(
        choices=list(BRUSHES), help_text=", ".join(f"`{k}`: {v}" for k, v in BRUSHES.items())
    )
    section_key = StrictCharField(max_length=64, required=False, help_text="Only this section.")
    create_suggestions = StrictBooleanField(
        required=False,
        default=False,
        help_text="File every finding that carries a fix as a pending suggestion (its `suggestion_id`).",
    )


class BrushQueryInput(PageQueryInput):
    section_key = StrictCharField(max_length=64, required=False)


class SuggestionPayloadOutput(serializers.Serializer):
    section_key = StrictCharField()
    kind = one_of(SuggestionKind.values)
    anchor_text = StrictCharField(allow_blank=True)
    occurrence = serializers.IntegerField()
    content = StrictCharField(allow_blank=True)
    comment = StrictCharField(allow_blank=True)


class BrushFindingOutput(serializers.Serializer):
    id = StrictCharField()
    kind = one_of(FINDING_KINDS)
    severity = serializers.ChoiceField(choices=list(SEVERITIES))
    section_key = StrictCharField()
    message = StrictCharField()
    evidence = serializers.DictField()
    suggestion = SuggestionPayloadOutput(
        allow_null=True, help_text="Ready to POST to /suggestions as it is; null when there is no fix to propose."
    )
    suggestion_id = StrictUUIDField(allow_null=True)


class BrushResultOutput(serializers.Serializer):
    brush_id = StrictCharField()
    brush = serializers.ChoiceField(choices=list(BRUSHES))
    section_key = StrictCharField(allow_null=True)
    memo_version = serializers.IntegerField()
    created_at = StrictCharField()
    created_by = StrictCharField(allow_null=True)
    findings = BrushFindingOutput(many=True)


class BrushListOutput(PageEnvelope):
    results = BrushResultOutput(many=True)
