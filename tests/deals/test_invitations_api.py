"""Invitations: an org admin invites an email address; the person accepts with their account
(/api/me/invitations) or creates one with the email's one-time code (/api/invitations/accept)."""

from __future__ import annotations

import hashlib
import re
import socket
import threading
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone

from deals.models import Invitation, InvitationStatus, OrgMembership, OrgRole, User
from deals.tokens import deal_token_mint
from tests import factories

NEW = "a-fresh-pass-5678"


def _invite(cast, email="invitee@example.com", role="member", caller="owner", org=None):
    org = org or cast.org
    return cast.client(caller).post(f"/api/orgs/{org.pk}/invitations", {"email": email, "role": role}, format="json")


def _code(message) -> str:
    """The one-time code of an invitation email (the indented line)."""
    return re.search(r"^    (\S+)$", message.body, re.MULTILINE).group(1)


def _accept_with(token: str, username="invitee", password=NEW, **extra):
    body = {"token": token, "username": username, "password": password, **extra}
    return factories.client_for().post("/api/invitations/accept", body, format="json")


def _nothing_created(username="invitee") -> bool:
    return not User.objects.filter(username=username).exists()


# --- inviting ---------------------------------------------------------------------------------------------
def test_it_invites_an_email_and_sends_the_one_time_code(cast):
    response = _invite(cast, email="Invitee@Example.com", role="admin")
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "email", "role", "status", "invited_by", "created_at", "expires_at"}
    assert (body["email"], body["role"], body["status"]) == ("invitee@example.com", "admin", "pending")
    assert body["invited_by"] == str(cast.users["owner"].pk)
    [message] = mail.outbox
    assert message.to == ["invitee@example.com"]
    assert "Org A" in message.subject
    code = _code(message)
    invitation = Invitation.objects.get(pk=body["id"])
    # stored hashed: the row never holds the code
    assert invitation.token_hash == hashlib.sha256(code.encode()).hexdigest()
    assert code not in str(Invitation.objects.filter(pk=body["id"]).values().get())
    assert code not in response.content.decode()


def test_the_invitation_expires_after_the_configured_ttl(cast, settings):
    settings.INVITATION_TTL_SECONDS = 3600
    before = timezone.now()
    invitation = Invitation.objects.get(pk=_invite(cast).json()["id"])
    assert timedelta(seconds=3590) < invitation.expires_at - before <= timedelta(seconds=3610)


def test_the_email_links_the_frontend_when_configured(cast, settings):
    settings.INVITATION_ACCEPT_URL = "https://app.example.com/invitations/accept?token={token}"
    _invite(cast)
    code = _code(mail.outbox[0])
    assert f"https://app.example.com/invitations/accept?token={code}" in mail.outbox[0].body


def test_inviting_an_email_with_an_account_and_one_without_answers_the_same(cast):
    """The admin learns nothing about accounts outside the org: same status, same fields, same email."""
    with_account = _invite(cast, email="outsider@example.com")  # the outsider's account, in no org of the admin's
    without = _invite(cast, email="nobody-yet@example.com")
    assert with_account.status_code == without.status_code == 201
    shape = {k: v for k, v in with_account.json().items() if k not in ("id", "email", "created_at", "expires_at")}
    assert shape == {k: v for k, v in without.json().items() if k not in ("id", "email", "created_at", "expires_at")}
    first, second = mail.outbox
    assert first.subject == second.subject
    assert first.body.replace(_code(first), "<code>") == second.body.replace(_code(second), "<code>")


@pytest.mark.parametrize(
    ("caller", "status"),
    [("anonymous", 401), ("outsider", 404), ("other_org", 404), ("superadmin", 404), ("viewer", 403), ("owner", 201)],
)
def test_only_the_orgs_admins_invite(cast, caller, status):
    assert _invite(cast, caller=caller).status_code == status
    assert Invitation.objects.exists() == (status == 201)
    assert len(mail.outbox) == (1 if status == 201 else 0)


@pytest.mark.parametrize(
    ("payload", "loc"),
    [
        ({"role": "member"}, ["body", "email"]),
        ({"email": "not-an-email", "role": "member"}, ["body", "email"]),
        ({"email": 42, "role": "member"}, ["body", "email"]),
        ({"email": "a" * 250 + "@example.com"}, ["body", "email"]),
        ({"email": "invitee@example.com", "role": "owner"}, ["body", "role"]),
        ({"email": "invitee@example.com", "token": "x"}, ["body", "token"]),
        ({"email": "inv\x00itee@example.com"}, ["body"]),  # NUL is refused for the whole body, by the parser
    ],
)
def test_bad_invitations_are_422_and_nothing_is_sent(cast, payload, loc):
    response = cast.client("owner").post(f"/api/orgs/{cast.org.pk}/invitations", payload, format="json")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == loc
    assert not Invitation.objects.exists() and mail.outbox == []


@pytest.mark.parametrize("path", ["/api/orgs/nope/invitations", "/api/orgs/123/invitations"])
def test_a_malformed_org_id_is_422_at_path(cast, path):
    response = cast.client("owner").post(path, {"email": "invitee@example.com"}, format="json")
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["path", "org_id"]


def test_inviting_a_member_of_the_org_is_409(cast):
    response = _invite(cast, email="VIEWER@example.com")
    assert response.status_code == 409
    assert response.json()["detail"] == "Someone with this email is already a member of this org."
    assert not Invitation.objects.exists() and mail.outbox == []


def test_inviting_an_address_twice_is_409_until_the_first_expires(cast):
    first = _invite(cast).json()
    again = _invite(cast, email="INVITEE@example.com")
    assert again.status_code == 409 and "already has a pending invitation" in again.json()["detail"]
    Invitation.objects.filter(pk=first["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    renewed = _invite(cast)
    assert renewed.status_code == 201
    assert Invitation.objects.get(pk=first["id"]).status == InvitationStatus.EXPIRED
    # the old code is dead, the new one works
    old_code, new_code = _code(mail.outbox[0]), _code(mail.outbox[1])
    assert _accept_with(old_code).status_code == 422
    assert _accept_with(new_code).status_code == 201


def test_the_same_address_may_be_invited_by_two_orgs(cast):
    assert _invite(cast).status_code == 201
    assert _invite(cast, caller="other_org", org=cast.other_org).status_code == 201


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_when_the_email_cannot_be_sent_no_invitation_is_kept(cast, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", _closed_port(), 2
    response = _invite(cast)
    assert response.status_code == 503
    assert "could not be sent" in response.json()["detail"]
    assert not Invitation.objects.exists()


# --- the org's list, and revoking -------------------------------------------------------------------------
def test_admins_list_the_open_invitations_newest_first_with_expired_ones_marked(cast):
    old = _invite(cast, email="old@example.com").json()
    Invitation.objects.filter(pk=old["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    live = _invite(cast, email="live@example.com").json()
    gone = _invite(cast, email="gone@example.com").json()
    assert cast.client("owner").delete(f"/api/orgs/{cast.org.pk}/invitations/{gone['id']}").status_code == 204
    _invite(cast, caller="other_org", org=cast.other_org)  # another org's
    rows = cast.client("owner").get(f"/api/orgs/{cast.org.pk}/invitations").json()
    assert [(r["id"], r["status"]) for r in rows] == [(live["id"], "pending"), (old["id"], "expired")]
    assert "token" not in rows[0] and "token_hash" not in rows[0]


@pytest.mark.parametrize(
    ("caller", "status"),
    [("anonymous", 401), ("outsider", 404), ("other_org", 404), ("superadmin", 404), ("viewer", 403), ("owner", 200)],
)
def test_only_admins_list_invitations(cast, caller, status):
    _invite(cast)
    assert cast.client(caller).get(f"/api/orgs/{cast.org.pk}/invitations").status_code == status


def test_a_revoked_invitation_stops_working_at_once(cast):
    invitation = _invite(cast, email="outsider@example.com").json()
    code = _code(mail.outbox[0])
    assert cast.client("outsider").get("/api/me/invitations").json()[0]["id"] == invitation["id"]
    assert cast.client("owner").delete(f"/api/orgs/{cast.org.pk}/invitations/{invitation['id']}").status_code == 204
    assert cast.client("outsider").get("/api/me/invitations").json() == []
    accept = cast.client("outsider").post(f"/api/me/invitations/{invitation['id']}/accept")
    assert accept.status_code == 404
    User.objects.filter(username="outsider").delete()  # so the code would otherwise create an account
    assert _accept_with(code).status_code == 422
    assert not OrgMembership.objects.filter(org=cast.org, user__email="outsider@example.com").exists()


def test_revoking_refusals(cast):
    invitation = _invite(cast).json()
    url = f"/api/orgs/{cast.org.pk}/invitations/{invitation['id']}"
    assert cast.client("viewer").delete(url).status_code == 403
    assert cast.client("other_org").delete(url).status_code == 404
    # an invitation of another org, through this org's path
    other = _invite(cast, caller="other_org", org=cast.other_org).json()
    assert cast.client("owner").delete(f"/api/orgs/{cast.org.pk}/invitations/{other['id']}").status_code == 404
    assert Invitation.objects.get(pk=other["id"]).status == InvitationStatus.PENDING
    malformed = cast.client("owner").delete(f"/api/orgs/{cast.org.pk}/invitations/not-a-uuid")
    assert malformed.status_code == 422 and malformed.json()["detail"][0]["loc"] == ["path", "invitation_id"]
    assert cast.client("owner").delete(url).status_code == 204
    assert cast.client("owner").delete(url).status_code == 404  # only pending ones


# --- the invitee with an account --------------------------------------------------------------------------
def test_the_invitee_sees_accepts_and_joins_with_the_invitations_role(cast):
    invitation = _invite(cast, email="OUTSIDER@example.com", role="admin").json()
    client = cast.client("outsider")
    [row] = client.get("/api/me/invitations").json()
    assert row["id"] == invitation["id"]
    assert row["org"] == {"id": str(cast.org.pk), "name": "Org A"}
    assert (row["role"], row["invited_by"]) == ("admin", "owner")
    response = client.post(f"/api/me/invitations/{invitation['id']}/accept")
    assert response.status_code == 200
    assert response.json() == {"id": str(cast.org.pk), "name": "Org A", "role": "admin"}
    assert OrgMembership.objects.get(org=cast.org, user=cast.users["outsider"]).role == OrgRole.ADMIN
    stored = Invitation.objects.get(pk=invitation["id"])
    assert (stored.status, stored.responded_by_id) == (InvitationStatus.ACCEPTED, cast.users["outsider"].pk)
    assert client.get("/api/me/invitations").json() == []
    assert client.post(f"/api/me/invitations/{invitation['id']}/accept").status_code == 404  # once
    assert {o["name"] for o in client.get("/api/me").json()["orgs"]} == {"Org A"}


def test_others_never_see_or_answer_someone_elses_invitation(cast):
    invitation = _invite(cast, email="outsider@example.com").json()
    other = cast.client("other_org")
    assert other.get("/api/me/invitations").json() == []
    assert other.post(f"/api/me/invitations/{invitation['id']}/accept").status_code == 404
    assert other.post(f"/api/me/invitations/{invitation['id']}/decline").status_code == 404
    assert Invitation.objects.get(pk=invitation["id"]).status == InvitationStatus.PENDING
    assert not OrgMembership.objects.filter(org=cast.org, user=cast.users["other_org"]).exists()


def test_declining_answers_the_invitation_and_joins_nothing(cast):
    invitation = _invite(cast, email="outsider@example.com").json()
    client = cast.client("outsider")
    assert client.post(f"/api/me/invitations/{invitation['id']}/decline").status_code == 204
    assert Invitation.objects.get(pk=invitation["id"]).status == InvitationStatus.DECLINED
    assert client.get("/api/me/invitations").json() == []
    assert client.post(f"/api/me/invitations/{invitation['id']}/accept").status_code == 404
    assert not OrgMembership.objects.filter(user=cast.users["outsider"]).exists()
    assert cast.client("owner").get(f"/api/orgs/{cast.org.pk}/invitations").json() == []


def test_an_expired_invitation_is_neither_listed_nor_accepted(cast):
    invitation = _invite(cast, email="outsider@example.com").json()
    Invitation.objects.filter(pk=invitation["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    client = cast.client("outsider")
    assert client.get("/api/me/invitations").json() == []
    assert client.post(f"/api/me/invitations/{invitation['id']}/accept").status_code == 404
    assert not OrgMembership.objects.filter(user=cast.users["outsider"]).exists()


def test_a_member_who_accepts_keeps_the_role_they_have(cast):
    invitation = _invite(cast, email="newbie@example.com", role="admin").json()
    newbie = factories.make_user("newbie")
    factories.add_member(cast.org, newbie)  # added meanwhile
    response = factories.client_for(newbie).post(f"/api/me/invitations/{invitation['id']}/accept")
    assert response.status_code == 200 and response.json()["role"] == "member"
    assert Invitation.objects.get(pk=invitation["id"]).status == InvitationStatus.ACCEPTED


def test_a_user_without_an_email_has_no_invitations(cast):
    User.objects.filter(pk=cast.users["outsider"].pk).update(email="")
    _invite(cast, email="outsider@example.com")
    assert cast.client("outsider").get("/api/me/invitations").json() == []


@pytest.mark.parametrize("verb", ["accept", "decline"])
def test_answering_refusals(cast, verb):
    invitation = _invite(cast, email="outsider@example.com").json()
    malformed = cast.client("outsider").post(f"/api/me/invitations/nope/{verb}")
    assert malformed.status_code == 422 and malformed.json()["detail"][0]["loc"] == ["path", "invitation_id"]
    assert factories.client_for().post(f"/api/me/invitations/{invitation['id']}/{verb}").status_code == 401
    factories.add_member(cast.other_org, cast.users["outsider"])
    deal = factories.make_deal(cast.other_org, owner=cast.users["other_org"])
    minted = deal_token_mint(user_id=cast.users["outsider"].pk, deal_id=deal.pk)
    scoped = factories.client_for(token=minted["access"]).post(f"/api/me/invitations/{invitation['id']}/{verb}")
    assert scoped.status_code == 403
    assert Invitation.objects.get(pk=invitation["id"]).status == InvitationStatus.PENDING


# --- the invitee without an account -----------------------------------------------------------------------
def test_the_code_creates_the_account_and_the_membership(cast):
    _invite(cast, role="admin")
    response = _accept_with(_code(mail.outbox[0]))
    assert response.status_code == 201
    body = response.json()
    user = User.objects.get(username="invitee")
    assert body["user"] == {
        "id": str(user.pk),
        "username": "invitee",
        "email": "invitee@example.com",
        "orgs": [{"id": str(cast.org.pk), "name": "Org A", "role": "admin"}],
    }
    assert user.check_password(NEW)
    # the answered pair works; so does logging in
    assert factories.client_for(token=body["access"]).get("/api/me").json()["username"] == "invitee"
    login = {"username": "invitee", "password": NEW}
    assert factories.client_for().post("/api/auth/token", login, format="json").status_code == 200
    members = cast.client("owner").get(f"/api/orgs/{cast.org.pk}/members").json()["results"]
    assert {m["username"]: m["role"] for m in members}["invitee"] == "admin"
    invitation = Invitation.objects.get()
    assert (invitation.status, invitation.responded_by_id) == (InvitationStatus.ACCEPTED, user.pk)


def test_the_code_works_once(cast):
    _invite(cast)
    code = _code(mail.outbox[0])
    assert _accept_with(code).status_code == 201
    again = _accept_with(code, username="second")
    assert again.status_code == 422
    assert again.json()["detail"][0]["loc"] == ["body", "token"]
    assert _nothing_created("second")


@pytest.mark.parametrize("state", ["unknown", "expired", "revoked", "declined"])
def test_a_dead_code_is_422_and_creates_nothing(cast, state):
    _invite(cast)
    code = _code(mail.outbox[0])
    if state == "unknown":
        code = code[:-2] + "zz"
    elif state == "expired":
        Invitation.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    else:
        Invitation.objects.update(status=state)
    response = _accept_with(code)
    assert response.status_code == 422
    item = response.json()["detail"][0]
    assert (item["loc"], item["type"], item["input"]) == (["body", "token"], "invitation_invalid", None)
    assert _nothing_created()


def test_a_taken_username_creates_nothing_and_leaves_the_code_usable(cast):
    _invite(cast)
    code = _code(mail.outbox[0])
    response = _accept_with(code, username="viewer")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "username"]
    assert response.json()["detail"][0]["type"] == "username_taken"
    assert not User.objects.filter(email="invitee@example.com").exists()
    assert Invitation.objects.get().status == InvitationStatus.PENDING
    assert OrgMembership.objects.filter(org=cast.org).count() == 5
    assert _accept_with(code).status_code == 201


def test_a_weak_password_creates_nothing_and_says_why(cast):
    _invite(cast)
    code = _code(mail.outbox[0])
    response = _accept_with(code, password="invitee1")
    assert response.status_code == 422
    items = response.json()["detail"]
    assert {item["type"] for item in items} >= {"password_too_similar"}
    assert all(item["loc"] == ["body", "password"] and item["input"] is None for item in items)
    assert _nothing_created()
    assert _accept_with(code).status_code == 201


def test_a_taken_username_and_a_weak_password_are_reported_together(cast):
    _invite(cast)
    response = _accept_with(_code(mail.outbox[0]), username="viewer", password="123")
    locs = [item["loc"] for item in response.json()["detail"]]
    assert response.status_code == 422 and locs[0] == ["body", "username"] and ["body", "password"] in locs


def test_an_address_that_already_has_an_account_accepts_while_logged_in(cast):
    _invite(cast, email="outsider@example.com")
    code = _code(mail.outbox[0])
    response = _accept_with(code)
    assert response.status_code == 409
    assert "/api/me/invitations" in response.json()["detail"]
    assert _nothing_created()
    assert Invitation.objects.get().status == InvitationStatus.PENDING


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        ({"username": "in vitee"}, ["body", "username"]),
        ({"username": "x" * 151}, ["body", "username"]),
        ({"username": ""}, ["body", "username"]),
        ({"username": 7}, ["body", "username"]),
        ({"password": ""}, ["body", "password"]),
        ({"password": "p" * 257}, ["body", "password"]),
        ({"token": "t" * 129}, ["body", "token"]),
        ({"token": None}, ["body", "token"]),
        ({"email": "someone@example.com"}, ["body", "email"]),
    ],
)
def test_malformed_accepts_are_422_and_create_nothing(cast, change, loc):
    _invite(cast)
    code = _code(mail.outbox[0])
    body = {"token": code, "username": "invitee", "password": NEW, **change}
    response = factories.client_for().post("/api/invitations/accept", body, format="json")
    assert response.status_code == 422
    assert loc in [item["loc"] for item in response.json()["detail"]]
    assert not User.objects.filter(email="invitee@example.com").exists()
    assert _accept_with(code).status_code == 201


def test_a_bearer_token_is_ignored_by_the_public_accept(cast):
    _invite(cast)
    client = factories.client_for(token="not-a-jwt")
    body = {"token": _code(mail.outbox[0]), "username": "invitee", "password": NEW}
    assert client.post("/api/invitations/accept", body, format="json").status_code == 201


def _at_once(*calls) -> list[int]:
    """Run the calls in threads released together; their statuses (each thread closes its connection)."""
    barrier = threading.Barrier(len(calls))
    statuses: list[int] = []

    def run(call) -> None:
        barrier.wait()
        try:
            statuses.append(call().status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return sorted(statuses)


@pytest.mark.django_db(transaction=True)
def test_a_code_used_twice_at_once_creates_one_account(cast):
    _invite(cast)
    code = _code(mail.outbox[0])
    statuses = _at_once(lambda: _accept_with(code, username="first"), lambda: _accept_with(code, username="second"))
    assert statuses == [201, 422]
    assert User.objects.filter(email="invitee@example.com").count() == 1
    assert OrgMembership.objects.filter(org=cast.org, user__email="invitee@example.com").count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_same_address_invited_twice_at_once_gets_one_invitation(cast):
    statuses = _at_once(lambda: _invite(cast), lambda: _invite(cast))
    assert statuses == [201, 409]
    assert Invitation.objects.filter(status=InvitationStatus.PENDING).count() == 1
