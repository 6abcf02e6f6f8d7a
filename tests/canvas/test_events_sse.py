"""GET /api/canvas/{deal_id}/events over real HTTP against the ASGI app (uvicorn in a child process)."""

from __future__ import annotations

import queue
import time

import httpx
import pytest
from django.conf import settings
from django.db import connection

from canvas_project import events, keys
from canvas_project.redis_client import get_redis
from deals.tokens import token_pair_for_user
from tests.servers import ServiceProcess, database_url_of
from tests.sse_client import SseReader

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def service(cast):
    server = ServiceProcess(
        {
            "DJANGO_SETTINGS_MODULE": "canvas_project.settings",
            "DATABASE_URL": database_url_of(connection.settings_dict),
            "REDIS_URL": settings.REDIS_URL,
        }
    ).start()
    yield server
    server.stop()


def _url(service, cast, query: str = "") -> str:
    return f"{service.url}/api/canvas/{cast.deal.pk}/events{query}"


def _token(cast, role="viewer") -> str:
    return token_pair_for_user(user=cast.users[role])["access"]


def _emit(cast, n: int, start: int = 0) -> list[str]:
    return [events.emit(cast.deal.pk, "document_saved", {"n": i}) for i in range(start, start + n)]


def _open(url, token, last_event_id=None) -> SseReader:
    reader = SseReader(url, token, last_event_id).start()
    assert reader.status == 200
    time.sleep(0.3)  # let the server subscribe before the test publishes
    return reader


def test_two_subscribers_see_the_same_events_in_the_same_order(service, cast):
    first = _open(_url(service, cast), _token(cast))
    second = _open(_url(service, cast), _token(cast, "owner"))
    ids = _emit(cast, 10)
    got_first, got_second = first.take(10), second.take(10)
    first.close()
    second.close()
    assert [e.id for e in got_first] == [e.id for e in got_second] == ids
    assert [e.data["n"] for e in got_first] == list(range(10))
    assert {e.event for e in got_first} == {"document_saved"}


def test_resuming_after_a_disconnect_loses_nothing_and_repeats_nothing(service, cast):
    reader = _open(_url(service, cast), _token(cast))
    ids = _emit(cast, 3)
    seen = reader.take(3)
    reader.close()
    later = _emit(cast, 5, start=3)  # published while the client is away
    resumed = _open(_url(service, cast), _token(cast), last_event_id=seen[-1].id)
    more = _emit(cast, 2, start=8)
    got = resumed.take(7)
    resumed.close()
    assert [e.id for e in seen] == ids
    assert [e.id for e in got] == later + more
    assert [e.data["n"] for e in got] == list(range(3, 10))
    with pytest.raises(queue.Empty):
        resumed.events.get(timeout=0.5)


def test_the_query_parameter_resumes_too(service, cast):
    ids = _emit(cast, 4)
    reader = _open(_url(service, cast, f"?last_event_id={ids[1]}"), _token(cast))
    got = reader.take(2)
    reader.close()
    assert [e.id for e in got] == ids[2:]


def test_an_id_older_than_the_kept_history_gets_reset(service, cast):
    ids = _emit(cast, 10)
    get_redis().xtrim(keys.events_key(cast.deal.pk), maxlen=3, approximate=False)  # retention dropped the first seven
    reader = _open(_url(service, cast), _token(cast), last_event_id=ids[0])
    reset = reader.take(1)[0]
    assert reset.event == "reset"
    assert reset.data["last_event_id"] == ids[-1] and "reload" in reset.data["reason"]
    # events the client never saw are gone: it must reload; the oldest one still kept is named
    assert reset.data["history_lost"] is True and reset.data["earliest_event_id"] == ids[-3]
    after = _emit(cast, 1, start=10)
    assert reader.take(1)[0].id == after[0]
    reader.close()


def test_the_server_sends_heartbeats(service, cast, monkeypatch):
    reader = _open(_url(service, cast), _token(cast))
    # the retry hint is the first comment-free line; a ping arrives within the 15 s heartbeat
    deadline = time.monotonic() + 20
    while reader.comments == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    reader.close()
    assert reader.comments >= 1


def test_a_disconnect_leaves_no_reader_behind(service, cast):
    def xread_clients() -> int:
        # only this test's database: other test processes may hold readers on theirs
        return sum(
            1
            for c in get_redis().client_list()
            if c.get("cmd") == "xread" and c.get("db") == str(settings.REDIS_TEST_DB)
        )

    reader = _open(_url(service, cast), _token(cast))
    _emit(cast, 1)
    reader.take(1)
    assert xread_clients() == 1
    reader.close()
    _emit(cast, 1)  # the server notices the closed socket on its next write or heartbeat
    deadline = time.monotonic() + 20
    while xread_clients() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert xread_clients() == 0


@pytest.mark.parametrize(
    ("who", "status"), [("anonymous", 401), ("outsider", 404), ("other_org", 404), ("superadmin", 404), ("viewer", 200)]
)
def test_role_matrix(service, cast, who, status):
    headers = {} if who == "anonymous" else {"Authorization": f"Bearer {_token(cast, who)}"}
    with httpx.stream("GET", _url(service, cast), headers=headers, timeout=10) as response:
        assert response.status_code == status
        if status == 200:
            assert response.headers["content-type"].startswith("text/event-stream")
        else:
            response.read()
            assert "detail" in response.json()


def test_a_malformed_last_event_id_is_422_at_header(service, cast):
    headers = {"Authorization": f"Bearer {_token(cast)}", "Last-Event-ID": "yesterday"}
    response = httpx.get(_url(service, cast), headers=headers, timeout=10)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["header", "Last-Event-ID"]


def test_open_streams_do_not_hold_database_connections(cast):
    """With a pool of 2 connections, 4 concurrent streams all open: a stream releases its connection
    once it is authorised (found by bench/events: each stream used to pin one until it closed)."""
    server = ServiceProcess(
        {
            "DJANGO_SETTINGS_MODULE": "canvas_project.settings",
            "DATABASE_URL": database_url_of(connection.settings_dict),
            "REDIS_URL": settings.REDIS_URL,
            "DB_POOL_MAX_SIZE": "2",
            "DB_POOL_TIMEOUT": "2",
        }
    ).start()
    readers = []
    try:
        for _ in range(4):
            readers.append(SseReader(_url(server, cast), _token(cast)).start())
        assert [r.status for r in readers] == [200, 200, 200, 200]
        assert httpx.get(f"{server.url}/api/health", timeout=10).status_code == 200
    finally:
        for reader in readers:
            reader.close()
        server.stop()


def test_one_user_may_hold_only_so_many_streams_open(cast):
    """SSE_MAX_STREAMS_PER_USER=2: the third stream of a user is 429 with Retry-After, whichever stream
    it is; other users are not affected; a closed stream gives its slot back."""
    server = ServiceProcess(
        {
            "DJANGO_SETTINGS_MODULE": "canvas_project.settings",
            "DATABASE_URL": database_url_of(connection.settings_dict),
            "REDIS_URL": settings.REDIS_URL,
            "SSE_MAX_STREAMS_PER_USER": "2",
            "SSE_HEARTBEAT_SECONDS": "1",
        }
    ).start()
    token = _token(cast)
    headers = {"Authorization": f"Bearer {token}"}
    readers = []
    try:
        readers = [_open(_url(server, cast), token), _open(_url(server, cast), token)]
        for path in ("events", "discourse/stream"):
            refused = httpx.get(f"{server.url}/api/canvas/{cast.deal.pk}/{path}", headers=headers, timeout=10)
            assert refused.status_code == 429
            assert refused.headers["Retry-After"] == "10" and "2 event streams open" in refused.json()["detail"]
            assert refused.json()["scope"] == "user" and refused.json()["limit"] == 2
        other = _open(_url(server, cast), _token(cast, "owner"))
        other.close()
        readers.pop().close()
        deadline = time.monotonic() + 20  # the server sees the closed socket at its next heartbeat
        status = None
        while time.monotonic() < deadline:
            with httpx.stream("GET", _url(server, cast), headers=headers, timeout=10) as response:
                status = response.status_code
            if status == 200:
                break
            time.sleep(0.5)
        assert status == 200
    finally:
        for reader in readers:
            reader.close()
        server.stop()


def test_a_stream_dropped_before_it_started_gives_its_slot_back(cast):
    import gc

    from canvas_project.sse import responses as sse

    async def never_started():
        yield "x"

    user = cast.users["viewer"]
    response = sse.slotted_response(user, never_started())
    assert sse.open_streams_of(user.pk) == 1
    del response
    gc.collect()
    assert sse.open_streams_of(user.pk) == 0
