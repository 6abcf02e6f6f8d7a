"""The OpenAPI document: builds without warnings, covers every API route, serves its UIs."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from django.core.management import call_command
from django.urls import get_resolver
from django.urls.resolvers import URLPattern, URLResolver


def _as_openapi_path(route: str) -> str:
    """A URL pattern as the OpenAPI document writes it: `path()` converters and the routers' regex groups
    become `{name}`."""
    route = route.replace("^", "").replace("$", "")
    route = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", route)
    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)


def _api_routes(resolver=None, prefix="") -> set[str]:
    routes: set[str] = set()
    for entry in (resolver or get_resolver()).url_patterns:
        if isinstance(entry, URLResolver):
            routes |= _api_routes(entry, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            route = prefix + str(entry.pattern)
            if route.startswith("api/") and not route.startswith(("api/schema", "api/docs", "api/redoc", "^api")):
                routes.add(_as_openapi_path(route))
    return routes


@pytest.fixture(scope="module")
def schema(django_db_blocker) -> dict:
    from drf_spectacular.generators import SchemaGenerator

    with django_db_blocker.unblock():
        return SchemaGenerator().get_schema(request=None, public=True)


def test_it_builds_and_validates_without_warnings(db):
    out = io.StringIO()
    # --fail-on-warn turns any drf-spectacular warning (an untyped field, a guessed path parameter,
    # a name collision) into an error.
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)
    assert "openapi: 3" in out.getvalue()


def _refs(node, where: str = "#"):
    """(where, target) of every `$ref` in the document, at any depth."""
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield where, node["$ref"]
        for key, value in node.items():
            yield from _refs(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _refs(value, f"{where}/{index}")


def _resolves(document: dict, ref: str) -> bool:
    if not ref.startswith("#/"):
        return False  # the document is self-contained: no reference leaves it
    node = document
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def test_every_reference_resolves(schema):
    refs = list(_refs(schema))
    assert len(refs) > 100  # the walk really went through the document
    dangling = [(where, ref) for where, ref in refs if not _resolves(schema, ref)]
    assert dangling == []


def test_every_api_route_is_documented(schema):
    assert _api_routes() == set(schema["paths"]), "a route is missing from (or extra in) the schema"


def test_every_operation_documents_its_errors_and_a_unique_id(schema):
    ids = []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            ids.append(operation["operationId"])
            responses = operation["responses"]
            if operation.get("security") != [] and path != "/api/health":
                assert "401" in responses, (method, path)
            # deal_id never answers 422 (a malformed one is 404), nor do free-text path keys (unknown is 404);
            # query parameters and typed (uuid, integer) path parameters do
            validated = [
                p
                for p in operation.get("parameters", [])
                if p["name"] != "deal_id"
                and (
                    p["in"] == "query"
                    or (
                        p["in"] == "path"
                        and (p["schema"].get("format") == "uuid" or p["schema"].get("type") == "integer")
                    )
                )
            ]
            if path.startswith("/api/internal/"):  # the contract's own rules: 400 for bad input, never 422
                assert {"400", "401", "403", "500"} <= set(responses) and "422" not in responses, (method, path)
            elif operation.get("requestBody") or validated:
                assert "422" in responses, (method, path)
            if "422" in responses:
                ref = responses["422"]["content"]["application/json"]["schema"]["$ref"]
                assert ref.endswith("/HTTPValidationError")
    assert len(ids) == len(set(ids))


def test_deal_paths_name_their_parameters(schema):
    for path, operations in schema["paths"].items():
        for operation in operations.values():
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == {part[1:-1] for part in path.split("/") if part.startswith("{")}, path


def test_id_path_parameters_are_uuid_strings(schema):
    for path, operations in schema["paths"].items():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path" and parameter["name"] in ("deal_id", "user_id", "org_id"):
                    assert parameter["schema"] == {"type": "string", "format": "uuid"}, (path, parameter)


def test_validation_error_component_matches_the_seed(schema):
    item = schema["components"]["schemas"]["ValidationError"]
    assert set(item["properties"]) == {"loc", "msg", "type", "input", "ctx"}
    assert set(item["required"]) == {"loc", "msg", "type"}


@pytest.mark.parametrize("path", ["/api/schema/", "/api/docs/", "/api/redoc/"])
def test_schema_and_ui_pages_are_served(client, db, path):
    response = client.get(path)
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("query", "accept", "content_type"),
    [
        ("?format=json", None, "application/vnd.oai.openapi+json"),
        ("?format=json", "application/json", "application/json"),
        ("?format=json", "text/html", "application/vnd.oai.openapi+json"),  # a browser: the query string wins
        ("?format=yaml", None, "application/vnd.oai.openapi"),
        ("?format=yaml", "application/vnd.oai.openapi+json", "application/vnd.oai.openapi"),
        ("", None, "application/vnd.oai.openapi"),  # no format: YAML, as before
        ("", "application/vnd.oai.openapi+json", "application/vnd.oai.openapi+json"),
    ],
)
def test_the_schema_honours_format_then_accept(client, db, query, accept, content_type):
    headers = {"HTTP_ACCEPT": accept} if accept else {}
    response = client.get(f"/api/schema/{query}", **headers)
    assert response.status_code == 200
    assert response["Content-Type"].split(";")[0] == content_type
    body = response.content.decode()
    if "json" in content_type:
        assert json.loads(body)["openapi"].startswith("3.")
    else:
        assert body.startswith("openapi: 3")
    assert response["Content-Disposition"].endswith('.json"' if "json" in content_type else '.yaml"')


def test_an_unknown_schema_format_is_a_422(client, db):
    response = client.get("/api/schema/?format=xml")
    assert response.status_code == 422
    assert response["Content-Type"] == "application/json"
    assert response.json()["detail"][0]["loc"] == ["query", "format"]


@pytest.mark.parametrize("path", ["/api/schema/", "/api/docs/", "/api/redoc/"])
def test_schema_and_ui_pages_answer_errors_in_json(client, db, path):
    response = client.post(path)
    assert response.status_code == 405
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": 'Method "POST" not allowed.'}
    assert "GET" in response["Allow"]


def _operations(schema: dict) -> set[str]:
    return {
        f"{method.upper()} {path} {operation['operationId']}"
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in ("get", "post", "put", "patch", "delete")
    }


def test_no_operation_is_removed_or_renamed(schema):
    # generated clients call operations by these ids: the committed list may grow, never shrink
    committed = Path(__file__).with_name("openapi_operations.txt").read_text().splitlines()
    expected = {line for line in committed if line and not line.startswith("#")}
    missing = expected - _operations(schema)
    assert not missing, f"operations gone or renamed: {sorted(missing)}"
