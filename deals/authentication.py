"""The API's bearer authentication: JWTs (simplejwt) and API keys, on one header.

`Authorization: Bearer <token>` carries either a person's JWT or an API key (`dck_...`, deals.apikeys). A key
authenticates as its user, with that user's roles, capped by its scope: a `read` key is refused (403) on
every method but GET, HEAD and OPTIONS, before the view runs. A revoked or expired key, or one whose user is
deactivated, is 401. Every path that takes a user's JWT takes a key the same way (the SSE views call this
class too), except the few that mint credentials, which use PersonBearerAuthentication: there a key is 403.

A view that sets `jwt_stateless_user = True` gets, for a JWT, simplejwt's TokenUser (the id from the token,
no database query); such a view must check that the user is active, and that the token is not older than the
user's last password change, itself, as deals.access does in its single query. Every other view gets the user
row, as usual, and a token issued before the password changed is refused here (401). A key always brings its
user row (loaded with the key, in the same query) and is checked here.
"""

from __future__ import annotations

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from rest_framework.exceptions import AuthenticationFailed, PermissionDenied
from rest_framework.permissions import SAFE_METHODS
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.models import TokenUser

from deals.apikeys import credentials, selectors, services
from deals.apikeys.errors import ApiKeyRejected
from deals.models import ApiKeyScope
from deals.tokens import issued_before_credentials_changed

API_KEY_MARK = credentials.MARK.encode("ascii")

READ_KEY_REFUSED = (
    "This API key has the read scope: it may only read (GET, HEAD, OPTIONS). Use a key with the write scope."
)
PERSON_ONLY = (
    "An API key cannot manage API keys, mint tokens, change a password or answer an invitation: sign in with "
    "your password (POST /api/auth/token) and use that bearer token."
)


class BearerJWTAuthentication(JWTAuthentication):
    # PersonBearerAuthentication: endpoints that mint credentials refuse keys (403)
    refuses_api_keys = False

    def authenticate(self, request):
        header = self.get_header(request)
        if header is None:
            return None
        raw_token = self.get_raw_token(header)
        if raw_token is None:
            return None
        if raw_token.startswith(API_KEY_MARK):
            return self.authenticate_api_key(request, raw_token)
        validated_token = self.get_validated_token(raw_token)
        view = (getattr(request, "parser_context", None) or {}).get("view")
        if getattr(view, "jwt_stateless_user", False):
            return TokenUser(validated_token), validated_token
        return self.get_user(validated_token), validated_token

    def authenticate_api_key(self, request, raw_token: bytes):
        """(the key's user, the key). Raises AuthenticationFailed (401: malformed, unknown, revoked, expired,
        user deactivated) or PermissionDenied (403: a read key on an unsafe method, or any key here when the
        endpoint takes none)."""
        try:
            key = selectors.api_key_resolve(presented=raw_token.decode("ascii"))
        except UnicodeDecodeError:
            raise AuthenticationFailed(ApiKeyRejected.default_message, code=ApiKeyRejected.code) from None
        except ApiKeyRejected as exc:
            raise AuthenticationFailed(exc.message, code=exc.code) from None
        if self.refuses_api_keys:
            raise PermissionDenied(PERSON_ONLY, code="api_key_refused")
        if key.scope != ApiKeyScope.WRITE and request.method not in SAFE_METHODS:
            raise PermissionDenied(READ_KEY_REFUSED, code="api_key_read_only")
        services.api_key_mark_used(key=key)
        return key.user, key

    def get_user(self, validated_token):
        user = super().get_user(validated_token)
        if issued_before_credentials_changed(changed_at=user.credentials_changed_at, token=validated_token):
            raise AuthenticationFailed(
                "This token was issued before the password was changed; log in again.", code="token_not_valid"
            )
        return user


class PersonBearerAuthentication(BearerJWTAuthentication):
    """A person's JWT only: an API key, however valid, is 403 here (it cannot mint keys or tokens)."""

    refuses_api_keys = True


# --- OpenAPI --------------------------------------------------------------------------------------------
API_KEY_SCHEME_NAME = "apiKeyAuth"
API_KEY_SECURITY_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": credentials.KEY_FORMAT,
    "description": "An API key (POST /api/auth/api-keys), sent as `Authorization: Bearer dck_...`. It acts as "
    "its user with that user's roles, capped by its scope: a `read` key is refused (403) on every method but "
    "GET, HEAD and OPTIONS. A revoked or expired key, or one whose user is deactivated, is 401. Keys cannot "
    "manage keys or mint tokens (403 there).",
}


class BearerJWTScheme(SimpleJWTScheme):
    """Operations that take a user's bearer token take a JWT or an API key: either requirement."""

    target_class = "deals.authentication.BearerJWTAuthentication"
    name = ["jwtAuth", API_KEY_SCHEME_NAME]

    def get_security_requirement(self, auto_schema):
        return [{"jwtAuth": []}, {API_KEY_SCHEME_NAME: []}]

    def get_security_definition(self, auto_schema):
        return [super().get_security_definition(auto_schema), API_KEY_SECURITY_SCHEME]


class PersonBearerScheme(SimpleJWTScheme):
    """A JWT only. The `jwtAuth` component itself is registered by BearerJWTScheme (registering it here too,
    for another class, would be a name clash to drf-spectacular)."""

    target_class = "deals.authentication.PersonBearerAuthentication"
    name: list[str] = []

    def get_security_requirement(self, auto_schema):
        return {"jwtAuth": []}

    def get_security_definition(self, auto_schema):
        return []


def document_read_key_refusals(result, generator, request, public):
    """drf-spectacular postprocessing hook: every operation that takes an API key and is not a read (any method
    but GET, HEAD, OPTIONS) documents the 403 a `read` key gets there, before the view runs."""
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorDetail"}}}
    for item in result["paths"].values():
        for method, operation in item.items():
            if method.upper() in SAFE_METHODS or not isinstance(operation, dict):
                continue
            if not any(API_KEY_SCHEME_NAME in requirement for requirement in operation.get("security") or []):
                continue
            responses = operation.setdefault("responses", {})
            if "403" in responses:
                described = responses["403"].get("description", "")
                if "read" not in described:
                    responses["403"]["description"] = f"{described} Or an API key of scope `read`.".strip()
            else:
                responses["403"] = {
                    "description": "Authenticated with an API key of scope `read`, which may only read.",
                    "content": error,
                }
    return result
