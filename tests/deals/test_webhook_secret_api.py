"""/api/orgs/{org_id}/webhook-secret and the admin's action: an org's webhook signing secret, shown once,
encrypted at rest, rotated at once; org admins and superadmins only, with a person's JWT."""

from __future__ import annotations

import re

import pytest
from django.db import connection

from canvas_project import secretbox
from deals.models import OrgWebhookSecret
from deals.tokens import deal_token_mint
from deals.webhooks.selectors import org_webhook_signing_secret
from tests import factories

SECRET = re.compile(r"whsec_[A-Za-z0-9_-]{43}")


def url(org) -> str:
    return f"/api/orgs/{org.pk}/webhook-secret"


@pytest.mark.django_db
def test_an_org_admin_issues_a_secret_shown_once_and_reads_only_its_prefix_after(cast):
    owner = cast.client("owner")  # the org's admin
    before = owner.get(url(cast.org))
    assert before.status_code == 200
    assert before.json() == {
        "org_id": str(cast.org.pk),
        "configured": False,
        "prefix": None,
        "created_at": None,
        "created_by": None,
    }

    issued = owner.post(url(cast.org))
    assert issued.status_code == 201
    body = issued.json()
    assert SECRET.fullmatch(body["secret"]) and body["prefix"] == body["secret"][:12]
    assert body["configured"] is True and body["created_by"] == str(cast.users["owner"].pk)

    after = owner.get(url(cast.org)).json()
    assert "secret" not in after and body["secret"] not in str(after)
    assert after["prefix"] == body["prefix"] and after["configured"] is True
    assert org_webhook_signing_secret(org_id=cast.org.pk) == body["secret"]


@pytest.mark.django_db
def test_rotating_replaces_the_secret_at_once(cast):
    owner = cast.client("owner")
    first = owner.post(url(cast.org)).json()["secret"]
    second = owner.post(url(cast.org)).json()["secret"]
    assert first != second
    assert org_webhook_signing_secret(org_id=cast.org.pk) == second
    assert OrgWebhookSecret.objects.filter(org=cast.org).count() == 1


@pytest.mark.django_db
def test_the_secret_is_encrypted_at_rest_and_unreadable_under_another_key(cast, settings):
    secret = cast.client("owner").post(url(cast.org)).json()["secret"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT sealed, prefix FROM deals_orgwebhooksecret WHERE org_id = %s", [cast.org.pk])
        sealed, prefix = cursor.fetchone()
    assert secret not in sealed and secret[12:] not in sealed and prefix == secret[:12]
    assert secretbox.unseal(sealed) == secret
    settings.SECRETS_ENCRYPTION_KEY = "another key"
    with pytest.raises(secretbox.SecretUnreadable):
        org_webhook_signing_secret(org_id=cast.org.pk)


@pytest.mark.django_db
def test_a_superadmin_may_issue_one_for_any_org(cast):
    superadmin = cast.client("superadmin")  # in no org
    assert superadmin.post(url(cast.other_org)).status_code == 201
    assert superadmin.get(url(cast.other_org)).json()["configured"] is True
    missing = superadmin.post("/api/orgs/00000000-0000-4000-8000-000000000000/webhook-secret")
    assert missing.status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize(("role", "status"), [("editor", 403), ("viewer", 403), ("outsider", 404), ("other_org", 404)])
def test_members_who_are_not_admin_get_403_and_strangers_404(cast, role, status):
    for response in (cast.client(role).get(url(cast.org)), cast.client(role).post(url(cast.org))):
        assert response.status_code == status
    assert not OrgWebhookSecret.objects.exists()


@pytest.mark.django_db
def test_an_api_key_and_a_deal_scoped_token_are_refused(cast):
    _key, raw = factories.make_api_key(cast.users["owner"], "write")
    keyed = factories.client_for(token=raw)
    assert keyed.post(url(cast.org)).status_code == 403
    assert keyed.get(url(cast.org)).status_code == 403
    pair = deal_token_mint(user_id=cast.users["owner"].pk, deal_id=cast.deal.pk)
    scoped = factories.client_for(token=pair["access"])
    response = scoped.post(url(cast.org))
    assert response.status_code == 403 and "deal-scoped" in response.json()["detail"]
    assert not OrgWebhookSecret.objects.exists()


@pytest.mark.django_db
def test_a_malformed_org_id_is_422(cast):
    response = cast.client("owner").post("/api/orgs/not-a-uuid/webhook-secret")
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["path", "org_id"]


@pytest.mark.django_db
def test_the_admin_action_confirms_then_shows_each_new_secret_once(cast, client):
    client.force_login(cast.users["superadmin"])
    cast.client("owner").post(url(cast.org))
    old = org_webhook_signing_secret(org_id=cast.org.pk)
    changelist = "/admin/deals/org/"
    form = {"action": "issue_webhook_secret", "_selected_action": [str(cast.org.pk), str(cast.other_org.pk)]}
    confirm = client.post(changelist, form)
    assert confirm.status_code == 200
    html = confirm.content.decode()
    assert "Yes, issue new secrets" in html and "Org A" in html and "(has one: whsec_" in html
    assert org_webhook_signing_secret(org_id=cast.org.pk) == old  # nothing issued before the confirmation

    done = client.post(changelist, {**form, "post": "yes"})
    assert done.status_code == 200 and "no-store" in done["Cache-Control"]
    shown = SECRET.findall(done.content.decode())
    assert sorted(shown) == sorted(
        [org_webhook_signing_secret(org_id=cast.org.pk), org_webhook_signing_secret(org_id=cast.other_org.pk)]
    )
    assert old not in shown
    # the secrets page lists prefixes only
    listing = client.get("/admin/deals/orgwebhooksecret/").content.decode()
    assert all(secret[:12] in listing and secret not in listing for secret in shown)
