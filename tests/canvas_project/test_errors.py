"""The error contract: 422 in the seeds' shape, {detail} for everything else, never a 500 for bad input."""

from __future__ import annotations

import pytest

from tests import factories

SEED_ITEM_KEYS = {"loc", "msg", "type", "input", "ctx"}


def test_malformed_json_is_422_at_body(cast):
    client = cast.client("owner")
    response = client.generic("POST", "/api/deals", "{not json", content_type="application/json")
    assert response.status_code == 422
    item = response.json()["detail"][0]
    assert set(item) == SEED_ITEM_KEYS
    assert item["loc"] == ["body"] and item["type"] == "json_invalid"


@pytest.mark.parametrize("body", ["[]", '"text"', "42", "null"])
def test_a_body_that_is_not_an_object_is_422(cast, body):
    response = cast.client("owner").generic("POST", "/api/deals", body, content_type="application/json")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body"]


def test_the_wrong_content_type_is_415(cast):
    response = cast.client("owner").generic("POST", "/api/deals", "name=x", content_type="text/plain")
    assert response.status_code == 415
    assert isinstance(response.json()["detail"], str)


def test_an_unknown_method_is_405(cast):
    response = cast.client("owner").put(f"/api/deals/{cast.deal.pk}", {}, format="json")
    assert response.status_code == 405
    assert isinstance(response.json()["detail"], str)


@pytest.mark.parametrize("path", ["/api/nothing-here", "/api/deals/", "/api/canvas/blank/extra"])
def test_unknown_api_paths_are_json_404(cast, path):
    response = cast.client("owner").get(path)
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


@pytest.mark.parametrize("deal_id", ["not-a-uuid", "123", "%00", "ab4fe31d-ddb6-45d2-9ce7-20be53d9789c-0"])
def test_malformed_deal_ids_are_404_not_500(cast, deal_id):
    response = cast.client("owner").get(f"/api/deals/{deal_id}")
    assert response.status_code == 404
    assert response.json() == {"detail": "Deal not found."}


def test_validation_items_carry_the_offending_input(cast):
    response = cast.client("owner").post("/api/deals", {"name": "ok", "visibility": "public"}, format="json")
    item = response.json()["detail"][0]
    assert item["loc"] == ["body", "visibility"]
    assert item["input"] == "public"


def test_nested_list_errors_point_at_the_item(cast):
    response = cast.client("owner").post(
        "/api/deals/batch_delete", {"deal_ids": [str(cast.deal.pk), "nope"]}, format="json"
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "deal_ids", 1]
    assert response.json()["detail"][0]["input"] == "nope"


def test_huge_and_odd_unicode_input_is_422_not_500(cast):
    client = cast.client("owner")
    for name in ["x" * 100_000, "tab\tand\nnewline", "emoji 🏢"]:
        response = client.post("/api/deals", {"name": name}, format="json")
        assert response.status_code in (201, 422), (name[:10], response.status_code)
    assert factories  # the cast's users are intact


@pytest.mark.parametrize("raw", ['{"name": "a\\u0000b"}', '{"name": "\\ud800"}', '{"\\ud800": 1}'])
def test_text_postgresql_cannot_store_is_422(cast, raw):
    response = cast.client("owner").generic("POST", "/api/deals", raw, content_type="application/json")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body"]


def test_a_nul_in_query_text_is_422(cast):
    response = cast.client("owner").get("/api/dashboard/memos?q=%00")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "q"]


def test_invalid_utf8_in_the_query_string_is_replaced_not_a_500(cast):
    response = cast.client("owner").get("/api/dashboard/memos?q=%ED%A0%80")
    assert response.status_code == 200
    assert response.json()["results"] == []
