"""Open event streams follow their access, credential and lifetime (canvas_project.sse.guard), hold no thread,
and a deal's streams per process are capped. Real HTTP against uvicorn in a child process, SSE_REAUTH_SECONDS
small so that a revocation ends a stream within a short window."""

from __future__ import annotations

import queue
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.db import connection
from rest_framework_simplejwt.tokens import AccessToken

from canvas_project import events
from canvas_project.sse.guard import Grant
from deals.models import DealAccess, DealRole, OrgMembership, User, Visibility
from deals.streams import streams_revoked
from deals.tokens import token_pair_for_user
from tests import factories
from tests.servers import ServiceProcess, database_url_of
from tests.sse_client import SseEvent, SseReader

pytestmark = pytest.mark.django_db(transaction=True)

REAUTH = 0.5
# a revocation must end the stream within SSE_REAUTH_SECONDS; the deadline leaves room for a loaded machine
WINDOW = REAUTH + 10


def _service(**env: str) -> ServiceProcess:
    return ServiceProcess(
        {
            "DJANGO_SETTINGS_MODULE": "canvas_project.settings",
            "DATABASE_URL": database_url_of(connection.settings_dict),
            "REDIS_URL": settings.REDIS_URL,
            "SSE_REAUTH_SECONDS": str(REAUTH),
            **env,
        }
    ).start()


@pytest.fixture
def service(cast):
    server = _service()
    yield server
    server.stop()


def _url(service, deal) -> str:
    return f"{service.url}/api/canvas/{deal.pk}/events"


def _token(user) -> str:
    return token_pair_for_user(user=user)["access"]


def _open(url: str, token: str) -> SseReader:
    reader = SseReader(url, token).start()
    assert reader.status == 200
    return reader


def _first_event(reader: SseReader, timeout: float) -> SseEvent:
    """The next event but the probes of `_delivered` (of this stream or of another one opened on the deal)."""
    deadline = time.monotonic() + timeout
    try:
        while True:
            event = reader.events.get(timeout=max(deadline - time.monotonic(), 0.01))
            if not event.data.get("probe"):
                return event
    except queue.Empty:
        raise AssertionError(f"no event within {timeout} s") from None


def _delivered(reader: SseReader, cast) -> None:
    """The stream is subscribed: an event published now reaches it."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        event_id = events.emit(cast.deal.pk, "document_saved", {"probe": True})
        try:
            while reader.events.get(timeout=0.5).id != event_id:  # earlier probes (of other streams) first
                pass
        except queue.Empty:
            continue
        return
    raise AssertionError("the stream never delivered")


def _remove_grant(cast, user):
    DealAccess.objects.filter(deal=cast.deal, user=user).delete()


def _lower_below_viewer(cast, user):
    # `member` reads the org-visible deal as viewer through its org membership; the deal turns private
    type(cast.deal).objects.filter(pk=cast.deal.pk).update(visibility=Visibility.PRIVATE)


def _remove_membership(cast, user):
    OrgMembership.objects.filter(org=cast.org, user=user).delete()


def _deactivate(cast, user):
    user.is_active = False
    user.save(update_fields=["is_active"])


def _change_password(cast, user):
    user.set_password("a-new-and-long-password-42")
    user.save()  # stamps credentials_changed_at: tokens issued before it open nothing any more


@pytest.mark.parametrize(
    ("revoke", "who", "reconnect"),
    [
        (_remove_grant, "viewer", 404),
        (_lower_below_viewer, "member", 404),
        (_remove_membership, "viewer", 404),
        (_deactivate, "viewer", 401),
        (_change_password, "viewer", 401),
    ],
    ids=["grant_removed", "role_below_viewer", "membership_removed", "user_deactivated", "password_changed"],
)
def test_it_ends_an_open_stream_with_revoked_when_access_goes(service, cast, revoke, who, reconnect):
    if who == "member":
        type(cast.deal).objects.filter(pk=cast.deal.pk).update(visibility=Visibility.ORG)
    user = cast.users[who]
    token = AccessToken.for_user(user)
    token["iat"] = int(time.time()) - 10  # issued before the password change below (whole seconds compare)
    token = str(token)
    stream = _open(_url(service, cast.deal), token)
    bystander = _open(_url(service, cast.deal), _token(cast.users["owner"]))
    _delivered(stream, cast)
    _delivered(bystander, cast)

    revoke(cast, User.objects.get(pk=user.pk))

    ended = _first_event(stream, timeout=WINDOW)
    assert ended.event == "revoked" and "revoked" in ended.data["reason"]
    assert stream.ended.wait(5), "the response ends after `revoked`"
    assert httpx.get(
        _url(service, cast.deal), headers={"Authorization": f"Bearer {token}"}, timeout=10
    ).status_code == (reconnect)
    # the owner's stream goes on
    later = events.emit(cast.deal.pk, "document_saved", {"n": 1})
    assert _first_event(bystander, timeout=10).id == later
    bystander.close()


def test_it_re_checks_the_minimum_role_of_each_stream_in_one_query(cast, django_assert_num_queries):
    """A grant lowered below what a stream needs ends it (editor -> viewer on an editor stream); many
    streams cost one query."""
    viewer, editor = cast.users["viewer"], cast.users["editor"]
    grants = [
        Grant(user_id=str(editor.pk), deal_id=str(cast.deal.pk), minimum=DealRole.EDITOR, issued_at=int(time.time())),
        Grant(user_id=str(viewer.pk), deal_id=str(cast.deal.pk), minimum=DealRole.VIEWER, issued_at=int(time.time())),
    ] * 50
    with django_assert_num_queries(1):
        assert streams_revoked(grants) == []
    DealAccess.objects.filter(deal=cast.deal, user=editor).update(role=DealRole.VIEWER)
    with django_assert_num_queries(1):
        assert streams_revoked(grants) == list(range(0, 100, 2))


def test_a_revoked_api_key_ends_its_stream(service, cast):
    from deals.apikeys.services import api_key_create, api_key_revoke

    viewer = cast.users["viewer"]
    key, secret = api_key_create(user=viewer, name="dashboard", scope="read", expires_at=None)
    stream = _open(_url(service, cast.deal), secret)
    _delivered(stream, cast)
    api_key_revoke(user=viewer, key_id=key.pk)
    assert _first_event(stream, timeout=WINDOW).event == "revoked"


def test_an_expiring_jwt_ends_the_stream_with_expired(service, cast):
    token = AccessToken.for_user(cast.users["viewer"])
    token.set_exp(lifetime=timedelta(seconds=3))
    stream = _open(_url(service, cast.deal), str(token))
    ended = _first_event(stream, timeout=20)
    assert ended.event == "expired" and "expired" in ended.data["reason"]
    assert stream.ended.wait(5)
    assert time.time() >= token["exp"] - 1  # not before the credential expired (whole seconds)


def test_an_expiring_stream_ticket_ends_the_stream_with_expired(cast):
    server = _service(STREAM_TICKET_SECONDS="3")
    try:
        minted = httpx.post(
            f"{server.url}/api/auth/stream-ticket",
            json={"deal_id": str(cast.deal.pk)},
            headers={"Authorization": f"Bearer {_token(cast.users['viewer'])}"},
            timeout=10,
        )
        assert minted.status_code == 201, minted.text
        stream = _open(f"{_url(server, cast.deal)}?ticket={minted.json()['ticket']}", None)
        ended = _first_event(stream, timeout=20)
        assert ended.event == "expired"
        assert stream.ended.wait(5)
    finally:
        server.stop()


def test_a_stream_ends_after_its_lifetime_and_resumes(cast):
    server = _service(SSE_MAX_STREAM_SECONDS="2")
    try:
        token = _token(cast.users["viewer"])
        first = events.emit(cast.deal.pk, "document_saved", {"n": 0})
        stream = SseReader(_url(server, cast.deal), token, last_event_id=first).start()
        assert stream.ended.wait(20), "the stream ends at SSE_MAX_STREAM_SECONDS"
        assert stream.events.empty()  # no revoked/expired: the client simply reconnects
        missed = events.emit(cast.deal.pk, "document_saved", {"n": 1})
        resumed = _open_resumed(server, cast, token, first)
        assert _first_event(resumed, timeout=10).id == missed
        resumed.close()
    finally:
        server.stop()


def _open_resumed(server, cast, token, last_event_id) -> SseReader:
    reader = SseReader(_url(server, cast.deal), token, last_event_id=last_event_id).start()
    assert reader.status == 200
    return reader


def test_the_deal_cap_answers_429_with_a_typed_body(cast):
    server = _service(SSE_MAX_STREAMS_PER_DEAL="2")
    other_deal = factories.make_deal(cast.org, owner=cast.users["owner"], name="Other")
    readers = []
    try:
        readers = [
            _open(_url(server, cast.deal), _token(cast.users["viewer"])),
            _open(_url(server, cast.deal), _token(cast.users["editor"])),
        ]
        refused = httpx.get(
            _url(server, cast.deal), headers={"Authorization": f"Bearer {_token(cast.users['owner'])}"}, timeout=10
        )
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "10"
        assert refused.json()["scope"] == "deal" and refused.json()["limit"] == 2
        assert "detail" in refused.json()
        # another deal is not affected
        readers.append(_open(_url(server, other_deal), _token(cast.users["owner"])))
    finally:
        for reader in readers:
            reader.close()
        server.stop()


def _threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no thread count")


def test_open_streams_hold_no_thread(cast):
    """40 more open streams, and the worker's thread count stays where one stream left it (it grew by one
    thread per stream before: Django's per-request thread-sensitive thread)."""
    server = _service(SSE_MAX_STREAMS_PER_USER="0")
    readers = []
    try:
        token = _token(cast.users["viewer"])
        readers.append(_open(_url(server, cast.deal), token))
        _delivered(readers[0], cast)
        before = _threads(server.process.pid)
        for _ in range(40):
            readers.append(_open(_url(server, cast.deal), token))  # 200: the view has answered and let go
        _delivered(readers[-1], cast)
        after = _threads(server.process.pid)
        # the loop's shared pool may grow to its bound (min(32, cores + 4)); nothing grows per stream
        assert after - before <= 8, (before, after)
    finally:
        for reader in readers:
            reader.close()
        server.stop()
