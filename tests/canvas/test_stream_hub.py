"""canvas_project.sse.hub in process: how the one reader of a stream hands events to its subscribers."""

from __future__ import annotations

import asyncio
import uuid

from canvas_project import events, keys
from canvas_project.sse import hub as streams


async def _batches_of(key: str, deal_id, bursts: list[int]) -> list[int]:
    """Emit each burst right after the previous one was delivered; the sizes of the batches delivered."""
    sizes: list[int] = []
    delivered = asyncio.Event()

    async def consume():
        async for item in streams.hub().subscribe_batches(key, after=None, heartbeat=60):
            if isinstance(item, list):
                sizes.append(len(item))
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
