"""/api/auth/api-keys: a person's API keys for integrations (create, list, revoke).

Only a person's JWT manages keys (PersonBearerAuthentication): a key, even a write key, cannot create,
list or revoke keys (403), so a leaked key cannot mint itself a successor or hide from its owner.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, OpenApiTypes, extend_schema
from rest_framework import status, viewsets
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from canvas_project.api.schema import ErrorDetailSerializer, deleted_response, error_responses
from canvas_project.api.validation import parse_body, parse_path_uuid
from deals.apikeys import selectors, services
from deals.apikeys.serializers import ApiKeyCreatedOutput, ApiKeyCreateInput, ApiKeyOutput
from deals.authentication import PersonBearerAuthentication

KEY_ID_PARAM = OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The key's id.")
PERSON_ONLY = "Keys are managed with a person's JWT; an API key is refused here (403)."
KEY_REFUSED = {
    403: OpenApiResponse(ErrorDetailSerializer, description="Sent with an API key: keys cannot manage keys.")
}


class ApiKeyViewSet(viewsets.ViewSet):
    authentication_classes = [PersonBearerAuthentication]
    permission_classes = [IsAuthenticated]
    lookup_field = "id"
    lookup_value_regex = "[^/]+"  # any id reaches the view: a malformed one is a 422 at path.id

    @extend_schema(
        operation_id="api_keys_list",
        summary="The caller's API keys (never their secrets)",
        description="Keys that are not revoked, newest first; expired ones are listed with their past "
        f"`expires_at`. {PERSON_ONLY}",
        responses={200: ApiKeyOutput(many=True), **error_responses(401), **KEY_REFUSED},
        tags=["auth"],
    )
    def list(self, request):
        return Response(ApiKeyOutput(selectors.api_keys_of_user(user=request.user), many=True).data)

    @extend_schema(
        operation_id="api_keys_create",
        summary="Create an API key (its secret is in this answer only)",
        description="The key acts as the caller, with the caller's roles on every deal, capped by its scope. "
        f"Store `key` now: it is never shown again. {PERSON_ONLY}",
        request=ApiKeyCreateInput,
        responses={201: ApiKeyCreatedOutput, **error_responses(401, 422), **KEY_REFUSED},
        tags=["auth"],
    )
    def create(self, request):
        body = parse_body(ApiKeyCreateInput, request)
        key, secret = services.api_key_create(
            user=request.user, name=body["name"], scope=body["scope"], expires_at=body["expires_at"]
        )
        payload = {
            "id": key.pk,
            "name": key.name,
            "prefix": key.prefix,
            "scope": key.scope,
            "expires_at": key.expires_at,
            "key": secret,
        }
        return Response(ApiKeyCreatedOutput(payload).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="api_keys_revoke",
        summary="Revoke one of the caller's API keys (at once)",
        description="The next request with the key is 401. Another user's key, an unknown or an already revoked "
        f"one is 404. {PERSON_ONLY}",
        parameters=[KEY_ID_PARAM],
        responses={**deleted_response("Revoked."), **error_responses(401, 404, 422), **KEY_REFUSED},
        tags=["auth"],
    )
    def destroy(self, request, id):  # noqa: A002 - the route's parameter, as the API names it
        services.api_key_revoke(user=request.user, key_id=parse_path_uuid(id, "id"))
        return Response(status=status.HTTP_204_NO_CONTENT)
