"""Deal-scoped JWTs: minting by trusted callers, owner seeding on first access, scope limits."""

from __future__ import annotations

import uuid

import pytest

from deals.models import DealAccess, DealRole
from tests import factories

ENGINE = "test-engine-token-primary"


def _mint(client, user, deal):
    return client.post("/api/auth/token/deal", {"user_id": str(user.pk), "deal_id": str(deal.pk)}, format="json")


@pytest.mark.parametrize(
    ("caller", "status"),
    [
        ("anonymous", 401),
        ("outsider", 403),
        ("other_org", 403),
        ("viewer", 403),
        ("commenter", 403),
        ("editor", 403),
        ("owner", 403),
        ("superadmin", 201),
    ],
)
def test_role_matrix_of_minting(cast, caller, status):
    response = _mint(cast.client(caller), cast.users["viewer"], cast.deal)
    assert response.status_code == status, response.content
    if status == 201:
        assert response.json()["deal_id"] == str(cast.deal.pk)
        assert response.json()["user_id"] == str(cast.users["viewer"].pk)


@pytest.mark.parametrize("token", ["test-engine-token-primary", "test-engine-token-rotated"])
def test_engines_mint_with_any_configured_internal_token(cast, token):
    response = _mint(factories.client_for(token=token), cast.users["viewer"], cast.deal)
    assert response.status_code == 201, response.content


def test_a_wrong_internal_token_is_401(cast):
    response = _mint(factories.client_for(token="test-engine-token-wrong"), cast.users["viewer"], cast.deal)
    assert response.status_code == 401


def test_minting_for_a_user_outside_the_deals_org_is_422(cast):
    response = _mint(factories.client_for(token=ENGINE), cast.users["other_org"], cast.deal)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "user_id"]


def test_minting_for_an_unknown_deal_is_422(cast):
    response = factories.client_for(token=ENGINE).post(
        "/api/auth/token/deal", {"user_id": str(cast.users["viewer"].pk), "deal_id": str(uuid.uuid4())}, format="json"
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "deal_id"]


def _deal_token(cast, user, deal) -> str:
    return _mint(factories.client_for(token=ENGINE), user, deal).json()["access"]


def test_first_access_with_a_deal_token_seeds_the_owner_grant_of_an_ownerless_deal(cast):
    deal = factories.make_deal(cast.org, name="Ownerless")
    member = cast.users["member"]
    client = factories.client_for(token=_deal_token(cast, member, deal))

    response = client.get(f"/api/deals/{deal.pk}")

    assert response.status_code == 200
    assert response.json()["user_role"] == "owner"
    assert DealAccess.objects.get(deal=deal, user=member).role == DealRole.OWNER
    # the seeded grant is durable: an ordinary token now sees the deal as owner too
    assert factories.client_for(member).get(f"/api/deals/{deal.pk}").json()["user_role"] == "owner"


def test_a_deal_token_does_not_seed_when_the_deal_already_has_an_owner(cast):
    client = factories.client_for(token=_deal_token(cast, cast.users["member"], cast.deal))
    assert client.get(f"/api/deals/{cast.deal.pk}").status_code == 404
    assert not DealAccess.objects.filter(deal=cast.deal, user=cast.users["member"]).exists()


def test_a_deal_token_keeps_the_holders_real_role_when_an_owner_exists(cast):
    client = factories.client_for(token=_deal_token(cast, cast.users["viewer"], cast.deal))
    assert client.get(f"/api/deals/{cast.deal.pk}").json()["user_role"] == "viewer"


def test_a_deal_token_cannot_reach_another_deal(cast):
    other = factories.make_deal(cast.org, owner=cast.users["owner"], name="Other")
    client = factories.client_for(token=_deal_token(cast, cast.users["owner"], cast.deal))
    assert client.get(f"/api/deals/{cast.deal.pk}").status_code == 200
    assert client.get(f"/api/deals/{other.pk}").status_code == 404
    # nor list it or delete it through the deal-less endpoints
    listed = client.get("/api/dashboard/memos").json()["results"]
    assert [row["deal_id"] for row in listed] == [str(cast.deal.pk)]
    response = client.post("/api/deals/batch_delete", {"deal_ids": [str(other.pk)]}, format="json")
    assert response.status_code == 404


def test_a_refreshed_deal_token_stays_scoped(cast):
    minted = _mint(factories.client_for(token=ENGINE), cast.users["owner"], cast.deal).json()
    refreshed = factories.client_for().post("/api/auth/token/refresh", {"refresh": minted["refresh"]}, format="json")
    assert refreshed.status_code == 200
    verify = factories.client_for().post("/api/auth/token/verify", {"token": refreshed.json()["access"]}, format="json")
    assert verify.json()["deal_id"] == str(cast.deal.pk)


def test_login_tokens_carry_no_deal_claim(cast):
    pair = (
        factories.client_for()
        .post("/api/auth/token", {"username": "owner", "password": factories.PASSWORD}, format="json")
        .json()
    )
    verify = factories.client_for().post("/api/auth/token/verify", {"token": pair["access"]}, format="json")
    assert verify.json()["deal_id"] is None
