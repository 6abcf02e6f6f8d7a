"""JWTs: ordinary login tokens, and deal-scoped tokens that carry a `deal_id` claim.

A deal-scoped token can seed the owner grant of an ownerless deal (deals.access), so only trusted
callers (superadmins, engines holding the internal token) mint one.
"""

from __future__ import annotations

import uuid

from rest_framework_simplejwt.tokens import RefreshToken

from canvas_project.errors import InvalidInputError
from deals.models import Deal, OrgMembership, User


def token_pair_for_user(*, user: User) -> dict[str, str]:
    refresh = RefreshToken.for_user(user)
    return {"access": str(refresh.access_token), "refresh": str(refresh)}


def deal_token_mint(*, user_id: uuid.UUID, deal_id: uuid.UUID) -> dict[str, str]:
    """A token pair for the user, scoped to the deal (access and refresh both carry `deal_id`).

    Raises InvalidInputError when the user is unknown or inactive, the deal unknown, or the user
    not a member of the deal's org.
    """
    user = User.objects.filter(pk=user_id, is_active=True).first()
    if user is None:
        raise InvalidInputError("No active user has this id.", loc=["body", "user_id"], value=str(user_id),
                                code="user_not_found")
    deal = Deal.objects.filter(pk=deal_id).only("id", "org_id").first()
    if deal is None:
        raise InvalidInputError("No deal has this id.", loc=["body", "deal_id"], value=str(deal_id),
                                code="deal_not_found")
    if not OrgMembership.objects.filter(org_id=deal.org_id, user=user).exists():
        raise InvalidInputError("This user is not a member of the deal's org.", loc=["body", "user_id"],
                                value=str(user_id), code="not_org_member")
    refresh = RefreshToken.for_user(user)
    refresh["deal_id"] = str(deal.pk)
    return {"access": str(refresh.access_token), "refresh": str(refresh), "user_id": user.pk, "deal_id": deal.pk}
