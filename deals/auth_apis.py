"""Token endpoints: obtain, refresh, verify, and the trusted minting of deal-scoped tokens."""

from __future__ import annotations

from datetime import UTC, datetime

from django.core.exceptions import ObjectDoesNotExist
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import AllowAny, BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.serializers import TokenRefreshSerializer
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken
from rest_framework_simplejwt.tokens import UntypedToken

from canvas_project.api.client_address import client_address
from canvas_project.api.schema import error_responses
from canvas_project.api.validation import parse_body
from deals.authentication import BearerJWTAuthentication
from deals.errors import RoleTooLow
from deals.serializers import (
    DealTokenInput,
    DealTokenOutput,
    TokenObtainInput,
    TokenPairOutput,
    TokenRefreshInput,
    TokenVerifyInput,
    TokenVerifyOutput,
)
from deals.tokens import UserRefreshToken, deal_token_mint, token_obtain
from internal_api.authentication import InternalEngineTokenAuthentication


class PublicTokenApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    def get_authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


class TokenObtainApi(PublicTokenApi):
    @extend_schema(
        operation_id="auth_token_obtain",
        summary="Log in: a bearer token pair",
        description="Attempts are rate-limited per username and per client address, right password or wrong, "
        "before the password is checked: past the limit every attempt (even with the right password) is 429 "
        "with Retry-After until the bucket refills. Defaults: per username a burst of 5, then 1 a minute (a "
        "successful login clears it); per address a burst of 20, then 20 a minute.",
        request=TokenObtainInput,
        responses={200: TokenPairOutput, **error_responses(401, 422, 429)},
        parameters=[
            OpenApiParameter(
                "Retry-After",
                int,
                OpenApiParameter.HEADER,
                response=[429],
                description="Seconds to wait before the next attempt.",
            )
        ],
        tags=["auth"],
        auth=[],
    )
    def post(self, request):
        body = parse_body(TokenObtainInput, request)
        pair = token_obtain(
            request=request,
            username=body["username"],
            password=body["password"],
            client_address=client_address(request),
        )
        if pair is None:
            raise AuthenticationFailed("No active account found with the given credentials.")
        return Response(pair)


class _UserTokenRefreshSerializer(TokenRefreshSerializer):
    token_class = UserRefreshToken


class TokenRefreshApi(PublicTokenApi):
    @extend_schema(
        operation_id="auth_token_refresh",
        summary="Trade a refresh token for a new pair (the old refresh token is revoked)",
        request=TokenRefreshInput,
        responses={200: TokenPairOutput, **error_responses(401, 422)},
        tags=["auth"],
        auth=[],
    )
    def post(self, request):
        body = parse_body(TokenRefreshInput, request)
        serializer = _UserTokenRefreshSerializer(data=body)
        try:
            serializer.is_valid(raise_exception=True)
        except TokenError:
            raise AuthenticationFailed("Token is invalid, expired or already used.") from None
        except ObjectDoesNotExist:
            raise AuthenticationFailed("No active account found for this token.") from None
        return Response(
            {
                "access": serializer.validated_data["access"],
                "refresh": serializer.validated_data.get("refresh", body["refresh"]),
            }
        )


class TokenVerifyApi(PublicTokenApi):
    @extend_schema(
        operation_id="auth_token_verify",
        summary="Check a token and read its claims",
        request=TokenVerifyInput,
        responses={200: TokenVerifyOutput, **error_responses(401, 422)},
        tags=["auth"],
        auth=[],
    )
    def post(self, request):
        body = parse_body(TokenVerifyInput, request)
        try:
            token = UntypedToken(body["token"])
        except TokenError:
            raise AuthenticationFailed("Token is invalid or expired.") from None
        if token.get("token_type") == "refresh":
            if BlacklistedToken.objects.filter(token__jti=token.get("jti")).exists():
                raise AuthenticationFailed("Token is blacklisted.")
        return Response(
            {
                "valid": True,
                "token_type": token.get("token_type"),
                "user_id": token.get("user_id"),
                "deal_id": token.get("deal_id"),
                "expires_at": datetime.fromtimestamp(token["exp"], tz=UTC),
            }
        )


class IsSuperadminOrEngine(BasePermission):
    def has_permission(self, request, view) -> bool:
        user = request.user
        if not getattr(user, "is_authenticated", False):
            return False
        if getattr(user, "is_engine", False) or getattr(user, "is_superuser", False):
            return True
        raise RoleTooLow("Only superadmins and engines holding the internal token can mint deal-scoped tokens.")


class DealTokenApi(APIView):
    authentication_classes = [InternalEngineTokenAuthentication, BearerJWTAuthentication]
    permission_classes = [IsSuperadminOrEngine]

    @extend_schema(
        operation_id="auth_token_deal",
        summary="Mint a deal-scoped token (superadmin or internal engine token)",
        description="The token carries a `deal_id` claim: it reaches that deal only, and on first access "
        "it seeds the owner grant when the deal has no owner yet. The user must belong to the deal's org.",
        request=DealTokenInput,
        responses={201: DealTokenOutput, **error_responses(401, 403, 422)},
        tags=["auth"],
        auth=[{"jwtAuth": []}, {"internalEngineToken": []}],
    )
    def post(self, request):
        body = parse_body(DealTokenInput, request)
        minted = deal_token_mint(user_id=body["user_id"], deal_id=body["deal_id"])
        return Response(DealTokenOutput(minted).data, status=status.HTTP_201_CREATED)
