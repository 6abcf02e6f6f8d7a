"""Authentication of AI engines by the internal engine token (INTERNAL_ENGINE_TOKENS).

Several tokens may be configured so one can be rotated without downtime. Comparison is in constant
time over bytes (hmac.compare_digest raises on non-ASCII str), and every configured token is
compared, so timing does not reveal which one matched.
"""

from __future__ import annotations

import hmac

from django.conf import settings
from rest_framework.authentication import BaseAuthentication, get_authorization_header


class EnginePrincipal:
    """The caller when it authenticated with an internal engine token: trusted, not a user."""

    is_authenticated = True
    is_anonymous = False
    is_superuser = False
    is_staff = False
    is_active = True
    is_engine = True
    pk = None
    id = None
    username = "engine"

    def __str__(self) -> str:
        return "internal engine"


def engine_token_matches(presented: bytes) -> bool:
    matched = False
    for configured in settings.INTERNAL_ENGINE_TOKENS:
        matched |= hmac.compare_digest(presented, configured.encode("utf-8"))
    return matched


def bearer_token(request) -> bytes | None:
    parts = get_authorization_header(request).split()
    if len(parts) != 2 or parts[0].lower() != b"bearer":
        return None
    return parts[1]


class InternalEngineTokenAuthentication(BaseAuthentication):
    """Accepts `Authorization: Bearer <INTERNAL_ENGINE_TOKEN>`; defers anything else to the next class."""

    def authenticate(self, request):
        token = bearer_token(request)
        if token is None or not settings.INTERNAL_ENGINE_TOKENS or not engine_token_matches(token):
            return None
        return EnginePrincipal(), None

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'
