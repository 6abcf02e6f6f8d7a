"""Open streams follow what they were opened with: access, credential and lifetime.

A stream authenticates and authorizes once, when it opens, and then holds no thread and no database
connection (canvas_project.sse.responses). Its `Grant` (user, deal, minimum role, the credential's issue time,
API key, expiry) is registered here, in the event loop's guard, which then:

- every SSE_REAUTH_SECONDS re-checks all the open streams of the process in ONE query (the checker the deals
  app installs, `set_access_checker`), not one query per stream, and ends each stream whose access is gone
  with `event: revoked` (grant removed or lowered below the stream's minimum role, org membership removed,
  user deactivated, password changed since the credential was issued, API key revoked or expired);
- ends a stream when the credential that opened it expires (a JWT's `exp`, a stream ticket's or an API key's
  expiry) with `event: expired`, within DEADLINE_TICK seconds of that moment (one sweep of the guard's own
  task over all streams, not a timer per stream: bench/events --idle counts every byte a stream holds);
- ends a stream after SSE_MAX_STREAM_SECONDS without an event: the client reconnects and resumes with
  Last-Event-ID, which re-authenticates it.

The project core holds the mechanism; what "still has access" means is the deals app's (deals.streams).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection

from canvas_project.sse.hub import End, Lease

logger = logging.getLogger(__name__)

REVOKED = End(
    "revoked",
    "Your access to this deal was revoked (grant removed or lowered, membership removed, account deactivated, "
    "password changed, or API key revoked); this stream has ended. Do not reconnect with the same credential.",
)
EXPIRED = End(
    "expired",
    "The credential this stream was opened with has expired; get a new token or stream ticket and reconnect "
    "with Last-Event-ID to resume.",
)
LIFETIME = End(None, "The stream reached SSE_MAX_STREAM_SECONDS; reconnect with Last-Event-ID to resume.")


@dataclass(frozen=True, slots=True)
class Grant:
    """What an open stream was authorized with, as the access checker re-checks it."""

    user_id: str
    deal_id: str
    minimum: str  # the role the stream needs (deals.models.DealRole)
    issued_at: int | None = None  # a JWT's `iat` or a ticket's issue time (s); None for an API key
    api_key_id: str | None = None
    expires_at: float | None = None  # epoch seconds when the credential expires; None: never


# checker(grants) -> the indices of the grants whose access is gone. Runs in a worker thread; raises nothing
# but the database's errors (the guard then keeps the streams and tries again at the next round).
AccessChecker = Callable[[list[Grant]], Iterable[int]]
_checker: AccessChecker | None = None


def set_access_checker(checker: AccessChecker) -> None:
    global _checker
    _checker = checker


def _checked(grants: list[Grant]) -> list[int]:
    try:
        return list(_checker(grants)) if _checker is not None else []
    finally:
        connection.close()  # a worker thread of the loop's pool: give the connection back at once


# How often the guard looks for streams past their deadline (credential expiry, lifetime).
DEADLINE_TICK = 0.5


class _Open:
    __slots__ = ("grant", "lease", "ends_at", "end")

    def __init__(self, grant: Grant, lease: Lease, ends_at: float | None, end: End | None) -> None:
        self.grant = grant
        self.lease = lease
        self.ends_at = ends_at  # epoch seconds, or None: no deadline
        self.end = end


class StreamGuard:
    """The guard of one event loop: its open streams, one re-check task, one timer per stream."""

    def __init__(self) -> None:
        self._open: dict[Lease, _Open] = {}
        self._task: asyncio.Task | None = None

    @property
    def open_count(self) -> int:
        return len(self._open)

    def open(self, grant: Grant) -> Lease:
        """Register a stream that was just authorized; returns the lease its stream follows (release it with
        `close`)."""
        lease = Lease()
        ends: list[tuple[float, End]] = []
        if grant.expires_at is not None:
            ends.append((grant.expires_at, EXPIRED))
        if settings.SSE_MAX_STREAM_SECONDS:
            ends.append((time.time() + settings.SSE_MAX_STREAM_SECONDS, LIFETIME))
        at, marker = min(ends, key=lambda pair: pair[0]) if ends else (None, None)
        self._open[lease] = _Open(grant, lease, at, marker)
        if at is not None and at <= time.time():
            lease.end(marker)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._watch(), name="stream-guard")
        return lease

    def close(self, lease: Lease) -> None:
        self._open.pop(lease, None)

    def end_due(self) -> int:
        """End the streams whose deadline has come; returns how many."""
        now = time.time()
        due = [h for h in self._open.values() if h.ends_at is not None and h.ends_at <= now and h.lease.ended is None]
        for held in due:
            held.lease.end(held.end)
        return len(due)

    async def recheck(self) -> int:
        """Re-check every open stream's access in one query; end the revoked ones. Returns how many ended."""
        held = [h for h in self._open.values() if h.lease.ended is None]
        if not held:
            return 0
        try:
            gone = await sync_to_async(_checked, thread_sensitive=False)([h.grant for h in held])
        except (OperationalError, InterfaceError):
            logger.warning("stream guard: PostgreSQL unavailable; open streams are re-checked at the next round")
            return 0
        for index in gone:
            held[index].lease.end(REVOKED)
        return len(gone)

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        next_check = loop.time() + settings.SSE_REAUTH_SECONDS
        while self._open:
            await asyncio.sleep(min(DEADLINE_TICK, settings.SSE_REAUTH_SECONDS))
            try:
                self.end_due()
                if loop.time() >= next_check:
                    next_check = loop.time() + settings.SSE_REAUTH_SECONDS
                    await self.recheck()
            except Exception:  # a bug in one round must not leave every later stream unchecked
                logger.exception("stream guard: re-check failed")


_guards: dict[int, StreamGuard] = {}


def guard() -> StreamGuard:
    """The guard of the running event loop."""
    loop_id = id(asyncio.get_running_loop())
    found = _guards.get(loop_id)
    if found is None:
        found = _guards[loop_id] = StreamGuard()
    return found
