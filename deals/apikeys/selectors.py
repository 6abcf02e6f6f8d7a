"""Reads of API keys: a user's live keys, and the key a request presents."""

from __future__ import annotations

from django.db.models import QuerySet
from django.utils import timezone

from deals.apikeys import credentials
from deals.apikeys.errors import ApiKeyRejected
from deals.models import ApiKey

# compared against when the prefix is unknown, so an unknown prefix costs the same as a wrong secret
_NO_KEY_HASH = credentials.key_hash(credentials.MARK + "0" * credentials.PREFIX_RANDOM_CHARS)


def api_keys_of_user(*, user) -> QuerySet[ApiKey]:
    """The user's keys that are not revoked (expired ones included, so their owner sees them), newest first."""
    return ApiKey.objects.filter(user=user, revoked_at__isnull=True).order_by("-created_at", "pk")


def api_key_resolve(*, presented: str) -> ApiKey:
    """The key `presented` is, with its user loaded (one query), when it may authenticate now.

    Raises ApiKeyRejected: malformed, unknown, or a wrong secret (one message for all three), revoked,
    expired, or its user deactivated (those say so: the caller has shown it holds the key).
    """
    prefix = credentials.key_prefix(presented)
    if prefix is None:
        raise ApiKeyRejected()
    key = ApiKey.objects.select_related("user").filter(prefix=prefix).first()
    matches = credentials.key_matches(presented, key.key_hash if key is not None else _NO_KEY_HASH)
    if key is None or not matches:
        raise ApiKeyRejected()
    if key.revoked_at is not None:
        raise ApiKeyRejected("This API key has been revoked.", code="api_key_revoked")
    if key.expires_at is not None and key.expires_at <= timezone.now():
        raise ApiKeyRejected("This API key has expired.", code="api_key_expired")
    if not key.user.is_active:
        raise ApiKeyRejected("The user of this API key is deactivated.", code="user_inactive")
    return key
