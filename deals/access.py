"""The one place where a deal and the caller's role on it are resolved.

Rules (docs/security.md, "API1 Broken Object Level Authorization"):
- The caller must be a member of the deal's org; otherwise the deal does not exist for them (404).
- A DealAccess grant gives its role; an org-visible deal gives every org member at least viewer.
- A JWT whose `deal_id` claim names this deal seeds an owner grant on first access while the deal
  has no owner. A token whose `deal_id` claim names another deal cannot reach this one (404).
- Unknown deal and malformed id: 404. Superadmins are not implicitly members.
Resolution costs one SQL query, plus one INSERT on the rare seeding path.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.db import connection

from deals.errors import DealNotFound, RoleTooLow
from deals.models import Deal, DealRole, Org, Visibility, role_rank


@dataclass(frozen=True)
class DealAccessContext:
    deal: Deal
    role: str

    @property
    def rank(self) -> int:
        return role_rank(self.role)


def parse_deal_id(raw: object) -> uuid.UUID:
    """A deal id from a path or claim. Raises DealNotFound for anything that is not a UUID."""
    try:
        return uuid.UUID(str(raw))
    except (ValueError, TypeError, AttributeError):
        raise DealNotFound() from None


def token_deal_claim(token: object) -> str | None:
    """The `deal_id` claim of a deal-scoped JWT, or None for an ordinary token."""
    getter = getattr(token, "get", None)
    if getter is None:
        return None
    claim = getter("deal_id")
    return str(claim) if claim else None


def _issued_at(token: object) -> int | None:
    """A JWT's `iat` (seconds), checked against the user's last password change; None for other callers.
    A JWT without a usable `iat` counts as issued at 0: older than any recorded change."""
    getter = getattr(token, "get", None)
    if getter is None:
        return None
    issued = getter("iat")
    return int(issued) if isinstance(issued, int | float) else 0


def _seed_owner_grant(*, deal_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    # One statement, so the check "no owner yet" and the insert cannot be split by another request
    # of the same user; an existing lower grant of this user is raised to owner.
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO deals_dealaccess (deal_id, user_id, role, granted_by_id, created_at, updated_at)
            SELECT %(deal)s, %(user)s, 'owner', NULL, now(), now()
            WHERE NOT EXISTS (SELECT 1 FROM deals_dealaccess WHERE deal_id = %(deal)s AND role = 'owner')
            ON CONFLICT (deal_id, user_id) DO UPDATE SET role = 'owner', updated_at = now()
            """,
            {"deal": deal_id, "user": user_id},
        )
        return cursor.rowcount > 0


# One statement: the deal, its org's name, the caller's grant, whether the caller is an active member of
# the org and (for deal-scoped tokens) whether the deal has an owner. Raw SQL because building the same
# query through the ORM cost about four times its execution on the hot GET (bench/canvas_get).
_DEAL_FIELDS = (
    "id",
    "org_id",
    "name",
    "description",
    "visibility",
    "template_key",
    "collab_enabled",
    "created_blank",
    "created_by_id",
    "document_state",
    "memo_version",
    "sections_populated",
    "sections_total",
    "incomplete_delivery_blocked",
    "nodes_version",
    "created_at",
    "updated_at",
)
_RESOLVE_SQL = (
    "SELECT " + ", ".join(f"d.{name}" for name in _DEAL_FIELDS) + ", o.name, "
    "(SELECT a.role FROM deals_dealaccess a WHERE a.deal_id = d.id AND a.user_id = %(user)s), "
    "EXISTS (SELECT 1 FROM deals_orgmembership m JOIN deals_user u ON u.id = m.user_id "
    "        WHERE m.org_id = d.org_id AND m.user_id = %(user)s AND u.is_active "
    "        AND (%(issued)s::bigint IS NULL OR u.credentials_changed_at IS NULL "
    "             OR u.credentials_changed_at <= to_timestamp(%(issued)s::bigint))), "
    "EXISTS (SELECT 1 FROM deals_dealaccess a WHERE a.deal_id = d.id AND a.role = 'owner') "
    "FROM deals_deal d JOIN deals_org o ON o.id = d.org_id WHERE d.id = %(deal)s"
)


def resolve_deal_access(*, user, deal_id: object, token: object = None) -> DealAccessContext:
    """Resolve the deal and the caller's role (one SQL query; one more to seed an owner grant).

    `user` may be a full user or a token user carrying only its id: the query checks that the user is
    active and, for a JWT, that it was issued no earlier than the user's last password change. Raises
    DealNotFound (unknown, malformed, other org, no access, inactive user, token older than the password,
    token scoped to another deal).
    """
    deal_uuid = parse_deal_id(deal_id)
    claim = token_deal_claim(token)
    if claim is not None and claim != str(deal_uuid):
        raise DealNotFound()
    if not getattr(user, "is_authenticated", False):
        raise DealNotFound()
    try:
        user_uuid = uuid.UUID(str(user.pk))
    except (ValueError, TypeError, AttributeError):
        raise DealNotFound() from None

    with connection.cursor() as cursor:
        cursor.execute(_RESOLVE_SQL, {"user": user_uuid, "deal": deal_uuid, "issued": _issued_at(token)})
        row = cursor.fetchone()
    if row is None:
        raise DealNotFound()
    count = len(_DEAL_FIELDS)
    org_name, grant_role, is_member, has_owner = row[count:]
    if not is_member:
        raise DealNotFound()
    deal = Deal(**dict(zip(_DEAL_FIELDS, row[:count], strict=True)))
    deal._state.adding, deal._state.db = False, "default"
    deal.org = Org(id=deal.org_id, name=org_name)

    role = grant_role
    if claim is not None and not has_owner:
        _seed_owner_grant(deal_id=deal.pk, user_id=user_uuid)
        role = DealRole.OWNER
    if role is None and deal.visibility == Visibility.ORG:
        role = DealRole.VIEWER
    if role is None:
        raise DealNotFound()
    return DealAccessContext(deal=deal, role=role)


def require_role(context: DealAccessContext, minimum: str) -> None:
    """Raises RoleTooLow when the caller's role is below `minimum`."""
    if context.rank < role_rank(minimum):
        raise RoleTooLow(f"This action needs the {minimum} role or higher; your role on this deal is {context.role}.")
