"""POST /api/auth/stream-ticket, and `?ticket=` on the deal's event streams instead of the Authorization header.

The streams are async views that hand their connection back to the pool (canvas_project.sse.responses.released),
so the tests that open one are transactional. Opening a stream here only reads its status and headers; the
real-browser flow (another origin, reconnects, resume) is tests/canvas/test_stream_ticket_browser.py.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.test import override_settings

from canvas.models import RunStatus, SynthesisRun
from canvas_project.observability import ContextFilter
from deals.models import DealAccess
from deals.tokens import STREAM_TICKET_MAX_CHARS
from tests import factories

TICKET_URL = "/api/auth/stream-ticket"


def _mint(client, deal_id) -> dict:
    response = client.post(TICKET_URL, {"deal_id": str(deal_id)}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def _ticket(cast, role: str = "viewer", deal=None) -> str:
    return _mint(cast.client(role), (deal or cast.deal).pk)["ticket"]


def _open(client, path: str, ticket: str | None = None, **headers):
    """Open the stream at `path` (with `?ticket=` when given); returns (status, JSON body or None, response)."""
    url = path if ticket is None else f"{path}?ticket={ticket}"
    response = client.get(url, **headers)
    if response.streaming:
        assert response["Content-Type"].startswith("text/event-stream")
        response.close()
        return response.status_code, None, response
    return response.status_code, response.json(), response


def _anonymous():
    return factories.client_for(None)


def _events(deal) -> str:
    return f"/api/canvas/{deal.pk}/events"


# --- minting --------------------------------------------------------------------------------------------
@pytest.mark.django_db
@pytest.mark.parametrize("role", ["viewer", "commenter", "editor", "owner"])
def test_it_gives_every_member_a_ticket_until_stream_ticket_seconds(cast, role):
    before = datetime.now(tz=UTC)
    body = _mint(cast.client(role), cast.deal.pk)
    after = datetime.now(tz=UTC)
    assert set(body) == {"ticket", "expires_at"}
    expires = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    assert before + timedelta(seconds=299) <= expires <= after + timedelta(seconds=301)
    assert len(body["ticket"]) <= STREAM_TICKET_MAX_CHARS
    assert str(cast.users[role].pk) in body["ticket"]  # bound to its user (and, by its signature, to the deal)


@pytest.mark.django_db
@override_settings(STREAM_TICKET_SECONDS=45)
def test_the_lifetime_is_the_setting(cast):
    body = _mint(cast.client("viewer"), cast.deal.pk)
    expires = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    assert abs((expires - datetime.now(tz=UTC)).total_seconds() - 45) < 5


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("who", "status"), [("anonymous", 401), ("outsider", 404), ("other_org", 404), ("superadmin", 404), ("member", 404)]
)
def test_it_refuses_whoever_cannot_read_the_deal(cast, who, status):
    response = cast.client(who).post(TICKET_URL, {"deal_id": str(cast.deal.pk)}, format="json")
    assert response.status_code == status
    assert isinstance(response.json()["detail"], str)


@pytest.mark.django_db
def test_the_engine_token_is_no_user(cast):
    client = factories.client_for(None, token="test-engine-token-primary")
    response = client.post(TICKET_URL, {"deal_id": str(cast.deal.pk)}, format="json")
    assert response.status_code == 401


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "loc", "kind"),
    [
        ({}, ["body", "deal_id"], "missing"),
        ({"deal_id": "not-a-uuid"}, ["body", "deal_id"], None),
        ({"deal_id": None}, ["body", "deal_id"], None),
    ],
)
def test_bad_input_is_a_422(cast, body, loc, kind):
    response = cast.client("viewer").post(TICKET_URL, body, format="json")
    assert response.status_code == 422, response.content
    error = response.json()["detail"][0]
    assert error["loc"] == loc
    if kind:
        assert error["type"] == kind


@pytest.mark.django_db
def test_unknown_fields_are_refused(cast):
    response = cast.client("viewer").post(TICKET_URL, {"deal_id": str(cast.deal.pk), "user_id": "x"}, format="json")
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "extra_forbidden"


@pytest.mark.django_db
def test_an_unknown_deal_is_a_404(cast):
    response = cast.client("viewer").post(TICKET_URL, {"deal_id": str(uuid.uuid4())}, format="json")
    assert response.status_code == 404


@pytest.mark.django_db
def test_a_deal_scoped_token_gets_tickets_for_its_own_deal_only(cast):
    other = factories.make_deal(cast.org, owner=cast.users["owner"], name="Elm Court")
    factories.grant(other, cast.users["viewer"], "viewer")
    scoped = factories.client_for(None, token=_deal_token(cast, cast.users["viewer"], cast.deal))
    assert scoped.post(TICKET_URL, {"deal_id": str(cast.deal.pk)}, format="json").status_code == 201
    assert scoped.post(TICKET_URL, {"deal_id": str(other.pk)}, format="json").status_code == 404


def _deal_token(cast, user, deal) -> str:
    superadmin = cast.client("superadmin")
    response = superadmin.post(
        "/api/auth/token/deal", {"user_id": str(user.pk), "deal_id": str(deal.pk)}, format="json"
    )
    assert response.status_code == 201
    return response.json()["access"]


# --- using it -------------------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_a_ticket_opens_every_stream_of_its_deal_without_a_header(cast):
    ticket = _ticket(cast)
    run = SynthesisRun.objects.create(
        deal_id=cast.deal.pk, status=RunStatus.QUEUED, requested_sections=["risks"], created_by=cast.users["editor"]
    )
    for suffix in ("events", f"runs/{run.pk}/stream", "discourse/stream"):
        status, body, _ = _open(_anonymous(), f"/api/canvas/{cast.deal.pk}/{suffix}", ticket)
        assert status == 200, (suffix, body)


@pytest.mark.django_db(transaction=True)
def test_the_same_ticket_serves_the_reconnects_with_last_event_id(cast):
    ticket = _ticket(cast)
    for last_event_id in (None, "1732300000000-0", "1732300000001-0"):
        headers = {"HTTP_LAST_EVENT_ID": last_event_id} if last_event_id else {}
        status, body, _ = _open(_anonymous(), _events(cast.deal), ticket, **headers)
        assert status == 200, body


@pytest.mark.django_db(transaction=True)
def test_a_malformed_resume_id_with_a_ticket_is_still_a_422(cast):
    status, body, _ = _open(_anonymous(), _events(cast.deal), _ticket(cast), HTTP_LAST_EVENT_ID="yesterday")
    assert status == 422 and body["detail"][0]["loc"] == ["header", "Last-Event-ID"]


def _assert_refused(status: int, body, response, words: str) -> None:
    assert status == 401, body
    assert isinstance(body["detail"], str) and words in body["detail"], body
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


@pytest.mark.django_db(transaction=True)
def test_an_expired_ticket_is_refused(cast):
    with override_settings(STREAM_TICKET_SECONDS=1):
        ticket = _ticket(cast)
    time.sleep(1.1)
    _assert_refused(*_open(_anonymous(), _events(cast.deal), ticket), "expired")


@pytest.mark.django_db(transaction=True)
def test_a_ticket_of_another_deal_is_refused_even_where_its_user_may_read(cast):
    other = factories.make_deal(cast.org, owner=cast.users["owner"], name="Elm Court")
    factories.grant(other, cast.users["viewer"], "viewer")
    ticket = _ticket(cast, deal=cast.deal)
    assert _open(_anonymous(), _events(other), _ticket(cast, deal=other))[0] == 200  # the user may read it
    _assert_refused(*_open(_anonymous(), _events(other), ticket), "another deal")


@pytest.mark.django_db(transaction=True)
def test_a_revoked_grant_stops_the_ticket_at_the_next_connect(cast):
    ticket = _ticket(cast)
    assert _open(_anonymous(), _events(cast.deal), ticket)[0] == 200
    DealAccess.objects.filter(deal=cast.deal, user=cast.users["viewer"]).delete()
    _assert_refused(*_open(_anonymous(), _events(cast.deal), ticket), "revoked")


@pytest.mark.django_db(transaction=True)
def test_a_deactivated_user_or_a_new_password_stops_the_ticket(cast):
    viewer, commenter = cast.users["viewer"], cast.users["commenter"]
    tickets = {"viewer": _ticket(cast, "viewer"), "commenter": _ticket(cast, "commenter")}
    viewer.is_active = False
    viewer.save()
    _assert_refused(*_open(_anonymous(), _events(cast.deal), tickets["viewer"]), "revoked")
    time.sleep(1.05)  # a change in the ticket's own second is not "after" it (whole seconds, as for JWTs)
    commenter.set_password("another-pass-5678")
    commenter.save()
    _assert_refused(*_open(_anonymous(), _events(cast.deal), tickets["commenter"]), "password")


def _tampered(ticket: str) -> str:
    return ticket[:-1] + ("A" if ticket[-1] != "A" else "B")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda ticket, cast: "", id="empty"),
        pytest.param(lambda ticket, cast: "garbage", id="garbage"),
        pytest.param(lambda ticket, cast: _tampered(ticket), id="bad-signature"),
        pytest.param(
            lambda ticket, cast: ticket.replace(str(cast.users["viewer"].pk), str(cast.users["owner"].pk)),
            id="another-user",
        ),
        pytest.param(lambda ticket, cast: ticket.split(".", 1)[1], id="truncated"),
        pytest.param(lambda ticket, cast: "x" * 5000, id="huge"),
    ],
)
def test_a_malformed_ticket_is_refused(cast, make):
    status, body, response = _open(_anonymous(), _events(cast.deal), make(_ticket(cast), cast))
    assert status == 401, body
    assert "ticket" in body["detail"]


@pytest.mark.django_db(transaction=True)
def test_a_ticket_and_a_header_together_are_refused(cast):
    client = cast.client("viewer")
    _assert_refused(*_open(client, _events(cast.deal), _ticket(cast)), "not both")


@pytest.mark.django_db(transaction=True)
def test_a_malformed_deal_id_with_a_ticket_is_refused(cast):
    _assert_refused(*_open(_anonymous(), "/api/canvas/not-a-deal/events", _ticket(cast)), "malformed")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    ["/api/canvas/{deal}", "/api/deals/{deal}", "/api/canvas/{deal}/comments", "/api/dashboard/memos"],
)
def test_a_ticket_authenticates_no_other_endpoint(cast, path):
    ticket = _ticket(cast, "owner")
    response = _anonymous().get(path.format(deal=cast.deal.pk) + f"?ticket={ticket}")
    assert response.status_code == 401
    assert response.json()["detail"] == "Authentication credentials were not provided."
    # nor as a bearer token
    response = factories.client_for(None, token=ticket).get(path.format(deal=cast.deal.pk))
    assert response.status_code == 401


# --- CORS and logs --------------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
@override_settings(CORS_ALLOWED_ORIGINS=["http://frontend.example"])
def test_streams_and_the_ticket_endpoint_answer_cors_for_an_allowed_origin(cast):
    origin = {"HTTP_ORIGIN": "http://frontend.example"}
    ticket = _ticket(cast)
    status, _, response = _open(_anonymous(), _events(cast.deal), ticket, **origin)
    assert status == 200 and response["Access-Control-Allow-Origin"] == "http://frontend.example"
    status, _, response = _open(_anonymous(), _events(cast.deal), "expired-or-wrong", **origin)
    assert status == 401 and response["Access-Control-Allow-Origin"] == "http://frontend.example"
    status, _, response = _open(_anonymous(), _events(cast.deal), ticket, HTTP_ORIGIN="http://evil.example")
    assert status == 200 and "Access-Control-Allow-Origin" not in response
    preflight = _anonymous().options(
        TICKET_URL,
        HTTP_ORIGIN="http://frontend.example",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization,content-type",
    )
    assert preflight["Access-Control-Allow-Origin"] == "http://frontend.example"
    assert "authorization" in preflight["Access-Control-Allow-Headers"]


def test_a_ticket_in_a_request_line_never_reaches_a_log(caplog):
    caplog.set_level(logging.INFO)
    caplog.handler.addFilter(ContextFilter())
    ticket = "0b7c4e1a-5d0e-4c55-9d49-6a3f0d0f2b11.1764763200.1764763500000.Zm9vYmFy-c2lnbmF0dXJl_xyz"
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d',
        "127.0.0.1:5000",
        "GET",
        f"/api/canvas/D/events?last_event_id=1-0&ticket={ticket}",
        "1.1",
        200,
    )
    logging.getLogger("anything").warning("opened /api/canvas/D/events?ticket=%s", ticket)
    assert ticket not in caplog.text and "Zm9vYmFy" not in caplog.text
    assert caplog.text.count("ticket=[redacted]") == 2
    assert "last_event_id=1-0" in caplog.text  # only the secret goes
