"""Absurd paging input is a 422 at the parameter, never a 500: page, page_size and offset are bounded on
every list that takes them, and the OpenAPI document says so (minimum and maximum)."""

from __future__ import annotations

import pytest
from drf_spectacular.generators import SchemaGenerator

from canvas_project.api.fields import MAX_OFFSET, MAX_PAGE, MAX_PAGE_SIZE

HUGE = "9223372036854775808"  # one past a PostgreSQL bigint: the OFFSET used to overflow (NumericValueOutOfRange)

# (path under the cast's deal, or absolute; the parameters it pages with)
LISTS = [
    ("/api/dashboard/memos", ("page", "page_size")),
    ("/api/canvas/{deal}/runs", ("page", "page_size")),
    ("/api/canvas/{deal}/versions", ("page", "page_size")),
    ("/api/canvas/{deal}/nodes", ("offset", "limit")),
]
OPERATIONS = {
    "/api/dashboard/memos": ("page", "page_size"),
    "/api/canvas/{deal_id}/runs": ("page", "page_size"),
    "/api/canvas/{deal_id}/versions": ("page", "page_size"),
    "/api/canvas/{deal_id}/nodes": ("offset", "limit"),
}


def _cases():
    for path, params in LISTS:
        for param in params:
            for value in (HUGE, f"-{HUGE}", "1e309", str(10**30)):
                yield pytest.param(path, param, value, id=f"{path}?{param}={value[:12]}")


@pytest.mark.parametrize(("path", "param", "value"), list(_cases()))
def test_an_absurd_page_is_a_422_at_the_parameter(cast, path, param, value):
    response = cast.client("owner").get(path.format(deal=cast.deal.pk) + f"?{param}={value}")
    assert response.status_code == 422, response.content[:300]
    assert [item["loc"] for item in response.json()["detail"]] == [["query", param]]


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/api/dashboard/memos", f"page={MAX_PAGE}&page_size={MAX_PAGE_SIZE}"),
        ("/api/canvas/{deal}/runs", f"page={MAX_PAGE}&page_size={MAX_PAGE_SIZE}"),
        ("/api/canvas/{deal}/versions", f"page={MAX_PAGE}&page_size={MAX_PAGE_SIZE}"),
        ("/api/canvas/{deal}/nodes", f"offset={MAX_OFFSET}"),
    ],
)
def test_the_last_allowed_page_is_an_empty_page(cast, path, query):
    response = cast.client("owner").get(path.format(deal=cast.deal.pk) + f"?{query}")
    assert response.status_code == 200, response.content[:300]
    body = response.json()
    assert body["results"] == []


@pytest.mark.parametrize(("path", "query"), [(p, q) for p, (q, _) in OPERATIONS.items()])
def test_one_past_the_bound_is_a_422(cast, path, query):
    limit = MAX_OFFSET if query == "offset" else MAX_PAGE
    response = cast.client("owner").get(path.replace("{deal_id}", str(cast.deal.pk)) + f"?{query}={limit + 1}")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", query]


def test_the_schema_documents_the_bounds(db):
    document = SchemaGenerator().get_schema(request=None, public=True)
    for path, names in OPERATIONS.items():
        parameters = {p["name"]: p["schema"] for p in document["paths"][path]["get"]["parameters"]}
        for name in names:
            assert "minimum" in parameters[name] and "maximum" in parameters[name], (path, name, parameters[name])
