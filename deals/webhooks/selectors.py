"""Reads of the orgs' webhook signing secrets."""

from __future__ import annotations

import uuid

from canvas_project import secretbox
from deals.errors import OrgNotFound
from deals.models import Org, OrgMembership, OrgRole, OrgWebhookSecret, User
from deals.webhooks.errors import WebhookSecretAdminOnly


def org_for_webhook_admin(*, user: User, org_id: uuid.UUID) -> Org:
    """The org, when the caller may manage its webhook secret: an admin of it, or a superadmin (no member).
    Raises OrgNotFound (unknown, or the caller is not a member), WebhookSecretAdminOnly (a member, not admin)."""
    if user.is_superuser:
        org = Org.objects.filter(pk=org_id).first()
        if org is None:
            raise OrgNotFound()
        return org
    membership = OrgMembership.objects.select_related("org").filter(org_id=org_id, user=user.pk).first()
    if membership is None:
        raise OrgNotFound()
    if membership.role != OrgRole.ADMIN:
        raise WebhookSecretAdminOnly()
    return membership.org


def org_webhook_secret_get(*, org: Org) -> OrgWebhookSecret | None:
    return OrgWebhookSecret.objects.filter(org=org).first()


def org_has_webhook_secret(*, org_id: uuid.UUID) -> bool:
    return OrgWebhookSecret.objects.filter(org_id=org_id).exists()


def org_webhook_signing_secret(*, org_id: uuid.UUID) -> str | None:
    """The org's secret in clear, to sign with; None when it has none.
    Raises canvas_project.secretbox.SecretUnreadable (SECRETS_ENCRYPTION_KEY changed since it was issued)."""
    sealed = OrgWebhookSecret.objects.filter(org_id=org_id).values_list("sealed", flat=True).first()
    return secretbox.unseal(sealed) if sealed is not None else None
