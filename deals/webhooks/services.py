"""Writes of the orgs' webhook signing secrets: issuing (and so rotating) one."""

from __future__ import annotations

import secrets

from django.db import transaction
from django.utils import timezone

from canvas_project import secretbox
from deals.models import Org, OrgWebhookSecret, User

SECRET_MARK = "whsec_"
PREFIX_LENGTH = len(SECRET_MARK) + 6


def org_webhook_secret_rotate(*, org: Org, user: User | None) -> tuple[OrgWebhookSecret, str]:
    """Issue a new webhook secret for the org, replacing its current one at once (deliveries from now on are
    signed with the new one); returns the row and the secret in clear, which nothing shows again.

    256 random bits from `secrets`, as `whsec_<43 URL-safe characters>`; the HMAC key is that whole string."""
    secret = SECRET_MARK + secrets.token_urlsafe(32)
    with transaction.atomic():
        row, _created = OrgWebhookSecret.objects.update_or_create(
            org=org,
            defaults={
                "sealed": secretbox.seal(secret),
                "prefix": secret[:PREFIX_LENGTH],
                "created_by": user,
                "created_at": timezone.now(),
            },
        )
    return row, secret
