"""/api/canvas/{deal_id}/nodes: the frontend's view of canvas nodes and their links."""

from __future__ import annotations

import pytest

from tests.canvas.conftest import canvas_url
from tests.conftest import ROLES, expected_status


def _create(client, deal, **body):
    return client.post(canvas_url(deal, "nodes"), {"type": "strategy_item", "title": "Hold", **body}, format="json")


@pytest.mark.parametrize("role", ROLES)
def test_role_matrix_list_and_create(cast, written, role):
    assert cast.client(role).get(canvas_url(cast.deal, "nodes")).status_code == expected_status(
        role, minimum="viewer", ok=200
    )
    assert _create(cast.client(role), cast.deal).status_code == expected_status(role, minimum="commenter", ok=201)


@pytest.mark.parametrize("role", ROLES)
def test_role_matrix_update_and_delete(cast, written, role):
    node = _create(cast.client("owner"), cast.deal).json()
    url = canvas_url(cast.deal, f"nodes/{node['id']}")
    assert cast.client(role).patch(url, {"status": "approved"}, format="json").status_code == expected_status(
        role, minimum="editor", ok=200
    )
    assert cast.client(role).delete(url).status_code == expected_status(role, minimum="editor", ok=204)


@pytest.mark.parametrize("role", ROLES)
def test_role_matrix_links(cast, written, role):
    node = _create(cast.client("owner"), cast.deal).json()
    url = canvas_url(cast.deal, f"nodes/{node['id']}/links")
    assert cast.client(role).post(
        url, {"to": "section:risks", "type": "addresses"}, format="json"
    ).status_code == expected_status(role, minimum="commenter", ok=201)
    assert cast.client(role).delete(url + "?to=section:risks&type=addresses").status_code == expected_status(
        role, minimum="editor", ok=204
    )


def test_sections_comments_and_conditions_appear_as_derived_nodes(cast, written):
    cast.client("commenter").post(
        canvas_url(cast.deal, "comments"), {"section_key": "risks", "body": "Caps?"}, format="json"
    )
    cast.client("editor").post(
        canvas_url(cast.deal, "sections/financing/approve"), {"conditions": ["Term sheet"]}, format="json"
    )
    body = cast.client("viewer").get(canvas_url(cast.deal, "nodes")).json()
    types = [n["type"] for n in body["results"]]
    assert types.count("section") == 9 and types.count("comment") == 1 and types.count("approval_condition") == 1
    comment = next(n for n in body["results"] if n["type"] == "comment")
    assert body["relationships"][comment["id"]] == [{"to": "section:risks", "type": "comments_on"}]
    financing = next(n for n in body["results"] if n["id"] == "section:financing")
    assert financing["raw_status"] == "reviewed" and financing["status"] == "pending"


def test_filters(cast, written):
    _create(cast.client("commenter"), cast.deal, framework="swot", status="accepted")
    _create(cast.client("commenter"), cast.deal, framework="porter")
    client = cast.client("viewer")
    assert [
        n["framework"] for n in client.get(canvas_url(cast.deal, "nodes") + "?framework=swot").json()["results"]
    ] == ["swot"]
    approved = client.get(canvas_url(cast.deal, "nodes") + "?type=strategy_item&status=approve").json()
    assert len(approved["results"]) == 1


def test_derived_nodes_change_through_their_own_endpoints(cast, written):
    response = cast.client("editor").patch(
        canvas_url(cast.deal, "nodes/section:risks"), {"status": "approved"}, format="json"
    )
    assert response.status_code == 409
    assert cast.client("editor").delete(canvas_url(cast.deal, "nodes/section:nope")).status_code == 404


def test_deleting_a_node_removes_its_links(cast, written):
    node = _create(cast.client("commenter"), cast.deal).json()
    cast.client("commenter").post(
        canvas_url(cast.deal, f"nodes/{node['id']}/links"), {"to": "section:risks", "type": "addresses"}, format="json"
    )
    cast.client("editor").delete(canvas_url(cast.deal, f"nodes/{node['id']}"))
    body = cast.client("viewer").get(canvas_url(cast.deal, "nodes")).json()
    assert node["id"] not in body["relationships"] and all(n["id"] != node["id"] for n in body["results"])


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"type": "section", "title": "x"}, ["body", "type"]),
        ({"type": "Bad Type", "title": "x"}, ["body", "type"]),
        ({"title": "x"}, ["body", "type"]),
    ],
)
def test_bad_nodes_are_422(cast, written, body, loc):
    response = cast.client("commenter").post(canvas_url(cast.deal, "nodes"), body, format="json")
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == loc


def test_linking_to_an_unknown_node_is_422(cast, written):
    node = _create(cast.client("commenter"), cast.deal).json()
    response = cast.client("commenter").post(
        canvas_url(cast.deal, f"nodes/{node['id']}/links"), {"to": "section:nope", "type": "addresses"}, format="json"
    )
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "to"]
