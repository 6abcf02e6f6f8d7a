"""Fan-out of Redis streams to many SSE subscribers in one process.

Each process runs at most one reader per stream key (one blocking XREAD on one Redis connection),
however many browsers follow that deal; subscribers get entries through bounded in-memory queues.

A subscriber that names the last id it saw first catches up from Redis (XRANGE), then follows the
live queue, skipping what it already sent, so a resume loses nothing and repeats nothing. A
subscriber whose id is older than what the stream still keeps, or who falls too far behind, gets a
RESET marker: its client reloads the state and follows on from the current tail.

A burst is coalesced: entries arriving within the coalescing window of the stream's previous fan-out wait
for the rest of that window and leave together, one socket write per subscriber instead of one per event
(the write is most of what a delivery costs: bench/events); a lone entry leaves at once. The window is
SSE_COALESCE_MS, or longer when the stream's subscribers are many: each fan-out measures how long the loop
took to hand it to every subscriber (to the last one's socket write), and the next window is at least
1 / FANOUT_LOOP_SHARE times that, up to SSE_COALESCE_MAX_MS. So one hot stream's writes take at most about
half of the loop however many follow it, and under load batches grow instead of queues (issue 17:
1,000 subscribers of one deal at 100 events/s).

When Redis fails, the reader retries with backoff while subscribers keep getting heartbeats; once it
reads again, every subscriber gets a RESET in order in its queue, since changes made during the
outage landed without their events (canvas_project.events drops them) and a restarted Redis may have lost
the history.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import redis
import redis.asyncio as aioredis
from django.conf import settings

from canvas_project.observability import metrics
from canvas_project.redis_client import AsyncServiceRedis, async_cluster_client

logger = logging.getLogger(__name__)

STREAM_ID_RE = re.compile(r"^[0-9]{1,20}-[0-9]{1,20}$")
# what a client may send as Last-Event-ID / last_event_id: a stream id, or empty (= none)
STREAM_ID_PATTERN = "^([0-9]{1,20}-[0-9]{1,20})?$"
QUEUE_SIZE = 1000
CATCH_UP_BATCH = 500
BLOCK_MS = 5000
# A stopping reader is cancelled again this often until its task has ended (_Reader.stop).
STOP_RECANCEL_SECONDS = 0.05
# The share of the event loop one stream's fan-out may take: the coalescing window is at least the last
# fan-out's cost divided by this (within SSE_COALESCE_MS .. SSE_COALESCE_MAX_MS).
FANOUT_LOOP_SHARE = 0.5
REDIS_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


def parse_id(stream_id: str) -> tuple[int, int]:
    ms, seq = stream_id.split("-")
    return int(ms), int(seq)


def valid_stream_id(value: str | None) -> bool:
    return bool(value) and bool(STREAM_ID_RE.fullmatch(value))


@dataclass(frozen=True)
class Entry:
    id: str
    fields: dict[str, str]

    @functools.cached_property
    def order(self) -> tuple[int, int]:
        """The id as (ms, seq), parsed once however many subscribers compare it."""
        return parse_id(self.id)

    @functools.cached_property
    def wire(self) -> bytes:
        """The SSE form, built once however many subscribers send it."""
        event, data = self.fields.get("type", "message"), self.fields.get("data", "{}")
        return f"id: {self.id}\nevent: {event}\ndata: {data}\n\n".encode()


@dataclass(frozen=True)
class Reset:
    reason: str
    last_event_id: str | None
    # True when events the client has not seen may be gone for good (trimmed, expired, purged, a restarted
    # Redis, or dropped during an outage): it must reload. False: the history from the client's position is
    # intact and follows; the reset only says the stream was interrupted.
    history_lost: bool = True
    earliest_event_id: str | None = None  # the oldest event the stream still keeps (Mercure's "earliest")


@dataclass(frozen=True)
class End:
    """The stream ends after this marker: `event` (revoked, expired) or None (its lifetime is over: the
    client reconnects and resumes)."""

    event: str | None
    reason: str


HEARTBEAT = object()


class Lease:
    """An open stream's hold on what it was opened with (canvas_project.sse.guard ends it); the hub binds the
    stream's subscriber to it so that ending the lease ends the stream at its next step."""

    __slots__ = ("ended", "_on_end")

    def __init__(self) -> None:
        self.ended: End | None = None
        self._on_end = None

    def bind(self, on_end) -> None:
        self._on_end = on_end
        if on_end is not None and self.ended is not None:
            on_end(self.ended)

    def end(self, marker: End) -> None:
        if self.ended is not None:
            return
        self.ended = marker
        if self._on_end is not None:
            self._on_end(marker)


_clients: dict[int, aioredis.Redis] = {}
# With REDIS_CLUSTER, the readers' cluster client of each loop (its reads block, so a longer read timeout).
_reader_clients: dict[int, object] = {}


def async_redis() -> aioredis.Redis:
    """The async client of the running event loop (one pool per loop; a cluster client with REDIS_CLUSTER)."""
    loop_id = id(asyncio.get_running_loop())
    client = _clients.get(loop_id)
    if client is None:
        if settings.REDIS_CLUSTER:
            client = async_cluster_client()
        else:
            client = AsyncServiceRedis.from_url(
                settings.REDIS_URL, socket_connect_timeout=settings.REDIS_SOCKET_TIMEOUT, health_check_interval=30
            )
        _clients[loop_id] = client
    return client


def _reader_client() -> tuple[object, bool]:
    """(client, owned) for one stream reader. The read timeout outlasts the blocking XREAD: redis-py 8
    defaults it to 5 s, as long as the block, so every quiet XREAD failed with TimeoutError and dropped its
    connection. Single node: a client of its own (one connection, closed with the reader). Cluster: the
    loop's reader client, which sends each reader's XREAD to the node owning that stream's slot on a
    connection of its own while it blocks (redis-py's async cluster takes a free connection per command),
    so one reader per deal per process reads from the right node, and XREAD never names two streams."""
    timeout = BLOCK_MS / 1000 + settings.REDIS_SOCKET_TIMEOUT
    if not settings.REDIS_CLUSTER:
        client = AsyncServiceRedis.from_url(
            settings.REDIS_URL, socket_connect_timeout=settings.REDIS_SOCKET_TIMEOUT, socket_timeout=timeout
        )
        return client, True
    loop_id = id(asyncio.get_running_loop())
    client = _reader_clients.get(loop_id)
    if client is None:
        client = _reader_clients[loop_id] = async_cluster_client(socket_timeout=timeout)
    return client, False


def _decode(entries) -> list[Entry]:
    out = []
    for raw_id, raw_fields in entries:
        out.append(
            Entry(
                id=raw_id.decode() if isinstance(raw_id, bytes) else raw_id,
                fields={
                    (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
                    for k, v in raw_fields.items()
                },
            )
        )
    return out


class _Inbox:
    """A bounded FIFO for one consumer: what asyncio.Queue does here, in one list and at most one future (an
    asyncio.Queue holds four deques and an Event, about 3 KiB per subscriber, and even one empty deque takes
    760 bytes: bench/events --idle). `_head` is the next item to take; the list is emptied once all are taken."""

    __slots__ = ("_items", "_head", "_waiter")

    def __init__(self) -> None:
        self._items: list = []
        self._head = 0
        self._waiter: asyncio.Future | None = None

    def __len__(self) -> int:
        return len(self._items) - self._head

    def empty(self) -> bool:
        return self._head >= len(self._items)

    def full(self) -> bool:
        return len(self) >= QUEUE_SIZE

    def put_nowait(self, item) -> None:
        """Raises asyncio.QueueFull past QUEUE_SIZE items."""
        if len(self) >= QUEUE_SIZE:
            raise asyncio.QueueFull
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def put_many(self, items: list) -> bool:
        """Queue all of `items` (in order) and wake the consumer once; False, queuing none, past QUEUE_SIZE."""
        if len(self._items) - self._head + len(items) > QUEUE_SIZE:
            return False
        self._items.extend(items)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        return True

    def get_nowait(self):
        """The oldest item (IndexError when empty)."""
        items, head = self._items, self._head
        item = items[head]
        if head + 1 >= len(items):
            items.clear()
            self._head = 0
        else:
            items[head] = None  # not held once taken
            self._head = head + 1
        return item

    def clear(self) -> None:
        self._items.clear()
        self._head = 0

    async def get(self):
        while self.empty():
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self.get_nowait()


class _Subscriber:
    __slots__ = ("queue", "overflowed", "ended", "heartbeat", "last_yield")

    def __init__(self, heartbeat: float) -> None:
        self.queue = _Inbox()
        self.overflowed = False
        self.ended: End | None = None
        self.heartbeat = heartbeat
        self.last_yield = asyncio.get_running_loop().time()

    def offer(self, entries: list[Entry]) -> None:
        """Queue a fan-out's entries (in order) and wake the consumer once; past QUEUE_SIZE the subscriber is
        marked overflowed instead: it catches up from Redis rather than holding unbounded memory."""
        if self.overflowed or self.ended is not None:
            return
        if not self.queue.put_many(entries):
            self.overflowed = True

    def end(self, marker: End) -> None:
        """Queue the stream's end ahead of anything still queued: a revoked caller gets nothing more."""
        self.ended = marker
        self.overflowed = False
        self.queue.clear()
        self.queue.put_nowait(marker)

    def reset(self, marker: Reset) -> None:
        """Queue a RESET after what is already queued. The reload it asks for supersedes a full
        queue or a pending catch-up, so those are dropped rather than the marker."""
        if self.ended is not None:
            return
        self.overflowed = False
        if self.queue.full():
            self.queue.clear()
        self.queue.put_nowait(marker)


class _Reader:
    """The one XREAD loop of a stream key in this process."""

    def __init__(self, hub: StreamHub, key: str) -> None:
        self.hub = hub
        self.key = key
        self.subscribers: set[_Subscriber] = set()
        self.tail: str | None = None
        # loop seconds the last fan-out took, from offering its entries to the last subscriber's write
        self.fanout_seconds = 0.0
        self.ready = asyncio.Event()
        self.closing = False  # the task is in its cleanup: stop() no longer cancels it
        self.task = asyncio.create_task(self._run(), name=f"stream-reader:{key}")

    def stop(self) -> None:
        """End the reader now: cancel its task, and again every STOP_RECANCEL_SECONDS until it has ended.

        One cancel is not enough: a cancel that lands as the XREAD's write completes is lost inside redis-py
        on Python 3.11 (canvas_project.redis_client.KeepsCancellation), which raises it only once the XREAD
        has returned, up to BLOCK_MS later, the XREAD blocking on its node meanwhile (issue 15: seen on the
        cluster, where a reader outlived its streams). The next cancel lands on the blocked read, which
        closes that connection at once. The loop's cleanup (closing its own client) is not interrupted."""
        if self.task.done() or self.closing:
            return
        self.task.cancel()
        asyncio.get_running_loop().call_later(STOP_RECANCEL_SECONDS, self.stop)

    async def _tick(self) -> None:
        """Heartbeats for quiet subscribers: one timer per stream, not one per wait of each subscriber."""
        loop = asyncio.get_running_loop()
        while True:
            period = min((s.heartbeat for s in self.subscribers), default=BLOCK_MS / 1000)
            await asyncio.sleep(min(max(period / 8, 0.05), 2.0))
            now = loop.time()
            for subscriber in list(self.subscribers):
                if (
                    now - subscriber.last_yield >= subscriber.heartbeat
                    and subscriber.queue.empty()
                    and subscriber.ended is None
                ):
                    subscriber.queue.put_nowait(HEARTBEAT)

    async def _run(self) -> None:
        client, owned = _reader_client()
        backoff = 0.2
        outage = False  # Redis failed since the last good read: events may have been dropped meanwhile
        before_outage: str | None = None  # the last id read before the outage
        loop = asyncio.get_running_loop()
        coalesce = float(settings.SSE_COALESCE_MS) / 1000
        coalesce_max = max(float(settings.SSE_COALESCE_MAX_MS) / 1000, coalesce)
        last_fanout = -coalesce_max
        ticker = asyncio.create_task(self._tick(), name=f"stream-heartbeat:{self.key}")
        try:
            while True:
                try:
                    if self.tail is None:
                        last = await client.xrevrange(self.key, count=1)
                        self.tail = _decode(last)[0].id if last else "0-0"
                        if outage:
                            outage = False
                            marker = await self._outage_reset(client, before_outage)
                            if not marker.history_lost:
                                self.tail = before_outage  # what other writers recorded meanwhile follows
                            logger.warning(
                                "stream reader %s: Redis is back; subscribers reset (history lost: %s)",
                                self.key,
                                marker.history_lost,
                            )
                            for subscriber in list(self.subscribers):
                                subscriber.reset(marker)
                        self.ready.set()
                    response = await client.xread({self.key: self.tail}, block=BLOCK_MS, count=CATCH_UP_BATCH)
                    window = min(max(coalesce, self.fanout_seconds / FANOUT_LOOP_SHARE), coalesce_max)
                    wait = last_fanout + window - loop.time()
                    if response and wait > 0:
                        # A burst: what arrives in the rest of the window leaves with this, one write per
                        # subscriber instead of one per event (the socket write is most of a delivery's cost).
                        await asyncio.sleep(wait)
                        tail = response[0][1][-1][0]
                        more = await client.xread({self.key: tail}, count=CATCH_UP_BATCH)
                        if more:
                            response[0][1].extend(more[0][1])
                    backoff = 0.2
                except REDIS_ERRORS:
                    if not outage:
                        logger.warning("stream reader %s: Redis unavailable, retrying", self.key)
                        before_outage = self.tail if self.tail not in (None, "0-0") else None
                    outage = True
                    self.tail = None  # follow on from the tail Redis has when it is back (it may be empty)
                    self.ready.set()
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                for _key, entries in response or []:
                    batch = _decode(entries)
                    if not batch:
                        continue
                    self.tail = batch[-1].id
                    for subscriber in list(self.subscribers):
                        subscriber.offer(batch)
                    last_fanout = loop.time()
                    # Runs once every woken subscriber has taken its step (the loop runs ready callbacks in
                    # order): the fan-out's cost, writes included, and whatever else held the loop meanwhile.
                    loop.call_soon(self._fanned_out, last_fanout)
        finally:
            self.closing = True
            ticker.cancel()
            if owned:
                await client.aclose()

    def _fanned_out(self, started: float) -> None:
        self.fanout_seconds = asyncio.get_running_loop().time() - started

    async def _outage_reset(self, client: aioredis.Redis, before: str | None) -> Reset:
        """The RESET after an outage: whether the history still holds the last id read before it."""
        first = _decode(await client.xrange(self.key, count=1))
        earliest = first[0].id if first else None
        tail = self.tail if self.tail != "0-0" else None
        kept = bool(before) and bool(await client.xrange(self.key, min=before, max=before, count=1))
        if kept:
            return Reset(
                "Redis was unavailable for a while; the events it recorded meanwhile follow, but a change made "
                "while no event could be recorded sent none: reload the canvas if you must be exact.",
                before,
                history_lost=False,
                earliest_event_id=earliest,
            )
        return Reset(
            "Redis was unavailable and its event history is gone (restarted or purged); reload the canvas.",
            tail,
            history_lost=True,
            earliest_event_id=earliest,
        )


class StreamHub:
    """Per-process registry of readers; `subscribe` is what an SSE view iterates."""

    def __init__(self) -> None:
        self._readers: dict[str, _Reader] = {}

    def _reader(self, key: str) -> _Reader:
        reader = self._readers.get(key)
        if reader is None or reader.task.done():
            reader = _Reader(self, key)
            self._readers[key] = reader
        return reader

    def _release(self, key: str, subscriber: _Subscriber) -> None:
        reader = self._readers.get(key)
        if reader is None:
            return
        reader.subscribers.discard(subscriber)
        if not reader.subscribers:
            reader.stop()
            self._readers.pop(key, None)

    @property
    def subscriber_count(self) -> int:
        return sum(len(r.subscribers) for r in self._readers.values())

    async def subscribe(
        self, key: str, *, after: str | None, heartbeat: float, lease: Lease | None = None
    ) -> AsyncIterator[object]:
        """Yield Entry, Reset or HEARTBEAT until the consumer stops iterating (or is cancelled), or End, last."""
        async for item in self.subscribe_batches(key, after=after, heartbeat=heartbeat, lease=lease):
            if isinstance(item, list):
                for entry in item:
                    yield entry
            else:
                yield item

    async def subscribe_batches(
        self, key: str, *, after: str | None, heartbeat: float, lease: Lease | None = None
    ) -> AsyncIterator[object]:
        """Yield list[Entry] (everything already queued, in order), Reset or HEARTBEAT; and End, after which
        the iteration stops (the stream's `lease` was ended: revoked, expired, or its lifetime is over).

        `after`: the last id the client saw (resume), or None to follow from now on.
        """

        subscriber = _Subscriber(heartbeat)
        loop = asyncio.get_running_loop()
        reader = self._reader(key)
        reader.subscribers.add(subscriber)
        metrics.sse_subscribers.inc()
        if lease is not None:
            lease.bind(subscriber.end)
        try:
            await reader.ready.wait()
            client = async_redis()
            last_sent = after
            if after is not None:
                reset = await self._stale(client, key, after)
                if reset is not None:
                    yield reset
                    last_sent = reset.last_event_id
                else:
                    async for batch in self._catch_up(client, key, after):
                        last_sent = batch[-1].id
                        yield batch
            queue = subscriber.queue
            floor: tuple[str, tuple[int, int]] | None = None
            pending: Reset | None = None  # met while batching; it leaves after the batch
            while True:
                if subscriber.ended is not None:
                    yield subscriber.ended
                    return
                if subscriber.overflowed:
                    subscriber.overflowed = False
                    queue.clear()
                    reset = await self._stale(client, key, last_sent) if last_sent else None
                    if reset is not None:  # the events it missed were trimmed meanwhile
                        last_sent, floor = reset.last_event_id, None
                        yield reset
                        continue
                    async for batch in self._catch_up(client, key, last_sent or "0-0"):
                        last_sent = batch[-1].id
                        yield batch
                    continue
                if pending is not None:
                    first, pending = pending, None
                else:
                    first = await queue.get() if queue.empty() else queue.get_nowait()
                if isinstance(first, End):
                    yield first
                    return
                if first is HEARTBEAT:  # put by the reader's ticker after `heartbeat` s of quiet
                    subscriber.last_yield = loop.time()
                    yield HEARTBEAT
                    continue
                if isinstance(first, Reset):  # put by the reader after a Redis outage
                    last_sent, floor = first.last_event_id, None
                    subscriber.last_yield = loop.time()
                    yield first
                    continue
                batch = [first]
                while not queue.empty():  # what is already queued leaves in one write
                    item = queue.get_nowait()
                    if isinstance(item, Entry):
                        batch.append(item)
                    elif isinstance(item, End):
                        batch = []
                        pending = item
                        break
                    elif item is not HEARTBEAT:
                        pending = item
                        break
                if last_sent is not None:
                    if floor is None or floor[0] != last_sent:
                        floor = (last_sent, parse_id(last_sent))
                    if batch[0].order <= floor[1]:
                        batch = [entry for entry in batch if entry.order > floor[1]]  # sent by a catch-up
                if batch:
                    last_sent = batch[-1].id
                    floor = (last_sent, batch[-1].order)
                    subscriber.last_yield = loop.time()
                    yield batch
        finally:
            if lease is not None:
                lease.bind(None)
            metrics.sse_subscribers.dec()
            self._release(key, subscriber)

    async def _stale(self, client: aioredis.Redis, key: str, after: str) -> Reset | None:
        try:
            first = _decode(await client.xrange(key, count=1))
            last = _decode(await client.xrevrange(key, count=1))
        except REDIS_ERRORS:
            return None
        tail = last[0].id if last else None
        if not first:
            return Reset("The event history is gone (expired or purged); reload the canvas.", tail)
        earliest = first[0].id
        if parse_id(after) < parse_id(earliest) and after != "0-0":
            return Reset(
                "Your last event is older than the kept history; reload the canvas.", tail, earliest_event_id=earliest
            )
        if parse_id(after) > parse_id(last[0].id):
            return Reset("Your last event is not in this history; reload the canvas.", tail, earliest_event_id=earliest)
        return None

    async def _catch_up(self, client: aioredis.Redis, key: str, after: str) -> AsyncIterator[list[Entry]]:
        cursor = after
        while True:
            try:
                batch = _decode(await client.xrange(key, min=f"({cursor}", count=CATCH_UP_BATCH))
            except REDIS_ERRORS:
                return
            if batch:
                cursor = batch[-1].id
                yield batch
            if len(batch) < CATCH_UP_BATCH:
                return


_hubs: dict[int, StreamHub] = {}


def hub() -> StreamHub:
    """The hub of the running event loop."""
    loop_id = id(asyncio.get_running_loop())
    found = _hubs.get(loop_id)
    if found is None:
        found = _hubs[loop_id] = StreamHub()
    return found


async def close_loop_resources() -> None:
    loop_id = id(asyncio.get_running_loop())
    found = _hubs.pop(loop_id, None)
    if found is not None:
        for reader in list(found._readers.values()):
            reader.stop()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader.task
    for registry in (_clients, _reader_clients):
        client = registry.pop(loop_id, None)
        if client is not None:
            await client.aclose()
