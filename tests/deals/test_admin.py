"""The Django admin pages of orgs, deals and grants, as a superadmin uses them."""

from __future__ import annotations

import pytest

from deals.models import DealAccess


@pytest.fixture
def admin_client(cast, client):
    client.force_login(cast.users["superadmin"])
    return client


@pytest.mark.parametrize("model", ["org", "orgmembership", "deal", "dealaccess", "user"])
def test_changelists_render_and_search(admin_client, model):
    assert admin_client.get(f"/admin/deals/{model}/").status_code == 200
    assert admin_client.get(f"/admin/deals/{model}/?q=Riverside").status_code == 200


def test_deal_page_shows_grants_inline(admin_client, cast):
    response = admin_client.get(f"/admin/deals/deal/{cast.deal.pk}/change/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Deal access grants" in html and "commenter" in html


def test_org_page_shows_memberships_inline(admin_client, cast):
    response = admin_client.get(f"/admin/deals/org/{cast.org.pk}/change/")
    assert response.status_code == 200
    assert "Org memberships" in response.content.decode()


def test_deal_list_filters_by_visibility(admin_client, cast):
    response = admin_client.get("/admin/deals/deal/?visibility__exact=org")
    assert response.status_code == 200
    assert "Riverside Apartments" not in response.content.decode()


def test_adding_a_grant_inline_records_the_admin_as_granter(admin_client, cast):
    deal = cast.deal
    grants = list(DealAccess.objects.filter(deal=deal).order_by("pk"))
    form = {
        "org": str(cast.org.pk),
        "name": deal.name,
        "description": "",
        "visibility": "private",
        "template_key": "acquisition",
        "collab_enabled": "on",
        "grants-TOTAL_FORMS": str(len(grants) + 1),
        "grants-INITIAL_FORMS": str(len(grants)),
        "grants-MIN_NUM_FORMS": "0",
        "grants-MAX_NUM_FORMS": "1000",
    }
    for i, g in enumerate(grants):
        form.update(
            {
                f"grants-{i}-id": str(g.pk),
                f"grants-{i}-deal": str(deal.pk),
                f"grants-{i}-user": str(g.user_id),
                f"grants-{i}-role": g.role,
            }
        )
    n = len(grants)
    form.update(
        {
            f"grants-{n}-deal": str(deal.pk),
            f"grants-{n}-user": str(cast.users["member"].pk),
            f"grants-{n}-role": "viewer",
        }
    )
    response = admin_client.post(f"/admin/deals/deal/{deal.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    added = DealAccess.objects.get(deal=deal, user=cast.users["member"])
    assert added.granted_by == cast.users["superadmin"]


def test_non_staff_users_cannot_open_the_admin(cast, client):
    client.force_login(cast.users["owner"])
    assert client.get("/admin/deals/deal/").status_code == 302


def test_deal_page_shows_memo_state_versions_and_readiness(admin_client, cast):
    from tests.canvas.conftest import full_memo, save

    save(cast.client("owner"), cast.deal, full_memo())
    html = admin_client.get(f"/admin/deals/deal/{cast.deal.pk}/change/").content.decode()
    assert "State <b>editing</b>, version 1, 9 of 9 sections written." in html
    assert "Readiness <b>" in html and "Completeness: 100" in html
    assert "Riverside Apartments_20" in html and "<td>save</td>" in html


@pytest.mark.parametrize("model", ["synthesisrun", "sectionapproval", "sectionfeedback", "comment"])
def test_canvas_records_have_admin_lists(admin_client, model):
    assert admin_client.get(f"/admin/canvas/{model}/").status_code == 200
