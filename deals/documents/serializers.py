"""Request and response serializers of deal documents, deal intel and the intake summary."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from canvas_project.api.fields import StrictUUIDField
from canvas_project.api.pagination import PageEnvelope, PageQueryInput
from deals.documents.ingestion.intel import METRICS
from deals.models import FileState


class DocumentUploadInput(serializers.Serializer):
    file = serializers.FileField(
        allow_empty_file=False,
        use_url=False,
        help_text="PDF, XLSX, DOCX, or UTF-8 CSV, TXT or MD; the content is sniffed (415 otherwise).",
    )


class DocumentOutput(serializers.Serializer):
    id = StrictUUIDField()
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
    document_id = StrictUUIDField()
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
    id = StrictUUIDField()
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
    document_ids = serializers.ListField(child=StrictUUIDField())


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


# --- pages and figures ----------------------------------------------------------------------------------
class DocumentPagesQueryInput(PageQueryInput):
    pass


class DocumentTableOutput(serializers.Serializer):
    header = serializers.ListField(child=serializers.CharField(allow_blank=True), help_text="The first row's cells.")
    rows = serializers.ListField(
        child=serializers.ListField(child=serializers.CharField(allow_blank=True)), help_text="The other rows."
    )


class DocumentPageOutput(serializers.Serializer):
    page_number = serializers.IntegerField(
        help_text="1-based: the PDF page, the sheet's position (XLSX) or the chunk; what citations call `page`."
    )
    label = serializers.CharField(allow_blank=True, help_text="The sheet's name (XLSX), the rows of a CSV chunk.")
    text = serializers.CharField(
        allow_blank=True, help_text="The extracted text; tables in it as markdown pipe tables."
    )
    tables = DocumentTableOutput(many=True, help_text="The pipe tables of `text`, parsed (also still in `text`).")


class DocumentPagesOutput(PageEnvelope):
    """A page of the document's pages, with the document's id and state."""

    document_id = StrictUUIDField()
    # a plain string: DealDocument's `state` already names the FileState enum
    state = serializers.CharField(help_text="The document's state: its pages are there once it is `ready`.")
    results = DocumentPageOutput(many=True)


class DocumentFigureOutput(serializers.Serializer):
    n = serializers.IntegerField(help_text="1-based: GET .../figures/{n} answers its image as PNG.")
    page = serializers.IntegerField(help_text="The PDF page it was cropped from.")
    name = serializers.CharField(help_text="Its name inside the PDF.")
    format = serializers.CharField(help_text="As stored (png, jpeg, jp2, tiff...); the image endpoint answers PNG.")
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    bytes = serializers.IntegerField(help_text="Size as stored.")
    available = serializers.BooleanField(
        help_text="Its image is still in the cache (24 hours after ingestion); false: re-ingest the document."
    )


class DocumentFiguresOutput(serializers.Serializer):
    document_id = StrictUUIDField()
    cached = serializers.BooleanField(
        help_text="The document's digitization record is in the cache (7 days after ingestion). False: the "
        "figures are not known any more (or the document is not ingested yet); re-ingest it."
    )
    digitized_at = serializers.DateTimeField(allow_null=True)
    figures = DocumentFigureOutput(many=True, help_text="Figures of a PDF, in page order; none for other kinds.")
