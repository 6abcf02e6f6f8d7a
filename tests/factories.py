"""The one place tests create rows."""

from __future__ import annotations

import itertools

from rest_framework.test import APIClient

from deals.apikeys.services import api_key_create
from deals.models import ApiKey, Deal, DealAccess, Org, OrgMembership, OrgRole, User, Visibility
from deals.tokens import token_pair_for_user

PASSWORD = "test-pass-9876"
_seq = itertools.count(1)


def make_user(username: str | None = None, *, superuser: bool = False, **fields) -> User:
    n = next(_seq)
    username = username or f"user{n}"
    user = User(
        username=username,
        email=fields.pop("email", f"{username}@example.com"),
        is_superuser=superuser,
        is_staff=superuser,
        **fields,
    )
    user.set_password(PASSWORD)
    user.save()
    return user


def make_org(name: str = "Org", *, admin: User | None = None) -> Org:
    org = Org.objects.create(name=name)
    if admin is not None:
        OrgMembership.objects.create(org=org, user=admin, role=OrgRole.ADMIN)
    return org


def add_member(org: Org, user: User, role: str = OrgRole.MEMBER) -> OrgMembership:
    return OrgMembership.objects.create(org=org, user=user, role=role)


def make_deal(
    org: Org, *, owner: User | None = None, name: str = "Deal", visibility: str = Visibility.PRIVATE, **fields
) -> Deal:
    deal = Deal.objects.create(org=org, name=name, visibility=visibility, created_by=owner, **fields)
    if owner is not None:
        grant(deal, owner, "owner")
    return deal


def grant(deal: Deal, user: User, role: str) -> DealAccess:
    return DealAccess.objects.create(deal=deal, user=user, role=role)


def client_for(user: User | None = None, *, token: str | None = None) -> APIClient:
    client = APIClient()
    if token is None and user is not None:
        token = token_pair_for_user(user=user)["access"]
    if token is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def make_api_key(user: User, scope: str = "write", *, name: str = "CI sync", expires_at=None) -> tuple[ApiKey, str]:
    """A key of the user and the key itself (the secret only its creation returns)."""
    return api_key_create(user=user, name=name, scope=scope, expires_at=expires_at)
