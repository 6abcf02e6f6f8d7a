"""The Django admin: the Purge page, the deal list's action, the deal page's footprint, the audit trail."""

from __future__ import annotations

import re

import pytest

from superadmin.models import PurgeAudit
from tests import factories
from tests.superadmin.conftest import EXPECTED, deal_keys_present, write_deal_state

PURGE_URL = "/admin/superadmin/purgeaudit/purge/"
RUNS_ONLY = {**dict.fromkeys(EXPECTED, 0), "runs": 3}


def _staff(username: str):
    user = factories.make_user(username)
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    return user


@pytest.fixture
def admin_client(cast, client):
    client.force_login(cast.users["superadmin"])
    return client


def test_the_purge_page_previews_then_purges(admin_client, cast):
    write_deal_state(cast.deal.pk)
    assert admin_client.get(PURGE_URL).status_code == 200
    form = {"mode": "by_deal", "deal_id": str(cast.deal.pk), "org_id": "", "exclude_active_within_secs": ""}
    preview = admin_client.post(PURGE_URL, {**form, "_preview": "1"})
    html = preview.content.decode()
    assert preview.status_code == 200 and "Dry run: what would be purged" in html
    assert '<p id="purge-preview-summary">Would purge 13 keys of 1 deals.</p>' in html
    assert '<tr class="family-events"><td>events</td><td class="count">3</td>' in html
    assert deal_keys_present(cast.deal.pk) == EXPECTED
    dry = PurgeAudit.objects.get()
    assert (dry.source, dry.dry_run, dry.actor) == ("admin", True, cast.users["superadmin"])

    done = admin_client.post(PURGE_URL, {**form, "_confirm": "1"})
    assert done.status_code == 302
    real = PurgeAudit.objects.get(dry_run=False)
    assert done["Location"].endswith(f"/admin/superadmin/purgeaudit/{real.pk}/change/")
    assert real.source == "admin" and real.keys_total == 13
    assert deal_keys_present(cast.deal.pk) == RUNS_ONLY
    page = admin_client.get(done["Location"], follow=True)
    assert "Purged 13 keys of 1 deals in " in page.content.decode()


def test_the_purge_page_shows_refusals_as_form_errors(admin_client, cast):
    write_deal_state(cast.deal.pk)
    response = admin_client.post(
        PURGE_URL,
        {"mode": "by_deal", "deal_id": str(cast.deal.pk), "org_id": str(cast.other_org.pk), "_confirm": "1"},
    )
    assert response.status_code == 200
    assert "The deal belongs to another org" in response.content.decode()
    assert deal_keys_present(cast.deal.pk) == EXPECTED
    response = admin_client.post(PURGE_URL, {"mode": "by_deal", "_preview": "1"})
    assert "Give the deal id" in response.content.decode()


def test_the_purge_page_is_for_superusers_only(cast, client):
    staff = _staff("staff-only")
    client.force_login(staff)
    assert client.get(PURGE_URL).status_code == 403


def test_the_deal_list_action_confirms_with_dry_run_counts(admin_client, cast):
    second = factories.make_deal(cast.org, name="Harbor Point")
    untouched = factories.make_deal(cast.org, name="Elm Court")
    for deal in (cast.deal, second, untouched):
        write_deal_state(deal.pk)
    selection = {"action": "purge_redis_state", "_selected_action": [str(cast.deal.pk), str(second.pk)]}
    confirm = admin_client.post("/admin/deals/deal/", selection)
    html = confirm.content.decode()
    assert confirm.status_code == 200 and "Purge Redis state of the selected deals?" in html
    assert '<p id="purge-action-total">Would purge 26 keys of 2 deals.</p>' in html
    assert deal_keys_present(cast.deal.pk) == EXPECTED
    assert PurgeAudit.objects.filter(dry_run=True, source="admin").count() == 2

    done = admin_client.post("/admin/deals/deal/", {**selection, "post": "yes"})
    assert done.status_code == 302
    assert "Purged 26 keys of 2 deals." in admin_client.get(done["Location"]).content.decode()
    assert deal_keys_present(cast.deal.pk) == deal_keys_present(second.pk) == RUNS_ONLY
    assert deal_keys_present(untouched.pk) == EXPECTED
    assert PurgeAudit.objects.filter(dry_run=False, source="admin").count() == 2


def test_the_action_is_offered_to_superusers_only(admin_client, cast, client):
    assert "purge_redis_state" in admin_client.get("/admin/deals/deal/").content.decode()
    from django.contrib.auth.models import Permission

    staff = _staff("deal-staff")
    staff.user_permissions.add(*Permission.objects.filter(codename__in=["view_deal", "change_deal"]))
    client.force_login(staff)
    response = client.get("/admin/deals/deal/")
    assert response.status_code == 200 and "purge_redis_state" not in response.content.decode()


def test_the_deal_page_shows_its_redis_footprint(admin_client, cast):
    write_deal_state(cast.deal.pk)
    html = admin_client.get(f"/admin/deals/deal/{cast.deal.pk}/change/").content.decode()
    assert "Redis footprint" in html
    assert '<th id="redis-footprint-total">16</th>' in html
    assert '<tr class="family-runs"><td>runs (protected)</td>' in html
    assert f"?mode=by_deal&amp;deal_id={cast.deal.pk}" in html
    assert "Index entries: 8" in html


def test_the_deal_page_opens_while_redis_is_down(admin_client, cast, monkeypatch):
    import redis

    from superadmin import selectors

    def down(**kwargs):
        raise redis.exceptions.ConnectionError("refused")

    monkeypatch.setattr(selectors, "deal_redis_footprint", down)
    response = admin_client.get(f"/admin/deals/deal/{cast.deal.pk}/change/")
    assert response.status_code == 200 and "Unavailable: ConnectionError" in response.content.decode()


def test_the_audit_trail_is_read_only(admin_client, cast):
    write_deal_state(cast.deal.pk)
    admin_client.post(PURGE_URL, {"mode": "by_deal", "deal_id": str(cast.deal.pk), "_preview": "1"})
    audit = PurgeAudit.objects.get()
    listing = admin_client.get("/admin/superadmin/purgeaudit/")
    assert listing.status_code == 200 and 'id="purge-link"' in listing.content.decode()
    page = admin_client.get(f"/admin/superadmin/purgeaudit/{audit.pk}/change/")
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert admin_client.get("/admin/superadmin/purgeaudit/add/").status_code == 403
    assert admin_client.post(f"/admin/superadmin/purgeaudit/{audit.pk}/delete/").status_code == 403
    assert PurgeAudit.objects.count() == 1


def test_the_admin_index_links_the_purge_page_for_superusers(admin_client, cast, client):
    for page in ("/admin/", "/admin/superadmin/"):
        html = admin_client.get(page).content.decode()
        assert f'<a href="{PURGE_URL}" id="purge-index-link">Purge per-deal Redis state</a>' in html, page
        assert 'id="purge-link"' not in html  # not only through the audit's change list any more
    # a staff user who may not purge is not shown the link (the page would refuse them)
    staff = _staff("index-staff")
    client.force_login(staff)
    assert client.get("/admin/").status_code == 200
    assert "purge-index-link" not in client.get("/admin/").content.decode()


def test_the_preview_says_the_same_as_the_command_and_the_api(admin_client, cast):
    second = factories.make_deal(cast.org, name="Harbor Point")
    for deal in (cast.deal, second):
        write_deal_state(deal.pk)
    # scoped to the test's own org: other workers of the same Redis and database cannot change the count
    org = str(cast.org.pk)
    api = cast.client("superadmin").post(
        "/api/superadmin/purge_deals",
        {"mode": "all", "org_id": org, "include_checkpoints": True},
        format="json",
    )
    summary = api.json()["summary"]
    assert re.fullmatch(r"would purge (\d+) keys of 2 deals, 0 checkpoint threads", summary), summary
    assert int(summary.split()[2]) >= 32
    form = {"mode": "all", "org_id": org, "include_checkpoints": "on", "_preview": "1"}
    html = admin_client.post(PURGE_URL, form).content.decode()
    assert f'<p id="purge-preview-summary">{summary[0].upper()}{summary[1:]}.</p>' in html
