"""The Redis side of the purge: find, count and delete per-deal keys through the key registry.

No key is spelled here. Names come from canvas_project.keys: `fixed_keys()` and the per-deal index
(`index_key`) say where one deal's keys are, `scan_pattern()` + `classify_batch()` find every deal's
keys in mode `all`. This module knows nothing of PostgreSQL, so the benchmark drives it on its own.

Cluster: every per-deal key carries the deal as a hash tag, so one deal lives in one slot of one
primary. The walk below talks to each primary through a plain connection to that node, and only ever
sends a multi-key command whose keys share one slot when the server is a cluster (CROSSSLOT otherwise).
Since nothing of one deal is on another node, mode `all` purges the primaries at once, a thread each.
"""

from __future__ import annotations

import queue
import threading
import uuid
from bisect import bisect_left
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from operator import itemgetter

import redis
from redis.cluster import RedisCluster

from canvas_project import keys
from canvas_project.redis_client import get_redis

# SCAN's COUNT hint. About 1000 keys per round trip: large enough that the per-command overhead is
# amortised, small enough that no single command holds the server for more than a millisecond or two.
SCAN_BATCH = 1000
# Deals per round trip when mode `all` (without protected families) rewrites the per-deal indexes.
INDEX_BATCH = 500

INDEX = "index"  # what classify() answers for a deal's index set; not a family, never counted
SKIP_RECENT_ACTIVITY = "recent_activity"
SKIP_ACTIVE_RUN = "active_run"

ProgressCallback = Callable[["WalkProgress"], None]


def purge_redis_client() -> redis.Redis | RedisCluster:
    """The client the purge uses: get_redis(), a RedisCluster when REDIS_CLUSTER is on (a purge of mode
    `all` walks every primary, which the cluster client finds through CLUSTER SLOTS)."""
    return get_redis()


def is_cluster(client) -> bool:
    return isinstance(client, RedisCluster)


def primary_clients(client) -> list[redis.Redis]:
    """One plain client per primary (just the client itself outside a cluster)."""
    if is_cluster(client):
        return [client.get_redis_connection(node) for node in client.get_primaries()]
    return [client]


def deal_node_client(client, deal_id: str) -> redis.Redis:
    """A plain client to the node that holds the deal's slot (the client itself outside a cluster)."""
    if is_cluster(client):
        return client.get_redis_connection(client.get_node_from_key(keys.index_key(deal_id)))
    return client


def normalise_deal_id(deal_id: uuid.UUID | str) -> str:
    """The deal id as the registry spells it inside a hash tag. Raises ValueError when malformed."""
    return str(uuid.UUID(str(deal_id)))


def empty_counts() -> dict[str, int]:
    """Every Redis family of the registry, at zero."""
    return {name: 0 for name in keys.FAMILIES}


def _decode(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def server_time_ms(node: redis.Redis) -> int:
    # Stream ids are the server's millisecond clock, so "recent" is measured on the server's clock.
    seconds, micros = node.time()
    return int(seconds) * 1000 + int(micros) // 1000


def _stream_id_ms(entry_id: bytes | str) -> int:
    return int(_decode(entry_id).split("-", 1)[0])


def _is_recent(reply, active_since_ms: int) -> bool:
    """XREVRANGE <events> + - COUNT 1 answered `reply`: is its last entry at or after the cutoff?"""
    if isinstance(reply, Exception) or not reply:
        return False  # no stream (or not a stream): no recorded activity
    return _stream_id_ms(reply[0][0]) >= active_since_ms


# --- one deal ---------------------------------------------------------------------------------------
def deal_recently_active(*, client, deal_id: str, within_secs: int) -> bool:
    """Whether the deal's event stream has an entry newer than `within_secs` seconds."""
    node = deal_node_client(client, deal_id)
    with node.pipeline(transaction=False) as pipe:
        pipe.time()
        pipe.xrevrange(keys.events_key(deal_id), count=1)
        (seconds, micros), reply = pipe.execute(raise_on_error=False)
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    return _is_recent(reply, now_ms - within_secs * 1000)


# Names a purge computes for every deal: templates made once by the registry's builders, filled per deal
# (mode all plans every deal, and building each name through the builders would cost more than the purge).
_SAMPLE_DEAL = str(uuid.UUID(int=0))


def _fixed_parts() -> dict[str, tuple[bool, list[tuple[str, str]]]]:
    """Family -> (protected, [(text before the deal id, text after it)] of each fixed name), registry order."""
    parts: dict[str, tuple[bool, list[tuple[str, str]]]] = {}
    for family, names in keys.fixed_keys(_SAMPLE_DEAL).items():
        parts[family] = (keys.FAMILIES[family].protected, [tuple(name.split(_SAMPLE_DEAL)) for name in names])
    return parts


_FIXED_PARTS = _fixed_parts()
_INDEX_TEMPLATE = keys.index_key(_SAMPLE_DEAL)
_EVENTS_TEMPLATE = keys.events_key(_SAMPLE_DEAL)
_PREFIX = keys.PREFIX.encode()
# What an index entry may be: `<prefix>:<kind>:{<deal>}:<more>` for a kind of a variable family (the only
# keys producers track): (kind, family, protected), in the registry's order.
_VARIABLE_KINDS = [
    (kind.encode(), family.name, family.protected)
    for family in keys.FAMILIES.values()
    if family.variable
    for kind in family.kinds
]


def fixed_names(deal_id: str) -> list[tuple[str, str]]:
    """(family, name) of each of the deal's fixed keys (a normalised deal id); the same as keys.fixed_keys()."""
    return [
        (family, before + deal_id + after) for family, (_, parts) in _FIXED_PARTS.items() for before, after in parts
    ]


def _index_name(deal_id: str) -> str:
    return _INDEX_TEMPLATE.replace(_SAMPLE_DEAL, deal_id)


@dataclass
class DealKeyPlan:
    """One deal's keys as the registry knows them: what a purge would take, and the index entries."""

    deal_id: str
    by_family: dict[str, list[str | bytes]]  # family -> names, in the order the deal's keys are met
    index_members: list[bytes]
    kept_members: list[bytes]  # index entries of protected keys this purge leaves in place
    recent: bool = False  # the deal's event stream is newer than the purge's cutoff


def deal_key_plan(*, deal_id: str, members: list[bytes], include_protected: bool) -> DealKeyPlan:
    """Fixed names plus the members of the deal's index (as SMEMBERS answered): O(keys of the deal).

    A followed entry is `<prefix>:<kind>:{<deal>}:<more>` for a kind of a variable family of the
    registry (what producers track with keys.track_variable_key()). Anything else in the index (another
    deal's key, a fixed name, an index, no per-deal key at all, a name with a newline) is never
    followed: it is dropped from the index, and whatever it names is left alone. Mode all runs this for
    every deal, so the members are sorted once and each kind's run of names found by bisection, without
    a Python step per key; and they are purged in name order: keys written together (a document's
    crops, a run's parts) sort together and sit together in Redis's memory, and Redis frees them a
    quarter faster that way (bench/purge.py).
    """
    by_family: dict[str, list[str | bytes]] = {
        family: [before + deal_id + after for before, after in parts]
        for family, (protected, parts) in _FIXED_PARTS.items()
        if include_protected or not protected
    }
    kept: list[bytes] = []
    ordered = sorted(members)
    if b"\n" in b"".join(ordered):  # not a registry name (keys.classify() refuses it): never followed
        ordered = [name for name in ordered if b"\n" not in name]
    tag = b":{" + deal_id.encode("ascii") + b"}:"
    for kind, family, protected in _VARIABLE_KINDS:
        prefix = _PREFIX + b":" + kind + tag
        start = bisect_left(ordered, prefix)
        if start < len(ordered) and ordered[start] == prefix:  # `<more>` may not be empty
            start += 1
        if start == len(ordered) or not ordered[start].startswith(prefix):
            continue
        names = ordered[start : bisect_left(ordered, prefix + b"\xff", start)]
        if protected and not include_protected:
            kept += names
        else:
            by_family.setdefault(family, []).extend(names)
    return DealKeyPlan(deal_id, by_family, members, kept)


def plan_reads(deal_id: str, cutoff_ms: int | None) -> list[tuple]:
    """The commands whose replies deal_key_plan() needs: the index, and the activity check if asked."""
    reads: list[tuple] = [("SMEMBERS", _index_name(deal_id))]
    if cutoff_ms is not None:
        reads.append(("XREVRANGE", _EVENTS_TEMPLATE.replace(_SAMPLE_DEAL, deal_id), "+", "-", "COUNT", 1))
    return reads


def plan_commands(plan: DealKeyPlan, *, dry_run: bool) -> tuple[list[tuple], list[str]]:
    """The commands that purge (or, dry, count) one planned deal, and the family each reply counts
    ("index" for the index set going whole, "" for a reply that counts nothing).

    One UNLINK (EXISTS when dry) per family, the deal's keys kept together: Redis frees keys written
    together fastest when they are deleted together. Then the index: it goes whole when nothing of it
    stays; otherwise the entries of what was purged (and those never followed) leave it.
    """
    verb = "EXISTS" if dry_run else "UNLINK"
    commands = [(verb, *names) for names in plan.by_family.values() if names]
    counted = [family for family, names in plan.by_family.items() if names]
    if not dry_run:
        if not plan.kept_members:
            commands.append(("UNLINK", _index_name(plan.deal_id)))
            counted.append(INDEX)
        else:
            kept = set(plan.kept_members)
            dropped = [member for member in plan.index_members if member not in kept]
            if dropped:
                commands.append(("SREM", _index_name(plan.deal_id), *dropped))
                counted.append("")
    return commands, counted


def _prune_expired(node: redis.Redis, plan: DealKeyPlan) -> None:
    """Drop from the index the kept entries whose key has expired meanwhile."""
    with node.pipeline(transaction=False) as pipe:
        for member in plan.kept_members:
            pipe.exists(member)
        alive = pipe.execute()
    expired = [m for m, exists in zip(plan.kept_members, alive, strict=True) if not exists]
    if expired:
        node.srem(keys.index_key(plan.deal_id), *expired)


def purge_deal_keys(*, client, deal_id: str, include_protected: bool, dry_run: bool) -> dict[str, int]:
    """Delete (or, dry, count) one deal's keys; returns keys per family, every family present.

    No keyspace scan: the deal's index, then its deletion and the index update in one MULTI on the
    deal's node (one slot), so a reader never sees half a deal.
    """
    node = deal_node_client(client, deal_id)
    members = list(node.smembers(_index_name(deal_id)))
    plan = deal_key_plan(deal_id=deal_id, members=members, include_protected=include_protected)
    commands, counted = plan_commands(plan, dry_run=dry_run)
    with node.pipeline(transaction=not dry_run) as pipe:
        for command in commands:
            pipe.execute_command(*command)
        replies = pipe.execute()
    counts = empty_counts()
    for family, reply in zip(counted, replies, strict=True):
        if family in counts:
            counts[family] += int(reply)
    if not dry_run and plan.kept_members:
        _prune_expired(node, plan)
    return counts


# --- every deal (mode all) --------------------------------------------------------------------------
@dataclass
class WalkProgress:
    """Where a mode-`all` purge stands, summed over the primaries (they are walked at once on a cluster)."""

    node: int  # the primary (1-based, in primary_clients() order) whose report this step follows
    nodes: int
    scanned: int  # keys SCAN returned so far (all nodes)
    matched: int  # keys deleted (or, dry, that would be)
    deals: int  # deals seen so far
    keyspace: int  # DBSIZE of the nodes, read before each node's walk (a progress estimate only)
    stage: str = "sweep"  # "known": some node is still purging the known deals by name; "sweep": SCAN walks
    deals_done: int = 0  # stage "known": deals handled so far, of deals_total
    deals_total: int = 0
    nodes_done: int = 0  # primaries whose whole purge has ended


@dataclass
class WalkOutcome:
    counts: dict[str, int] = field(default_factory=empty_counts)
    deals_seen: set[str] = field(default_factory=set)
    skipped: dict[str, str] = field(default_factory=dict)  # deal -> reason
    scanned: int = 0
    indexes_deleted: int = 0  # index sets unlinked (with protected families), not in `counts`

    @classmethod
    def merged(cls, parts: Iterable[WalkOutcome]) -> WalkOutcome:
        """The sum of per-node outcomes. The same whatever order the nodes finished in: counts keep the
        registry's family order, and `skipped` is sorted by deal."""
        total = cls()
        skipped: dict[str, str] = {}
        for part in parts:
            for family, count in part.counts.items():
                total.counts[family] = total.counts.get(family, 0) + count
            total.deals_seen |= part.deals_seen
            skipped.update(part.skipped)
            total.scanned += part.scanned
            total.indexes_deleted += part.indexes_deleted
        total.skipped = dict(sorted(skipped.items()))
        return total


_PENDING = object()
_UNDECIDED = object()
_KEY_OF_ROW, _DEAL_OF_ROW = itemgetter(0), itemgetter(2)


class _NodeWalk:
    """One SCAN pass over one node, classifying and deleting as it goes.

    A key's deal is decided once (purge, or skip and why); with exclude_active_within_secs a deal first
    seen is held until its activity check (an XREVRANGE sent with the next bundle) answers.
    """

    def __init__(
        self,
        *,
        node: redis.Redis,
        cross_slot: bool,
        include_protected: bool,
        dry_run: bool,
        allowed: set[str] | None,
        pre_skips: dict[str, str],
        active_within_secs: int | None,
        outcome: WalkOutcome,
        decided: dict[str, object],
        index_deals: set[str],
        kept: dict[str, list[bytes]],
    ) -> None:
        self.node = node
        self.cross_slot = cross_slot
        self.include_protected = include_protected
        self.dry_run = dry_run
        self.allowed = allowed
        self.pre_skips = pre_skips
        self.outcome = outcome
        self.decided = decided
        self.index_deals = index_deals
        self.kept = kept  # deal -> the protected keys seen and left in place
        self.active_since_ms = None if active_within_secs is None else server_time_ms(node) - active_within_secs * 1000
        self.groups: dict[str | tuple[str, str], list[bytes]] = {}
        # Families this walk leaves in place (the protected ones and the index, unless included).
        self.left_alone = set() if include_protected else {INDEX, *(n for n, f in keys.FAMILIES.items() if f.protected)}
        self.waiting: dict[str, list[tuple[str, bytes]]] = {}
        self.checks: list[str] = []
        self.matched = 0
        # Every deal is purged (no org, no skips, no activity checks) on a single server: the batch
        # can be taken family by family, without a Python step per key (see _take_grouped_batch).
        self.grouped = cross_slot and allowed is None and not pre_skips and self.active_since_ms is None
        self.seen_raw: set[bytes] = set()  # deal ids as bytes, decoded once at the end of the walk

    def _queue(self, deal: str, family: str, key: bytes) -> None:
        if self.dry_run:
            if family != INDEX:
                self.outcome.counts[family] += 1
                self.matched += 1
            return
        # Outside a cluster one UNLINK per family and batch (the per-family count comes straight from
        # its reply); in a cluster one per deal and family, since a deal is one slot.
        group = family if self.cross_slot else (deal, family)
        self.groups.setdefault(group, []).append(key)

    def _decide(self, deal: str) -> object:
        if deal in self.pre_skips:
            return self.pre_skips[deal]
        if self.active_since_ms is None:
            return None
        self.waiting[deal] = []
        self.checks.append(deal)
        return _PENDING

    def _take_grouped_batch(self, found: list[bytes]) -> None:
        """The common case of _take_batch, family by family: map() and extend() in C, no per-key code."""
        for family, rows in keys.classify_batch_grouped(found).items():
            self.seen_raw.update(map(_DEAL_OF_ROW, rows))
            if family in self.left_alone:
                for key, _, deal in rows:  # the index and the protected keys: a few per deal
                    if family == INDEX:
                        self.index_deals.add(deal.decode())
                    else:
                        self.kept.setdefault(deal.decode(), []).append(key)
            elif self.dry_run:
                if family != INDEX:  # an index is not a family: never counted
                    self.outcome.counts[family] += len(rows)
                    self.matched += len(rows)
            else:
                self.groups.setdefault(family, []).extend(map(_KEY_OF_ROW, rows))

    def finish(self) -> None:
        self.outcome.deals_seen.update(deal.decode() for deal in self.seen_raw)
        self.seen_raw.clear()

    def _take_batch(self, found: list[bytes]) -> None:
        """Classify one SCAN batch (in one pass, through the registry) and queue what goes."""
        allowed, seen, decided = self.allowed, self.outcome.deals_seen, self.decided
        left_alone, queue, groups = self.left_alone, self._queue, self.groups
        fast = self.cross_slot and not self.dry_run
        for key, family, deal in keys.classify_batch(found):
            if allowed is not None and deal not in allowed:
                continue
            seen.add(deal)
            if family in left_alone:
                if family == INDEX:  # rewritten after the walk: it still lists the protected keys that stay
                    self.index_deals.add(deal)
                else:
                    self.kept.setdefault(deal, []).append(key)
                continue
            decision = decided.get(deal, _UNDECIDED)
            if decision is _UNDECIDED:
                decision = decided[deal] = self._decide(deal)
            if decision is None:
                if fast:
                    names = groups.get(family)
                    if names is None:
                        groups[family] = [key]
                    else:
                        names.append(key)
                else:
                    queue(deal, family, key)
            elif decision is _PENDING:
                self.waiting[deal].append((family, key))
            else:
                self.outcome.skipped[deal] = decision  # type: ignore[assignment]

    def run(self, *, batch: int, on_round: Callable[[int], None]) -> None:
        """Walk the node keeping the server busy while this process classifies.

        Two connections: one only SCANs, the other carries the bundles (UNLINKs and activity checks)
        built from the previous batch. As soon as SCAN i's reply is read SCAN i+1 is sent, so the server
        scans the next batch while this process classifies the current one; then the previous bundle's
        replies are read and the next bundle sent. (On one connection Redis would hold SCAN's reply until
        the bundle queued behind it was done, and the two would take turns.) No command is larger than
        one batch, so other clients wait at most about a millisecond.
        """
        scan_args = ("MATCH", keys.scan_pattern(), "COUNT", batch)
        take = self._take_grouped_batch if self.grouped else self._take_batch
        pool = self.node.connection_pool
        scanner, deleter = _pool_connection(pool), _pool_connection(pool)
        finished = False
        try:
            scanner.send_command("SCAN", 0, *scan_args)
            scanning = True
            bundle: list[tuple[str, str]] = []
            while scanning or bundle:
                if scanning:
                    cursor, found = scanner.read_response()
                    scanning = int(cursor) != 0
                    if scanning:
                        scanner.send_command("SCAN", int(cursor), *scan_args)
                    self.outcome.scanned += len(found)
                    take(found)
                self._settle(bundle, _read_replies(deleter, len(bundle)))
                bundle, commands = self._next_bundle()
                if commands:
                    deleter.send_packed_command(_packed(deleter, commands))
                on_round(self.matched)
            finished = True
            self.finish()
        finally:
            for conn in (scanner, deleter):
                if not finished:  # replies may be left unread: this connection cannot be reused
                    conn.disconnect()
                pool.release(conn)

    def _next_bundle(self) -> tuple[list[tuple[str, str]], list[tuple]]:
        groups, self.groups = self.groups, {}
        checks, self.checks = self.checks, []
        bundle: list[tuple[str, str]] = []
        commands: list[tuple] = []
        for group, names in groups.items():
            family = group if isinstance(group, str) else group[1]
            bundle.append(("unlink", family))
            commands.append(("UNLINK", *names))
        for deal in checks:
            bundle.append(("check", deal))
            commands.append(("XREVRANGE", keys.events_key(deal), "+", "-", "COUNT", 1))
        return bundle, commands

    def _settle(self, bundle: list[tuple[str, str]], replies: list) -> None:
        for (kind, name), reply in zip(bundle, replies, strict=True):
            if kind == "unlink":
                if isinstance(reply, Exception):
                    raise reply
                # Counted from UNLINK's reply: SCAN may return a key twice, UNLINK deletes it once.
                if name == INDEX:
                    self.outcome.indexes_deleted += reply
                else:
                    self.outcome.counts[name] += reply
                    self.matched += reply
                continue
            recent = _is_recent(reply, self.active_since_ms)  # type: ignore[arg-type]
            self.decided[name] = SKIP_RECENT_ACTIVITY if recent else None
            held = self.waiting.pop(name)
            if recent:
                self.outcome.skipped[name] = SKIP_RECENT_ACTIVITY
            else:
                for family, key in held:
                    self._queue(name, family, key)


try:  # hiredis packs a command in C; redis-py's own packer checks every argument in Python first
    from hiredis import pack_command as _pack_command
except ImportError:  # pragma: no cover - hiredis is a dependency (redis[hiredis])
    _pack_command = None


def _packed(conn, commands: list[tuple]) -> list[bytes]:
    """Commands as one RESP payload, for send_packed_command."""
    if _pack_command is None:
        return conn.pack_commands(commands)
    return [b"".join(map(_pack_command, commands))]


def _pool_connection(pool):
    try:
        return pool.get_connection()
    except TypeError:  # redis-py before 5.3 wants a command name
        return pool.get_connection("SCAN")


def _reply_or_error(conn):
    try:
        return conn.read_response()
    except redis.exceptions.ResponseError as exc:  # an error reply; the connection is still in step
        return exc


try:  # what the hiredis reader of redis-py's parser answers when a reply is not complete yet
    from redis._parsers.hiredis import NOT_ENOUGH_DATA as _NOT_ENOUGH_DATA
except ImportError:  # pragma: no cover - older redis-py configured hiredis' default
    _NOT_ENOUGH_DATA = False


def _hiredis_reader(conn):
    """(gets, fill) of the connection's hiredis reader, or None when it has none (no hiredis, another parser).

    redis-py's read_response() spends a few microseconds of Python on each reply, and mode all reads one
    per family and deal (about 12 a deal): a tenth of the purge's own CPU. The reader hands out parsed
    replies in C; `fill` reads the socket into it when a reply is incomplete. Both are redis-py internals,
    so tests/superadmin/test_keyspace.py checks that the installed redis-py still offers them.
    """
    parser = getattr(conn, "_parser", None)
    reader = getattr(parser, "_reader", None)
    fill = getattr(parser, "read_from_socket", None)
    if reader is None or fill is None or not hasattr(reader, "gets"):
        return None
    return reader.gets, fill


def _read_replies(conn, count: int) -> list:
    """The next `count` replies of a connection, error replies as exception objects (not raised)."""
    fast = _hiredis_reader(conn)
    if fast is None:
        return [_reply_or_error(conn) for _ in range(count)]
    gets, fill = fast
    replies = []
    append = replies.append
    for _ in range(count):
        reply = gets()
        while reply is _NOT_ENOUGH_DATA:
            fill()
            reply = gets()
        if isinstance(reply, redis.exceptions.ConnectionError):
            raise reply
        append(reply)
    return replies


# Drop a deal's index entries whose key is gone, in one step on the server (the index and its entries
# share the deal's slot). ARGV: the protected keys the walk saw and left, kept without a look. One
# multi-key EXISTS over the other entries is the usual answer (0: all purged); only when some exist (a
# producer wrote meanwhile) is each entry checked, so no live key becomes unfindable. unpack() has a
# stack limit, hence the slices.
_PRUNE_INDEX_LUA = """
local keep = {}
for _, name in ipairs(ARGV) do keep[name] = true end
local candidates = {}
for _, member in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if not keep[member] then candidates[#candidates + 1] = member end
end
local alive = 0
for first = 1, #candidates, 1000 do
  alive = alive + redis.call('EXISTS', unpack(candidates, first, math.min(first + 999, #candidates)))
end
local gone = candidates
if alive > 0 then
  gone = {}
  for _, member in ipairs(candidates) do
    if redis.call('EXISTS', member) == 0 then gone[#gone + 1] = member end
  end
end
for first = 1, #gone, 1000 do
  redis.call('SREM', KEYS[1], unpack(gone, first, math.min(first + 999, #gone)))
end
return #gone
"""


def _rewrite_indexes(*, client, deals: list[str], kept: dict[str, list[bytes]]) -> None:
    """After a walk without protected families: drop the index entries of the keys it purged."""
    by_node: dict[int, tuple[redis.Redis, list[str]]] = {}
    for deal in deals:
        node = deal_node_client(client, deal)
        by_node.setdefault(id(node), (node, []))[1].append(deal)
    for node, node_deals in by_node.values():
        prune = node.register_script(_PRUNE_INDEX_LUA)
        for start in range(0, len(node_deals), INDEX_BATCH):
            with node.pipeline(transaction=False) as pipe:
                for deal in node_deals[start : start + INDEX_BATCH]:
                    prune(keys=[keys.index_key(deal)], args=kept.get(deal, []), client=pipe)
                pipe.execute()


# Deals per round trip in the known-deals stage: about 5,000 keys at 100 keys a deal, so the server has
# the next batch queued while this process plans the current one, and a batch's index reads (answered in
# one go) hold the server about a millisecond. At 200 deals a batch other clients' p99 passed 10 ms
# (bench/purge.py's GET probe).
KNOWN_BATCH = 50


def _purge_known_deals(
    *,
    node: redis.Redis,
    deals: list[str],
    include_protected: bool,
    active_within_secs: int | None,
    outcome: WalkOutcome,
    decided: dict[str, object],
    report: Callable[[int], None],
) -> None:
    """Stage one of a real mode-`all` purge on one node: each known deal by its registry names.

    Two connections, as in the walk: one carries the reads (each deal's index, its activity check), the
    other the deletions. The reads of batch i+1 are sent before batch i is planned, and the deletions of
    batch i-1 answered only after batch i's are sent, so the server works while this process plans.
    Records each deal's decision in `decided` (None: purged; else the skip reason).
    """
    cutoff = None if active_within_secs is None else server_time_ms(node) - active_within_secs * 1000
    per_deal = len(plan_reads(_SAMPLE_DEAL, cutoff))
    batches = [deals[start : start + KNOWN_BATCH] for start in range(0, len(deals), KNOWN_BATCH)]
    pool = node.connection_pool
    reader, deleter = _pool_connection(pool), _pool_connection(pool)
    finished = False

    def send_reads(batch: list[str]) -> None:
        reader.send_packed_command(_packed(reader, [r for deal in batch for r in plan_reads(deal, cutoff)]))

    counted_before: list[str] = []
    done = 0
    try:
        if batches:
            send_reads(batches[0])
        for number, batch in enumerate(batches):
            replies = _read_replies(reader, per_deal * len(batch))
            if number + 1 < len(batches):
                send_reads(batches[number + 1])
            commands: list[tuple] = []
            counted: list[tuple[str, str]] = []
            for position, deal in enumerate(batch):
                members, *check = replies[per_deal * position : per_deal * (position + 1)]
                if isinstance(members, Exception):
                    raise members
                decided[deal] = None
                if check and _is_recent(check[0], cutoff):  # type: ignore[arg-type]
                    outcome.deals_seen.add(deal)
                    decided[deal] = outcome.skipped[deal] = SKIP_RECENT_ACTIVITY
                    continue
                plan = deal_key_plan(deal_id=deal, members=members, include_protected=include_protected)
                if members:
                    outcome.deals_seen.add(deal)
                deal_commands, deal_counted = plan_commands(plan, dry_run=False)
                commands += deal_commands
                counted += [(deal, family) for family in deal_counted]
            # Sent before the previous batch's replies are read: the server always has a batch queued.
            deleter.send_packed_command(_packed(deleter, commands))
            _settle_known(outcome, counted_before, _read_replies(deleter, len(counted_before)))
            if done:
                report(done)  # the deals whose deletions have answered, and what they deleted
            counted_before = counted
            done += len(batch)
        _settle_known(outcome, counted_before, _read_replies(deleter, len(counted_before)))
        report(done)
        finished = True
    finally:
        for conn in (reader, deleter):
            if not finished:  # replies may be left unread: this connection cannot be reused
                conn.disconnect()
            pool.release(conn)


def _settle_known(outcome: WalkOutcome, counted: list[tuple[str, str]], replies: list) -> None:
    for (deal, family), reply in zip(counted, replies, strict=True):
        if isinstance(reply, Exception):
            raise reply
        if family == INDEX:
            outcome.indexes_deleted += reply
        elif family and reply:
            outcome.counts[family] += reply
            outcome.deals_seen.add(deal)


# Primaries purged at once in mode all, a thread each. A cluster's primaries are separate servers, so
# their walks overlap; each thread mostly waits on its node's socket (the GIL is free meanwhile). Past
# this many primaries the others wait for a thread.
MAX_NODE_THREADS = 8


class _Stopped(Exception):
    """Raised inside a node's purge when the calling thread was interrupted: stop at the next batch."""


@dataclass
class _NodeState:
    stage: str = "sweep"
    deals_done: int = 0
    scanned: int = 0
    matched: int = 0
    deals: int = 0
    keyspace: int = 0
    done: bool = False


class _ProgressHub:
    """The nodes' reports, summed into one WalkProgress. Only the thread that called purge_all_keys calls
    `progress` (node threads queue their reports; see _run_per_node), so a callback that is not
    thread-safe (the command's progress line) needs no lock."""

    def __init__(self, progress: ProgressCallback | None, *, states: list[_NodeState], deals_total: int) -> None:
        self.progress = progress
        self.states = states
        self.deals_total = deals_total
        self.last = 0

    def update(self, index: int, changes: dict) -> None:
        state = self.states[index]
        for name, value in changes.items():
            setattr(state, name, value)
        self.last = index

    def emit(self) -> None:
        if self.progress is None:
            return
        states = self.states
        self.progress(
            WalkProgress(
                node=self.last + 1,
                nodes=len(states),
                scanned=sum(s.scanned for s in states),
                matched=sum(s.matched for s in states),
                deals=sum(s.deals for s in states),
                keyspace=sum(s.keyspace for s in states),
                stage="known" if any(s.stage == "known" and not s.done for s in states) else "sweep",
                deals_done=sum(s.deals_done for s in states),
                deals_total=self.deals_total,
                nodes_done=sum(s.done for s in states),
            )
        )


NodeJob = Callable[[Callable[..., None]], WalkOutcome]


def _node_name(node: redis.Redis) -> str:
    kwargs = node.connection_pool.connection_kwargs
    return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"


def _run_per_node(jobs: list[NodeJob], *, names: list[str], threads: int, hub: _ProgressHub) -> list[WalkOutcome]:
    """Run each node's job (it gets a `report(**state changes)` function); their outcomes in node order.

    One job, or `threads` 1: in this thread, one after another, the first error raised at once. Otherwise
    a thread per node (at most `threads`): a node that fails does not stop the others, which run to their
    end (the nodes are independent, and a purge is safe to repeat); then the error of the first failed
    node (in node order) is raised, with the others' errors as notes. Every error raised carries a note
    naming its node (`names`). Reports reach `hub` in this thread.
    """
    if threads <= 1 or len(jobs) <= 1:
        outcomes = []
        for index, job in enumerate(jobs):

            def report(index: int = index, **changes) -> None:
                hub.update(index, changes)
                hub.emit()

            try:
                outcomes.append(job(report))
            except Exception as exc:
                exc.add_note(f"on Redis node {names[index]}")
                raise
            hub.update(index, {"done": True})
            hub.emit()
        return outcomes

    events: queue.SimpleQueue = queue.SimpleQueue()
    stop = threading.Event()
    finished = object()

    def run(index: int, job: NodeJob) -> None:
        def report(**changes) -> None:
            if stop.is_set():
                raise _Stopped
            events.put((index, changes))

        try:
            events.put((index, (finished, job(report), None)))
        except BaseException as exc:  # handed to the calling thread, which raises it
            exc.add_note(f"on Redis node {names[index]}")
            events.put((index, (finished, None, exc)))

    outcomes: list = [None] * len(jobs)
    errors: list[BaseException | None] = [None] * len(jobs)
    with ThreadPoolExecutor(max_workers=min(threads, len(jobs)), thread_name_prefix="purge-node") as pool:
        for index, job in enumerate(jobs):
            pool.submit(run, index, job)
        left = len(jobs)
        try:
            while left:
                batch = [events.get()]  # blocks until a node reports or ends
                while True:  # then everything already queued, drawn as one step
                    try:
                        batch.append(events.get_nowait())
                    except queue.Empty:
                        break
                for index, item in batch:
                    if isinstance(item, tuple) and item[0] is finished:
                        _, outcomes[index], errors[index] = item
                        hub.update(index, {"done": True})
                        left -= 1
                    else:
                        hub.update(index, item)
                hub.emit()
        except BaseException:
            stop.set()  # interrupted (Ctrl-C) or the callback failed: the nodes stop at their next batch
            raise
    failed = [(index, error) for index, error in enumerate(errors) if error is not None]
    if failed:
        first = next((error for _, error in failed if not isinstance(error, _Stopped)), failed[0][1])
        for index, error in failed:
            if error is not first:
                first.add_note(f"also failed: Redis node {names[index]}: {error!r}")
        raise first
    return outcomes


def _purge_node(
    report: Callable[..., None],
    *,
    node: redis.Redis,
    cross_slot: bool,
    known: list[str],
    include_protected: bool,
    dry_run: bool,
    allowed: set[str] | None,
    pre_skips: dict[str, str],
    active_within_secs: int | None,
    batch: int,
    size: int | None,
) -> WalkOutcome:
    """Mode `all` on one primary: its known deals by name, then its SCAN sweep, then its index rewrite.

    In a cluster every key of a deal is on the deal's node, so nothing here needs another node: the
    decisions (skip or purge) of this node's deals, the indexes its sweep finds, the protected keys it
    leaves. `pre_skips` is only read (the nodes share it). `size`: the node's DBSIZE read before any
    node started (None: no progress wanted), which each report carries. Raises the node's redis errors
    as they come.
    """
    outcome = WalkOutcome()
    decided: dict[str, object] = {}
    if known and not dry_run:

        def report_known(done: int) -> None:
            report(
                stage="known",
                deals_done=done,
                matched=sum(outcome.counts.values()),
                deals=len(outcome.deals_seen),
                keyspace=size or 0,
            )

        _purge_known_deals(
            node=node,
            deals=known,
            include_protected=include_protected,
            active_within_secs=active_within_secs,
            outcome=outcome,
            decided=decided,
            report=report_known,
        )
        # The sweep leaves the deals skipped above alone, and does not ask again about the others.
        skips = {deal: reason for deal, reason in decided.items() if reason is not None}
        if skips:
            pre_skips = {**pre_skips, **skips}  # type: ignore[dict-item]
        if size is not None:
            size = int(node.dbsize())
    swept_from = sum(outcome.counts.values())
    index_deals: set[str] = set()
    kept: dict[str, list[bytes]] = {}
    walk = _NodeWalk(
        node=node,
        cross_slot=cross_slot,
        include_protected=include_protected,
        dry_run=dry_run,
        allowed=allowed,
        pre_skips=pre_skips,
        active_within_secs=active_within_secs,
        outcome=outcome,
        decided=decided,
        index_deals=index_deals,
        kept=kept,
    )

    def report_sweep(matched: int) -> None:
        report(
            stage="sweep",
            scanned=outcome.scanned,
            matched=swept_from + matched,
            deals=len(outcome.deals_seen),
            keyspace=size or 0,
        )

    walk.run(batch=batch, on_round=report_sweep)
    if not dry_run and index_deals:
        # Left: indexes listing protected keys that stay (their expired entries go) and indexes of deals
        # the known stage did not take. Each is on this node (the deal's slot), where SCAN found it.
        _rewrite_indexes(client=node, deals=sorted(d for d in index_deals if decided.get(d) is None), kept=kept)
    return outcome


def purge_all_keys(
    *,
    client,
    include_protected: bool,
    dry_run: bool,
    deals: Iterable[str] | None = None,
    allowed: set[str] | None = None,
    pre_skips: dict[str, str] | None = None,
    active_within_secs: int | None = None,
    batch: int = SCAN_BATCH,
    progress: ProgressCallback | None = None,
    threads: int = MAX_NODE_THREADS,
) -> WalkOutcome:
    """Mode `all`: the known deals by name, then one SCAN pass per primary for whatever is left.

    `deals` are the deals the caller knows of (PostgreSQL's rows): in a real run each is purged first
    by its fixed names and its index, one script call per deal and no keyspace walk, which is what makes
    mode all nearly as fast as deleting an already-known key list. The SCAN pass that follows (classify
    each key through the registry, UNLINK in pipelined batches) then walks only what is left: keys of
    deals PostgreSQL no longer has, keys a producer failed to track, protected keys that stay. A dry run
    is the SCAN pass alone, so it counts each key once, and counts what the real run deletes.

    On a cluster each primary goes through both stages in a thread of its own (at most `threads` at
    once; 1: one node after another), with its own connections; the outcome is the same sum as one
    node after another. `progress` is called from this thread only, with the nodes' figures summed.

    `allowed` restricts the walk to those deals (an org); `pre_skips` names deals to leave alone and
    why; `active_within_secs` skips deals whose event stream has an entry that recent. Never KEYS,
    never DEL: UNLINK frees big values off the main thread. Raises redis errors as they come; on a
    cluster walked in parallel, the other primaries finish first, then the first failed primary's error
    is raised (see _run_per_node).
    """
    pre_skips = dict(pre_skips or {})
    nodes = primary_clients(client)
    known = sorted({normalise_deal_id(d) for d in deals or ()} - set(pre_skips))
    if allowed is not None:
        known = [deal for deal in known if deal in allowed]
    known_of: list[list[str]] = [[] for _ in nodes]
    if known and not dry_run:
        position = {id(node): index for index, node in enumerate(nodes)}
        for deal in known:
            node = deal_node_client(client, deal)
            if id(node) not in position:  # a node the slots map names but not among the primaries read above
                position[id(node)] = len(nodes)
                nodes.append(node)
                known_of.append([])
            known_of[position[id(node)]].append(deal)
    # The keyspace of every node before any starts, so the first steps' share is not of one node alone.
    sizes = [int(node.dbsize()) if progress is not None else None for node in nodes]
    states = [
        _NodeState(stage="known" if node_deals else "sweep", keyspace=size or 0)
        for node_deals, size in zip(known_of, sizes, strict=True)
    ]
    hub = _ProgressHub(progress, states=states, deals_total=sum(map(len, known_of)))
    jobs: list[NodeJob] = [
        partial(
            _purge_node,
            node=node,
            cross_slot=not is_cluster(client),
            known=node_deals,
            include_protected=include_protected,
            dry_run=dry_run,
            allowed=allowed,
            pre_skips=pre_skips,
            active_within_secs=active_within_secs,
            batch=batch,
            size=size,
        )
        for node, node_deals, size in zip(nodes, known_of, sizes, strict=True)
    ]
    names = [_node_name(node) for node in nodes]
    return WalkOutcome.merged(_run_per_node(jobs, names=names, threads=threads, hub=hub))
