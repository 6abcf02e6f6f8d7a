"""Request and response serializers of the canvas app (inputs end in Input, outputs in Output)."""

from __future__ import annotations

from django.conf import settings
from rest_framework import serializers

from canvas_project.api.fields import StrictCharField, StrictUUIDField
from canvas_project.api.pagination import PageEnvelope
from deals.models import DealRole, DocumentState

SECTION_STATES = ["draft", "editing", "reviewed", "approved"]


class TemplateSectionOutput(serializers.Serializer):
    key = StrictCharField()
    title = StrictCharField()
    order = serializers.IntegerField()
    required = serializers.BooleanField()
    retrieval_query = StrictCharField()
    drafter = StrictCharField()


class MemoTemplateOutput(serializers.Serializer):
    key = StrictCharField()
    name = StrictCharField()
    description = StrictCharField()
    sections = TemplateSectionOutput(many=True)


class CitationOutput(serializers.Serializer):
    id = StrictCharField()
    text = StrictCharField()
    document = StrictCharField(allow_null=True, help_text="The document's filename, as the footnote names it.")
    document_id = StrictUUIDField(
        allow_null=True,
        help_text="The deal's document of that filename (GET /api/deals/{deal_id}/documents/{document_id}/pages); "
        "null when no document or more than one (none of them the only ready one) has that name.",
    )
    page = serializers.IntegerField(allow_null=True, help_text="1-based page (`page_number` of the document's pages).")


class CanvasSectionOutput(serializers.Serializer):
    key = StrictCharField()
    title = StrictCharField()
    order = serializers.FloatField()
    required = serializers.BooleanField()
    custom = serializers.BooleanField()
    state = serializers.ChoiceField(choices=SECTION_STATES)
    markdown = StrictCharField(allow_blank=True)
    source = serializers.ChoiceField(choices=["ai", "human"], allow_null=True)
    updated_at = StrictCharField(allow_null=True)
    updated_by = StrictCharField(allow_null=True, help_text="Display name of the last writer.")
    updated_by_id = StrictCharField(allow_null=True)
    delivery = serializers.ChoiceField(choices=["delivered", "missing", "failed"])
    citations = CitationOutput(many=True)


class ReadinessBriefOutput(serializers.Serializer):
    score = serializers.IntegerField(min_value=0, max_value=100)
    grade = serializers.ChoiceField(choices=["A", "B", "C", "D", "F"])


class SessionProgressOutput(serializers.Serializer):
    populated = serializers.IntegerField()
    total = serializers.IntegerField()


class CanvasSessionResponse(serializers.Serializer):
    """Every field of the contract's CanvasSessionResponse, plus extras."""

    deal_id = StrictUUIDField()
    deal_name = StrictCharField()
    created_at = StrictCharField(allow_null=True)
    document_state = serializers.ChoiceField(choices=DocumentState.choices)
    markdown_content = StrictCharField(allow_blank=True, help_text="The whole memo as markdown.")
    version = serializers.IntegerField(help_text="+1 on every durable write of the memo.")
    can_export = serializers.BooleanField()
    can_finalize = serializers.BooleanField()
    last_modified_by = StrictCharField(allow_null=True)
    last_modified_at = StrictCharField(allow_null=True)
    initialization_warning = StrictCharField(allow_null=True)
    sections = serializers.DictField(child=CanvasSectionOutput(), help_text="Section key -> section.")
    is_blank = serializers.BooleanField()
    collab_enabled = serializers.BooleanField()
    user_role = serializers.ChoiceField(choices=DealRole.choices)
    incomplete_delivery_blocked = serializers.BooleanField()
    # extras
    can_edit = serializers.BooleanField()
    can_comment = serializers.BooleanField()
    template_key = StrictCharField()
    readiness = ReadinessBriefOutput()
    progress = SessionProgressOutput()
    approval_versions = serializers.ListField(child=serializers.IntegerField())
    run_in_progress = serializers.BooleanField()


class CanvasSaveInput(serializers.Serializer):
    content = StrictCharField(
        allow_blank=True,
        trim_whitespace=False,
        help_text=f"The whole memo as markdown, at most {settings.CANVAS_MAX_CONTENT_CHARS:,} characters (413 beyond).",
    )
    base_version = serializers.IntegerField(
        min_value=0, required=False, allow_null=True, help_text="The version the edit was based on; 409 when stale."
    )


class CanvasSaveOutput(serializers.Serializer):
    success = serializers.BooleanField()
    version = serializers.IntegerField()
    document_state = serializers.ChoiceField(choices=DocumentState.choices)
    changed_sections = serializers.ListField(child=StrictCharField())
    saved = serializers.BooleanField(help_text="False when the content was unchanged (no new version).")


class SectionUpdateInput(serializers.Serializer):
    markdown = StrictCharField(allow_blank=True, trim_whitespace=False)
    title = StrictCharField(required=False, max_length=200, help_text="Custom sections only.")
    base_version = serializers.IntegerField(min_value=0, required=False, allow_null=True)


class SectionUpdateOutput(serializers.Serializer):
    success = serializers.BooleanField()
    version = serializers.IntegerField()
    document_state = serializers.ChoiceField(choices=DocumentState.choices)
    section = CanvasSectionOutput()


class DocumentStateResponse(serializers.Serializer):
    success = serializers.BooleanField()
    from_state = serializers.ChoiceField(choices=DocumentState.choices)
    to_state = serializers.ChoiceField(choices=DocumentState.choices, allow_null=True)
    error = StrictCharField(allow_null=True)
    details = serializers.DictField(allow_null=True)


class DocumentStateRefusedResponse(DocumentStateResponse):
    detail = StrictCharField()


class ReadinessDimensionOutput(serializers.Serializer):
    key = StrictCharField()
    label = StrictCharField()
    score = serializers.IntegerField(min_value=0, max_value=100)
    weight = serializers.FloatField()
    why = StrictCharField()


class ReadinessOutput(serializers.Serializer):
    score = serializers.IntegerField(min_value=0, max_value=100)
    grade = serializers.ChoiceField(choices=["A", "B", "C", "D", "F"])
    gate = serializers.IntegerField(help_text="The score the memo needs before it can be approved.")
    version = serializers.IntegerField()
    dimensions = ReadinessDimensionOutput(many=True)


class ProgressOutput(serializers.Serializer):
    populated = serializers.IntegerField()
    total = serializers.IntegerField()
    sections = serializers.DictField(child=serializers.BooleanField())
    store_available = serializers.BooleanField()


class VersionSummaryOutput(serializers.Serializer):
    version = serializers.IntegerField()
    title = StrictCharField()
    reason = StrictCharField()
    author = StrictCharField(allow_null=True)
    author_id = StrictCharField(allow_null=True)
    created_at = StrictCharField()
    state = StrictCharField()
    approval = serializers.BooleanField()


class VersionPageOutput(PageEnvelope):
    """A page of the memo's snapshots, newest first, with the memo's version now."""

    current_version = serializers.IntegerField()
    results = VersionSummaryOutput(many=True)


class VersionSectionOutput(serializers.Serializer):
    key = StrictCharField()
    title = StrictCharField()
    markdown = StrictCharField(allow_blank=True)
    state = StrictCharField()


class VersionDetailOutput(VersionSummaryOutput):
    markdown = StrictCharField(allow_blank=True)
    sections = serializers.DictField(child=VersionSectionOutput())


class VersionDiffOutput(serializers.Serializer):
    from_version = serializers.IntegerField()
    to_version = serializers.IntegerField()
    diff = StrictCharField(allow_blank=True, help_text="Unified diff of the markdown.")
    sections_added = serializers.ListField(child=StrictCharField())
    sections_removed = serializers.ListField(child=StrictCharField())
    sections_changed = serializers.ListField(child=StrictCharField())


class VersionRestoreInput(serializers.Serializer):
    base_version = serializers.IntegerField(min_value=0, required=False, allow_null=True)


class ExportQueryInput(serializers.Serializer):
    format = serializers.ChoiceField(choices=["md", "docx"], default="md")
    version = serializers.IntegerField(
        min_value=1, required=False, help_text="Export this approval snapshot instead of the current memo."
    )
