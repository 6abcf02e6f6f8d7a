"""The API's bearer-token authentication (simplejwt), with a stateless mode for the hottest reads.

A view that sets `jwt_stateless_user = True` gets simplejwt's TokenUser (the id from the token, no
database query); such a view must check that the user is active, and that the token is not older than
the user's last password change, itself, as deals.access does in its single query. Every other view gets
the user row, as usual, and a token issued before the password changed is refused here (401). One class
for both keeps one security scheme in the OpenAPI document.
"""

from __future__ import annotations

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.models import TokenUser

from deals.tokens import issued_before_credentials_changed


class BearerJWTAuthentication(JWTAuthentication):
    def authenticate(self, request):
        view = (getattr(request, "parser_context", None) or {}).get("view")
        if not getattr(view, "jwt_stateless_user", False):
            return super().authenticate(request)
        header = self.get_header(request)
        if header is None:
            return None
        raw_token = self.get_raw_token(header)
        if raw_token is None:
            return None
        validated_token = self.get_validated_token(raw_token)
        return TokenUser(validated_token), validated_token

    def get_user(self, validated_token):
        user = super().get_user(validated_token)
        if issued_before_credentials_changed(changed_at=user.credentials_changed_at, token=validated_token):
            raise AuthenticationFailed(
                "This token was issued before the password was changed; log in again.", code="token_not_valid"
            )
        return user


class BearerJWTScheme(SimpleJWTScheme):
    target_class = "deals.authentication.BearerJWTAuthentication"
