"""The brush endpoint under /api/canvas/{deal_id}/brush (GET the cached findings, POST a pass).

The rest of the synthesis endpoints are viewsets (canvas.runs.viewsets); the brush is being moved to the
review package separately, so it stays an APIView here until then.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from canvas.review import brushes
from canvas.runs.serializers import (
    BrushInput,
    BrushListOutput,
    BrushQueryInput,
    BrushResultOutput,
)
from canvas_project import ratelimit
from canvas_project.api.schema import error_responses
from canvas_project.api.validation import parse_body, parse_query
from deals.permissions import DealScopedAPIView, RequireEditor, RequireViewer

TAGS = ["synthesis"]


class BrushApi(DealScopedAPIView):
    guards = {"GET": RequireViewer, "POST": RequireEditor}

    @extend_schema(
        operation_id="canvas_brush_list",
        summary="Cached brush findings, newest pass first (viewer)",
        description="The passes of the last 24 hours; with `section_key`, only that section's findings.",
        parameters=[BrushQueryInput],
        responses={200: BrushListOutput, **error_responses(401, 403, 404, 422, 503)},
        tags=TAGS,
    )
    def get(self, request, deal_id):
        query = parse_query(BrushQueryInput, request)
        results = brushes.brush_list(deal=self.deal_access.deal, section_key=query.get("section_key"))
        return Response(BrushListOutput({"results": results}).data)

    @extend_schema(
        operation_id="canvas_brush_run",
        summary="Run a brush (check pass) over the memo (editor)",
        description="`figures`: numbers that disagree with deal intel; `citations`: figures without a citation; "
        "`completeness`: required sections missing or thin; `all`. Every finding carries a ready-to-post "
        "suggestion payload when there is a fix; `create_suggestions` files them as pending suggestions. The pass "
        "is cached for 24 hours. Counts against the shared 'generate' rate limit.",
        request=BrushInput,
        responses={201: BrushResultOutput, **error_responses(401, 403, 404, 422, 429, 503)},
        tags=TAGS,
    )
    def post(self, request, deal_id):
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
