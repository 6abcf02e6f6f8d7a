"""Request and response serializers of deal documents, deal intel and the intake summary."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from deals.documents.ingestion.intel import METRICS
from deals.models import FileState


class DocumentUploadInput(serializers.Serializer):
    file = serializers.FileField(
        allow_empty_file=False,
        use_url=False,
        help_text="PDF, XLSX, DOCX, or UTF-8 CSV, TXT or MD; the content is sniffed (415 otherwise).",
    )


class DocumentOutput(serializers.Serializer):
    id = serializers.UUIDField()
    filename = serializers.CharField()
    content_type = serializers.CharField(help_text="Sniffed from the content, not taken from the client.")
    # A plain string: an enum named "kind" would collide with the suggestion kinds' enum.
    kind = serializers.CharField(help_text="pdf, xlsx, docx, csv, txt or md (sniffed from the content).")
    size = serializers.IntegerField(help_text="Bytes.")
    sha256 = serializers.CharField()
    state = serializers.ChoiceField(choices=FileState.choices)
    error = serializers.SerializerMethodField(help_text="Why ingestion failed (a sentence); null otherwise.")
    pages = serializers.IntegerField(allow_null=True, help_text="Pages (PDF), sheets (XLSX) or text chunks.")
    created_at = serializers.DateTimeField()
    processed_at = serializers.DateTimeField(allow_null=True)

    class Meta:
        ref_name = "DealDocument"

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_error(self, document) -> str | None:
        return document.error or None


class MetricSourceOutput(serializers.Serializer):
    document_id = serializers.UUIDField()
    filename = serializers.CharField()
    page = serializers.IntegerField(help_text="1-based page (PDF), sheet position (XLSX) or chunk.")


class MetricOutput(serializers.Serializer):
    value = serializers.FloatField()
    unit = serializers.CharField(help_text="USD, %, x, units, sf or year.")
    text = serializers.CharField(help_text="The matched text.")
    source = MetricSourceOutput()


DealMetricsOutput = type(
    "DealMetricsOutput",
    (serializers.Serializer,),
    {spec.name: MetricOutput(required=False, help_text=f"In {spec.unit}; absent when not found.") for spec in METRICS},
)


class DealIntelOutput(serializers.Serializer):
    metrics = DealMetricsOutput()
    documents = serializers.IntegerField(help_text="Ready documents with text.")
    computed_at = serializers.DateTimeField()


class IntakeDocumentOutput(serializers.Serializer):
    id = serializers.UUIDField()
    filename = serializers.CharField()
    kind = serializers.CharField(help_text="pdf, xlsx, docx, csv, txt or md.")
    # Plain strings here: the choice sets are documented once, on DealDocument (enum names stay unique).
    state = serializers.CharField(help_text="queued, processing, ready or failed.")
    pages = serializers.IntegerField(allow_null=True)
    error = serializers.CharField(allow_null=True)
    fills = serializers.CharField(allow_null=True, help_text="The requirement this document likely fills.")


class IntakeRequirementOutput(serializers.Serializer):
    key = serializers.CharField()
    label = serializers.CharField()
    kinds = serializers.ListField(child=serializers.CharField())
    status = serializers.ChoiceField(choices=["received", "pending", "missing"])
    document_ids = serializers.ListField(child=serializers.UUIDField())


class IntakeCountsOutput(serializers.Serializer):
    queued = serializers.IntegerField()
    processing = serializers.IntegerField()
    ready = serializers.IntegerField()
    failed = serializers.IntegerField()


class IntakeSummaryOutput(serializers.Serializer):
    template_key = serializers.CharField()
    documents = IntakeDocumentOutput(many=True)
    counts = IntakeCountsOutput()
    pages = serializers.IntegerField(help_text="Pages of the ready documents.")
    requirements = IntakeRequirementOutput(many=True)
    missing = serializers.ListField(child=serializers.CharField(), help_text="Labels of missing documents.")
    complete = serializers.BooleanField(help_text="Every required document has been received and is ready.")
    key_facts = DealMetricsOutput()
    computed_at = serializers.DateTimeField()
