"""Reads of the orgs' webhook signing secrets."""

from __future__ import annotations

import uuid

from canvas_project import secretbox
from deals.models import Org, OrgWebhookSecret


def org_webhook_secret_get(*, org: Org) -> OrgWebhookSecret | None:
    return OrgWebhookSecret.objects.filter(org=org).first()


def org_has_webhook_secret(*, org_id: uuid.UUID) -> bool:
    return OrgWebhookSecret.objects.filter(org_id=org_id).exists()


def org_webhook_signing_secret(*, org_id: uuid.UUID) -> str | None:
    """The org's secret in clear, to sign with; None when it has none.
    Raises canvas_project.secretbox.SecretUnreadable (SECRETS_ENCRYPTION_KEY changed since it was issued)."""
    sealed = OrgWebhookSecret.objects.filter(org_id=org_id).values_list("sealed", flat=True).first()
    return secretbox.unseal(sealed) if sealed is not None else None
