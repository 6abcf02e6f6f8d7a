"""API keys: /api/auth/api-keys, a key as a bearer credential (as its user, capped by its scope), the admin."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from deals.models import ApiKey, Deal
from tests import factories

KEYS = "/api/auth/api-keys"
KEY_SHAPE = re.compile(r"dck_[A-Za-z0-9]{8}_[A-Za-z0-9]{40}")


def _create(client, **body):
    return client.post(KEYS, {"name": "Warehouse sync", "scope": "write", **body}, format="json")


def _key_client(raw: str):
    return factories.client_for(token=raw)


def _deal_path(cast, suffix: str = "") -> str:
    return f"/api/deals/{cast.deal.pk}" + suffix


# --- creating and listing ------------------------------------------------------------------------------
def test_it_creates_a_key_shows_its_secret_once_and_lists_it_without(cast):
    client = cast.client("editor")
    expires = (timezone.now() + timedelta(days=30)).replace(microsecond=0)
    response = _create(client, scope="read", expires_at=expires.isoformat())
    assert response.status_code == 201, response.content
    created = response.json()
    assert set(created) == {"id", "name", "prefix", "scope", "expires_at", "key"}
    assert KEY_SHAPE.fullmatch(created["key"]), created["key"]
    assert created["prefix"] == created["key"][:12]
    assert (created["name"], created["scope"]) == ("Warehouse sync", "read")
    assert created["expires_at"].startswith(expires.strftime("%Y-%m-%dT%H:%M:%S"))

    listed = client.get(KEYS)
    assert listed.status_code == 200
    rows = listed.json()
    assert [row["id"] for row in rows] == [created["id"]]
    assert set(rows[0]) == {"id", "name", "prefix", "scope", "created", "last_used", "expires_at"}
    assert rows[0]["prefix"] == created["prefix"] and rows[0]["last_used"] is None
    secret = created["key"][13:]
    assert secret not in listed.content.decode()
    # nothing answers the secret again
    assert secret not in client.get(KEYS).content.decode()


def test_the_database_keeps_a_prefix_and_a_hash_never_the_key(cast):
    created = _create(cast.client("editor")).json()
    row = ApiKey.objects.filter(pk=created["id"]).values().get()
    secret = created["key"][13:]
    assert all(secret not in str(value) for value in row.values()), row
    assert row["prefix"] == created["prefix"]
    assert row["key_hash"] == hashlib.sha256(created["key"].encode()).hexdigest()


def test_each_user_lists_only_their_own_live_keys(cast):
    mine, _ = factories.make_api_key(cast.users["editor"], name="mine")
    factories.make_api_key(cast.users["owner"], name="the owner's")
    revoked, _ = factories.make_api_key(cast.users["editor"], name="revoked")
    ApiKey.objects.filter(pk=revoked.pk).update(revoked_at=timezone.now())
    rows = cast.client("editor").get(KEYS).json()
    assert [row["name"] for row in rows] == ["mine"]


# --- a key as a credential -----------------------------------------------------------------------------
def test_a_write_key_acts_as_its_user_with_their_roles(cast):
    _, raw = factories.make_api_key(cast.users["editor"], "write")
    client = _key_client(raw)
    assert client.get(_deal_path(cast)).json()["user_role"] == "editor"
    assert client.patch(_deal_path(cast), {"name": "Renamed by a key"}, format="json").status_code == 200
    assert Deal.objects.get(pk=cast.deal.pk).name == "Renamed by a key"
    # the editor's own limits hold: deleting the deal is the owner's
    assert client.delete(_deal_path(cast)).status_code == 403
    created = client.post("/api/canvas/blank", {"deal_name": "Harbor Point", "org_id": str(cast.org.pk)}, format="json")
    assert created.status_code == 201
    assert Deal.objects.get(pk=created.json()["deal_id"]).created_by == cast.users["editor"]


def test_a_read_key_reads_and_every_write_is_403_before_anything_happens(cast):
    _, raw = factories.make_api_key(cast.users["owner"], "read")
    client = _key_client(raw)
    assert client.get(_deal_path(cast)).json()["user_role"] == "owner"
    assert client.get("/api/dashboard/memos").status_code == 200
    assert client.options(_deal_path(cast)).status_code == 200
    for method, path, body in (
        ("patch", _deal_path(cast), {"name": "Renamed"}),
        ("delete", _deal_path(cast), None),
        ("post", "/api/orgs", {"name": "New Fund"}),
        ("post", f"/api/canvas/{cast.deal.pk}/save", {"content": "## Risks\nNone."}),
        ("post", "/api/deals/no-such-deal/access", {"user_id": str(cast.users["member"].pk), "role": "viewer"}),
    ):
        response = getattr(client, method)(path, body, format="json")
        assert response.status_code == 403, (method, path, response.content)
        assert "read scope" in response.json()["detail"]
    deal = Deal.objects.get(pk=cast.deal.pk)
    assert (deal.name, deal.memo_version) == ("Riverside Apartments", 0)


def test_an_outsiders_key_sees_nothing(cast):
    _, raw = factories.make_api_key(cast.users["outsider"], "write")
    client = _key_client(raw)
    assert client.get(_deal_path(cast)).status_code == 404
    assert client.get(f"/api/canvas/{cast.deal.pk}").status_code == 404
    assert client.get("/api/dashboard/memos").json()["results"] == []


def test_revocation_is_effective_at_once(cast):
    owner = cast.client("owner")
    created = _create(owner).json()
    client = _key_client(created["key"])
    assert client.get(_deal_path(cast)).status_code == 200
    assert owner.delete(f"{KEYS}/{created['id']}").status_code == 204
    refused = client.get(_deal_path(cast))
    assert refused.status_code == 401
    assert refused.json() == {"detail": "This API key has been revoked."}
    assert owner.get(KEYS).json() == []
    assert owner.delete(f"{KEYS}/{created['id']}").status_code == 404  # already revoked


def test_another_users_key_is_404_like_an_unknown_one_and_stays_live(cast):
    key, raw = factories.make_api_key(cast.users["owner"])
    editor = cast.client("editor")
    theirs = editor.delete(f"{KEYS}/{key.pk}")
    unknown = editor.delete(f"{KEYS}/00000000-0000-4000-8000-000000000000")
    assert (theirs.status_code, theirs.json()) == (unknown.status_code, unknown.json()) == (404, unknown.json())
    assert unknown.json() == {"detail": "API key not found."}
    assert _key_client(raw).get(_deal_path(cast)).status_code == 200


def test_an_expired_key_is_401_and_still_listed_to_its_owner(cast):
    key, raw = factories.make_api_key(cast.users["editor"], expires_at=timezone.now() + timedelta(days=1))
    client = _key_client(raw)
    assert client.get(_deal_path(cast)).status_code == 200
    ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    refused = client.get(_deal_path(cast))
    assert (refused.status_code, refused.json()) == (401, {"detail": "This API key has expired."})
    assert refused["WWW-Authenticate"].startswith("Bearer")
    assert [row["id"] for row in cast.client("editor").get(KEYS).json()] == [str(key.pk)]


def test_keys_of_a_deactivated_user_stop_working(cast):
    _, raw = factories.make_api_key(cast.users["editor"])
    client = _key_client(raw)
    assert client.get(f"/api/canvas/{cast.deal.pk}").status_code == 200
    editor = cast.users["editor"]
    editor.is_active = False
    editor.save(update_fields=["is_active"])
    # the hot canvas GET (token-only users for JWTs) and an ordinary endpoint alike
    assert client.get(f"/api/canvas/{cast.deal.pk}").status_code == 401
    assert client.get(_deal_path(cast)).json() == {"detail": "The user of this API key is deactivated."}


@pytest.mark.parametrize(
    "presented",
    [
        "dck_",
        "dck_short_secret",
        "dck_AAAAAAAA_" + "a" * 40,  # well-formed, no such key
        "dck_AAAAAAAA_" + "a" * 40 + "\n",
        "dck_AAAAAAAA_" + "a" * 39 + "é",
    ],
)
def test_malformed_and_unknown_keys_are_401_alike(cast, presented):
    response = _key_client(presented).get(_deal_path(cast))
    assert (response.status_code, response.json()) == (401, {"detail": "Invalid API key."})


def test_a_wrong_secret_for_a_real_prefix_is_401_alike(cast):
    _, raw = factories.make_api_key(cast.users["editor"])
    forged = raw[:13] + ("b" if raw[13] != "b" else "c") + raw[14:]
    response = _key_client(forged).get(_deal_path(cast))
    assert (response.status_code, response.json()) == (401, {"detail": "Invalid API key."})


def test_a_key_cannot_manage_keys_or_mint_tokens(cast):
    key, raw = factories.make_api_key(cast.users["editor"], "write")
    client = _key_client(raw)
    for response in (
        client.get(KEYS),
        client.post(KEYS, {"name": "successor", "scope": "write"}, format="json"),
        client.delete(f"{KEYS}/{key.pk}"),
    ):
        assert response.status_code == 403
        assert "cannot manage API keys" in response.json()["detail"]
    assert list(ApiKey.objects.filter(revoked_at__isnull=True).values_list("pk", flat=True)) == [key.pk]
    _, superadmins = factories.make_api_key(cast.users["superadmin"], "write")
    minted = _key_client(superadmins).post(
        "/api/auth/token/deal", {"user_id": str(cast.users["viewer"].pk), "deal_id": str(cast.deal.pk)}, format="json"
    )
    assert minted.status_code == 403
    # the superadmin's JWT still mints
    jwt_minted = cast.client("superadmin").post(
        "/api/auth/token/deal", {"user_id": str(cast.users["viewer"].pk), "deal_id": str(cast.deal.pk)}, format="json"
    )
    assert jwt_minted.status_code == 201


def test_last_used_is_written_at_most_once_a_window(cast, settings):
    settings.API_KEY_LAST_USED_SECONDS = 60
    key, raw = factories.make_api_key(cast.users["editor"])
    client = _key_client(raw)

    def updates_of_keys() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(_deal_path(cast)).status_code == 200
        return sum(1 for q in queries.captured_queries if q["sql"].startswith('UPDATE "deals_apikey"'))

    assert updates_of_keys() == 1
    first = ApiKey.objects.get(pk=key.pk).last_used_at
    assert first is not None
    assert updates_of_keys() == 0
    assert ApiKey.objects.get(pk=key.pk).last_used_at == first
    # once the recorded use is older than the window, the next request records it again
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=first - timedelta(seconds=61))
    assert updates_of_keys() == 1
    assert ApiKey.objects.get(pk=key.pk).last_used_at > first - timedelta(seconds=61)
    listed = cast.client("editor").get(KEYS).json()[0]["last_used"]
    assert listed is not None


# --- bad input -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "loc", "kind"),
    [
        ({"name": "", "scope": "read"}, ["body", "name"], "blank"),
        ({"name": "   ", "scope": "read"}, ["body", "name"], "blank"),
        ({"name": "x" * 101, "scope": "read"}, ["body", "name"], "max_length"),
        ({"name": 7, "scope": "read"}, ["body", "name"], "string_type"),
        ({"scope": "read"}, ["body", "name"], "missing"),
        ({"name": "n", "scope": "admin"}, ["body", "scope"], "invalid_choice"),
        ({"name": "n"}, ["body", "scope"], "missing"),
        (
            {"name": "n", "scope": "read", "expires_at": "2001-01-01T00:00:00Z"},
            ["body", "expires_at"],
            "expires_in_past",
        ),
        ({"name": "n", "scope": "read", "expires_at": "next week"}, ["body", "expires_at"], "value_error"),
        ({"name": "n", "scope": "read", "expires_at": 1700000000}, ["body", "expires_at"], "value_error"),
        ({"name": "n", "scope": "read", "user_id": "someone"}, ["body", "user_id"], "extra_forbidden"),
    ],
)
def test_bad_input_is_422_and_creates_nothing(cast, body, loc, kind):
    response = cast.client("editor").post(KEYS, body, format="json")
    assert response.status_code == 422, response.content
    items = response.json()["detail"]
    assert [item["loc"] for item in items] == [loc]
    assert items[0]["type"] == kind
    assert not ApiKey.objects.exists()


def test_a_malformed_key_id_is_422(cast):
    response = cast.client("editor").delete(f"{KEYS}/not-a-uuid")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "id"]


def test_anonymous_callers_are_401(db, client):
    assert client.get(KEYS).status_code == 401
    assert client.post(KEYS, {"name": "n", "scope": "read"}, content_type="application/json").status_code == 401


# --- the admin -----------------------------------------------------------------------------------------
@pytest.fixture
def admin_client(cast, client):
    client.force_login(cast.users["superadmin"])
    return client


def test_the_admin_lists_keys_without_their_secret_or_hash(admin_client, cast):
    key, raw = factories.make_api_key(cast.users["editor"], "read", name="Warehouse sync")
    listing = admin_client.get("/admin/deals/apikey/")
    assert listing.status_code == 200
    html = listing.content.decode()
    for column in ("user", "name", "prefix", "scope", "created at", "last used at", "expires at", "revoked"):
        assert f"column-{column.replace(' ', '_')}" in html, column
    assert key.prefix in html and "Warehouse sync" in html
    assert admin_client.get(f"/admin/deals/apikey/?q={key.prefix}").status_code == 200
    page = admin_client.get(f"/admin/deals/apikey/{key.pk}/change/").content.decode()
    for shown in (listing.content.decode(), page):
        assert raw[13:] not in shown and key.key_hash not in shown
    assert admin_client.get("/admin/deals/apikey/add/").status_code == 403


def test_the_admin_revokes_the_selected_keys_at_once(admin_client, cast):
    chosen, chosen_raw = factories.make_api_key(cast.users["editor"], name="leaked")
    kept, kept_raw = factories.make_api_key(cast.users["editor"], name="fine")
    response = admin_client.post(
        "/admin/deals/apikey/", {"action": "revoke", "_selected_action": [str(chosen.pk)]}, follow=True
    )
    assert response.status_code == 200
    assert "1 API key(s) revoked." in response.content.decode()
    assert ApiKey.objects.get(pk=chosen.pk).revoked_at is not None
    assert ApiKey.objects.get(pk=kept.pk).revoked_at is None
    assert _key_client(chosen_raw).get(_deal_path(cast)).status_code == 401
    assert _key_client(kept_raw).get(_deal_path(cast)).status_code == 200
    assert "?revoked=yes" in admin_client.get("/admin/deals/apikey/").content.decode()
    revoked_only = admin_client.get("/admin/deals/apikey/?revoked=yes").content.decode()
    assert "leaked" in revoked_only and "fine" not in revoked_only


# --- the schema ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def schema(django_db_blocker) -> dict:
    from drf_spectacular.generators import SchemaGenerator

    with django_db_blocker.unblock():
        return SchemaGenerator().get_schema(request=None, public=True)


def test_the_schema_describes_the_key_scheme_and_who_takes_keys(schema):
    scheme = schema["components"]["securitySchemes"]["apiKeyAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert scheme["bearerFormat"].startswith("dck_")
    for method in ("get", "post"):
        assert schema["paths"][KEYS][method]["security"] == [{"jwtAuth": []}]
    assert schema["paths"][KEYS + "/{id}"]["delete"]["security"] == [{"jwtAuth": []}]
    assert {"apiKeyAuth": []} not in schema["paths"]["/api/auth/token/deal"]["post"]["security"]
    assert {"apiKeyAuth": []} in schema["paths"]["/api/canvas/{deal_id}"]["get"]["security"]
    assert {"apiKeyAuth": []} in schema["paths"]["/api/canvas/{deal_id}/events"]["get"]["security"]


def test_every_write_that_takes_a_key_documents_the_read_keys_403(schema):
    writes = [
        (method, path, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in ("post", "put", "patch", "delete") and {"apiKeyAuth": []} in (operation.get("security") or [])
    ]
    assert len(writes) > 40
    assert [(method, path) for method, path, operation in writes if "403" not in operation["responses"]] == []
