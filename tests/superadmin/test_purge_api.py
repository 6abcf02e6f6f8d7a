"""POST /api/superadmin/purge_deals and GET /api/superadmin/deals/{deal_id}/redis."""

from __future__ import annotations

import pytest

from canvas.models import RunStatus, SynthesisRun
from canvas_project import keys
from superadmin.models import PurgeAudit
from tests import factories
from tests.conftest import ROLES
from tests.superadmin.conftest import EXPECTED, UNPROTECTED, deal_keys_present, new_deal_id, write_deal_state

URL = "/api/superadmin/purge_deals"


def _status_for(role: str) -> int:
    return {"anonymous": 401, "superadmin": 200}.get(role, 403)


@pytest.mark.parametrize("role", ROLES)
def test_role_matrix_purge(cast, role):
    write_deal_state(cast.deal.pk)
    body = {"mode": "by_deal", "deal_id": str(cast.deal.pk), "dry_run": False}
    response = cast.client(role).post(URL, body, format="json")
    assert response.status_code == _status_for(role), response.content
    purged = response.status_code == 200
    assert deal_keys_present(cast.deal.pk) == ({**dict.fromkeys(EXPECTED, 0), "runs": 3} if purged else EXPECTED)
    assert PurgeAudit.objects.count() == (1 if purged else 0)
    if not purged:
        assert isinstance(response.json()["detail"], str)


@pytest.mark.parametrize("role", ROLES)
def test_role_matrix_footprint(cast, role):
    response = cast.client(role).get(f"/api/superadmin/deals/{cast.deal.pk}/redis")
    assert response.status_code == _status_for(role)


def test_dry_run_is_the_default_and_the_response_has_the_contract_fields(cast):
    write_deal_state(cast.deal.pk)
    response = cast.client("superadmin").post(URL, {"mode": "by_deal", "deal_id": str(cast.deal.pk)}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "mode",
        "dry_run",
        "include_checkpoints",
        "deals_considered",
        "deals_purged",
        "deals_skipped",
        "keys_by_family",
        "keys_total",
        "checkpoint_threads_deleted",
        "duration_ms",
        "audit_id",
        "summary",
    }
    assert body["dry_run"] is True and body["mode"] == "by_deal"
    assert body["keys_by_family"] == UNPROTECTED
    assert body["keys_total"] == 13 and body["deals_considered"] == body["deals_purged"] == 1
    assert body["summary"] == "would purge 13 keys of 1 deals"
    assert deal_keys_present(cast.deal.pk) == EXPECTED
    audit = PurgeAudit.objects.get()
    assert str(audit.pk) == body["audit_id"]
    assert (audit.source, audit.actor, audit.dry_run) == ("api", cast.users["superadmin"], True)


def test_every_family_is_reported_even_when_nothing_is_there(cast):
    response = cast.client("superadmin").post(URL, {"mode": "all"}, format="json")
    assert response.status_code == 200
    assert response.json()["keys_by_family"] == dict.fromkeys(keys.FAMILIES, 0)


def test_all_mode_with_exclusion_over_the_api(cast):
    idle = factories.make_deal(cast.org, name="idle")
    write_deal_state(cast.deal.pk, events_age_ms=500)
    write_deal_state(idle.pk)
    response = cast.client("superadmin").post(
        URL, {"mode": "all", "exclude_active_within_secs": 60, "dry_run": False}, format="json"
    )
    body = response.json()
    assert body["deals_skipped"] == [{"deal_id": str(cast.deal.pk), "reason": "recent_activity"}]
    assert body["deals_purged"] == 1 and body["keys_total"] == 13
    assert body["summary"] == "purged 13 keys of 1 deals, 1 deals skipped"
    assert deal_keys_present(cast.deal.pk) == EXPECTED


def test_org_mismatch_is_a_422_at_body_org_id(cast):
    write_deal_state(cast.deal.pk)
    body = {
        "mode": "by_deal",
        "deal_id": str(cast.deal.pk),
        "org_id": str(cast.other_org.pk),
        "dry_run": False,
    }
    response = cast.client("superadmin").post(URL, body, format="json")
    assert response.status_code == 422
    [item] = response.json()["detail"]
    assert item["loc"] == ["body", "org_id"] and item["type"] == "deal_org_mismatch"
    assert item["input"] == str(cast.other_org.pk)
    assert deal_keys_present(cast.deal.pk) == EXPECTED


def test_active_run_is_a_409_unless_forced(cast):
    write_deal_state(cast.deal.pk)
    run = SynthesisRun.objects.create(deal=cast.deal, status=RunStatus.RUNNING)
    body = {"mode": "by_deal", "deal_id": str(cast.deal.pk), "include_checkpoints": True, "dry_run": False}
    response = cast.client("superadmin").post(URL, body, format="json")
    assert response.status_code == 409
    assert str(run.pk) in response.json()["detail"] and response.json()["run_ids"] == [str(run.pk)]
    response = cast.client("superadmin").post(URL, {**body, "force": True}, format="json")
    assert response.status_code == 200 and response.json()["keys_by_family"]["runs"] == 3


@pytest.mark.parametrize(
    ("body", "loc", "kind"),
    [
        ({"mode": "purge_everything"}, ["body", "mode"], "invalid_choice"),
        ({}, ["body", "mode"], "missing"),
        ({"mode": "by_deal"}, ["body", "deal_id"], "missing"),
        ({"mode": "by_deal", "deal_id": "12345"}, ["body", "deal_id"], "value_error"),
        ({"mode": "all", "org_id": "nope"}, ["body", "org_id"], "value_error"),
        (
            {"mode": "all", "exclude_active_within_secs": -5},
            ["body", "exclude_active_within_secs"],
            "min_value",
        ),
        (
            {"mode": "all", "exclude_active_within_secs": "soon"},
            ["body", "exclude_active_within_secs"],
            "value_error",
        ),
        (
            {"mode": "all", "deal_id": "6f1c0d52-3b7e-4d0a-9a51-2f3c4b5d6e7f"},
            ["body", "deal_id"],
            "value_error",
        ),
        ({"mode": "all", "dry_run": "perhaps"}, ["body", "dry_run"], "value_error"),
        ({"mode": "all", "hard": True}, ["body", "hard"], "extra_forbidden"),
    ],
)
def test_strict_validation_in_the_seed_shape(cast, body, loc, kind):
    response = cast.client("superadmin").post(URL, body, format="json")
    assert response.status_code == 422, response.content
    items = response.json()["detail"]
    assert any(item["loc"] == loc and item["type"] == kind for item in items), items
    assert all(set(item) == {"loc", "msg", "type", "input", "ctx"} for item in items)
    assert not PurgeAudit.objects.exists()


def test_unknown_org_in_all_mode_is_a_422(cast):
    response = cast.client("superadmin").post(URL, {"mode": "all", "org_id": new_deal_id()}, format="json")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "org_id"]


def test_a_body_that_is_not_an_object_is_a_422(cast):
    response = cast.client("superadmin").post(URL, ["all"], format="json")
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body"]


def test_footprint_by_family(cast, redis_client):
    write_deal_state(cast.deal.pk)
    response = cast.client("superadmin").get(f"/api/superadmin/deals/{cast.deal.pk}/redis")
    assert response.status_code == 200
    body = response.json()
    assert body["deal_exists"] is True and body["deal_name"] == "Riverside Apartments"
    families = {row["family"]: row for row in body["families"]}
    assert set(families) == set(keys.FAMILIES)
    assert {name: row["key_count"] for name, row in families.items()} == EXPECTED
    assert body["total_keys"] == sum(EXPECTED.values()) and body["index_entries"] == 8
    session = families["canvas_sessions"]
    assert 0 < session["ttl_min_seconds"] <= keys.SESSION_TTL and session["approx_bytes"] > 0
    assert session["keys"][0]["key"] == keys.session_key(cast.deal.pk)
    assert families["presence"]["keys_without_ttl"] == 0 and families["events"]["keys_without_ttl"] == 3
    assert families["runs"]["protected"] is True


def test_footprint_of_an_unknown_deal_and_a_malformed_id(cast):
    ghost = new_deal_id()
    write_deal_state(ghost)
    body = cast.client("superadmin").get(f"/api/superadmin/deals/{ghost}/redis").json()
    assert body["deal_exists"] is False and body["total_keys"] == sum(EXPECTED.values())
    assert cast.client("superadmin").get("/api/superadmin/deals/not-a-uuid/redis").status_code == 404
