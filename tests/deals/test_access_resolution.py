"""deals.access: the one resolver of a deal and the caller's role."""

from __future__ import annotations

import uuid

import pytest
from rest_framework_simplejwt.tokens import AccessToken

from deals.access import resolve_deal_access
from deals.errors import DealNotFound
from deals.models import DealAccess, DealRole, Visibility
from tests import factories


def test_it_resolves_a_grant_in_one_query(cast, django_assert_max_num_queries):
    with django_assert_max_num_queries(1):
        ctx = resolve_deal_access(user=cast.users["editor"], deal_id=str(cast.deal.pk))
    assert ctx.role == "editor"
    assert ctx.deal.org.name == "Org A"  # select_related: no extra query


def test_it_resolves_deal_and_role_in_at_most_two_queries_even_when_seeding(cast, django_assert_max_num_queries):
    DealAccess.objects.filter(deal=cast.deal, role=DealRole.OWNER).delete()
    token = AccessToken.for_user(cast.users["member"])
    token["deal_id"] = str(cast.deal.pk)
    with django_assert_max_num_queries(2):
        ctx = resolve_deal_access(user=cast.users["member"], deal_id=str(cast.deal.pk), token=token)
    assert ctx.role == "owner"


def test_it_gives_org_members_viewer_on_org_visible_deals(cast):
    cast.deal.visibility = Visibility.ORG
    cast.deal.save()
    assert resolve_deal_access(user=cast.users["member"], deal_id=cast.deal.pk).role == "viewer"
    # a grant above viewer wins over org visibility
    assert resolve_deal_access(user=cast.users["editor"], deal_id=cast.deal.pk).role == "editor"


def test_it_hides_private_deals_from_members_without_a_grant(cast):
    with pytest.raises(DealNotFound):
        resolve_deal_access(user=cast.users["member"], deal_id=cast.deal.pk)


@pytest.mark.parametrize("raw", ["not-a-uuid", "", "1", "../etc", "ab4fe31d-ddb6-45d2-9ce7-20be53d9789"])
def test_it_treats_malformed_ids_as_not_found(cast, raw):
    with pytest.raises(DealNotFound):
        resolve_deal_access(user=cast.users["owner"], deal_id=raw)


def test_it_hides_unknown_deals(cast):
    with pytest.raises(DealNotFound):
        resolve_deal_access(user=cast.users["owner"], deal_id=uuid.uuid4())


def test_it_hides_deals_of_other_orgs_even_with_a_grant(cast):
    # a grant left behind for someone outside the org gives nothing
    factories.grant(cast.deal, cast.users["other_org"], "editor")
    with pytest.raises(DealNotFound):
        resolve_deal_access(user=cast.users["other_org"], deal_id=cast.deal.pk)


def test_superadmins_are_not_implicit_members(cast):
    with pytest.raises(DealNotFound):
        resolve_deal_access(user=cast.users["superadmin"], deal_id=cast.deal.pk)
