"""OWASP API5 (broken function level authorization): three kinds of caller, three separate doors.

Users authenticate with JWTs and act on deals by role; engines authenticate with the internal engine
token and reach only the internal contract and the minting of deal-scoped tokens; superadmins reach
the purge and footprint endpoints, the admin and /metrics. No credential opens another kind's door.
"""

from __future__ import annotations

import pytest

from tests import factories
from tests.canvas.conftest import canvas_url

ENGINE_TOKEN = "test-engine-token-primary"


def _user_endpoints(deal) -> list[tuple[str, str]]:
    return [
        ("get", "/api/dashboard/memos"),
        ("get", canvas_url(deal)),
        ("post", canvas_url(deal, "save")),
        ("get", f"/api/deals/{deal.pk}/documents"),
        ("post", "/api/superadmin/purge_deals"),
        ("get", f"/api/superadmin/deals/{deal.pk}/redis"),
        # last: the SSE view hands its database connection back, which ends a test's transaction
        ("get", canvas_url(deal, "events")),
    ]


def test_the_engine_token_is_not_a_user_or_superadmin_credential(cast):
    engine = factories.client_for(token=ENGINE_TOKEN)
    # the token does open its own doors...
    minted = engine.post(
        "/api/auth/token/deal", {"user_id": str(cast.users["viewer"].pk), "deal_id": str(cast.deal.pk)}, format="json"
    )
    assert minted.status_code == 201
    # ...and no other
    for method, path in _user_endpoints(cast.deal):
        response = getattr(engine, method)(path, {}, format="json") if method == "post" else engine.get(path)
        assert response.status_code == 401, (path, response.content)


@pytest.mark.parametrize("role", ["superadmin", "owner"])
def test_a_user_jwt_never_opens_the_internal_contract(cast, role):
    client = cast.client(role)
    headers = {
        "HTTP_X_CONTRACT_VERSION": "2026-02",
        "HTTP_X_USER_ID": str(cast.users["owner"].pk),
        "HTTP_X_PROJECT_ID": str(cast.deal.pk),
        "HTTP_X_THREAD_ID": str(cast.deal.pk),
    }
    context = client.get(
        f"/api/internal/canvas/context?projectId={cast.deal.pk}&threadId={cast.deal.pk}&agentId=a", **headers
    )
    mutations = client.post(
        "/api/internal/canvas/mutations",
        {"agent_id": "a", "mutations": []},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k-1",
        **headers,
    )
    for response in (context, mutations):
        assert response.status_code == 401
        assert response.json()["success"] is False and response.json()["error"]["code"]


def test_a_deal_owner_cannot_reach_superadmin_functions(cast, client):
    owner = cast.client("owner")
    purge = owner.post(
        "/api/superadmin/purge_deals", {"mode": "by_deal", "deal_ids": [str(cast.deal.pk)]}, format="json"
    )
    footprint = owner.get(f"/api/superadmin/deals/{cast.deal.pk}/redis")
    mint = owner.post(
        "/api/auth/token/deal", {"user_id": str(cast.users["owner"].pk), "deal_id": str(cast.deal.pk)}, format="json"
    )
    assert (purge.status_code, footprint.status_code, mint.status_code) == (403, 403, 403)
    # a user's bearer token is not the metrics token, and a non-staff session does not open the admin
    assert owner.get("/metrics").status_code == 401
    client.force_login(cast.users["owner"])
    assert client.get("/admin/").status_code == 302
    assert client.get("/metrics").status_code == 401
