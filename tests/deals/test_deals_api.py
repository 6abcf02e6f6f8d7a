"""/api/deals, /api/deals/{id}, /api/deals/batch_delete, /api/canvas/blank."""

from __future__ import annotations

import pytest

from deals.models import Deal, DealAccess, DealRole
from tests import factories
from tests.conftest import ROLES, expected_status


def _url(deal) -> str:
    return f"/api/deals/{deal.pk}"


@pytest.mark.parametrize("role", ROLES)
def test_role_matrix_get(cast, role):
    response = cast.client(role).get(_url(cast.deal))
    assert response.status_code == expected_status(role, minimum="viewer", ok=200)
    if response.status_code == 200:
        body = response.json()
        assert body["deal_id"] == str(cast.deal.pk)
        assert body["user_role"] == role
        assert body["org_id"] == str(cast.org.pk)


@pytest.mark.parametrize("role", ROLES)
def test_role_matrix_patch(cast, role):
    response = cast.client(role).patch(_url(cast.deal), {"name": "Renamed"}, format="json")
    assert response.status_code == expected_status(role, minimum="editor", ok=200)
    cast.deal.refresh_from_db()
    assert (cast.deal.name == "Renamed") == (response.status_code == 200)


@pytest.mark.parametrize("role", ROLES)
def test_role_matrix_delete(cast, role):
    response = cast.client(role).delete(_url(cast.deal))
    assert response.status_code == expected_status(role, minimum="owner", ok=204)
    assert Deal.objects.filter(pk=cast.deal.pk).exists() == (response.status_code != 204)


def test_only_owners_change_visibility(cast):
    assert cast.client("editor").patch(_url(cast.deal), {"visibility": "org"}, format="json").status_code == 403
    response = cast.client("owner").patch(_url(cast.deal), {"visibility": "org"}, format="json")
    assert response.status_code == 200
    assert response.json()["visibility"] == "org"
    # now every org member sees it as viewer
    assert cast.client("member").get(_url(cast.deal)).json()["user_role"] == "viewer"


def test_patch_needs_at_least_one_field(cast):
    response = cast.client("owner").patch(_url(cast.deal), {}, format="json")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body"]


@pytest.mark.parametrize("role", ROLES)
def test_role_matrix_create(cast, role):
    response = cast.client(role).post("/api/deals", {"name": "New deal"}, format="json")
    # creating needs an org: anonymous 401; users in exactly one org create in it; users in none 403
    expected = {"anonymous": 401, "outsider": 403, "superadmin": 403}.get(role, 201)
    assert response.status_code == expected, response.content


def test_create_makes_the_creator_owner(cast):
    response = cast.client("viewer").post(
        "/api/deals", {"name": "  Harbor Point  ", "template_key": "development", "visibility": "org"}, format="json"
    )
    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "Harbor Point"
    assert body["user_role"] == "owner"
    assert body["template_key"] == "development"
    assert body["document_state"] == "draft"
    assert DealAccess.objects.get(deal_id=body["deal_id"], user=cast.users["viewer"]).role == DealRole.OWNER


def test_create_in_a_named_org_needs_membership(cast):
    # another tenant's org is not found (404), as every other object of another tenant; nothing is created
    before = Deal.objects.count()
    response = cast.client("owner").post("/api/deals", {"name": "X", "org_id": str(cast.other_org.pk)}, format="json")
    assert response.status_code == 404
    assert response.json() == {"detail": "No org of yours has this id."}
    assert Deal.objects.count() == before


def test_create_in_no_org_is_403(cast):
    response = cast.client("outsider").post("/api/deals", {"name": "X"}, format="json")
    assert response.status_code == 403
    assert "belong to no org" in response.json()["detail"]


def test_create_with_several_orgs_needs_org_id(cast):
    factories.add_member(cast.other_org, cast.users["owner"])
    response = cast.client("owner").post("/api/deals", {"name": "X"}, format="json")
    assert response.status_code == 422
    assert "several orgs" in response.json()["detail"][0]["msg"]
    response = cast.client("owner").post("/api/deals", {"name": "X", "org_id": str(cast.other_org.pk)}, format="json")
    assert response.status_code == 201
    assert response.json()["org_id"] == str(cast.other_org.pk)


@pytest.mark.parametrize(
    ("payload", "loc"),
    [
        ({}, ["body", "name"]),
        ({"name": ""}, ["body", "name"]),
        ({"name": "x" * 201}, ["body", "name"]),
        ({"name": "ok", "visibility": "public"}, ["body", "visibility"]),
        ({"name": "ok", "template_key": "nope"}, ["body", "template_key"]),
        ({"name": "ok", "org_id": "not-a-uuid"}, ["body", "org_id"]),
        ({"name": "ok", "colour": "red"}, ["body", "colour"]),
    ],
)
def test_create_validation_errors_are_422_in_the_seed_shape(cast, payload, loc):
    response = cast.client("owner").post("/api/deals", payload, format="json")
    assert response.status_code == 422
    items = response.json()["detail"]
    assert any(item["loc"] == loc for item in items), items
    for item in items:
        assert set(item) == {"loc", "msg", "type", "input", "ctx"}
    assert not Deal.objects.exclude(pk=cast.deal.pk).exists()


class TestBatchDelete:
    def _post(self, client, ids):
        return client.post("/api/deals/batch_delete", {"deal_ids": [str(i) for i in ids]}, format="json")

    def test_it_deletes_every_owned_deal(self, cast):
        second = factories.make_deal(cast.org, owner=cast.users["owner"], name="Second")
        response = self._post(cast.client("owner"), [cast.deal.pk, second.pk])
        assert response.status_code == 200
        assert response.json()["count"] == 2
        assert not Deal.objects.filter(pk__in=[cast.deal.pk, second.pk]).exists()

    def test_it_deletes_nothing_when_one_is_not_owned(self, cast):
        mine = factories.make_deal(cast.org, owner=cast.users["editor"], name="Mine")
        response = self._post(cast.client("editor"), [mine.pk, cast.deal.pk])
        assert response.status_code == 403
        assert str(cast.deal.pk) in response.json()["detail"]
        assert Deal.objects.filter(pk=mine.pk).exists()

    def test_it_deletes_nothing_when_one_is_invisible(self, cast):
        theirs = factories.make_deal(cast.other_org, owner=cast.users["other_org"], name="Theirs")
        response = self._post(cast.client("owner"), [cast.deal.pk, theirs.pk])
        assert response.status_code == 404
        assert Deal.objects.filter(pk__in=[cast.deal.pk, theirs.pk]).count() == 2

    @pytest.mark.parametrize("role", ROLES)
    def test_role_matrix(self, cast, role):
        response = self._post(cast.client(role), [cast.deal.pk])
        assert response.status_code == expected_status(role, minimum="owner", ok=200)

    @pytest.mark.parametrize("payload", [{}, {"deal_ids": []}, {"deal_ids": ["x"]}, {"deal_ids": "abc"}])
    def test_bad_bodies_are_422(self, cast, payload):
        response = cast.client("owner").post("/api/deals/batch_delete", payload, format="json")
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"][:2] == ["body", "deal_ids"]


class TestBlankCanvas:
    @pytest.mark.parametrize("role", ROLES)
    def test_role_matrix(self, cast, role):
        response = cast.client(role).post("/api/canvas/blank", {"deal_name": "Blank"}, format="json")
        expected = {"anonymous": 401, "outsider": 403, "superadmin": 403}.get(role, 201)
        assert response.status_code == expected

    def test_it_creates_a_blank_deal_and_says_where_to_go(self, cast):
        response = cast.client("editor").post("/api/canvas/blank", {"deal_name": "Napkin deal"}, format="json")
        assert response.status_code == 201
        body = response.json()
        assert set(body) == {"deal_id", "redirect_url"}
        assert body["redirect_url"].endswith(body["deal_id"])
        deal = Deal.objects.get(pk=body["deal_id"])
        assert deal.created_blank and deal.name == "Napkin deal"
        assert DealAccess.objects.get(deal=deal, user=cast.users["editor"]).role == "owner"

    @pytest.mark.parametrize("name", ["", "   ", "x" * 201])
    def test_deal_name_must_be_1_to_200_chars(self, cast, name):
        response = cast.client("editor").post("/api/canvas/blank", {"deal_name": name}, format="json")
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["body", "deal_name"]


def test_deleting_a_deal_discards_its_memo_and_redis_state(cast, django_capture_on_commit_callbacks):
    from canvas.memo.store import read_memo, read_snapshots
    from canvas_project import keys
    from canvas_project.redis_client import get_redis
    from tests.canvas.conftest import full_memo, save

    save(cast.client("owner"), cast.deal, full_memo())
    cast.client("viewer").get(f"/api/canvas/{cast.deal.pk}")
    assert get_redis().exists(keys.session_key(cast.deal.pk), keys.events_key(cast.deal.pk)) == 2
    with django_capture_on_commit_callbacks(execute=True):
        assert cast.client("owner").delete(_url(cast.deal)).status_code == 204
    assert read_memo(cast.deal.pk) is None
    assert read_snapshots(cast.deal.pk, [1]) == []
    assert get_redis().exists(keys.session_key(cast.deal.pk), keys.events_key(cast.deal.pk)) == 0


def test_deleting_a_deal_deletes_its_stored_files(cast, django_capture_on_commit_callbacks):
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from deals.models import Document

    document = Document(
        deal=cast.deal, filename="om.txt", content_type="text/plain", kind="txt", size=5, sha256="0" * 64
    )
    document.file.save("om.txt", ContentFile(b"hello"), save=True)
    name = document.file.name
    assert default_storage.exists(name)
    with django_capture_on_commit_callbacks(execute=True):
        assert cast.client("owner").delete(_url(cast.deal)).status_code == 204
    assert not default_storage.exists(name)
