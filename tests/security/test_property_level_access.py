"""OWASP API3 (broken object property level authorization): no mass assignment, no over-sharing.

Every request serializer lists the properties a caller may send and refuses the rest
(`extra_forbidden`), so server-owned properties (org, version, state, who granted) cannot be set
through a body; response serializers list what goes out, so user rows never carry secrets.
"""

from __future__ import annotations

import json

import pytest

from deals.models import Deal, DealAccess
from tests.canvas.conftest import canvas_url


def _refused_fields(response) -> set[str]:
    assert response.status_code == 422, response.content
    return {item["loc"][1] for item in response.json()["detail"] if item["type"] == "extra_forbidden"}


@pytest.mark.parametrize(
    ("role", "method", "path", "body", "forbidden"),
    [
        (
            "owner",
            "patch",
            "deal",
            {
                "name": "Renamed",
                "org_id": "ORG_B",
                "memo_version": 99,
                "document_state": "approved",
                "created_by": "OUTSIDER",
            },
            {"org_id", "memo_version", "document_state", "created_by"},
        ),
        (
            "editor",
            "post",
            "save",
            {"content": "## Executive Summary\n\nText.", "version": 50, "document_state": "approved"},
            {"version", "document_state"},
        ),
        (
            "editor",
            "put",
            "sections/executive_summary",
            {"markdown": "Text.", "state": "approved", "source": "ai"},
            {"state", "source"},
        ),
        ("owner", "post", "access", {"user_id": "MEMBER", "role": "viewer", "granted_by": "OUTSIDER"}, {"granted_by"}),
        (
            "commenter",
            "post",
            "comments",
            {"section_key": "executive_summary", "body": "Hm.", "resolved": True, "author_id": "OWNER"},
            {"resolved", "author_id"},
        ),
    ],
)
def test_server_owned_properties_cannot_be_set_through_a_body(cast, role, method, path, body, forbidden):
    names = {
        "ORG_B": cast.other_org.pk,
        "OUTSIDER": cast.users["outsider"].pk,
        "MEMBER": cast.users["member"].pk,
        "OWNER": cast.users["owner"].pk,
    }
    body = {key: str(names[value]) if value in names else value for key, value in body.items()}
    url = (
        f"/api/deals/{cast.deal.pk}"
        if path == "deal"
        else (f"/api/deals/{cast.deal.pk}/access" if path == "access" else canvas_url(cast.deal, path))
    )
    before = Deal.objects.values().get(pk=cast.deal.pk)
    grants_before = set(DealAccess.objects.filter(deal=cast.deal).values_list("user_id", "role"))

    response = getattr(cast.client(role), method)(url, body, format="json")

    assert _refused_fields(response) == forbidden
    # refused whole: not even the allowed properties of the same body were applied
    assert Deal.objects.values().get(pk=cast.deal.pk) == before
    assert set(DealAccess.objects.filter(deal=cast.deal).values_list("user_id", "role")) == grants_before


def test_no_response_carries_a_password_hash_or_a_token_secret(cast, settings):
    owner_client = cast.client("owner")
    cast.client("commenter").post(
        canvas_url(cast.deal, "comments"),
        {"section_key": "executive_summary", "body": "Check the rent roll."},
        format="json",
    )
    responses = [
        owner_client.get("/api/orgs"),
        owner_client.get(f"/api/orgs/{cast.org.pk}/members"),
        owner_client.get(f"/api/deals/{cast.deal.pk}/access"),
        owner_client.get(f"/api/deals/{cast.deal.pk}"),
        owner_client.get("/api/dashboard/memos"),
        owner_client.get(canvas_url(cast.deal)),
        owner_client.get(canvas_url(cast.deal, "comments")),
        owner_client.get(canvas_url(cast.deal, "presence")),
    ]
    assert all(response.status_code == 200 for response in responses), [r.content for r in responses]
    text = "\n".join(response.content.decode() for response in responses)
    for user in cast.users.values():
        user.refresh_from_db()
        assert user.password and user.password not in text
    assert "password" not in text.lower()
    for secret in (settings.SECRET_KEY, settings.SIMPLE_JWT["SIGNING_KEY"], *settings.INTERNAL_ENGINE_TOKENS):
        assert secret not in text
    # the sharing list says who has access with what role, and nothing more about them
    rows = json.loads(responses[2].content)["results"]
    assert {frozenset(row) for row in rows} == {
        frozenset({"user_id", "email", "username", "display_name", "role", "granted_by", "created_at", "updated_at"})
    }
