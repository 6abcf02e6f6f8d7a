"""Reads of people and invitations."""

from __future__ import annotations

from django.db.models import QuerySet
from django.utils import timezone

from deals.errors import RoleTooLow
from deals.models import Invitation, InvitationStatus, OrgMembership, User
from deals.selectors import org_admin_require, orgs_of_user


def me(*, user: User) -> dict:
    """The caller's account and orgs (with their role in each)."""
    return {
        "id": user.pk,
        "username": user.username,
        "email": user.email,
        "orgs": list(orgs_of_user(user=user)),
    }


def invitations_for_user(*, user: User) -> QuerySet[Invitation]:
    """The live invitations to the user's email address (any case), newest first; none without an email."""
    if not user.email:
        return Invitation.objects.none()
    return (
        Invitation.objects.filter(
            email__iexact=user.email, status=InvitationStatus.PENDING, expires_at__gt=timezone.now()
        )
        .select_related("org", "invited_by")
        .order_by("-created_at", "pk")
    )


def org_open_invitations(*, actor_membership: OrgMembership) -> QuerySet[Invitation]:
    """The actor's org's invitations nobody has answered or revoked (expired ones included, shown as `expired`).

    Raises RoleTooLow unless the actor is an admin of the org (invitations name people who are not members)."""
    org_admin_require(membership=actor_membership, refusal=RoleTooLow("Only org admins can see the org's invitations."))
    return (
        Invitation.objects.filter(org=actor_membership.org_id, status=InvitationStatus.PENDING)
        .select_related("invited_by")
        .order_by("-created_at", "pk")
    )
