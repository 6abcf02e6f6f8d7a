"""Reads of the deals app."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.db.models import Exists, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from canvas_project.errors import PermissionDeniedError
from canvas_project.replicas import replica_reads
from deals.errors import OrgNotFound
from deals.models import Deal, DealAccess, DealRole, Org, OrgMembership, OrgRole, User, Visibility

DASHBOARD_ORDERINGS = {
    "updated": "-updated_at",
    "-updated": "updated_at",
    "created": "-created_at",
    "-created": "created_at",
    "name": "name",
    "-name": "-name",
}
DASHBOARD_SCOPES = ("all", "owned", "shared", "org")


def deals_visible_to(*, user: User) -> QuerySet[Deal]:
    """Deals the user can see, annotated with `user_role`: a grant, or viewer through org visibility."""
    grant_role = Subquery(DealAccess.objects.filter(deal=OuterRef("pk"), user=user.pk).values("role")[:1])
    member = Exists(OrgMembership.objects.filter(org=OuterRef("org_id"), user=user.pk))
    return (
        Deal.objects.annotate(grant_role=grant_role, is_member=member)
        .annotate(user_role=Coalesce("grant_role", Value(DealRole.VIEWER.value)))
        .filter(is_member=True)
        .filter(Q(grant_role__isnull=False) | Q(visibility=Visibility.ORG))
    )


@dataclass(frozen=True)
class DashboardQuery:
    q: str = ""
    scope: str = "all"
    ordering: str = "updated"


def dashboard_deals(*, user: User, query: DashboardQuery, only_deal_id: str | None = None) -> QuerySet[Deal]:
    """The deals of the dashboard: owned, shared with the user, and visible to their orgs.

    `only_deal_id` narrows the list for a deal-scoped token, which sees one deal only. Read from a replica
    when one is usable (canvas_project.replicas).
    """
    deals = replica_reads(deals_visible_to(user=user))
    if only_deal_id is not None:
        deals = deals.filter(pk=only_deal_id)
    if query.q:
        deals = deals.filter(Q(name__icontains=query.q) | Q(description__icontains=query.q))
    if query.scope == "owned":
        deals = deals.filter(grant_role=DealRole.OWNER)
    elif query.scope == "shared":
        deals = deals.filter(grant_role__isnull=False).exclude(grant_role=DealRole.OWNER)
    elif query.scope == "org":
        deals = deals.filter(grant_role__isnull=True)
    return deals.order_by(DASHBOARD_ORDERINGS[query.ordering], "pk")


def deal_grants(*, deal: Deal) -> QuerySet[DealAccess]:
    """The deal's access list (for display: access checks read the primary), from a replica when usable."""
    return replica_reads(DealAccess.objects).filter(deal=deal).select_related("user").order_by("created_at", "pk")


def orgs_of_user(*, user: User) -> QuerySet[Org]:
    memberships = OrgMembership.objects.filter(org=OuterRef("pk"), user=user.pk)
    return (
        Org.objects.filter(Exists(memberships))
        .annotate(my_role=Subquery(memberships.values("role")[:1]))
        .order_by("name", "pk")
    )


def org_membership_of(*, user: User, org_id: uuid.UUID) -> OrgMembership:
    """The caller's membership of the org. Raises OrgNotFound when they are not a member."""
    membership = OrgMembership.objects.select_related("org").filter(org_id=org_id, user=user.pk).first()
    if membership is None:
        raise OrgNotFound()
    return membership


def org_admin_require(*, membership: OrgMembership | None, refusal: PermissionDeniedError) -> None:
    """The one org-admin rule, which every path that needs an org's admin calls: the membership's role is admin.

    Raises `refusal` (each caller names its own 403) when it is not, or when `membership` is None (a membership
    removed since the caller read it)."""
    if membership is None or membership.role != OrgRole.ADMIN:
        raise refusal


def org_for_admin(*, user: User, org_id: uuid.UUID, refusal: PermissionDeniedError) -> Org:
    """The org, when the caller is its admin, or a superadmin (who needs no membership).

    Raises OrgNotFound (unknown org, or the caller is not a member), `refusal` (a member who is not admin)."""
    if user.is_superuser:
        org = Org.objects.filter(pk=org_id).first()
        if org is None:
            raise OrgNotFound()
        return org
    membership = org_membership_of(user=user, org_id=org_id)
    org_admin_require(membership=membership, refusal=refusal)
    return membership.org


def org_members(*, org: Org) -> QuerySet[OrgMembership]:
    """The org's member list, from a replica when usable."""
    return replica_reads(OrgMembership.objects).filter(org=org).select_related("user").order_by("created_at", "pk")
