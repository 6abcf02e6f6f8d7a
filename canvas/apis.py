"""Canvas endpoints."""

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from canvas.memo_templates import TEMPLATES
from canvas.serializers import MemoTemplateOutput
from canvas_project.api.schema import error_responses


class TemplateListApi(APIView):
    @extend_schema(operation_id="canvas_templates", summary="Memo templates and their sections",
                   responses={200: MemoTemplateOutput(many=True), **error_responses(401)}, tags=["canvas"])
    def get(self, request):
        return Response(MemoTemplateOutput(list(TEMPLATES.values()), many=True).data)
