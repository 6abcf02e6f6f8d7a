"""GET /api/canvas/{deal_id} and POST /refresh: the session, its cache, the generate bucket."""

from __future__ import annotations

import json
import pathlib

import jsonschema
import pytest

from canvas.memo import session
from canvas_project import keys, ratelimit
from canvas_project.redis_client import get_redis
from deals.models import Deal
from tests.canvas.conftest import canvas_url, save
from tests.conftest import ROLES, expected_status


def _cached(cast) -> dict:
    """The cached payload of the cast's deal, parsed (header and body; the per-request fields are absent)."""
    version, header, body = get_redis().get(keys.session_key(cast.deal.pk)).split(b"\n", 2)
    payload = {**json.loads(header), **json.loads(body)}
    assert payload["version"] == int(version)
    return payload


SCHEMA = json.loads((pathlib.Path(__file__).parent / "canvas_session.schema.json").read_text())


@pytest.mark.parametrize("role", ROLES)
def test_role_matrix_get(cast, role):
    response = cast.client(role).get(canvas_url(cast.deal))
    assert response.status_code == expected_status(role, minimum="viewer", ok=200)
    if response.status_code == 200:
        assert response.json()["user_role"] == role


def test_a_new_canvas_has_every_seed_field_with_the_right_type(cast):
    body = cast.client("viewer").get(canvas_url(cast.deal)).json()
    jsonschema.validate(body, SCHEMA)
    assert body["deal_id"] == str(cast.deal.pk)
    assert body["deal_name"] == "Riverside Apartments"
    assert body["document_state"] == "draft"
    assert body["version"] == 0
    assert body["is_blank"] is False
    assert body["can_export"] is False and body["can_finalize"] is False
    assert list(body["sections"])[:2] == ["executive_summary", "property_overview"]
    assert body["markdown_content"].startswith("## Executive Summary")
    assert body["initialization_warning"] is None


def test_a_written_canvas_matches_the_schema_and_meanings(cast, written):
    body = cast.client("owner").get(canvas_url(cast.deal)).json()
    jsonschema.validate(body, SCHEMA)
    assert body["version"] == 1
    assert body["document_state"] == "editing"
    assert body["last_modified_by"] == "owner"
    assert body["can_finalize"] is True  # owner, editing, not blank, readiness >= gate
    assert body["can_export"] is True
    summary = body["sections"]["executive_summary"]
    assert summary["source"] == "human" and summary["state"] == "editing" and summary["delivery"] == "delivered"
    assert summary["citations"][0]["document"] == "Offering Memorandum.pdf"
    assert summary["citations"][0]["page"] == 4


@pytest.mark.parametrize(
    ("role", "finalize", "export"),
    [("viewer", False, False), ("commenter", False, False), ("editor", False, True), ("owner", True, True)],
)
def test_role_dependent_fields_are_computed_per_request(cast, written, role, finalize, export):
    cast.client("owner").get(canvas_url(cast.deal))  # warm the cache as owner
    body = cast.client(role).get(canvas_url(cast.deal)).json()
    assert (body["user_role"], body["can_finalize"], body["can_export"]) == (role, finalize, export)


def test_blank_canvases_are_blank_until_written(cast):
    created = cast.client("owner").post("/api/canvas/blank", {"deal_name": "Napkin"}, format="json").json()
    deal = Deal.objects.get(pk=created["deal_id"])
    body = cast.client("owner").get(canvas_url(deal)).json()
    assert body["is_blank"] is True and body["can_export"] is False
    save(cast.client("owner"), deal, "## Executive Summary\n\nFirst thoughts.")
    assert cast.client("owner").get(canvas_url(deal)).json()["is_blank"] is False


class _RedisCommandCounter:
    def __init__(self, monkeypatch):
        self.commands: list[str] = []
        # the class of the service's client: redis.Redis, or the cluster client (tests/cluster re-runs this)
        client_class = type(get_redis())
        original = client_class.execute_command

        def counting(client, *args, **kwargs):
            self.commands.append(str(args[0]))
            return original(client, *args, **kwargs)

        monkeypatch.setattr(client_class, "execute_command", counting)


def test_a_cached_get_costs_one_redis_round_trip_and_one_query(
    cast, written, monkeypatch, django_assert_max_num_queries
):
    client = cast.client("editor")
    client.get(canvas_url(cast.deal))  # warm
    counter = _RedisCommandCounter(monkeypatch)
    with django_assert_max_num_queries(1):  # the deal with the caller's role (the token names the user)
        response = client.get(canvas_url(cast.deal))
    assert response.status_code == 200
    assert counter.commands == ["GET"]


def test_the_session_is_cached_for_48_hours(cast, written):
    cast.client("viewer").get(canvas_url(cast.deal))
    ttl = get_redis().ttl(keys.session_key(cast.deal.pk))
    assert 48 * 3600 - 60 < ttl <= 48 * 3600


def test_a_stale_cache_entry_is_never_served(cast, written):
    client = cast.client("viewer")
    client.get(canvas_url(cast.deal))
    # plant an old payload as if a write's cache drop had been lost
    key = keys.session_key(cast.deal.pk)
    stale = _cached(cast)
    stale["version"] = 0
    stale["markdown_content"] = "stale"
    get_redis().set(key, session.encode(stale)[2])
    body = client.get(canvas_url(cast.deal)).json()
    assert body["version"] == 1 and body["markdown_content"] != "stale"


def test_an_older_version_never_overwrites_a_newer_cache_entry(cast, written):
    cast.client("viewer").get(canvas_url(cast.deal))
    older = {**_cached(cast), "version": 0}
    assert session.cache_put(older) is False
    assert _cached(cast)["version"] == 1


def test_deal_settings_show_without_a_new_version(cast, written):
    cast.client("viewer").get(canvas_url(cast.deal))
    cast.client("owner").patch(f"/api/deals/{cast.deal.pk}", {"name": "Riverside II"}, format="json")
    assert cast.client("viewer").get(canvas_url(cast.deal)).json()["deal_name"] == "Riverside II"


# --- refresh --------------------------------------------------------------------------------------
@pytest.mark.parametrize("role", ROLES)
def test_role_matrix_refresh(cast, role):
    response = cast.client(role).post(canvas_url(cast.deal, "refresh"))
    assert response.status_code == expected_status(role, minimum="editor", ok=200)
    if response.status_code == 200:
        jsonschema.validate(response.json(), SCHEMA)


def test_refresh_rewrites_the_cache_from_the_store_and_emits_an_event(cast, written):
    cast.client("viewer").get(canvas_url(cast.deal))
    tampered = {**_cached(cast), "markdown_content": "tampered"}
    get_redis().set(keys.session_key(cast.deal.pk), session.encode(tampered)[2])
    assert cast.client("viewer").get(canvas_url(cast.deal)).json()["markdown_content"] == "tampered"
    response = cast.client("editor").post(canvas_url(cast.deal, "refresh"))
    assert response.status_code == 200
    assert _cached(cast)["markdown_content"] == response.json()["markdown_content"] != "tampered"
    entries = get_redis().xrange(keys.events_key(cast.deal.pk))
    types = [fields[b"type"].decode() for _id, fields in entries]
    assert types[-1] == "session_refreshed"
    assert json.loads(entries[-1][1][b"data"])["changed"] is True


def test_refresh_shares_the_generate_bucket_and_answers_429_with_retry_after(cast, settings):
    settings.GENERATE_RATE_PER_MINUTE = 6
    settings.GENERATE_RATE_BURST = 3
    client = cast.client("editor")
    # another user of the same bucket (a generate, a chat...) spends part of it first
    ratelimit.consume(ratelimit.generate_bucket(), cast.users["editor"].pk)
    statuses = [client.post(canvas_url(cast.deal, "refresh")).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    limited = client.post(canvas_url(cast.deal, "refresh"))
    assert limited.status_code == 429
    assert 1 <= int(limited["Retry-After"]) <= 10
    assert "generate" in limited.json()["detail"]
    # the bucket is per user: the owner is not limited by the editor's use
    assert cast.client("owner").post(canvas_url(cast.deal, "refresh")).status_code == 200


def test_the_rate_limit_key_is_outside_every_purge_family(cast):
    ratelimit.consume(ratelimit.generate_bucket(), cast.users["editor"].pk)
    stored = [k.decode() for k in get_redis().scan_iter("ratelimit:*")]
    assert stored == [keys.rate_limit_key("generate", cast.users["editor"].pk)]
    assert keys.classify(stored[0]) is None


def test_the_progress_endpoint(cast, written):
    body = cast.client("viewer").get(canvas_url(cast.deal, "progress")).json()
    assert body["store_available"] is True
    assert body["populated"] == body["total"] == 9
    assert all(body["sections"].values())


def test_the_cached_body_leaves_out_every_per_request_field(cast, written):
    cast.client("owner").get(canvas_url(cast.deal))
    _version, _header, body = get_redis().get(keys.session_key(cast.deal.pk)).split(b"\n", 2)
    assert not set(json.loads(body)) & set(session.PER_REQUEST_FIELDS)
    viewer = cast.client("viewer").get(canvas_url(cast.deal))
    assert viewer["Content-Type"] == "application/json"
    assert set(session.PER_REQUEST_FIELDS) <= set(viewer.json())


def test_an_inactive_users_token_cannot_read_the_canvas(cast, written):
    client = cast.client("editor")
    assert client.get(canvas_url(cast.deal)).status_code == 200
    cast.users["editor"].is_active = False
    cast.users["editor"].save()
    assert client.get(canvas_url(cast.deal)).status_code == 404
