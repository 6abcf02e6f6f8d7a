"""One cursor pagination for every list (canvas_project.api.pagination): `{results, next, previous}`,
`?page_size=` and `?cursor=`, stable under concurrent inserts, and absurd input is a 422 at the
parameter, never a 500."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from django.core import signing
from drf_spectacular.generators import SchemaGenerator

from canvas.models import Comment, Suggestion
from canvas_project.api.pagination import CURSOR_SALT
from deals.models import DealAccess, Visibility
from tests import factories

HUGE = "9223372036854775808"  # one past a PostgreSQL bigint: an OFFSET of it used to overflow (a 500)

# every list, under the cast's deal and org (the paths the OpenAPI document names in OPERATIONS)
LISTS = [
    "/api/dashboard/memos",
    "/api/orgs",
    "/api/orgs/{org}/members",
    "/api/deals/{deal}/access",
    "/api/deals/{deal}/documents",
    "/api/canvas/{deal}/comments",
    "/api/canvas/{deal}/suggestions",
    "/api/canvas/{deal}/brush",
    "/api/canvas/{deal}/nodes",
    "/api/canvas/{deal}/runs",
    "/api/canvas/{deal}/versions",
    "/api/v1/threads?project_id={deal}",
]
OPERATIONS = {
    "/api/dashboard/memos": "dashboard_memos",
    "/api/orgs": "orgs_list",
    "/api/orgs/{org_id}/members": "org_members_list",
    "/api/deals/{deal_id}/access": "deal_access_list",
    "/api/deals/{deal_id}/documents": "deal_documents_list",
    "/api/deals/{deal_id}/documents/{doc_id}/pages": "deal_documents_pages",
    "/api/canvas/{deal_id}/comments": "canvas_comments_list",
    "/api/canvas/{deal_id}/suggestions": "canvas_suggestions_list",
    "/api/canvas/{deal_id}/brush": "canvas_brush_list",
    "/api/canvas/{deal_id}/nodes": "canvas_nodes_list",
    "/api/canvas/{deal_id}/runs": "canvas_runs_list",
    "/api/canvas/{deal_id}/versions": "canvas_versions",
    "/api/v1/threads": "chat_threads",
}

BAD_PAGE_SIZES = ["0", "-1", "201", "abc", "1.5", "1e3", "", HUGE, f"-{HUGE}", str(2**63), "10" * 40, "٣"]
BAD_CURSORS = ["garbage", "x" * 3000, "", "%00", "eyJ9"]


def _url(cast, path: str) -> str:
    return path.format(deal=cast.deal.pk, org=cast.org.pk)


def _join(url: str, query: str) -> str:
    return url + ("&" if "?" in url else "?") + query


def _cursor_of(link: str) -> str:
    return parse_qs(urlsplit(link).query)["cursor"][0]


def _walk(client, url: str, *, between=None, key="id") -> list:
    """Every row of the list, page by page along `next`; `between(n)` runs after page n."""
    seen, pages = [], 0
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.content[:300]
        body = response.json()
        assert set(body) >= {"results", "next", "previous"}
        seen.extend(row[key] for row in body["results"])
        url = body["next"]
        pages += 1
        if between is not None:
            between(pages)
        assert pages < 100
    return seen


# --- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize("value", BAD_PAGE_SIZES)
def test_an_absurd_page_size_is_a_422_at_the_parameter(cast, path, value):
    response = cast.client("owner").get(_join(_url(cast, path), "page_size=" + value))
    assert response.status_code == 422, response.content[:300]
    assert [item["loc"] for item in response.json()["detail"]] == [["query", "page_size"]]


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize("value", BAD_CURSORS)
def test_a_bad_cursor_is_a_422_at_the_parameter(cast, path, value):
    response = cast.client("owner").get(_join(_url(cast, path), "cursor=" + value))
    assert response.status_code == 422, response.content[:300]
    assert [item["loc"] for item in response.json()["detail"]] == [["query", "cursor"]]


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize("param", ["page", "offset", "limit"])
def test_the_retired_page_parameters_are_a_422_that_names_the_cursor(cast, path, param):
    response = cast.client("owner").get(_join(_url(cast, path), f"{param}={HUGE}"))
    assert response.status_code == 422, response.content[:300]
    (item,) = response.json()["detail"]
    assert item["loc"] == ["query", param]
    assert "no longer supported" in item["msg"] and "cursor" in item["msg"]


def _comments(cast, n: int) -> list[Comment]:
    return [
        Comment.objects.create(deal=cast.deal, author=cast.users["owner"], section_key="risks", body=f"c{i}")
        for i in range(n)
    ]


def test_a_forged_or_foreign_cursor_is_a_422(cast):
    _comments(cast, 3)
    client = cast.client("owner")
    url = f"/api/canvas/{cast.deal.pk}/comments?page_size=1"
    cursor = _cursor_of(client.get(url).json()["next"])
    # the same cursor works...
    assert client.get(f"{url}&cursor={cursor}").status_code == 200
    # ...a tampered one does not: its position never reaches SQL
    payload = signing.loads(cursor, salt=CURSOR_SALT)
    payload["p"] = ["not a date", "not a uuid"]
    forged = signing.dumps(payload, salt="something else")
    assert client.get(f"{url}&cursor={forged}").status_code == 422
    assert client.get(f"{url}&cursor={cursor[:-2]}").status_code == 422
    # a cursor of another list (suggestions) or of another deal's comments is refused
    assert client.get(f"/api/canvas/{cast.deal.pk}/suggestions?cursor={cursor}").status_code == 422
    other = factories.make_deal(cast.org, owner=cast.users["owner"], name="Other")
    assert client.get(f"/api/canvas/{other.pk}/comments?cursor={cursor}").status_code == 422


# --- the envelope --------------------------------------------------------------------------------
@pytest.mark.parametrize("path", LISTS)
def test_every_list_answers_the_envelope(cast, path):
    response = cast.client("owner").get(_url(cast, path))
    assert response.status_code == 200, response.content[:300]
    body = response.json()
    assert isinstance(body["results"], list)
    assert body["next"] is None and body["previous"] is None  # one page: no links


def test_page_size_defaults_to_50_and_links_are_absolute(cast):
    _comments(cast, 51)
    body = cast.client("owner").get(f"/api/canvas/{cast.deal.pk}/comments").json()
    assert len(body["results"]) == 50
    assert body["next"].startswith("http://testserver/api/canvas/") and body["previous"] is None
    last = cast.client("owner").get(body["next"]).json()
    assert len(last["results"]) == 1 and last["next"] is None
    assert last["previous"].startswith("http://testserver/")


def test_page_size_200_is_allowed(cast):
    _comments(cast, 3)
    body = cast.client("owner").get(f"/api/canvas/{cast.deal.pk}/comments?page_size=200").json()
    assert len(body["results"]) == 3 and body["next"] is None


# --- stability ----------------------------------------------------------------------------------
def test_inserts_between_pages_lose_and_repeat_nothing(cast):
    """Comments are oldest first: rows inserted while a client pages come at the end, and every row that
    existed when it started is listed exactly once."""
    before = [str(c.pk) for c in _comments(cast, 7)]
    client = cast.client("owner")
    seen = _walk(
        client,
        f"/api/canvas/{cast.deal.pk}/comments?page_size=3",
        between=lambda page: _comments(cast, 2) if page < 3 else None,
    )
    assert len(seen) == len(set(seen))
    assert seen[: len(before)] == before
    assert set(seen) == {str(pk) for pk in Comment.objects.filter(deal=cast.deal).values_list("pk", flat=True)}


def test_newest_first_lists_are_stable_under_inserts_and_deletes(cast):
    """Suggestions are newest first: an insert lands before the cursor (not listed in this walk), a delete
    shifts nothing (an offset would have skipped a row)."""
    client = cast.client("owner")
    made = []
    for i in range(8):
        response = client.post(
            f"/api/canvas/{cast.deal.pk}/suggestions",
            {"section_key": "risks", "kind": "insert", "content": f"s{i}"},
            format="json",
        )
        assert response.status_code == 201, response.content[:300]
        made.append(response.json()["id"])

    def meddle(page):
        if page == 1:  # a new one, and one already listed is deleted
            client.post(
                f"/api/canvas/{cast.deal.pk}/suggestions",
                {"section_key": "risks", "kind": "insert", "content": "late"},
                format="json",
            )

            Suggestion.objects.filter(pk=made[-1]).delete()

    seen = _walk(client, f"/api/canvas/{cast.deal.pk}/suggestions?page_size=3", between=meddle)
    assert seen == list(reversed(made))


def test_previous_walks_back_to_the_same_pages(cast):
    _comments(cast, 7)
    client = cast.client("owner")
    first = client.get(f"/api/canvas/{cast.deal.pk}/comments?page_size=3").json()
    second = client.get(first["next"]).json()
    third = client.get(second["next"]).json()
    assert len(third["results"]) == 1 and third["next"] is None
    back = client.get(third["previous"]).json()
    assert [r["id"] for r in back["results"]] == [r["id"] for r in second["results"]]
    front = client.get(back["previous"]).json()
    assert [r["id"] for r in front["results"]] == [r["id"] for r in first["results"]]
    assert front["previous"] is None


# --- the dashboard: filters and every ordering ---------------------------------------------------
@pytest.mark.parametrize("ordering", ["updated", "-updated", "created", "-created", "name", "-name"])
def test_the_dashboard_pages_every_ordering_with_its_filters(cast, ordering):
    owner = cast.users["owner"]
    # ties on purpose: three deals of one name (the id breaks the tie), and one that the filter excludes
    for name in ["Harbor", "Harbor", "Harbor", "Alder Harbor", "Birch Harbor", "Cedar Harbor", "Zephyr"]:
        factories.make_deal(cast.org, owner=owner, name=name, visibility=Visibility.ORG)
    client = cast.client("owner")
    full = client.get(f"/api/dashboard/memos?q=harbor&ordering={ordering}&page_size=200").json()["results"]
    assert len(full) == 6 and all("Harbor" in row["deal_name"] for row in full)
    walked = _walk(client, f"/api/dashboard/memos?q=harbor&ordering={ordering}&page_size=2", key="deal_id")
    assert walked == [row["deal_id"] for row in full]
    # the filters ride along in the links; a cursor is bound to its ordering
    first = client.get(f"/api/dashboard/memos?q=harbor&ordering={ordering}&page_size=2").json()
    assert "q=harbor" in first["next"] and f"ordering={ordering.replace('-', '%2D')}" in first["next"].replace(
        "-", "%2D"
    )
    other = "created" if ordering != "created" else "name"
    swapped = first["next"].replace(f"ordering={ordering}", f"ordering={other}")
    assert client.get(swapped).status_code == 422


def test_the_dashboard_scope_filter_pages(cast):
    owner = cast.users["owner"]
    for i in range(5):
        factories.make_deal(cast.org, owner=owner, name=f"Owned {i}")
    shared = factories.make_deal(cast.org, owner=cast.users["editor"], name="Shared")
    DealAccess.objects.create(deal=shared, user=owner, role="viewer")
    walked = _walk(cast.client("owner"), "/api/dashboard/memos?scope=owned&page_size=2", key="deal_name")
    assert sorted(walked) == sorted([f"Owned {i}" for i in range(5)] + ["Riverside Apartments"])


# --- a list not backed by a queryset: the Store's versions -----------------------------------------
def test_versions_page_through_the_store_newest_first_under_saves(cast):
    client = cast.client("editor")
    url = f"/api/canvas/{cast.deal.pk}/save"
    for i in range(5):
        assert client.post(url, {"content": f"## Risks\n\nv{i}"}, format="json").status_code == 200
    listed = client.get(f"/api/canvas/{cast.deal.pk}/versions?page_size=200").json()
    numbers = [row["version"] for row in listed["results"]]
    assert numbers == sorted(numbers, reverse=True) and len(numbers) == 5
    seen = _walk(
        client,
        f"/api/canvas/{cast.deal.pk}/versions?page_size=2",
        key="version",
        between=lambda page: client.post(url, {"content": f"## Risks\n\nlate {page}"}, format="json"),
    )
    assert seen == numbers


# --- the schema -----------------------------------------------------------------------------------
def test_every_list_documents_the_envelope_and_its_parameters(db):
    document = SchemaGenerator().get_schema(request=None, public=True)
    schemas = document["components"]["schemas"]
    for path, operation_id in OPERATIONS.items():
        operation = document["paths"][path]["get"]
        assert operation["operationId"] == operation_id
        parameters = {p["name"]: p["schema"] for p in operation["parameters"]}
        assert parameters["page_size"]["minimum"] == 1 and parameters["page_size"]["maximum"] == 200, path
        assert parameters["cursor"]["type"] == "string", path
        assert not {"page", "offset", "limit"} & set(parameters), path
        ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        envelope = schemas[ref.rsplit("/", 1)[1]]
        assert {"results", "next", "previous"} <= set(envelope["required"]), path
        assert envelope["properties"]["results"]["type"] == "array", path
        assert envelope["properties"]["next"]["nullable"] is True, path
        assert "422" in operation["responses"], path
