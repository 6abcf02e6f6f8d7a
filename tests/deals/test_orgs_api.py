"""/api/orgs and members."""

from __future__ import annotations

import pytest

from deals.models import DealAccess, OrgMembership, OrgRole
from tests import factories


def test_anonymous_is_401(db):
    client = factories.client_for(None)
    assert client.get("/api/orgs").status_code == 401
    assert client.post("/api/orgs", {"name": "X"}, format="json").status_code == 401


def test_it_lists_only_the_callers_orgs_with_their_role(cast):
    rows = cast.client("viewer").get("/api/orgs").json()["results"]
    assert [(r["name"], r["role"]) for r in rows] == [("Org A", "member")]
    assert cast.client("outsider").get("/api/orgs").json()["results"] == []
    assert [r["role"] for r in cast.client("owner").get("/api/orgs").json()["results"]] == ["admin"]


def test_creating_an_org_makes_the_caller_its_admin(cast):
    response = cast.client("outsider").post("/api/orgs", {"name": "New Fund"}, format="json")
    assert response.status_code == 201
    assert response.json()["role"] == "admin"
    assert OrgMembership.objects.get(org_id=response.json()["id"], user=cast.users["outsider"]).role == OrgRole.ADMIN


def test_org_name_is_required(cast):
    response = cast.client("owner").post("/api/orgs", {"name": ""}, format="json")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "name"]


@pytest.mark.parametrize(
    ("caller", "status"),
    [("anonymous", 401), ("outsider", 404), ("other_org", 404), ("superadmin", 404), ("viewer", 200), ("owner", 200)],
)
def test_members_list_matrix(cast, caller, status):
    response = cast.client(caller).get(f"/api/orgs/{cast.org.pk}/members")
    assert response.status_code == status
    if status == 200:
        listed = {r["username"] for r in response.json()["results"]}
        assert listed == {"owner", "editor", "commenter", "viewer", "member"}


@pytest.mark.parametrize(
    ("caller", "status"),
    [("anonymous", 401), ("outsider", 404), ("other_org", 404), ("superadmin", 404), ("viewer", 403), ("owner", 201)],
)
def test_members_add_matrix(cast, caller, status):
    response = cast.client(caller).post(
        f"/api/orgs/{cast.org.pk}/members", {"email": "outsider@example.com"}, format="json"
    )
    assert response.status_code == status
    assert OrgMembership.objects.filter(org=cast.org, user=cast.users["outsider"]).exists() == (status == 201)


@pytest.mark.parametrize(
    ("caller", "status"),
    [("anonymous", 401), ("outsider", 404), ("other_org", 404), ("superadmin", 404), ("viewer", 403), ("owner", 204)],
)
def test_members_remove_matrix(cast, caller, status):
    response = cast.client(caller).delete(f"/api/orgs/{cast.org.pk}/members/{cast.users['commenter'].pk}")
    assert response.status_code == status


def test_adding_an_existing_member_is_409(cast):
    response = cast.client("owner").post(
        f"/api/orgs/{cast.org.pk}/members", {"user_id": str(cast.users["viewer"].pk), "role": "admin"}, format="json"
    )
    assert response.status_code == 409


def test_removing_a_member_revokes_their_deal_grants(cast):
    response = cast.client("owner").delete(f"/api/orgs/{cast.org.pk}/members/{cast.users['editor'].pk}")
    assert response.status_code == 204
    assert not DealAccess.objects.filter(user=cast.users["editor"]).exists()
    assert cast.client("editor").get(f"/api/deals/{cast.deal.pk}").status_code == 404


def test_a_member_can_leave(cast):
    response = cast.client("viewer").delete(f"/api/orgs/{cast.org.pk}/members/{cast.users['viewer'].pk}")
    assert response.status_code == 204


def test_the_last_admin_cannot_leave(cast):
    response = cast.client("owner").delete(f"/api/orgs/{cast.org.pk}/members/{cast.users['owner'].pk}")
    assert response.status_code == 409
    assert "last admin" in response.json()["detail"]


def test_the_last_owner_of_a_deal_cannot_be_removed(cast):
    OrgMembership.objects.filter(org=cast.org, user=cast.users["editor"]).update(role=OrgRole.ADMIN)
    response = cast.client("editor").delete(f"/api/orgs/{cast.org.pk}/members/{cast.users['owner'].pk}")
    assert response.status_code == 409
    assert "Riverside Apartments" in response.json()["detail"]


@pytest.mark.parametrize("path", ["/api/orgs/nope/members", "/api/orgs/123/members"])
def test_malformed_org_id_is_422_at_path(cast, path):
    response = cast.client("owner").get(path)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "org_id"]
