"""canvas_project.sse.handler in process, at the ASGI boundary (a server's scope, receive and send): what an
open stream keeps of the request's machinery, and that the client going away ends it (bench/events --idle:
worker memory per idle subscriber)."""

from __future__ import annotations

import asyncio

import pytest

from canvas_project.asgi import application
from canvas_project.sse import guard, hub
from canvas_project.sse import responses as sse
from deals.tokens import token_pair_for_user

pytestmark = pytest.mark.django_db(transaction=True)

_LOOP_TASKS = ("stream-reader:", "stream-heartbeat:", "stream-guard")  # shared by every stream of the loop


def _request_tasks() -> set[asyncio.Task]:
    return {t for t in asyncio.all_tasks() if not t.get_name().startswith(_LOOP_TASKS)}


async def _open_and_disconnect(deal_id, token: str, user_id) -> dict:
    sent: list[dict] = []
    opened = asyncio.Event()
    gone = asyncio.Event()
    messages = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive():
        if messages:
            return messages.pop(0)
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)
        if message["type"] == "http.response.body" and message.get("body", b"").startswith(b"retry:"):
            opened.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": f"/api/canvas/{deal_id}/events",
        "raw_path": f"/api/canvas/{deal_id}/events".encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver"), (b"authorization", f"Bearer {token}".encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    before = _request_tasks()
    app = asyncio.create_task(application(scope, receive, send))
    try:
        await asyncio.wait_for(opened.wait(), timeout=20)
        held = _request_tasks() - before
        open_slots = sse.open_streams_of(user_id)
        subscribers = hub.hub().subscriber_count
        leases = guard.guard().open_count
        gone.set()
        await asyncio.wait_for(app, timeout=20)
        return {
            "start": sent[0],
            "held": held,
            "app": app,
            "open_slots": (open_slots, sse.open_streams_of(user_id)),
            "subscribers": (subscribers, hub.hub().subscriber_count),
            "leases": (leases, guard.guard().open_count),
        }
    finally:
        app.cancel()
        await asyncio.gather(app, return_exceptions=True)
        await hub.close_loop_resources()


def _run(coro):
    """Run `coro` on a loop of its own, closed after giving what is left on it (the hub's reader winding down after its
    last subscriber left, which is not what is tested here) a bounded time to finish."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        left = asyncio.all_tasks(loop)
        for task in left:
            task.cancel()
        if left:
            loop.run_until_complete(asyncio.wait(left, timeout=5))
        loop.close()


def test_an_open_stream_keeps_two_tasks_and_a_disconnect_ends_it(cast):
    """While the stream is open, the request holds two tasks: the server's own (which sends the stream) and
    Django's disconnect listener; no task for the view, no asyncio.wait (each ~1 KiB per open stream). When
    the client goes away the stream ends and gives back its slot, its hub subscription and its guard lease."""
    viewer = cast.users["viewer"]
    token = token_pair_for_user(user=viewer)["access"]
    got = _run(_open_and_disconnect(cast.deal.pk, token, viewer.pk))
    assert got["start"]["type"] == "http.response.start" and got["start"]["status"] == 200
    assert got["app"] in got["held"]
    assert len(got["held"]) == 2, sorted(t.get_name() for t in got["held"])
    assert got["open_slots"] == (1, 0)
    assert got["subscribers"] == (1, 0)
    assert got["leases"] == (1, 0)


def test_the_inbox_is_a_bounded_fifo():
    async def run():
        inbox = hub._Inbox()
        for n in range(hub.QUEUE_SIZE):
            inbox.put_nowait(n)
        assert inbox.full()
        with pytest.raises(asyncio.QueueFull):
            inbox.put_nowait("one too many")
        assert [inbox.get_nowait() for _ in range(3)] == [0, 1, 2]
        inbox.put_nowait("more")  # room again once items are taken
        assert len(inbox) == hub.QUEUE_SIZE - 2
        inbox.clear()
        assert inbox.empty()
        waiter = asyncio.create_task(inbox.get())
        await asyncio.sleep(0)
        inbox.put_nowait("late")
        assert await asyncio.wait_for(waiter, timeout=5) == "late"
        inbox.put_nowait("a")
        inbox.put_nowait("b")
        assert (inbox.get_nowait(), inbox.get_nowait(), inbox.empty()) == ("a", "b", True)

    asyncio.run(run())
