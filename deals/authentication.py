"""The API's bearer-token authentication (simplejwt), with a stateless mode for the hottest reads.

A view that sets `jwt_stateless_user = True` gets simplejwt's TokenUser (the id from the token, no
database query); such a view must check that the user is active itself, as deals.access does in its
single query. Every other view gets the user row, as usual. One class for both keeps one security
scheme in the OpenAPI document.
"""

from __future__ import annotations

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.models import TokenUser


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


class BearerJWTScheme(SimpleJWTScheme):
    target_class = "deals.authentication.BearerJWTAuthentication"
