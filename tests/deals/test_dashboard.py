"""GET /api/dashboard/memos."""

from __future__ import annotations

import pytest

from deals.models import Visibility
from tests import factories
from tests.conftest import ROLES


def _ids(response) -> list[str]:
    return [row["deal_id"] for row in response.json()["results"]]


@pytest.mark.parametrize("role", ROLES)
def test_role_matrix(cast, role):
    response = cast.client(role).get("/api/dashboard/memos")
    if role == "anonymous":
        assert response.status_code == 401
        return
    assert response.status_code == 200
    expected = [str(cast.deal.pk)] if role in ("viewer", "commenter", "editor", "owner") else []
    assert _ids(response) == expected


def test_it_lists_owned_shared_and_org_visible_deals(cast):
    owned = factories.make_deal(cast.org, owner=cast.users["editor"], name="Owned by editor")
    org_wide = factories.make_deal(cast.org, owner=cast.users["owner"], name="Org wide", visibility=Visibility.ORG)
    hidden = factories.make_deal(cast.org, owner=cast.users["owner"], name="Hidden")
    client = cast.client("editor")

    everything = set(_ids(client.get("/api/dashboard/memos")))
    assert everything == {str(owned.pk), str(org_wide.pk), str(cast.deal.pk)}
    assert str(hidden.pk) not in everything
    assert _ids(client.get("/api/dashboard/memos?scope=owned")) == [str(owned.pk)]
    assert _ids(client.get("/api/dashboard/memos?scope=shared")) == [str(cast.deal.pk)]
    assert _ids(client.get("/api/dashboard/memos?scope=org")) == [str(org_wide.pk)]


def test_each_row_is_a_deal_queue_summary(cast):
    row = cast.client("commenter").get("/api/dashboard/memos").json()["results"][0]
    assert {
        "deal_id",
        "deal_name",
        "document_state",
        "user_role",
        "updated_at",
        "progress",
        "incomplete_delivery_blocked",
    } <= set(row)
    assert row["user_role"] == "commenter"
    assert row["deal_name"] == "Riverside Apartments"
    assert row["progress"] == {"populated": 0, "total": 0}


def test_search_ordering_and_pagination(cast):
    for name in ("Alpha Tower", "Beta Plaza", "Gamma Tower"):
        factories.make_deal(cast.org, owner=cast.users["owner"], name=name)
    client = cast.client("owner")

    towers = client.get("/api/dashboard/memos?q=tower&ordering=name").json()
    assert [r["deal_name"] for r in towers["results"]] == ["Alpha Tower", "Gamma Tower"]
    by_name_desc = client.get("/api/dashboard/memos?ordering=-name").json()["results"]
    assert [r["deal_name"] for r in by_name_desc][:2] == ["Riverside Apartments", "Gamma Tower"]

    page1 = client.get("/api/dashboard/memos?page_size=3&ordering=name").json()
    page2 = client.get(page1["next"]).json()
    assert len(page1["results"]) == 3 and len(page2["results"]) == 1 and page2["next"] is None
    assert not set(_ids_of(page1)) & set(_ids_of(page2))


def _ids_of(page) -> list[str]:
    return [row["deal_id"] for row in page["results"]]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("page=0", "page"),
        ("page=abc", "page"),
        ("page_size=201", "page_size"),
        ("ordering=size", "ordering"),
        ("scope=everything", "scope"),
        ("colour=red", "colour"),
    ],
)
def test_bad_query_parameters_are_422_at_query(cast, query, field):
    response = cast.client("owner").get(f"/api/dashboard/memos?{query}")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", field]


def test_listing_costs_a_fixed_number_of_queries(cast, django_assert_max_num_queries):
    for n in range(10):
        factories.make_deal(cast.org, owner=cast.users["owner"], name=f"Deal {n}")
    client = cast.client("owner")
    with django_assert_max_num_queries(3):  # user, count, page
        response = client.get("/api/dashboard/memos?page_size=50")
    assert len(response.json()["results"]) == 11
