"""Redis killed under open SSE streams (GET /api/canvas/{D}/events over real HTTP, uvicorn in a child).

The stream stays open and keeps heartbeating through the outage; once Redis is back the reader
resumes by itself and every open stream first gets `reset` (changes made during the outage landed
without their events, and the restarted Redis lost the history), then the live events. A client that
reconnects with a Last-Event-ID from before the outage gets `reset` too. Nothing answers 500, nothing
crashes, and no reader is left behind once the clients go.
"""

from __future__ import annotations

import queue

import pytest
import redis

from canvas_project import events
from canvas_project.sse.hub import BLOCK_MS
from tests.canvas.conftest import full_memo
from tests.faults.conftest import api_as, wait_for
from tests.sse_client import SseReader

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def service(cast, own_redis, start_service):
    # a ping after 1 s of quiet, so the test sees heartbeats during the outage without waiting 15 s
    return start_service(REDIS_URL=own_redis.url, SSE_HEARTBEAT_SECONDS="1")


def _xread_clients(server, *, older_than: float = 0) -> int:
    client = redis.Redis(port=server.port, socket_connect_timeout=1)
    try:
        return sum(1 for c in client.client_list() if c.get("cmd") == "xread" and int(c["age"]) >= older_than)
    finally:
        client.close()


def _open(service, cast, role="viewer", last_event_id=None) -> SseReader:
    viewer = api_as(service, cast, role)
    reader = SseReader(f"{service.url}/api/canvas/{cast.deal.pk}/events", viewer.token, last_event_id).start()
    assert reader.status == 200
    return reader


def _next_event(reader: SseReader, timeout: float = 15):
    try:
        return reader.events.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError(f"no event within {timeout} s") from None


def test_open_streams_live_through_a_redis_outage_and_resume_after_it(cast, own_redis, service):
    live = _open(service, cast)
    wait_for(lambda: _xread_clients(own_redis) == 1, timeout=10, what="the service's reader follows the stream")
    # one connection outlives the 5 s blocking XREAD: a read timeout no longer than the block used to
    # drop it every 5 s (and with it, now, reset every quiet stream)
    wait_for(
        lambda: _xread_clients(own_redis, older_than=BLOCK_MS / 1000 + 1),
        timeout=15,
        what="the reader keeps its connection through a quiet block",
    )
    assert live.events.empty()
    before = [events.emit(cast.deal.pk, "document_saved", {"n": n}) for n in range(2)]
    assert [_next_event(live).id for _ in before] == before

    own_redis.stop()
    pings = live.comments
    wait_for(lambda: live.comments >= pings + 2, timeout=10, what="heartbeats during the outage")
    # a client arriving during the outage is let in (authorization needs only PostgreSQL) and waits
    arrived = _open(service, cast, "owner", last_event_id=before[-1])
    wait_for(lambda: arrived.comments >= 1, timeout=10, what="heartbeats to a client that came during the outage")
    # a save during the outage lands in the Store, but its event is dropped
    editor = api_as(service, cast, "editor")
    assert editor.post(f"/api/canvas/{cast.deal.pk}/save", json={"content": full_memo()}).status_code == 200

    own_redis.start()  # the same port, empty

    for reader in (live, arrived):
        reset = _next_event(reader, timeout=20)  # the reader retries with a backoff of at most 5 s
        assert reset.event == "reset" and "Redis was unavailable" in reset.data["reason"]
        assert reset.data["last_event_id"] is None  # the restarted Redis holds no history yet
        assert reset.data["history_lost"] is True  # it reloads: the restarted Redis lost what it held
    after = events.emit(cast.deal.pk, "document_saved", {"n": 2})
    assert _next_event(live).id == after and _next_event(arrived).id == after

    # a client that lost the stream before the outage resumes from an id the new history lacks
    returning = _open(service, cast, last_event_id=before[-1])
    assert _next_event(returning).event == "reset"
    later = events.emit(cast.deal.pk, "document_saved", {"n": 3})
    assert [_next_event(reader).id for reader in (live, arrived, returning)] == [later] * 3

    for reader in (live, arrived, returning):
        reader.close()
    # each server-side stream notices its closed socket at its next heartbeat and drops the reader
    wait_for(lambda: _xread_clients(own_redis) == 0, timeout=15, what="no reader left behind")
    assert service.crashes() == []
