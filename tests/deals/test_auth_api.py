"""/api/auth/token, /refresh, /verify."""

from __future__ import annotations

import pytest

from tests import factories


def _login(username="owner", password=factories.PASSWORD):
    return factories.client_for().post("/api/auth/token", {"username": username, "password": password}, format="json")


def test_login_returns_a_working_pair(cast):
    response = _login()
    assert response.status_code == 200
    pair = response.json()
    assert set(pair) == {"access", "refresh"}
    me = factories.client_for(token=pair["access"]).get(f"/api/deals/{cast.deal.pk}")
    assert me.status_code == 200 and me.json()["user_role"] == "owner"


@pytest.mark.parametrize(("username", "password"), [("owner", "wrong"), ("ghost", "whatever")])
def test_bad_credentials_are_401(cast, username, password):
    response = _login(username, password)
    assert response.status_code == 401
    assert response.json() == {"detail": "No active account found with the given credentials."}


def test_inactive_users_cannot_log_in(cast):
    cast.users["viewer"].is_active = False
    cast.users["viewer"].save()
    assert _login("viewer").status_code == 401


def test_missing_fields_are_422(db):
    response = factories.client_for().post("/api/auth/token", {"username": "x"}, format="json")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "password"]
    assert response.json()["detail"][0]["type"] == "missing"


def test_refresh_rotates_and_revokes_the_old_refresh_token(cast):
    pair = _login().json()
    client = factories.client_for()
    first = client.post("/api/auth/token/refresh", {"refresh": pair["refresh"]}, format="json")
    assert first.status_code == 200
    assert first.json()["refresh"] != pair["refresh"]
    replay = client.post("/api/auth/token/refresh", {"refresh": pair["refresh"]}, format="json")
    assert replay.status_code == 401


def test_an_access_token_is_not_a_refresh_token(cast):
    pair = _login().json()
    response = factories.client_for().post("/api/auth/token/refresh", {"refresh": pair["access"]}, format="json")
    assert response.status_code == 401


def test_verify(cast):
    pair = _login().json()
    client = factories.client_for()
    ok = client.post("/api/auth/token/verify", {"token": pair["access"]}, format="json")
    assert ok.status_code == 200
    assert ok.json()["user_id"] == str(cast.users["owner"].pk)
    assert ok.json()["token_type"] == "access"
    bad = client.post("/api/auth/token/verify", {"token": pair["access"][:-4] + "AAAA"}, format="json")
    assert bad.status_code == 401


@pytest.mark.parametrize("header", ["Bearer garbage", "Bearer", "Token abc", "Bearer a b"])
def test_malformed_authorization_headers_are_401(cast, header):
    client = factories.client_for()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get(f"/api/deals/{cast.deal.pk}")
    assert response.status_code == 401
    assert isinstance(response.json()["detail"], str)


def test_a_token_of_a_deleted_user_is_401(cast):
    client = cast.client("viewer")
    cast.users["viewer"].delete()
    assert client.get(f"/api/deals/{cast.deal.pk}").status_code == 401


def test_admin_uses_session_auth_and_the_api_does_not(cast, client):
    client.force_login(cast.users["superadmin"])
    assert client.get("/admin/").status_code == 200
    # a logged-in admin session is not an API credential
    assert client.get(f"/api/deals/{cast.deal.pk}").status_code == 401
