"""OWASP API9 (improper inventory management) and API2: the OpenAPI document is the inventory, and
every operation in it but a short, named list of public ones refuses a caller without credentials."""

from __future__ import annotations

import re
import uuid

import pytest
from django.test import Client

# The only operations a caller may use without a credential: logging in, the token checks, health, and accepting
# an org invitation with its emailed one-time code (the code is the credential: single use, expiring, revocable).
PUBLIC_OPERATIONS = {
    "auth_token_obtain",
    "auth_token_refresh",
    "auth_token_verify",
    "health",
    "invitations_accept_with_token",
}


@pytest.fixture(scope="module")
def schema(django_db_blocker) -> dict:
    from drf_spectacular.generators import SchemaGenerator

    with django_db_blocker.unblock():
        return SchemaGenerator().get_schema(request=None, public=True)


def _operations(schema: dict):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if isinstance(operation, dict) and "operationId" in operation:
                yield path, method, operation


def test_the_public_operations_are_exactly_the_named_ones(schema):
    public = {op["operationId"] for _path, _method, op in _operations(schema) if not op.get("security")}
    assert public == PUBLIC_OPERATIONS


def test_every_other_operation_is_401_without_credentials(db, schema):
    client = Client()
    checked = 0
    for path, method, operation in _operations(schema):
        if operation["operationId"] in PUBLIC_OPERATIONS:
            continue
        url = re.sub(r"\{[^}]+\}", lambda _match: str(uuid.uuid4()), path)
        # a plausible body, so nothing can be refused for its shape before the credential is checked
        response = (
            getattr(client, method)(url, data="{}", content_type="application/json")
            if method in ("post", "put", "patch")
            else getattr(client, method)(url)
        )
        assert response.status_code == 401, (method.upper(), path, response.status_code, response.content[:200])
        checked += 1
    assert checked == len(list(_operations(schema))) - len(PUBLIC_OPERATIONS) > 75
