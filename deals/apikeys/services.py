"""Writes of API keys: creating one (its secret returned once), revoking, and recording use."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from deals.apikeys import credentials
from deals.apikeys.errors import ApiKeyNotFound
from deals.models import ApiKey, User

# a new prefix collides with an existing one about once in 2e14 keys; a second draw is certain to do
_PREFIX_DRAWS = 3


def api_key_create(*, user: User, name: str, scope: str, expires_at: datetime | None) -> tuple[ApiKey, str]:
    """A new key of the user, and the key itself: the only time it exists outside its holder's hands (only
    its prefix and hash are stored)."""
    draws = 0
    while True:
        draws += 1
        new = credentials.key_generate()
        try:
            with transaction.atomic():
                key = ApiKey.objects.create(
                    user=user, name=name, scope=scope, expires_at=expires_at, prefix=new.prefix, key_hash=new.key_hash
                )
        except IntegrityError:
            if draws >= _PREFIX_DRAWS:
                raise
            continue
        return key, new.key


def api_key_revoke(*, user: User, key_id: uuid.UUID) -> None:
    """Revoke one of the user's keys; it is refused from the next request on.

    Raises ApiKeyNotFound for an unknown id, another user's key, or one already revoked (the same answer,
    so nobody learns that someone else's key exists).
    """
    revoked = ApiKey.objects.filter(pk=key_id, user=user, revoked_at__isnull=True).update(revoked_at=timezone.now())
    if not revoked:
        raise ApiKeyNotFound()


def api_keys_revoke(*, keys: QuerySet[ApiKey]) -> int:
    """Revoke every key of `keys` that is live (the admin's action); returns how many were."""
    return keys.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())


def api_key_mark_used(*, key: ApiKey) -> bool:
    """Record that the key was used now, unless its `last_used_at` is fresher than API_KEY_LAST_USED_SECONDS:
    a busy key costs one UPDATE per window, not one per request. Returns whether a row was written (two
    requests racing at the window's edge write once: the UPDATE is conditional)."""
    now = timezone.now()
    window = timedelta(seconds=settings.API_KEY_LAST_USED_SECONDS)
    if key.last_used_at is not None and now - key.last_used_at < window:
        return False
    written = (
        ApiKey.objects.filter(pk=key.pk)
        .filter(Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - window))
        .update(last_used_at=now)
    )
    key.last_used_at = now
    return bool(written)
