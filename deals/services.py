"""Writes of the deals app: orgs and members, deals, and the sharing of deals."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable

from django.db import connection, transaction
from django.db.models import Exists, OuterRef

from canvas_project import keyspace
from canvas_project.errors import InvalidInputError
from canvas_project.store import delete_deal_items, delete_deal_threads
from deals.documents.services import deal_document_files_delete
from deals.errors import (
    AlreadyExists,
    DealNotFound,
    GrantNotFound,
    LastOrgAdmin,
    LastOwner,
    MemberNotFound,
    NoOrg,
    OrgNotFound,
    RoleTooLow,
)
from deals.models import Deal, DealAccess, DealRole, MemoKind, Org, OrgMembership, OrgRole, User, Visibility
from deals.selectors import deals_visible_to, org_admin_require

logger = logging.getLogger(__name__)

# the 403 of every member-managing path (deals.selectors.org_admin_require is the rule)
MEMBERS_ADMIN_ONLY = "Only org admins can manage members."


# --- users ------------------------------------------------------------------------------------
# Nobody learns from an answer whether an email or a user id exists outside their own orgs: a user is looked up
# only among the people the caller may already know (the members of an org), and every miss reads the same,
# echoing only what the caller sent.
def _named(users, *, user_id: uuid.UUID | None, email: str | None) -> User | None:
    users = users.filter(is_active=True)
    if user_id:
        return users.filter(pk=user_id).first()
    return users.filter(email__iexact=email).order_by("date_joined", "pk").first()


def org_member_find(
    *, org_id: uuid.UUID, user_id: uuid.UUID | None = None, email: str | None = None, field: str
) -> User:
    """The active member of the org named by id or email.

    Raises InvalidInputError at body.<field> when none: the same answer for an unknown id or email and for a
    user outside the org.
    """
    found = _named(User.objects.filter(org_memberships__org_id=org_id), user_id=user_id, email=email)
    if found is None:
        raise InvalidInputError(
            "No member of the deal's org has this " + ("id" if user_id else "email") + "; an org admin must add "
            "them to the org first.",
            loc=["body", field],
            value=str(user_id or email),
            code="not_org_member",
        )
    return found


def colleague_find(*, actor: User, user_id: uuid.UUID | None = None, email: str | None = None, field: str) -> User:
    """An active user who shares at least one org with the actor, named by id or email.

    Raises InvalidInputError at body.<field> when none: the same answer whether nobody has that id or email,
    or only someone outside the actor's orgs.
    """
    actor_orgs = OrgMembership.objects.filter(user=actor.pk).values("org_id")
    shared = OrgMembership.objects.filter(user=OuterRef("pk"), org_id__in=actor_orgs)
    found = _named(User.objects.filter(Exists(shared)), user_id=user_id, email=email)
    if found is None:
        raise InvalidInputError(
            "Nobody in your orgs has this " + ("id" if user_id else "email") + ". To bring in someone new, invite "
            "them by email: POST /api/orgs/{org_id}/invitations.",
            loc=["body", field],
            value=str(user_id or email),
            code="not_in_your_orgs",
        )
    return found


def user_create(
    *,
    username: str,
    password: str | None,
    email: str = "",
    first_name: str = "",
    last_name: str = "",
    is_superuser: bool = False,
) -> User:
    """Create a user. Raises AlreadyExists when the username is taken."""
    if User.objects.filter(username=username).exists():
        raise AlreadyExists(f"A user named {username!r} already exists.")
    user = User(
        username=username,
        email=email,
        first_name=first_name,
        last_name=last_name,
        is_superuser=is_superuser,
        is_staff=is_superuser,
    )
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.save()
    return user


# --- orgs -------------------------------------------------------------------------------------
@transaction.atomic
def org_create(*, name: str, created_by: User) -> Org:
    """Create an org; its creator becomes its first admin."""
    org = Org.objects.create(name=name, created_by=created_by)
    OrgMembership.objects.create(org=org, user=created_by, role=OrgRole.ADMIN)
    return org


def org_member_add(
    *, actor_membership: OrgMembership, user_id: uuid.UUID | None, email: str | None, role: str
) -> OrgMembership:
    """Add someone the actor already shares an org with (by id or email) to the actor's org.

    Nobody else is added without their consent: a person from outside the actor's orgs is invited
    (deals.people.services.invitation_create). Raises RoleTooLow (not an admin; checked before any lookup),
    InvalidInputError (nobody in the actor's orgs has this id or email), AlreadyExists.
    """
    org_admin_require(membership=actor_membership, refusal=RoleTooLow(MEMBERS_ADMIN_ONLY))
    field = "user_id" if user_id else "email"
    user = colleague_find(actor=actor_membership.user, user_id=user_id, email=email, field=field)
    membership, created = OrgMembership.objects.get_or_create(
        org=actor_membership.org, user=user, defaults={"role": role}
    )
    if not created:
        raise AlreadyExists(f"{user.username} is already a member of this org.")
    return membership


@transaction.atomic
def org_member_role_change(*, actor_membership: OrgMembership, user_id: uuid.UUID, role: str) -> OrgMembership:
    """Change a member's role in the actor's org (org admin). Raises RoleTooLow, MemberNotFound, and LastOrgAdmin
    when it would leave the org without an admin."""
    org_admin_require(membership=actor_membership, refusal=RoleTooLow(MEMBERS_ADMIN_ONLY))
    # every membership of the org locked in pk order: two concurrent demotions cannot both see another admin
    memberships = list(
        OrgMembership.objects.select_for_update()
        .filter(org=actor_membership.org_id)
        .select_related("user", "org")
        .order_by("pk")
    )
    actor = next((m for m in memberships if m.pk == actor_membership.pk), None)
    # demoted or removed while this request waited for the locks
    org_admin_require(membership=actor, refusal=RoleTooLow(MEMBERS_ADMIN_ONLY))
    target = next((m for m in memberships if m.user_id == user_id), None)
    if target is None:
        raise MemberNotFound()
    admins = [m for m in memberships if m.role == OrgRole.ADMIN]
    if target.role == OrgRole.ADMIN and role != OrgRole.ADMIN and len(admins) == 1:
        raise LastOrgAdmin("The last admin of an org cannot be demoted; make someone else admin first.")
    if target.role != role:
        target.role = role
        target.save(update_fields=["role", "updated_at"])
    return target


@transaction.atomic
def org_member_remove(*, actor_membership: OrgMembership, user_id: uuid.UUID) -> None:
    """Remove a member, and their grants on the org's deals.

    Admins remove anyone; a member may remove themself (leave). Raises RoleTooLow, MemberNotFound,
    LastOrgAdmin, and LastOwner when the member is the last owner of one of the org's deals.
    """
    org = actor_membership.org
    if user_id != actor_membership.user_id:
        org_admin_require(membership=actor_membership, refusal=RoleTooLow(MEMBERS_ADMIN_ONLY))
    memberships = list(OrgMembership.objects.select_for_update().filter(org=org).order_by("pk"))
    target = next((m for m in memberships if m.user_id == user_id), None)
    if target is None:
        raise MemberNotFound()
    admins = [m for m in memberships if m.role == OrgRole.ADMIN]
    if target.role == OrgRole.ADMIN and len(admins) == 1:
        raise LastOrgAdmin()
    owned = DealAccess.objects.filter(deal__org=org, user_id=user_id, role=DealRole.OWNER)
    sole = [
        grant.deal.name
        for grant in owned.select_related("deal")
        if not DealAccess.objects.filter(deal=grant.deal_id, role=DealRole.OWNER).exclude(user_id=user_id).exists()
    ]
    if sole:
        raise LastOwner("This member is the last owner of: " + ", ".join(sorted(sole)) + ". Transfer ownership first.")
    DealAccess.objects.filter(deal__org=org, user_id=user_id).delete()
    target.delete()


# --- deals ------------------------------------------------------------------------------------
def deal_org_for_create(*, user: User, org_id: uuid.UUID | None) -> Org:
    """The org a new deal goes into: the given one (the caller must belong to it) or the caller's only org.

    Raises OrgNotFound (404) when the named org is not one of the caller's (another tenant's org is not
    found, as everywhere), NoOrg (403) when the caller is in no org, InvalidInputError (422) when the
    caller has several orgs and named none. (Membership is state, not shape: a well-formed body gets no 422
    for it.)
    """
    memberships = OrgMembership.objects.filter(user=user.pk).select_related("org")
    if org_id is not None:
        membership = memberships.filter(org_id=org_id).first()
        if membership is None:
            raise OrgNotFound("No org of yours has this id.")
        return membership.org
    orgs = [m.org for m in memberships[:2]]
    if not orgs:
        raise NoOrg()
    if len(orgs) > 1:
        raise InvalidInputError(
            "You belong to several orgs; say which one with org_id.", loc=["body", "org_id"], value=None, code="missing"
        )
    return orgs[0]


@transaction.atomic
def deal_create(
    *,
    user: User,
    org: Org,
    name: str,
    description: str = "",
    visibility: str = Visibility.PRIVATE,
    template_key: str = MemoKind.ACQUISITION,
    collab_enabled: bool = True,
    created_blank: bool = False,
) -> Deal:
    """Create a deal; its creator becomes its owner."""
    deal = Deal.objects.create(
        org=org,
        name=name,
        description=description,
        visibility=visibility,
        template_key=template_key,
        collab_enabled=collab_enabled,
        created_blank=created_blank,
        created_by=user,
    )
    DealAccess.objects.create(deal=deal, user=user, role=DealRole.OWNER, granted_by=user)
    return deal


def deal_update(*, deal: Deal, role: str, changes: dict) -> Deal:
    """Change name, description or visibility. Raises RoleTooLow when a non-owner changes visibility."""
    if "visibility" in changes and changes["visibility"] != deal.visibility and role != DealRole.OWNER:
        raise RoleTooLow("Only an owner can change who can see the deal (visibility).")
    for field, value in changes.items():
        setattr(deal, field, value)
    if changes:
        deal.save(update_fields=[*changes, "updated_at"])
    return deal


def deal_nodes_touch(*, deal: Deal) -> int:
    """+1 on the deal's `nodes_version`, in the caller's transaction when there is one; returns the new value
    and keeps `deal` in step (a later read of the same request must not validate a cache with the old one).

    Every write of a canvas node other than a memo section calls it after the write (canvas.nodes.services,
    canvas.review.services, the admin's comment and condition edits): the engines' cached canvas context
    (internal_api.context_cache) is valid only while the deal row's memo_version and nodes_version are the
    ones it was built at. One statement, no row read first, so concurrent writers never lose a bump.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Deal._meta.db_table} SET nodes_version = nodes_version + 1 WHERE id = %s RETURNING nodes_version",
            [deal.pk],
        )
        row = cursor.fetchone()
    if row is not None:
        deal.nodes_version = row[0]
    return deal.nodes_version


def deal_state_discard(*, deal_id) -> None:
    """Forget everything of a deleted deal outside its PostgreSQL rows: its items in the LangGraph Store
    (memo, snapshots, nodes, edges), its checkpoint threads, and its Redis keys of every family.

    Best effort: each part that fails is logged and left for the TTLs or a superadmin purge.
    """
    steps = (
        ("store", lambda: delete_deal_items(deal_id)),
        ("checkpoints", lambda: delete_deal_threads(deal_id)),
        (
            "redis",
            lambda: keyspace.purge_deal_keys(
                client=keyspace.purge_redis_client(), deal_id=str(deal_id), include_protected=True, dry_run=False
            ),
        ),
    )
    for name, step in steps:
        try:
            step()
        except Exception:  # noqa: BLE001 - every part is independent and recoverable
            logger.exception("discarding %s of deleted deal %s failed", name, deal_id)


def _discard_on_commit(deal_ids: list[uuid.UUID]) -> None:
    for deal_id in deal_ids:
        transaction.on_commit(lambda deal_id=deal_id: deal_state_discard(deal_id=deal_id))


@transaction.atomic
def deal_delete(*, deal: Deal) -> None:
    """Delete the deal; once committed, its files, memo, checkpoints and Redis state go too."""
    deal_id = deal.pk
    deal_document_files_delete(deal=deal)
    deal.delete()
    _discard_on_commit([deal_id])


@transaction.atomic
def deals_batch_delete(*, user: User, deal_ids: Iterable[uuid.UUID], token_deal_id: str | None) -> list[uuid.UUID]:
    """Delete several deals, all or none. Raises DealNotFound naming the ids the caller cannot see,
    RoleTooLow naming those they do not own."""
    wanted = list(dict.fromkeys(deal_ids))
    visible = deals_visible_to(user=user).filter(pk__in=wanted)
    if token_deal_id is not None:
        visible = visible.filter(pk=token_deal_id)
    roles = {deal.pk: deal.grant_role for deal in visible.select_for_update(of=("self",))}
    missing = [str(d) for d in wanted if d not in roles]
    if missing:
        raise DealNotFound("Deals not found: " + ", ".join(missing) + ". Nothing was deleted.")
    not_owned = [str(d) for d in wanted if roles[d] != DealRole.OWNER]
    if not_owned:
        raise RoleTooLow(
            "Only owners can delete deals; you do not own: " + ", ".join(not_owned) + ". Nothing was deleted."
        )
    for deal in Deal.objects.filter(pk__in=wanted):
        deal_document_files_delete(deal=deal)
    Deal.objects.filter(pk__in=wanted).delete()
    _discard_on_commit(wanted)
    return wanted


# --- sharing ----------------------------------------------------------------------------------
def _require_org_member(deal: Deal, user: User, field: str) -> None:
    if not OrgMembership.objects.filter(org=deal.org_id, user=user.pk).exists():
        # the answer of org_member_find: never the user's id, which the caller may not know
        raise InvalidInputError(
            "No member of the deal's org has this id; an org admin must add them to the org first.",
            loc=["body", field],
            value=None,
            code="not_org_member",
        )


def deal_access_grant(*, deal: Deal, user: User, role: str, granted_by: User, field: str) -> DealAccess:
    """Grant a role on the deal. Raises InvalidInputError (not in the org), AlreadyExists."""
    _require_org_member(deal, user, field)
    grant, created = DealAccess.objects.get_or_create(
        deal=deal, user=user, defaults={"role": role, "granted_by": granted_by}
    )
    if not created:
        raise AlreadyExists(f"{user.username} already has the {grant.role} role on this deal; change it with PATCH.")
    return grant


def _locked_grants(deal: Deal) -> list[DealAccess]:
    # Lock every grant of the deal in pk order, so two concurrent demotions cannot both see
    # "another owner remains" and leave the deal without one.
    return list(DealAccess.objects.select_for_update().filter(deal=deal).select_related("user").order_by("pk"))


def _target_grant(grants: list[DealAccess], user_id: uuid.UUID) -> DealAccess:
    grant = next((g for g in grants if g.user_id == user_id), None)
    if grant is None:
        raise GrantNotFound()
    return grant


def _is_last_owner(grants: list[DealAccess], grant: DealAccess) -> bool:
    return grant.role == DealRole.OWNER and sum(g.role == DealRole.OWNER for g in grants) == 1


@transaction.atomic
def deal_access_change(*, deal: Deal, user_id: uuid.UUID, role: str) -> DealAccess:
    """Change a grant's role. Raises GrantNotFound, LastOwner."""
    grants = _locked_grants(deal)
    grant = _target_grant(grants, user_id)
    if role != DealRole.OWNER and _is_last_owner(grants, grant):
        raise LastOwner()
    if grant.role != role:
        grant.role = role
        grant.save(update_fields=["role", "updated_at"])
    return grant


@transaction.atomic
def deal_access_revoke(*, deal: Deal, user_id: uuid.UUID) -> None:
    """Revoke a grant. Raises GrantNotFound, LastOwner."""
    grants = _locked_grants(deal)
    grant = _target_grant(grants, user_id)
    if _is_last_owner(grants, grant):
        raise LastOwner()
    grant.delete()
