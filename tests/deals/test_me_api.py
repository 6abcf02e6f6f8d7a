"""/api/me and /api/me/password: the caller's own account."""

from __future__ import annotations

import time

import pytest
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken

from deals.models import User
from deals.tokens import UserAccessToken, deal_token_mint, token_pair_for_user
from tests import factories

NEW = "a-fresh-pass-5678"


def _change(client, current=factories.PASSWORD, new=NEW, **extra):
    return client.post("/api/me/password", {"current_password": current, "new_password": new, **extra}, format="json")


def _login(username: str, password: str):
    return factories.client_for().post("/api/auth/token", {"username": username, "password": password}, format="json")


def _access_issued_ago(user, seconds: int) -> str:
    token = UserAccessToken.for_user(user)
    token["iat"] = int(time.time()) - seconds
    return str(token)


# --- GET /api/me ------------------------------------------------------------------------------------------
def test_it_answers_the_callers_account_and_orgs_with_their_role(cast):
    owner = cast.users["owner"]
    factories.add_member(cast.other_org, owner)
    body = cast.client("owner").get("/api/me").json()
    assert body == {
        "id": str(owner.pk),
        "username": "owner",
        "email": "owner@example.com",
        "orgs": [
            {"id": str(cast.org.pk), "name": "Org A", "role": "admin"},
            {"id": str(cast.other_org.pk), "name": "Org B", "role": "member"},
        ],
    }


def test_a_user_in_no_org_has_an_empty_list(cast):
    body = cast.client("outsider").get("/api/me").json()
    assert body["username"] == "outsider" and body["orgs"] == []


def test_anonymous_is_401(db):
    assert factories.client_for().get("/api/me").status_code == 401


def test_a_deal_scoped_token_reads_its_user(cast):
    minted = deal_token_mint(user_id=cast.users["viewer"].pk, deal_id=cast.deal.pk)
    response = factories.client_for(token=minted["access"]).get("/api/me")
    assert response.status_code == 200 and response.json()["username"] == "viewer"


# --- POST /api/me/password --------------------------------------------------------------------------------
def test_a_new_password_ends_every_other_session_and_answers_a_working_pair(cast):
    owner = cast.users["owner"]
    laptop = token_pair_for_user(user=owner)
    earlier = factories.client_for(token=_access_issued_ago(owner, 5))
    editor = token_pair_for_user(user=cast.users["editor"])

    response = _change(earlier)

    assert response.status_code == 200
    pair = response.json()
    assert set(pair) == {"access", "refresh"}
    # the earlier sessions are over: refresh tokens revoked, older access tokens refused
    refresh = factories.client_for().post("/api/auth/token/refresh", {"refresh": laptop["refresh"]}, format="json")
    assert refresh.status_code == 401
    assert BlacklistedToken.objects.filter(token__user=owner).exists()
    refused = earlier.get("/api/me")
    assert refused.status_code == 401
    assert refused.json()["detail"] == "This token was issued before the password was changed; log in again."
    # the answered pair works, the new password logs in and the old one no longer does
    assert factories.client_for(token=pair["access"]).get("/api/me").status_code == 200
    assert (
        factories.client_for().post("/api/auth/token/refresh", {"refresh": pair["refresh"]}, format="json").status_code
        == 200
    )
    assert _login("owner", NEW).status_code == 200
    assert _login("owner", factories.PASSWORD).status_code == 401
    # another user's session is untouched
    other = factories.client_for().post("/api/auth/token/refresh", {"refresh": editor["refresh"]}, format="json")
    assert other.status_code == 200


def _unchanged(user: User) -> bool:
    user.refresh_from_db()
    return user.check_password(factories.PASSWORD) and user.credentials_changed_at is None


def test_a_wrong_current_password_is_422_and_changes_nothing(cast):
    owner = cast.users["owner"]
    pair = token_pair_for_user(user=owner)
    response = _change(cast.client("owner"), current="not-my-password")
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {
            "loc": ["body", "current_password"],
            "msg": "The current password is wrong.",
            "type": "wrong_password",
            "input": None,
            "ctx": {},
        }
    ]
    assert _unchanged(owner)
    refresh = factories.client_for().post("/api/auth/token/refresh", {"refresh": pair["refresh"]}, format="json")
    assert refresh.status_code == 200


@pytest.mark.parametrize(
    ("new", "types"),
    [
        ("short1", {"password_too_short"}),
        ("12345678901", {"password_entirely_numeric", "password_too_common"}),
        ("password", {"password_too_common"}),
        ("owner@example.com", {"password_too_similar"}),
    ],
)
def test_the_password_validators_refuse_a_weak_password_with_each_message(cast, new, types):
    response = _change(cast.client("owner"), new=new)
    assert response.status_code == 422
    items = response.json()["detail"]
    assert {item["type"] for item in items} >= types
    assert all(item["loc"] == ["body", "new_password"] and item["msg"] and item["input"] is None for item in items)
    assert _unchanged(cast.users["owner"])


def test_a_wrong_current_password_and_a_weak_new_one_are_reported_together(cast):
    response = _change(cast.client("owner"), current="nope", new="short")
    assert response.status_code == 422
    locs = [item["loc"] for item in response.json()["detail"]]
    assert locs[0] == ["body", "current_password"] and ["body", "new_password"] in locs[1:]
    assert _unchanged(cast.users["owner"])


@pytest.mark.parametrize(
    ("payload", "loc", "kind"),
    [
        ({"new_password": NEW}, ["body", "current_password"], "missing"),
        ({"current_password": factories.PASSWORD}, ["body", "new_password"], "missing"),
        ({"current_password": factories.PASSWORD, "new_password": 12345678}, ["body", "new_password"], "string_type"),
        ({"current_password": factories.PASSWORD, "new_password": "x" * 257}, ["body", "new_password"], "max_length"),
        (
            {"current_password": factories.PASSWORD, "new_password": NEW, "user": "x"},
            ["body", "user"],
            "extra_forbidden",
        ),
        ({"current_password": factories.PASSWORD, "new_password": ""}, ["body", "new_password"], "blank"),
    ],
)
def test_malformed_bodies_are_422(cast, payload, loc, kind):
    response = cast.client("owner").post("/api/me/password", payload, format="json")
    assert response.status_code == 422
    assert {(tuple(item["loc"]), item["type"]) for item in response.json()["detail"]} >= {(tuple(loc), kind)}
    assert _unchanged(cast.users["owner"])


def test_a_body_that_is_not_an_object_is_422(cast):
    response = cast.client("owner").post("/api/me/password", ["x"], format="json")
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body"]


def test_an_account_without_a_usable_password_is_refused_like_a_wrong_password(cast):
    owner = cast.users["owner"]
    owner.set_unusable_password()
    owner.save()
    client = factories.client_for(token=token_pair_for_user(user=owner)["access"])
    response = _change(client, current="")
    assert response.status_code == 422
    assert [item["type"] for item in response.json()["detail"]] == ["blank"]
    response = _change(client, current="anything")
    assert response.status_code == 422 and response.json()["detail"][0]["type"] == "wrong_password"


def test_a_deal_scoped_token_cannot_change_the_password(cast):
    minted = deal_token_mint(user_id=cast.users["owner"].pk, deal_id=cast.deal.pk)
    response = _change(factories.client_for(token=minted["access"]))
    assert response.status_code == 403
    assert "deal-scoped token" in response.json()["detail"]
    assert _unchanged(cast.users["owner"])


def test_guessing_the_current_password_is_rate_limited_like_login(cast, settings):
    settings.LOGIN_USERNAME_RATE_PER_MINUTE, settings.LOGIN_USERNAME_BURST = 1, 3
    client = cast.client("owner")
    assert [_change(client, current=f"guess-{n}").status_code for n in range(3)] == [422, 422, 422]
    refused = _change(client)  # even the right password, past the limit
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) >= 1
    assert _unchanged(cast.users["owner"])
    # the same bucket as logins of this username
    assert _login("owner", factories.PASSWORD).status_code == 429


def test_a_successful_change_clears_the_usernames_bucket(cast, settings):
    settings.LOGIN_USERNAME_RATE_PER_MINUTE, settings.LOGIN_USERNAME_BURST = 1, 2
    client = cast.client("owner")
    assert _change(client, current="guess").status_code == 422
    assert _change(client).status_code == 200
    assert _login("owner", NEW).status_code == 200
