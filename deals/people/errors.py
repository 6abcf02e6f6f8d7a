"""Errors of people and invitations, each with a stable code."""

from canvas_project.errors import ConflictError, NotFoundError, PermissionDeniedError


class InvitationNotFound(NotFoundError):
    code = "invitation_not_found"
    default_message = "No pending invitation of yours has this id."


class AlreadyMember(ConflictError):
    code = "already_member"
    default_message = "Someone with this email is already a member of this org."


class AlreadyInvited(ConflictError):
    code = "already_invited"
    default_message = (
        "This email already has a pending invitation to this org; revoke it first to send a new one "
        "(DELETE /api/orgs/{org_id}/invitations/{invitation_id})."
    )


class AccountExists(ConflictError):
    code = "account_exists"
    default_message = (
        "An account with this invitation's email address already exists: log in and accept the invitation "
        "under GET /api/me/invitations instead."
    )


class DealScopedTokenRefused(PermissionDeniedError):
    code = "deal_scoped_token"
    default_message = (
        "A deal-scoped token reaches its deal only; it cannot change the password or answer invitations. Log in."
    )
