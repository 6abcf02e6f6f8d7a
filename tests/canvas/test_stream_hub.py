"""canvas_project.sse.hub in process: how the one reader of a stream hands events to its subscribers."""

from __future__ import annotations

import asyncio
import time
import uuid

from django.conf import settings

from canvas_project import events, keys
from canvas_project.redis_client import get_redis
from canvas_project.sse import hub as streams


async def _batches_of(key: str, deal_id, bursts: list[int], *, hold_loop: float = 0.0) -> list[int]:
    """Emit each burst right after the previous one was delivered; the sizes of the batches delivered.
    `hold_loop`: seconds the consumer holds the event loop on each batch it takes (a slow socket write)."""
    sizes: list[int] = []
    delivered = asyncio.Event()

    async def consume():
        async for item in streams.hub().subscribe_batches(key, after=None, heartbeat=60):
            if isinstance(item, list):
                sizes.append(len(item))
                time.sleep(hold_loop)  # blocks the loop, as writes to many subscribers would
                if sum(sizes) == expected:
                    delivered.set()

    expected = 0
    task = asyncio.create_task(consume())
    try:
        await asyncio.sleep(0.3)  # subscribed: the reader is blocked in XREAD
        for burst in bursts:
            expected += burst
            delivered.clear()
            for n in range(burst):  # back to back, faster than any window
                events.emit(deal_id, "document_saved", {"n": n})
            await asyncio.wait_for(delivered.wait(), timeout=10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await streams.close_loop_resources()
    return sizes


def test_a_lone_event_leaves_alone_and_a_burst_within_the_window_leaves_in_one_batch(settings, db):
    settings.SSE_COALESCE_MS = 400
    deal = uuid.uuid4()
    try:
        # the first event: no fan-out for 400 ms before it, so it leaves at once, alone; the next three
        # come within 400 ms of that fan-out, so they wait for the window and leave together
        assert asyncio.run(_batches_of(keys.events_key(deal), deal, [1, 3])) == [1, 3]
    finally:
        events.get_redis().delete(keys.events_key(deal))


def test_without_a_window_each_read_leaves_as_it_comes(settings, db):
    settings.SSE_COALESCE_MS = 0
    deal = uuid.uuid4()
    try:
        sizes = asyncio.run(_batches_of(keys.events_key(deal), deal, [1, 3]))
    finally:
        events.get_redis().delete(keys.events_key(deal))
    assert sizes[0] == 1 and sum(sizes) == 4 and len(sizes) > 2  # the blocked XREAD answers the first alone


def test_a_costly_fan_out_lengthens_the_next_window_up_to_its_ceiling(settings, db):
    # No fixed window: only the fan-out's measured cost can make a burst wait. The consumer holds the loop
    # 150 ms per batch, so the next window is at least 300 ms (FANOUT_LOOP_SHARE 0.5) and the burst of three
    # that follows the first event leaves in one batch, where without the adaptive window (ceiling 0) the
    # blocked XREAD answers its first event alone.
    settings.SSE_COALESCE_MS = 0
    settings.SSE_COALESCE_MAX_MS = 2000
    deal = uuid.uuid4()
    try:
        adaptive = asyncio.run(_batches_of(keys.events_key(deal), deal, [1, 3], hold_loop=0.15))
    finally:
        events.get_redis().delete(keys.events_key(deal))
    settings.SSE_COALESCE_MAX_MS = 0
    deal = uuid.uuid4()
    try:
        fixed = asyncio.run(_batches_of(keys.events_key(deal), deal, [1, 3], hold_loop=0.15))
    finally:
        events.get_redis().delete(keys.events_key(deal))
    assert adaptive == [1, 3]
    assert fixed[0] == 1 and sum(fixed) == 4 and len(fixed) > 2


def test_an_event_stream_reads_its_retry_and_heartbeat_settings_when_it_opens(settings, db):
    from canvas_project.sse.responses import event_stream

    settings.SSE_RETRY_MS = 1234
    settings.SSE_HEARTBEAT_SECONDS = 0.3  # not read at import: an override applies to the next stream
    deal = uuid.uuid4()

    async def opening() -> list[str]:
        stream = event_stream(keys.events_key(deal), None)
        try:
            return [await asyncio.wait_for(anext(stream), timeout=5) for _ in range(2)]
        finally:
            await stream.aclose()
            await streams.close_loop_resources()

    assert asyncio.run(opening()) == ["retry: 1234\n\n", ": ping\n\n"]


def _blocked_xreads() -> int:
    """Connections blocked in an XREAD now (flag b), on the test's Redis database or on every cluster primary."""
    client = get_redis()
    if settings.REDIS_CLUSTER:
        lists = [client.get_redis_connection(node).client_list() for node in client.get_primaries()]
    else:
        lists = [[c for c in client.client_list() if c.get("db") == str(settings.REDIS_TEST_DB)]]
    return sum(1 for clients in lists for c in clients if c.get("cmd") == "xread" and "b" in c.get("flags", ""))


async def _cancel_outcomes(key: str, offsets: range) -> list[object]:
    """What an XREAD of the readers' client ends with when its task is cancelled after `offset` loop passes."""
    client, owned = streams._reader_client()
    outcomes = []
    try:
        for offset in offsets:
            task = asyncio.create_task(client.xread({key: "$"}, block=200))
            for _ in range(offset):
                await asyncio.sleep(0)
            task.cancel()
            outcomes.append((await asyncio.gather(task, return_exceptions=True))[0])
    finally:
        if owned:
            await client.aclose()
        await streams.close_loop_resources()
    return outcomes


def test_a_cancel_landing_anywhere_in_a_redis_command_is_never_lost(db):
    # Python 3.11's asyncio.wait_for, under which redis-py writes a command when a socket timeout is set (the
    # readers' client has one), returns instead of raising when the cancel lands as the write completes: the
    # XREAD then ran its whole block and returned [] as if never cancelled (offsets 6 and 8 here, issue 15).
    outcomes = asyncio.run(_cancel_outcomes(keys.events_key(uuid.uuid4()), range(1, 40)))
    assert [
        offset for offset, outcome in enumerate(outcomes, start=1) if not isinstance(outcome, asyncio.CancelledError)
    ] == []


async def _readers_left_after_stop(key: str, offsets: range) -> list[int]:
    """Start a reader, stop it after `offset` loop passes (anywhere in its first reads); the offsets whose
    reader had not ended 10 s later (its XREAD blocks 60 s: a lost cancel cannot hide behind a block's end)."""
    found = streams.hub()
    left = []
    try:
        for offset in offsets:
            reader = streams._Reader(found, key)
            for _ in range(offset):
                await asyncio.sleep(0)
            reader.stop()
            done, _ = await asyncio.wait({reader.task}, timeout=10)
            if not done:
                left.append(offset)
                reader.task.cancel()
    finally:
        await streams.close_loop_resources()
    return left


def test_a_stopped_reader_ends_at_once_wherever_the_stop_lands(db, monkeypatch):
    monkeypatch.setattr(streams, "BLOCK_MS", 60_000)
    assert asyncio.run(_readers_left_after_stop(keys.events_key(uuid.uuid4()), range(60))) == []
    assert _blocked_xreads() == 0  # the stopped readers' XREADs are gone from Redis too
