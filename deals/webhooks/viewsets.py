"""/api/orgs/{org_id}/webhook-secret: the secret an org's completion webhooks are signed with.

Org admins and superadmins only, with a person's JWT: an API key is 403 (a leaked key cannot mint itself a
signing secret), and so is a deal-scoped token (it stands for one deal, not the org). GET says whether there
is a secret and which (its prefix), never the secret; POST issues a new one, shown in that answer only, and
the old one stops signing at once.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status, viewsets
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from canvas_project.api.schema import ErrorDetailSerializer, error_responses
from canvas_project.api.validation import parse_path_uuid
from deals import selectors as deal_selectors
from deals.access import token_deal_claim
from deals.authentication import PersonBearerAuthentication
from deals.viewsets import ORG_ID_PARAM
from deals.webhooks import selectors, services
from deals.webhooks.errors import DealScopedTokenRefusedHere, WebhookSecretAdminOnly
from deals.webhooks.serializers import WebhookSecretCreatedOutput, WebhookSecretOutput

TAGS = ["orgs"]
REFUSED = {
    403: OpenApiResponse(
        ErrorDetailSerializer,
        description="A member who is not the org's admin; an API key or a deal-scoped token (a person's JWT only).",
    )
}


def _shown(org, row) -> dict:
    return {
        "org_id": org.pk,
        "configured": row is not None,
        "prefix": row.prefix if row else None,
        "created_at": row.created_at if row else None,
        "created_by": row.created_by_id if row else None,
    }


class OrgWebhookSecretViewSet(viewsets.ViewSet):
    authentication_classes = [PersonBearerAuthentication]
    permission_classes = [IsAuthenticated]

    def _org(self, request, org_id):
        if token_deal_claim(request.auth) is not None:
            raise DealScopedTokenRefusedHere()
        return deal_selectors.org_for_admin(
            user=request.user, org_id=parse_path_uuid(org_id, "org_id"), refusal=WebhookSecretAdminOnly()
        )

    @extend_schema(
        operation_id="org_webhook_secret",
        summary="Whether the org has a webhook signing secret, and which (org admin)",
        description="Never the secret itself: its prefix, when and by whom it was issued. Non-members get 404.",
        parameters=[ORG_ID_PARAM],
        responses={200: WebhookSecretOutput, **error_responses(401, 404, 422), **REFUSED},
        tags=TAGS,
    )
    def list(self, request, org_id):
        org = self._org(request, org_id)
        return Response(WebhookSecretOutput(_shown(org, selectors.org_webhook_secret_get(org=org))).data)

    @extend_schema(
        operation_id="org_webhook_secret_rotate",
        summary="Issue the org's webhook signing secret, replacing any previous one (org admin)",
        description="Completion webhooks of the org's runs (`webhook` on POST /generate) are signed with this "
        'secret: `X-Canvas-Signature: v1=<hex HMAC-SHA256 of "<X-Canvas-Timestamp>.<body>">`. The secret is in '
        "this answer only: store it now (a lost secret is replaced by calling this again). The previous secret "
        "stops signing at once, retries of earlier runs included. Non-members get 404.",
        parameters=[ORG_ID_PARAM],
        request=None,
        responses={201: WebhookSecretCreatedOutput, **error_responses(401, 404, 422), **REFUSED},
        tags=TAGS,
    )
    def create(self, request, org_id):
        org = self._org(request, org_id)
        row, secret = services.org_webhook_secret_rotate(org=org, user=request.user)
        return Response(
            WebhookSecretCreatedOutput({**_shown(org, row), "secret": secret}).data, status=status.HTTP_201_CREATED
        )
