"""The engines' canvas context, cached in Redis: one hash per deal, `canvas:context:{D}` (keys.context_key,
family context_cache, keys.CONTEXT_CACHE_TTL).

Without it every context GET re-reads the memo from the Store, runs three SQL queries for suggestions,
comments and conditions (twice: once for the summary, once for the page), counts the stored nodes with an
aggregate over the Store's rows and reads a page of them: about four times the fixed cost of a contract call
on a canvas of 5,000 nodes (bench/context). Its fields, each `<stamp>\\n<JSON>`:

- `base`: the summary of every node but the brush findings, and the derived nodes but the brush findings
  (sections, suggestions, top-level comments, approval conditions) with their implicit edges. Stamp
  `<memo_version>.<nodes_version>`.
- `page:<tier>:<c|n>:<framework>`: the newest stored nodes, with (`c`) or without (`n`) their content, the 201
  newest or the 1,001 newest (tiers, so a rare large page does not weigh on the default one), and whether
  that is all of them; both variants are written together and a request reads the one it lists. Stamp
  `<nodes_version>`.
- `edges`: every stored edge. Stamp `<nodes_version>`.

A field is used only when its stamp equals the counters of the deal row that the caller's access check has
just read. Every memo write raises `memo_version` and every other node write raises `nodes_version`
(deals.services.deal_nodes_touch), both once the write is visible, and a request reads the row before any
data: a field built from data older than some write carries an older stamp, so no request that saw the
write can use it. Validation therefore costs nothing, and a cache left behind by a Redis outage or a lost
write to Redis is never served. A memo that was never stored is not cached (its first read lays it out at
version 0). Brush findings live in Redis with their own TTL and are read on every call (the deal's index
set in the same round trip as the cache, the passes in a second one when there are any), never cached, so
their expiry or purge shows at once.

Callers pass a deal row read in the same request (resolve_deal_access), never an instance kept from earlier:
its counters are what makes the cache safe. With Redis down everything is read from the Store and PostgreSQL
(slower, never stale, never failing for that).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import orjson
import redis

from canvas.nodes import selectors as node_selectors
from canvas_project import keys
from canvas_project.redis_client import get_redis
from deals.models import Deal

logger = logging.getLogger(__name__)
REDIS_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)

# The stored nodes cached per framework: the newest PAGE_TIERS[i] of them, the smallest tier that answers.
# 201 answers the default maxNodes (200) with the one more that tells `truncated`; 1,001 the largest.
PAGE_TIERS = (201, 1001)
# At most this many fields per deal: a page per framework asked for is a new field, and frameworks are
# the engines' own words.
MAX_FIELDS = 16


def _field_page(tier: int, with_content: bool, framework: str | None) -> str:
    return f"page:{tier}:{'c' if with_content else 'n'}:{framework or ''}"


def without_content(nodes: list[dict]) -> list[dict]:
    return [{k: v for k, v in node.items() if k != "content"} for node in nodes]


def _decode(raw: bytes | None, stamp: str) -> object | None:
    """The JSON of a cached field whose stamp is `stamp`; None for a missing, stale or unreadable one."""
    if raw is None:
        return None
    end = raw.find(b"\n")
    if end < 0 or raw[:end] != stamp.encode("ascii"):
        return None
    try:
        return orjson.loads(memoryview(raw)[end + 1 :])  # a view: the page is not copied
    except orjson.JSONDecodeError:
        return None


def _encode(stamp: str, value: object) -> bytes:
    return stamp.encode("ascii") + b"\n" + orjson.dumps(value)


@dataclass
class Snapshot:
    """Every node but the stored ones: the summary of the whole canvas, the derived nodes in listing order
    (brush findings last) and their implicit edges."""

    summary: dict
    derived: list[dict]
    implicit: list[dict]


@dataclass
class ContextReader:
    """One request's view of the cache: a single HMGET for the fields it may need, the missing or stale
    ones built from the Store and PostgreSQL, and written back together by `save()`.

    Raises StoreUnavailable (from the builders) when a field must be built and the Store is down.
    """

    deal: Deal
    framework: str | None = None
    with_content: bool = True
    want_page: bool = True
    want_edges: bool = False
    _cached: dict[str, bytes | None] = field(default_factory=dict)
    _writes: dict[str, bytes] = field(default_factory=dict)
    _fields: int = 0
    _index: set | None = None
    _redis_ok: bool = True

    def __post_init__(self) -> None:
        names = ["base"]
        if self.want_page:
            names += [_field_page(tier, self.with_content, self.framework) for tier in PAGE_TIERS]
        if self.want_edges:
            names.append("edges")
        try:
            with get_redis().pipeline(transaction=False) as pipe:
                pipe.hmget(keys.context_key(self.deal.pk), names)
                pipe.hlen(keys.context_key(self.deal.pk))
                pipe.smembers(keys.index_key(self.deal.pk))  # where the brush passes are listed
                values, self._fields, self._index = pipe.execute()
        except REDIS_ERRORS:
            logger.warning("canvas context cache unavailable (Redis) for deal %s: reading the Store", self.deal.pk)
            values, self._redis_ok = [None] * len(names), False
        self._cached = dict(zip(names, values, strict=True))

    @property
    def _base_stamp(self) -> str:
        return f"{self.deal.memo_version}.{self.deal.nodes_version}"

    @property
    def _nodes_stamp(self) -> str:
        return str(self.deal.nodes_version)

    def snapshot(self) -> Snapshot:
        base = _decode(self._cached.get("base"), self._base_stamp)
        if base is None:
            derived, implicit, memo_stored = node_selectors.durable_derived_nodes(self.deal)
            summary = node_selectors.summarize(derived, stored_counts=node_selectors.stored_status_counts(self.deal.pk))
            base = {"summary": summary, "derived": derived, "implicit": implicit}
            if memo_stored:
                self._write("base", _encode(self._base_stamp, base))
        # Redis down: no brush passes either (as brush_findings_of answers), without a second wait for it
        brush, brush_edges = node_selectors.brush_nodes(self.deal, index_members=self._index if self._redis_ok else ())
        summary = node_selectors.summaries_combined(base["summary"], node_selectors.summarize(brush))
        return Snapshot(summary=summary, derived=base["derived"] + brush, implicit=base["implicit"] + brush_edges)

    def stored(self, room: int) -> tuple[list[dict], bool]:
        """(the newest `room` stored nodes of the framework, newest first, with their content when the reader
        is `with_content`; whether there are more)."""
        wanted = room + 1  # one more tells whether there are more
        for tier in PAGE_TIERS:
            page = _decode(self._cached.get(_field_page(tier, self.with_content, self.framework)), self._nodes_stamp)
            if page is not None and (page["complete"] or len(page["nodes"]) >= wanted):
                break
        else:
            tier = next((t for t in PAGE_TIERS if t >= wanted), wanted)
            nodes = node_selectors.stored_newest(self.deal.pk, limit=tier, framework=self.framework)
            complete = len(nodes) < tier
            variants = {True: nodes, False: without_content(nodes)}
            page = {"nodes": variants[self.with_content], "complete": complete}
            known = self._cached.get(_field_page(tier, self.with_content, self.framework)) is not None
            if tier in PAGE_TIERS and (known or self._fields + 2 <= MAX_FIELDS):
                for flag, listed in variants.items():
                    value = {"nodes": listed, "complete": complete}
                    self._write(_field_page(tier, flag, self.framework), _encode(self._nodes_stamp, value))
        nodes = page["nodes"]
        return nodes[:room], len(nodes) > room

    def edges(self) -> list[dict]:
        """Every stored edge of the deal."""
        edges = _decode(self._cached.get("edges"), self._nodes_stamp)
        if edges is None:
            edges = node_selectors.all_edges(self.deal.pk)
            self._write("edges", _encode(self._nodes_stamp, edges))
        return edges

    def _write(self, name: str, value: bytes) -> None:
        if self._redis_ok:
            self._writes[name] = value

    def save(self) -> None:
        """Write the fields this request built (one round trip); Redis down is only logged."""
        if not self._writes:
            return
        key = keys.context_key(self.deal.pk)
        try:
            with get_redis().pipeline(transaction=False) as pipe:
                pipe.hset(key, mapping=self._writes)
                pipe.expire(key, keys.CONTEXT_CACHE_TTL)
                pipe.execute()
        except REDIS_ERRORS:
            logger.warning("could not cache the canvas context of deal %s: Redis unavailable", self.deal.pk)
        self._writes = {}
