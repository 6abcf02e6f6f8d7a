"""/api/deals/{id}/access and /api/deals/{id}/access/{user_id}: owner-only sharing."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from deals.models import DealAccess, DealRole
from tests.conftest import ROLES, expected_status


def _url(deal, user=None) -> str:
    return f"/api/deals/{deal.pk}/access" + (f"/{user.pk}" if user is not None else "")


@pytest.mark.parametrize("role", ROLES)
def test_role_matrix_list(cast, role):
    response = cast.client(role).get(_url(cast.deal))
    assert response.status_code == expected_status(role, minimum="owner", ok=200)
    if response.status_code == 200:
        rows = response.json()["results"]
        assert {r["username"] for r in rows} == {"owner", "editor", "commenter", "viewer"}
        assert set(rows[0]) >= {"user_id", "email", "username", "role", "granted_by", "created_at"}


@pytest.mark.parametrize("role", ROLES)
def test_role_matrix_grant(cast, role):
    response = cast.client(role).post(
        _url(cast.deal), {"user_id": str(cast.users["member"].pk), "role": "viewer"}, format="json"
    )
    assert response.status_code == expected_status(role, minimum="owner", ok=201)
    assert DealAccess.objects.filter(deal=cast.deal, user=cast.users["member"]).exists() == (role == "owner")


@pytest.mark.parametrize("role", ROLES)
def test_role_matrix_change(cast, role):
    response = cast.client(role).patch(_url(cast.deal, cast.users["viewer"]), {"role": "editor"}, format="json")
    assert response.status_code == expected_status(role, minimum="owner", ok=200)


@pytest.mark.parametrize("role", ROLES)
def test_role_matrix_revoke(cast, role):
    response = cast.client(role).delete(_url(cast.deal, cast.users["commenter"]))
    assert response.status_code == expected_status(role, minimum="owner", ok=204)


def test_grant_by_email_records_who_granted(cast):
    response = cast.client("owner").post(
        _url(cast.deal), {"email": "MEMBER@example.com", "role": "commenter"}, format="json"
    )
    assert response.status_code == 201
    body = response.json()
    assert body["user_id"] == str(cast.users["member"].pk)
    assert body["role"] == "commenter"
    assert body["granted_by"] == str(cast.users["owner"].pk)
    assert cast.client("member").get(f"/api/deals/{cast.deal.pk}").json()["user_role"] == "commenter"


def test_granting_twice_is_409(cast):
    response = cast.client("owner").post(
        _url(cast.deal), {"user_id": str(cast.users["viewer"].pk), "role": "editor"}, format="json"
    )
    assert response.status_code == 409
    assert DealAccess.objects.get(deal=cast.deal, user=cast.users["viewer"]).role == "viewer"


def test_only_org_members_can_be_granted(cast):
    response = cast.client("owner").post(
        _url(cast.deal), {"user_id": str(cast.users["other_org"].pk), "role": "viewer"}, format="json"
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "not_org_member"


def _without_input(response) -> list[dict]:
    return [{k: v for k, v in item.items() if k != "input"} for item in response.json()["detail"]]


@pytest.mark.parametrize("field", ["email", "user_id"])
def test_a_refused_grant_reveals_nothing_about_users_outside_the_org(cast, field):
    """Someone of another org and nobody at all get the same answer, which echoes only what was sent (never
    the other user's id)."""
    stranger = cast.users["other_org"]
    sent = {"email": stranger.email, "user_id": str(stranger.pk)}[field]
    unknown = {"email": "nobody@example.com", "user_id": "9b1d3c6e-1111-4222-8333-444455556666"}[field]
    refused = cast.client("owner").post(_url(cast.deal), {field: sent, "role": "viewer"}, format="json")
    missing = cast.client("owner").post(_url(cast.deal), {field: unknown, "role": "viewer"}, format="json")
    assert refused.status_code == missing.status_code == 422
    assert _without_input(refused) == _without_input(missing)
    assert refused.json()["detail"][0]["input"] == sent
    if field == "email":
        assert str(stranger.pk) not in refused.content.decode()
    assert not DealAccess.objects.filter(deal=cast.deal, user=stranger).exists()


@pytest.mark.parametrize(
    ("payload", "loc"),
    [
        ({"role": "viewer"}, ["body"]),
        ({"email": "a@example.com", "user_id": "9b1d3c6e-1111-4222-8333-444455556666", "role": "viewer"}, ["body"]),
        ({"email": "nobody@example.com", "role": "viewer"}, ["body", "email"]),
        ({"email": "member@example.com", "role": "admin"}, ["body", "role"]),
    ],
)
def test_bad_grants_are_422(cast, payload, loc):
    response = cast.client("owner").post(_url(cast.deal), payload, format="json")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == loc


def test_malformed_user_id_in_the_path_is_422_at_path(cast):
    response = cast.client("owner").patch(
        f"/api/deals/{cast.deal.pk}/access/not-a-uuid", {"role": "viewer"}, format="json"
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "user_id"]


def test_changing_a_user_without_a_grant_is_404(cast):
    response = cast.client("owner").patch(_url(cast.deal, cast.users["member"]), {"role": "viewer"}, format="json")
    assert response.status_code == 404


class TestLastOwner:
    def test_the_last_owner_cannot_be_demoted(self, cast):
        response = cast.client("owner").patch(_url(cast.deal, cast.users["owner"]), {"role": "editor"}, format="json")
        assert response.status_code == 409
        assert "last owner" in response.json()["detail"]
        assert DealAccess.objects.get(deal=cast.deal, user=cast.users["owner"]).role == DealRole.OWNER

    def test_the_last_owner_cannot_be_revoked(self, cast):
        response = cast.client("owner").delete(_url(cast.deal, cast.users["owner"]))
        assert response.status_code == 409
        assert DealAccess.objects.filter(deal=cast.deal, role=DealRole.OWNER).count() == 1

    def test_an_owner_can_step_down_once_another_owner_exists(self, cast):
        client = cast.client("owner")
        assert client.patch(_url(cast.deal, cast.users["editor"]), {"role": "owner"}, format="json").status_code == 200
        assert client.patch(_url(cast.deal, cast.users["owner"]), {"role": "viewer"}, format="json").status_code == 200
        assert DealAccess.objects.filter(deal=cast.deal, role=DealRole.OWNER).get().user == cast.users["editor"]

    @pytest.mark.django_db(transaction=True)
    def test_two_owners_demoting_each_other_at_once_leave_one_owner(self, cast):
        DealAccess.objects.filter(deal=cast.deal, user=cast.users["editor"]).update(role=DealRole.OWNER)
        barrier = threading.Barrier(2)
        statuses: list[int] = []

        def demote(actor: str, target: str) -> None:
            client = cast.client(actor)
            barrier.wait()
            statuses.append(
                client.patch(_url(cast.deal, cast.users[target]), {"role": "viewer"}, format="json").status_code
            )
            connection.close()

        threads = [
            threading.Thread(target=demote, args=("owner", "editor")),
            threading.Thread(target=demote, args=("editor", "owner")),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert DealAccess.objects.filter(deal=cast.deal, role=DealRole.OWNER).count() == 1
        assert sorted(statuses) in ([200, 403], [200, 409])
