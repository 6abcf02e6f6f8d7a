"""The project's URL map plus the baseline of bench/context.py: GET /bench/internal-bare.

The bare endpoint pays exactly the fixed cost of every internal contract call and nothing else: the
same viewset family (internal_api.viewsets.ContractViewSet, so the same error envelope), the bearer
token compared in constant time, the contract version and trusted claims (`trusted_claims`), the query parameters
(the context endpoint's own parser) and the scope, user, deal access and thread checks
(`scoped_access`: three SQL queries). It answers {"success": true}.
"""

from django.urls import path
from rest_framework.response import Response

from canvas_project.urls import handler404, handler500  # noqa: F401
from canvas_project.urls import urlpatterns as project_urlpatterns
from internal_api import viewsets


class BareContractViewSet(viewsets.ContractViewSet):
    def list(self, request):
        claims = self.trusted_claims(request)
        query = viewsets._query(request)  # looked up per call, as the context view does
        self.scoped_access(claims, project_id=query["projectId"], thread_id=query["threadId"])
        return Response({"success": True})


urlpatterns = [
    path("bench/internal-bare", BareContractViewSet.as_view({"get": "list"}), name="bench-internal-bare"),
    *project_urlpatterns,
]
