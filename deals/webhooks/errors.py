"""Errors of the orgs' webhook secrets, each with a stable code."""

from canvas_project.errors import PermissionDeniedError


class WebhookSecretAdminOnly(PermissionDeniedError):
    code = "org_admin_required"
    default_message = "Only an admin of the org (or a superadmin) can see or rotate its webhook secret."


class DealScopedTokenRefusedHere(PermissionDeniedError):
    code = "deal_scoped_token"
    default_message = "A deal-scoped token reaches its deal only; it cannot manage an org's webhook secret. Log in."
