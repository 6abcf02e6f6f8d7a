"""Deal documents, deal intel and the intake summary of a deal: /api/deals/{deal_id}/documents (list,
upload, read, delete, download, extracted pages, figures, re-ingest), /intel and /intake.

Thin: validate, call one service or selector, serialize. Deal scoping and the minimum role of each
action come from deals.viewsets.DealScopedViewSet.
"""

from __future__ import annotations

from django.core.files.storage import default_storage
from django.core.files.uploadhandler import FileUploadHandler
from django.http import FileResponse, HttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, OpenApiTypes, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.parsers import MultiPartParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from canvas_project.api.pagination import CursorPagination, PageQueryInput, page_of, paginate
from canvas_project.api.schema import deleted_response, error_responses
from canvas_project.api.validation import parse_body, parse_path_int, parse_path_uuid, parse_query
from deals.documents import selectors as document_selectors
from deals.documents import services as document_services
from deals.documents.errors import DocumentNotFound
from deals.documents.ingestion.sniff import CONTENT_TYPES
from deals.documents.intel import deal_intel_get, intake_summary_get
from deals.documents.serializers import (
    DealIntelOutput,
    DocumentFiguresOutput,
    DocumentOutput,
    DocumentPagesOutput,
    DocumentPagesQueryInput,
    DocumentUploadInput,
    IntakeSummaryOutput,
)
from deals.models import DealRole
from deals.viewsets import DealScopedViewSet

DOC_ID_PARAM = OpenApiParameter("doc_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The document's id.")
FIGURE_PARAM = OpenApiParameter(
    "n",
    OpenApiTypes.INT,
    OpenApiParameter.PATH,
    description="The figure's number (1-based, as the figures list has it).",
)
# Multipart framing around the file (boundaries, part headers) on top of the file's own bytes.
MULTIPART_OVERHEAD = 64 * 1024


class _SizeLimitHandler(FileUploadHandler):
    """Stops reading an upload as soon as it passes the limit (also without a Content-Length)."""

    def __init__(self, request=None, *, limit: int) -> None:
        super().__init__(request)
        self.limit = limit
        self.received = 0

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > self.limit:
            raise document_services.too_large_error()
        return raw_data

    def file_complete(self, file_size):
        return None


class DocumentViewSet(DealScopedViewSet):
    """/api/deals/{deal_id}/documents: the deal's documents, their upload (multipart), deletion and files."""

    lookup_field = "doc_id"
    minimum_roles = {
        "list": DealRole.VIEWER,
        "create": DealRole.EDITOR,
        "retrieve": DealRole.VIEWER,
        "destroy": DealRole.EDITOR,
        "download": DealRole.VIEWER,
        "pages": DealRole.VIEWER,
        "figures": DealRole.VIEWER,
        "figure": DealRole.VIEWER,
        "reingest": DealRole.EDITOR,
    }
    # Uploads are multipart; no other action reads a body.
    parser_classes = [MultiPartParser]

    def perform_content_negotiation(self, request, force=False):
        # a figure answers image/png, whatever renderer the Accept header names (an <img> sends image/*);
        # its errors stay JSON
        if self.action == "figure":
            return JSONRenderer(), JSONRenderer.media_type
        return super().perform_content_negotiation(request, force)

    def _document(self, doc_id: str):
        return document_selectors.document_get(
            deal=self.deal_access.deal, document_id=parse_path_uuid(doc_id, "doc_id")
        )

    @extend_schema(
        operation_id="deal_documents_list",
        summary="Documents of the deal",
        description="With their ingestion state (queued, processing, ready, failed).",
        parameters=[PageQueryInput],
        responses={200: page_of(DocumentOutput), **error_responses(401, 403, 404, 422)},
        tags=["documents"],
    )
    def list(self, request, deal_id):
        documents = document_selectors.document_list(deal=self.deal_access.deal)
        return paginate(request, documents, serializer=DocumentOutput)

    @extend_schema(
        operation_id="deal_documents_upload",
        summary="Upload a document (editor)",
        description=(
            "Multipart, field `file`. PDF, XLSX, DOCX, or UTF-8 CSV, TXT or MD, recognised by content "
            "(415 otherwise); at most DOCUMENT_MAX_BYTES (413). Answers 201 with the row in state `queued`; "
            "ingestion runs in the background (poll the row, or GET /intel and /intake once ready)."
        ),
        request={"multipart/form-data": DocumentUploadInput},
        responses={201: DocumentOutput, **error_responses(401, 403, 404, 413, 415, 422)},
        tags=["documents"],
    )
    def create(self, request, deal_id):
        deal = self.deal_access.deal  # scope and role first: a stranger learns nothing from the size check
        limit = document_services.document_max_bytes()
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > limit + MULTIPART_OVERHEAD:
            raise document_services.too_large_error()
        request._request.upload_handlers.insert(0, _SizeLimitHandler(request._request, limit=limit))
        body = parse_body(DocumentUploadInput, request)
        document = document_services.document_upload(deal=deal, user=request.user, upload=body["file"])
        return Response(DocumentOutput(document).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="deal_documents_retrieve",
        summary="A document of the deal",
        parameters=[DOC_ID_PARAM],
        responses={200: DocumentOutput, **error_responses(401, 403, 404, 422)},
        tags=["documents"],
    )
    def retrieve(self, request, deal_id, doc_id):
        return Response(DocumentOutput(self._document(doc_id)).data)

    @extend_schema(
        operation_id="deal_documents_delete",
        summary="Delete a document (editor)",
        description="Removes the stored file, the extracted pages and the document's Redis keys; deal intel "
        "and the intake summary are rebuilt without it.",
        parameters=[DOC_ID_PARAM],
        responses={**deleted_response(), **error_responses(401, 403, 404, 422)},
        tags=["documents"],
    )
    def destroy(self, request, deal_id, doc_id):
        document_services.document_delete(document=self._document(doc_id))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        operation_id="deal_documents_download",
        summary="Download a document's file",
        description="Streams the stored file with its sniffed content type, as an attachment.",
        parameters=[DOC_ID_PARAM],
        responses={
            **{
                (200, media.split(";")[0]): OpenApiResponse(OpenApiTypes.BINARY, description="The file.")
                for media in CONTENT_TYPES.values()
            },
            **error_responses(401, 403, 404, 422),
        },
        tags=["documents"],
    )
    @action(detail=True, methods=["get"])
    def download(self, request, deal_id, doc_id):
        document = self._document(doc_id)
        try:
            handle = default_storage.open(document.file.name, "rb")
        except (OSError, ValueError):
            raise DocumentNotFound("The document's file is missing from storage.") from None
        response = FileResponse(
            handle, as_attachment=True, filename=document.filename, content_type=document.content_type
        )
        response["Content-Length"] = str(document.size)
        response["X-Content-Type-Options"] = "nosniff"
        return response

    @extend_schema(
        operation_id="deal_documents_pages",
        summary="A document's extracted pages",
        description="The text of each page (PDF page, XLSX sheet, or chunk of a text file), in page order and "
        "paginated; tables are in the text as markdown pipe tables and, parsed, in `tables`. Empty until the "
        "document is ingested (`state` ready).",
        parameters=[DOC_ID_PARAM, DocumentPagesQueryInput],
        responses={200: DocumentPagesOutput, **error_responses(401, 403, 404, 422)},
        tags=["documents"],
    )
    @action(detail=True, methods=["get"])
    def pages(self, request, deal_id, doc_id):
        parse_query(DocumentPagesQueryInput, request)
        document = self._document(doc_id)
        paginator = CursorPagination()
        rows = document_selectors.document_page_rows(
            paginator.paginate_queryset(document_selectors.document_pages(document=document), request)
        )
        return Response(
            DocumentPagesOutput(paginator.envelope(rows, document_id=document.pk, state=document.state)).data
        )

    @extend_schema(
        operation_id="deal_documents_figures",
        summary="The figures cropped from a PDF",
        description="Each figure's page, name, size and whether its image is still kept: images are kept 24 hours "
        "after ingestion and the list itself 7 days (`cached`); re-ingest the document to crop them again. "
        "Documents other than PDFs have none.",
        parameters=[DOC_ID_PARAM],
        responses={200: DocumentFiguresOutput, **error_responses(401, 403, 404, 422, 503)},
        tags=["documents"],
    )
    @action(detail=True, methods=["get"])
    def figures(self, request, deal_id, doc_id):
        document = self._document(doc_id)
        return Response(DocumentFiguresOutput(document_selectors.document_figures(document=document)).data)

    @extend_schema(
        operation_id="deal_documents_figure",
        summary="One figure of a PDF, as PNG",
        description="404 says why when there is no image: no such figure, a document that is not a PDF, or an "
        "image expired from the cache (kept 24 hours after ingestion: re-ingest the document).",
        parameters=[DOC_ID_PARAM, FIGURE_PARAM],
        responses={
            (200, "image/png"): OpenApiResponse(OpenApiTypes.BINARY, description="The figure."),
            **error_responses(401, 403, 404, 422, 503),
        },
        tags=["documents"],
    )
    @action(detail=True, methods=["get"], url_path=r"figures/(?P<n>[^/]+)", url_name="figure")
    def figure(self, request, deal_id, doc_id, n):
        number = parse_path_int(n, "n")
        png = document_selectors.document_figure_png(document=self._document(doc_id), n=number)
        response = HttpResponse(png, content_type="image/png")
        response["Content-Disposition"] = f'inline; filename="figure-{number}.png"'
        response["X-Content-Type-Options"] = "nosniff"
        # a re-ingest may crop other figures under the same numbers: a short private cache only
        response["Cache-Control"] = "private, max-age=300"
        return response

    @extend_schema(
        operation_id="deal_documents_reingest",
        summary="Ingest a document again (editor)",
        description="Answers 202 with the document `queued`; ingestion runs in the background as after an upload "
        "(its pages, figures, deal intel and the intake summary are rebuilt). For a failed or stalled document, "
        "or figures expired from the cache.",
        parameters=[DOC_ID_PARAM],
        request=None,
        responses={202: DocumentOutput, **error_responses(401, 403, 404, 422)},
        tags=["documents"],
    )
    @action(detail=True, methods=["post"])
    def reingest(self, request, deal_id, doc_id):
        document = document_services.document_reingest(document=self._document(doc_id))
        return Response(DocumentOutput(document).data, status=status.HTTP_202_ACCEPTED)


class DealIntelViewSet(DealScopedViewSet):
    """/api/deals/{deal_id}/intel and /intake: what the deal's documents say, and what is still missing."""

    lookup_field = "deal_id"
    minimum_roles = {"intel": DealRole.VIEWER, "intake": DealRole.VIEWER}

    @extend_schema(
        operation_id="deal_intel",
        summary="Deal metrics extracted from the documents",
        description="Purchase price, NOI, cap rate, units, square feet, occupancy, IRR, equity multiple, "
        "LTV, DSCR and year built, each with the matched text and its source page. Cached for "
        "24 h and rebuilt whenever a document finishes ingesting or is deleted.",
        responses={200: DealIntelOutput, **error_responses(401, 403, 404)},
        tags=["documents"],
    )
    @action(detail=True, methods=["get"])
    def intel(self, request, deal_id):
        return Response(DealIntelOutput(deal_intel_get(deal=self.deal_access.deal)).data)

    @extend_schema(
        operation_id="deal_intake",
        summary="Intake summary",
        description="Which documents came in, which documents the deal's memo template still needs, "
        "and the key facts found so far.",
        responses={200: IntakeSummaryOutput, **error_responses(401, 403, 404)},
        tags=["documents"],
    )
    @action(detail=True, methods=["get"])
    def intake(self, request, deal_id):
        return Response(IntakeSummaryOutput(intake_summary_get(deal=self.deal_access.deal)).data)
