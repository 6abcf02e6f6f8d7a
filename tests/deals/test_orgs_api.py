"""/api/orgs and members."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from deals.models import DealAccess, OrgMembership, OrgRole, User
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


def _colleague_of_the_owner():
    """Someone who shares another org (Org C) with the owner, and is not in Org A."""
    colleague = factories.make_user("colleague")
    org_c = factories.make_org("Org C")
    factories.add_member(org_c, colleague)
    factories.add_member(org_c, User.objects.get(username="owner"))
    return colleague


@pytest.mark.parametrize(
    ("caller", "status"),
    [("anonymous", 401), ("outsider", 404), ("other_org", 404), ("superadmin", 404), ("viewer", 403), ("owner", 201)],
)
def test_members_add_matrix(cast, caller, status):
    colleague = _colleague_of_the_owner()
    response = cast.client(caller).post(
        f"/api/orgs/{cast.org.pk}/members", {"email": "colleague@example.com"}, format="json"
    )
    assert response.status_code == status
    assert OrgMembership.objects.filter(org=cast.org, user=colleague).exists() == (status == 201)


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


# --- adding directly: only people from the caller's orgs; everyone else is invited ------------------------
def _add(cast, caller="owner", **body):
    return cast.client(caller).post(f"/api/orgs/{cast.org.pk}/members", {"role": "member", **body}, format="json")


def test_a_colleague_is_added_by_id_with_the_given_role(cast):
    colleague = _colleague_of_the_owner()
    response = _add(cast, user_id=str(colleague.pk), role="admin")
    assert response.status_code == 201
    assert (response.json()["username"], response.json()["role"]) == ("colleague", "admin")


def _without_input(response) -> list[dict]:
    return [{k: v for k, v in item.items() if k != "input"} for item in response.json()["detail"]]


def test_a_stranger_and_an_unknown_email_get_the_same_answer(cast):
    stranger = _add(cast, email="outsider@example.com")  # has an account, shares no org with the owner
    unknown = _add(cast, email="nobody@example.com")
    assert stranger.status_code == unknown.status_code == 422
    assert _without_input(stranger) == _without_input(unknown)
    item = stranger.json()["detail"][0]
    assert (item["loc"], item["type"], item["input"]) == (["body", "email"], "not_in_your_orgs", "outsider@example.com")
    assert "invite them" in item["msg"]
    assert not OrgMembership.objects.filter(user=cast.users["outsider"]).exists()


def test_a_strangers_id_and_an_unknown_id_get_the_same_answer_and_no_other_id(cast):
    stranger = _add(cast, user_id=str(cast.users["other_org"].pk))
    unknown = _add(cast, user_id="9b1d3c6e-1111-4222-8333-444455556666")
    assert stranger.status_code == unknown.status_code == 422
    assert _without_input(stranger) == _without_input(unknown)
    assert stranger.json()["detail"][0]["input"] == str(cast.users["other_org"].pk)  # only what was sent
    assert not OrgMembership.objects.filter(org=cast.org, user=cast.users["other_org"]).exists()


def test_a_non_admin_learns_nothing_from_adding(cast):
    _colleague_of_the_owner()
    # 403 before any lookup: the same for a colleague of the owner's, a stranger and nobody
    for email in ("colleague@example.com", "outsider@example.com", "nobody@example.com"):
        response = _add(cast, caller="viewer", email=email)
        assert response.status_code == 403, email
        assert response.json() == {"detail": "Only org admins can manage members."}


def test_an_inactive_colleague_is_not_found(cast):
    colleague = _colleague_of_the_owner()
    User.objects.filter(pk=colleague.pk).update(is_active=False)
    assert _add(cast, email="colleague@example.com").status_code == 422


# --- PATCH /api/orgs/{org_id}/members/{user_id} ---------------------------------------------------------
def _role(cast, user, role, caller="owner"):
    return cast.client(caller).patch(f"/api/orgs/{cast.org.pk}/members/{user.pk}", {"role": role}, format="json")


def test_an_admin_changes_a_members_role(cast):
    response = _role(cast, cast.users["viewer"], "admin")
    assert response.status_code == 200
    assert (response.json()["username"], response.json()["role"]) == ("viewer", "admin")
    assert OrgMembership.objects.get(org=cast.org, user=cast.users["viewer"]).role == OrgRole.ADMIN
    # the new admin may now manage members, and demote the first admin
    assert _role(cast, cast.users["owner"], "member", caller="viewer").status_code == 200
    assert OrgMembership.objects.get(org=cast.org, user=cast.users["owner"]).role == OrgRole.MEMBER


def test_the_last_admin_cannot_be_demoted(cast):
    response = _role(cast, cast.users["owner"], "member")
    assert response.status_code == 409
    assert response.json() == {"detail": "The last admin of an org cannot be demoted; make someone else admin first."}
    assert OrgMembership.objects.get(org=cast.org, user=cast.users["owner"]).role == OrgRole.ADMIN
    assert _role(cast, cast.users["owner"], "admin").status_code == 200  # keeping the role is no demotion


@pytest.mark.parametrize(
    ("caller", "status"),
    [("anonymous", 401), ("outsider", 404), ("other_org", 404), ("superadmin", 404), ("viewer", 403), ("owner", 200)],
)
def test_only_admins_change_roles(cast, caller, status):
    assert _role(cast, cast.users["editor"], "admin", caller=caller).status_code == status
    changed = OrgMembership.objects.get(org=cast.org, user=cast.users["editor"]).role == OrgRole.ADMIN
    assert changed == (status == 200)


def test_changing_the_role_of_a_non_member_is_404(cast):
    assert _role(cast, cast.users["other_org"], "admin").status_code == 404
    assert _role(cast, cast.users["outsider"], "admin").status_code == 404


@pytest.mark.parametrize(
    ("body", "loc"),
    [({}, ["body", "role"]), ({"role": "owner"}, ["body", "role"]), ({"role": "admin", "x": 1}, ["body", "x"])],
)
def test_bad_role_changes_are_422(cast, body, loc):
    response = cast.client("owner").patch(
        f"/api/orgs/{cast.org.pk}/members/{cast.users['viewer'].pk}", body, format="json"
    )
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == loc
    assert OrgMembership.objects.get(org=cast.org, user=cast.users["viewer"]).role == OrgRole.MEMBER


def test_a_malformed_user_id_is_422_at_path(cast):
    response = cast.client("owner").patch(f"/api/orgs/{cast.org.pk}/members/nope", {"role": "admin"}, format="json")
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["path", "user_id"]


@pytest.mark.django_db(transaction=True)
def test_two_admins_demoting_each_other_at_once_leave_one_admin(cast):
    OrgMembership.objects.filter(org=cast.org, user=cast.users["editor"]).update(role=OrgRole.ADMIN)
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def demote(actor: str, target: str) -> None:
        barrier.wait()
        try:
            statuses.append(_role(cast, cast.users[target], "member", caller=actor).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=demote, args=pair) for pair in (("owner", "editor"), ("editor", "owner"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    # the second waits for the first's row locks, then finds itself demoted (403) or the last admin (409)
    assert sorted(statuses) in ([200, 403], [200, 409])
    assert OrgMembership.objects.filter(org=cast.org, role=OrgRole.ADMIN).count() == 1
