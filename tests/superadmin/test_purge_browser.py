"""The admin purge flow in a real browser: Playwright driving Debian's headless chromium (tests/browser.py)
against pytest-django's live server."""

from __future__ import annotations

from superadmin.models import PurgeAudit
from tests import factories
from tests.browser import chromium_page, needs_chromium
from tests.superadmin.conftest import EXPECTED, deal_keys_present, write_deal_state

RUNS_ONLY = {**dict.fromkeys(EXPECTED, 0), "runs": 3}

pytestmark = needs_chromium


def test_admin_purge_flow_in_a_browser(live_server, cast):
    second = factories.make_deal(cast.org, name="Harbor Point")
    third = factories.make_deal(cast.org, name="Elm Court")
    for deal in (cast.deal, second, third):
        write_deal_state(deal.pk)

    # No ORM inside this block: Playwright's sync API runs an event loop in this thread, and Django
    # would give ORM calls made under it a connection of their own (never closed). Redis is fine.
    with chromium_page() as page:
        page.goto(f"{live_server.url}/admin/login/?next=/admin/deals/deal/")
        page.fill("#id_username", "superadmin")
        page.fill("#id_password", factories.PASSWORD)
        page.click("input[type=submit]")
        page.wait_for_url("**/admin/deals/deal/")

        # the deal list's action: select one deal, preview by family, confirm
        page.check(f"input[name=_selected_action][value='{cast.deal.pk}']")
        page.select_option("select[name=action]", "purge_redis_state")
        page.click("button[name=index]")
        assert page.inner_text("#purge-action-total") == "Would purge 13 keys of 1 deals."
        assert deal_keys_present(cast.deal.pk) == EXPECTED
        page.click("#purge-action-confirm")
        page.wait_for_url("**/admin/deals/deal/")
        assert "Purged 13 keys of 1 deals." in page.inner_text(".messagelist")
        assert deal_keys_present(cast.deal.pk) == RUNS_ONLY
        assert deal_keys_present(second.pk) == EXPECTED

        # the deal page shows the footprint and links to the Purge page, prefilled for that deal
        page.goto(f"{live_server.url}/admin/deals/deal/{second.pk}/change/")
        assert page.inner_text("#redis-footprint-total") == "16"
        page.click("text=Purge this deal's Redis state")
        assert page.input_value("#id_deal_id") == str(second.pk)
        page.check("#id_include_checkpoints")
        page.click("#purge-preview")
        assert page.inner_text("tr.family-runs td.count") == "3"
        assert page.inner_text("tr.family-events td.count") == "3"
        assert deal_keys_present(second.pk) == EXPECTED
        page.click("#purge-confirm")
        page.wait_for_url("**/admin/superadmin/purgeaudit/*/change/")
        assert "Purged 16 keys of 1 deals, 0 checkpoint threads in " in page.inner_text(".messagelist")
        assert deal_keys_present(second.pk) == dict.fromkeys(EXPECTED, 0)
        assert deal_keys_present(third.pk) == EXPECTED

        # the admin's index lists the Purge page
        page.goto(f"{live_server.url}/admin/")
        page.click("#purge-index-link")
        page.wait_for_url("**/admin/superadmin/purgeaudit/purge/")
        assert page.is_visible("#purge-form")

    purges = PurgeAudit.objects.filter(source="admin")
    assert purges.filter(dry_run=False).count() == 2 and purges.filter(dry_run=True).count() == 2
    assert {a.actor_label for a in purges} == {"superadmin"}
