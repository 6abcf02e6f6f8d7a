"""/api/auth/token, /refresh, /verify."""

from __future__ import annotations

import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests import factories
from tests.servers import free_port


def _login(username="owner", password=factories.PASSWORD, **headers):
    return factories.client_for().post(
        "/api/auth/token", {"username": username, "password": password}, format="json", **headers
    )


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


def _refresh(token: str):
    return factories.client_for().post("/api/auth/token/refresh", {"refresh": token}, format="json")


def test_a_new_password_revokes_every_refresh_token_of_the_user_and_only_theirs(cast):
    owner = cast.users["owner"]
    phone, laptop = _login().json(), _login().json()
    rotated = _refresh(laptop["refresh"]).json()  # a rotated token is revoked too
    editor = _login("editor").json()
    owner.set_password("a-new-pass-1234")
    owner.save()
    assert _refresh(phone["refresh"]).status_code == 401
    assert _refresh(rotated["refresh"]).status_code == 401
    verify = factories.client_for().post("/api/auth/token/verify", {"token": phone["refresh"]}, format="json")
    assert verify.status_code == 401 and verify.json()["detail"] == "Token is blacklisted."
    assert _refresh(editor["refresh"]).status_code == 200  # another user's session is untouched
    assert _login("owner").status_code == 401
    fresh = _login("owner", "a-new-pass-1234").json()
    assert _refresh(fresh["refresh"]).status_code == 200
    owner.first_name = "Olive"
    owner.save()  # saving anything but the password revokes nothing
    assert _refresh(_login("owner", "a-new-pass-1234").json()["refresh"]).status_code == 200


def _access_issued_ago(user, seconds: int) -> str:
    from deals.tokens import UserAccessToken

    token = UserAccessToken.for_user(user)
    token["iat"] = int(time.time()) - seconds
    return str(token)


def test_access_tokens_issued_before_a_new_password_are_refused_everywhere(cast):
    from django.test import RequestFactory

    from canvas_project.sse import responses as sse
    from deals import streams as deal_streams

    owner, deal = cast.users["owner"], cast.deal.pk
    before = factories.client_for(token=_access_issued_ago(owner, 5))
    assert before.get(f"/api/deals/{deal}").status_code == 200
    assert before.get(f"/api/canvas/{deal}").status_code == 200
    owner.set_password("a-new-pass-1234")
    owner.save()
    refused = before.get(f"/api/deals/{deal}")
    assert refused.status_code == 401
    assert refused.json()["detail"] == "This token was issued before the password was changed; log in again."
    assert before.get(f"/api/canvas/{deal}").status_code == 404  # the stateless GET: its one query says no
    assert before.get("/api/dashboard/memos").status_code == 401
    request = RequestFactory().get(
        f"/api/canvas/{deal}/events", HTTP_AUTHORIZATION=f"Bearer {_access_issued_ago(owner, 5)}"
    )
    with pytest.raises(sse.SseError) as raised:
        deal_streams.authenticate(request)
    assert raised.value.response.status_code == 401
    # a login right after the change (the same second, even) works everywhere
    fresh = factories.client_for(token=_login("owner", "a-new-pass-1234").json()["access"])
    assert fresh.get(f"/api/deals/{deal}").status_code == 200
    assert fresh.get(f"/api/canvas/{deal}").status_code == 200
    # other users' tokens are untouched
    assert cast.client("editor").get(f"/api/canvas/{deal}").status_code == 200


def test_a_hash_upgrade_at_login_is_not_a_new_password(cast, settings):
    """Django rehashes a password stored with an outdated hasher when its owner logs in: the same password,
    so the user's other sessions stay."""
    from django.contrib.auth.hashers import PBKDF2PasswordHasher

    settings.PASSWORD_HASHERS = [*settings.PASSWORD_HASHERS, "django.contrib.auth.hashers.PBKDF2PasswordHasher"]

    owner = cast.users["owner"]
    pair = _login().json()
    old_hash = PBKDF2PasswordHasher().encode(factories.PASSWORD, "saltsaltsalt", iterations=1000)
    type(owner).objects.filter(pk=owner.pk).update(password=old_hash)
    assert _login().status_code == 200
    owner.refresh_from_db()
    assert owner.password != old_hash  # rehashed at login
    assert owner.credentials_changed_at is None
    assert _refresh(pair["refresh"]).status_code == 200
    assert factories.client_for(token=pair["access"]).get(f"/api/deals/{cast.deal.pk}").status_code == 200


def test_production_hashes_new_passwords_with_argon2id_and_still_reads_the_old_ones(settings):
    from django.contrib.auth.hashers import Argon2PasswordHasher, check_password, make_password

    from canvas_project import settings as production

    assert production.PASSWORD_HASHERS[0] == "canvas_project.hashers.Argon2idHasher"
    assert "django.contrib.auth.hashers.PBKDF2PasswordHasher" in production.PASSWORD_HASHERS
    settings.PASSWORD_HASHERS = production.PASSWORD_HASHERS
    # Argon2id, OWASP's parameters (m=19 MiB, t=2, p=1), not Django's (100 MiB, 8 lanes)
    assert make_password("x").startswith("argon2$argon2id$v=19$m=19456,t=2,p=1$")
    # a hash of Django's Argon2 hasher still verifies, and is rewritten with the service's parameters
    djangos = Argon2PasswordHasher().encode("x", "saltsaltsalt")
    assert "m=102400,t=2,p=8" in djangos
    rewritten = []
    assert check_password("x", djangos, setter=rewritten.append)
    assert rewritten == ["x"]


def test_a_pbkdf2_password_is_rehashed_with_argon2id_at_login_and_other_sessions_stay(cast, settings):
    """The upgrade path of the production hashers: a hash stored by Django's old default (PBKDF2) logs in, is
    rehashed with Argon2id, and the user's tokens issued before keep working (the same password)."""
    from django.contrib.auth.hashers import PBKDF2PasswordHasher

    from canvas_project import settings as production

    owner = cast.users["owner"]
    earlier = _login().json()  # a session from before, under the test settings' hasher
    settings.PASSWORD_HASHERS = production.PASSWORD_HASHERS
    old_hash = PBKDF2PasswordHasher().encode(factories.PASSWORD, "saltsaltsalt", iterations=1000)
    type(owner).objects.filter(pk=owner.pk).update(password=old_hash)

    assert _login().status_code == 200
    owner.refresh_from_db()
    assert owner.password.startswith("argon2$argon2id$")
    assert owner.credentials_changed_at is None
    assert _refresh(earlier["refresh"]).status_code == 200
    assert factories.client_for(token=earlier["access"]).get(f"/api/deals/{cast.deal.pk}").status_code == 200
    # the Argon2id hash is what the next login checks, and it needs no further upgrade
    rehashed = owner.password
    assert _login().status_code == 200
    owner.refresh_from_db()
    assert owner.password == rehashed
    assert _login(password="wrong").status_code == 401


def test_an_unusable_password_revokes_the_users_refresh_tokens(cast):
    owner = cast.users["owner"]
    pair = _login().json()
    owner.set_unusable_password()
    owner.save()
    assert _refresh(pair["refresh"]).status_code == 401


def test_a_password_changed_in_the_admin_revokes_the_users_refresh_tokens(cast, client):
    viewer = cast.users["viewer"]
    pair = _login("viewer").json()
    client.force_login(cast.users["superadmin"])
    page = f"/admin/deals/user/{viewer.pk}/password/"
    response = client.post(
        page, {"password1": "Another-pass-5678", "password2": "Another-pass-5678", "usable_password": "true"}
    )
    assert response.status_code == 302, response.content[:500]
    assert _refresh(pair["refresh"]).status_code == 401
    assert _login("viewer", "Another-pass-5678").status_code == 200
    viewer.refresh_from_db()
    page = client.get(f"/admin/deals/user/{viewer.pk}/change/")
    assert page.status_code == 200 and b"Credentials changed at" in page.content
    assert viewer.credentials_changed_at is not None


def test_a_deactivated_user_can_neither_refresh_nor_use_an_access_token(cast):
    viewer = cast.users["viewer"]
    pair = _login("viewer").json()
    viewer.is_active = False
    viewer.save()
    assert _refresh(pair["refresh"]).status_code == 401
    api = factories.client_for(token=pair["access"])
    # the canvas GET reads no user row (the access query requires an active member): the deal is not found
    assert api.get(f"/api/canvas/{cast.deal.pk}").status_code == 404
    assert api.get(f"/api/deals/{cast.deal.pk}").status_code == 401


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


# --- the login rate limit ------------------------------------------------------------------------------
@pytest.fixture
def login_limits(settings):
    """Small buckets that refill once a minute, so no attempt comes back while a test runs, however slow the
    machine; the two tests that wait for the window to pass set a faster refill themselves."""
    settings.LOGIN_USERNAME_RATE_PER_MINUTE, settings.LOGIN_USERNAME_BURST = 1, 3
    settings.LOGIN_ADDRESS_RATE_PER_MINUTE, settings.LOGIN_ADDRESS_BURST = 1, 10
    return settings


def test_past_the_username_limit_even_the_right_password_is_refused_until_the_window_passes(cast, login_limits):
    login_limits.LOGIN_USERNAME_RATE_PER_MINUTE = 20  # one attempt back every 3 s: a slow machine still fits
    assert [_login("owner", "wrong").status_code for _ in range(3)] == [401, 401, 401]
    refused = _login("owner")
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "3"
    assert refused.json() == {
        "detail": "Too many login attempts for this username: the 'login_username' limit "
        "is 20/min with bursts of 3. Retry in 3 s."
    }
    assert _login("owner").status_code == 429  # a refused attempt costs nothing, but it is still refused
    time.sleep(3.1)
    assert _login("owner").status_code == 200


def test_a_username_at_its_limit_does_not_affect_other_users(cast, login_limits):
    for _ in range(3):
        _login("owner", "wrong")
    assert _login("owner").status_code == 429
    assert _login("viewer").status_code == 200  # same address, another username
    assert _login("Owner").status_code == 429  # case variants share the bucket
    assert _login("ghost", "whatever").status_code == 401


def test_a_successful_login_clears_its_usernames_bucket(cast, login_limits):
    assert [_login("owner", "wrong").status_code for _ in range(2)] == [401, 401]
    assert _login("owner").status_code == 200
    assert [_login("owner", "wrong").status_code for _ in range(4)] == [401, 401, 401, 429]


def test_the_address_limit_spans_usernames_and_other_addresses_are_not_affected(cast, login_limits):
    login_limits.LOGIN_ADDRESS_RATE_PER_MINUTE, login_limits.LOGIN_ADDRESS_BURST = 20, 4  # one back every 3 s
    here, there = {"REMOTE_ADDR": "203.0.113.7"}, {"REMOTE_ADDR": "203.0.113.8"}
    statuses = [_login(name, "wrong", **here).status_code for name in ("a", "b", "c", "d")]
    assert statuses == [401, 401, 401, 401]
    refused = _login("viewer", **here)
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "3"
    assert refused.json()["detail"].startswith("Too many login attempts from this address")
    assert _login("viewer", **there).status_code == 200
    time.sleep(3.1)
    assert _login("viewer", **here).status_code == 200  # and a success never clears the address's bucket
    assert _login("editor", **here).status_code == 429


def test_an_attempt_refused_by_one_bucket_takes_nothing_from_the_other(cast, login_limits):
    login_limits.LOGIN_USERNAME_RATE_PER_MINUTE, login_limits.LOGIN_USERNAME_BURST = 1, 1
    login_limits.LOGIN_ADDRESS_RATE_PER_MINUTE, login_limits.LOGIN_ADDRESS_BURST = 1, 2
    assert _login("owner", "wrong").status_code == 401
    assert [_login("owner", "wrong").status_code for _ in range(5)] == [429] * 5  # username empty
    assert _login("viewer").status_code == 200  # the address still had its second attempt
    assert _login("editor").status_code == 429  # now the address is empty too


def test_behind_trusted_proxies_the_address_is_read_from_x_forwarded_for(cast, login_limits):
    login_limits.LOGIN_ADDRESS_BURST = 2
    login_limits.TRUSTED_PROXY_COUNT = 1

    names = iter(range(100))

    def attempt(forwarded_for: str) -> int:  # a new username each time: only the address bucket counts
        return _login(
            f"nobody{next(names)}", "wrong", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=forwarded_for
        ).status_code

    # what the client wrote itself (left of the proxy's entry) changes nothing
    assert [attempt(f"192.0.2.{n}, 198.51.100.1") for n in range(3)] == [401, 401, 429]
    assert attempt("198.51.100.2") == 401
    # without a trusted proxy the header is ignored: the connection's address is the client
    login_limits.TRUSTED_PROXY_COUNT = 0
    assert [attempt(f"198.51.100.{n}") for n in (3, 4, 5)] == [401, 401, 429]


def test_an_ipv6_client_is_limited_by_its_64_prefix(cast, login_limits):
    login_limits.LOGIN_ADDRESS_BURST = 2
    assert _login("a", "wrong", REMOTE_ADDR="2001:db8:0:1::1").status_code == 401
    assert _login("b", "wrong", REMOTE_ADDR="2001:db8:0:1::ffff").status_code == 401
    assert _login("c", "wrong", REMOTE_ADDR="2001:db8:0:1:abcd::2").status_code == 429
    assert _login("d", "wrong", REMOTE_ADDR="2001:db8:0:2::1").status_code == 401


def test_with_the_rate_limit_redis_down_login_still_works(cast, login_limits, monkeypatch):
    """Login fails open on purpose (docs/security.md): logging in matters more during an outage."""
    dead = redis.Redis(
        host="127.0.0.1", port=free_port(), socket_connect_timeout=0.2, socket_timeout=0.2, retry=Retry(NoBackoff(), 0)
    )
    monkeypatch.setattr("canvas_project.ratelimit.get_redis", lambda: dead)
    assert [_login("owner", "wrong").status_code for _ in range(5)] == [401] * 5
    assert _login("owner").status_code == 200


def test_the_default_login_limits():
    from canvas_project import settings as project_settings

    assert (project_settings.LOGIN_USERNAME_RATE_PER_MINUTE, project_settings.LOGIN_USERNAME_BURST) == (1, 5)
    assert (project_settings.LOGIN_ADDRESS_RATE_PER_MINUTE, project_settings.LOGIN_ADDRESS_BURST) == (20, 20)
    assert project_settings.TRUSTED_PROXY_COUNT == 0


def test_the_schema_documents_the_429_and_its_retry_after(db):
    from drf_spectacular.generators import SchemaGenerator

    operation = SchemaGenerator().get_schema(request=None, public=True)["paths"]["/api/auth/token"]["post"]
    assert operation["responses"]["429"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorDetail")
    assert operation["responses"]["429"]["headers"]["Retry-After"]["schema"] == {"type": "integer"}
