"""The project's URL map plus the baseline of the benchmark: GET /bench/bare.

The bare endpoint is a DRF APIView with the project's default authentication (simplejwt, which
loads the user: one SQL query) and IsAuthenticated, answering {"ok": true}: the fixed cost every
authenticated endpoint pays before doing any work of its own.
"""

from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

from canvas_project.urls import handler404, handler500  # noqa: F401
from canvas_project.urls import urlpatterns as project_urlpatterns


class BareApi(APIView):
    def get(self, request):
        return Response({"ok": True})


urlpatterns = [path("bench/bare", BareApi.as_view(), name="bench-bare"), *project_urlpatterns]
