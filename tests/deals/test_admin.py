"""The Django admin pages of orgs, deals and grants, as a superadmin uses them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from deals.models import DealAccess, Invitation, InvitationStatus
from deals.people.services import invitation_token_hash


@pytest.fixture
def admin_client(cast, client):
    client.force_login(cast.users["superadmin"])
    return client


@pytest.mark.parametrize("model", ["org", "orgmembership", "deal", "dealaccess", "user", "invitation"])
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


def _invitation(cast, email: str = "invitee@example.com"):
    return Invitation.objects.create(
        org=cast.org,
        email=email,
        token_hash=invitation_token_hash(f"secret-code-of-{email}"),
        invited_by=cast.users["owner"],
        expires_at=timezone.now() + timedelta(days=1),
    )


def test_invitations_are_listed_searched_and_shown_without_their_code(admin_client, cast):
    invitation = _invitation(cast)
    listing = admin_client.get("/admin/deals/invitation/?q=invitee")
    assert listing.status_code == 200
    assert "invitee@example.com" in listing.content.decode() and "pending" in listing.content.decode()
    page = admin_client.get(f"/admin/deals/invitation/{invitation.pk}/change/").content.decode()
    assert "invitee@example.com" in page
    assert invitation.token_hash not in page and "secret-code-of" not in page
    assert admin_client.get("/admin/deals/invitation/add/").status_code == 403  # made through the API only


def test_the_admin_revokes_pending_invitations(admin_client, cast):
    pending, accepted = _invitation(cast, "a@example.com"), _invitation(cast, "b@example.com")
    Invitation.objects.filter(pk=accepted.pk).update(status=InvitationStatus.ACCEPTED)
    response = admin_client.post(
        "/admin/deals/invitation/",
        {"action": "revoke", "_selected_action": [str(pending.pk), str(accepted.pk)]},
        follow=True,
    )
    assert response.status_code == 200 and "1 invitation(s) revoked." in response.content.decode()
    assert Invitation.objects.get(pk=pending.pk).status == InvitationStatus.REVOKED
    assert Invitation.objects.get(pk=accepted.pk).status == InvitationStatus.ACCEPTED
