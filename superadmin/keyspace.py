"""The Redis side of the purge: find, count and delete per-deal keys through the key registry.

No key is spelled here. Names come from canvas.keys: `fixed_keys()` and the per-deal index
(`index_key`) say where one deal's keys are, `scan_pattern()` + `classify_batch()` find every deal's
keys in mode `all`. This module knows nothing of PostgreSQL, so the benchmark drives it on its own.

Cluster: every per-deal key carries the deal as a hash tag, so one deal lives in one slot of one
primary. The walk below talks to each primary through a plain connection to that node, and only ever
sends a multi-key command whose keys share one slot when the server is a cluster (CROSSSLOT otherwise).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from operator import itemgetter

import redis
from django.conf import settings
from redis.cluster import RedisCluster

from canvas import keys
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

_cluster_clients: dict[str, RedisCluster] = {}


def purge_redis_client() -> redis.Redis | RedisCluster:
    """The client the purge uses: the shared one, or a RedisCluster when REDIS_CLUSTER is on.

    The producers' django-redis client talks to one node; a purge of mode `all` has to walk every
    primary, which redis-py's RedisCluster knows how to find (CLUSTER SLOTS).
    """
    if not getattr(settings, "REDIS_CLUSTER", False):
        return get_redis()
    url = settings.REDIS_URL
    client = _cluster_clients.get(url)
    if client is None:
        timeout = getattr(settings, "REDIS_SOCKET_TIMEOUT", 2.0)
        client = _cluster_clients[url] = RedisCluster.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
    return client


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


def _unique(names: Iterable[str]) -> list[str]:
    # EXISTS k k counts 2 while UNLINK k k deletes 1: dedupe so a dry run counts what a real run deletes.
    return list(dict.fromkeys(names))


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


@dataclass
class DealKeyPlan:
    """One deal's keys as the registry knows them: what a purge would take, and the index entries."""

    by_family: dict[str, list[str]]
    index_members: list[str]
    kept_members: list[str]  # index entries of protected keys this purge leaves in place


def deal_key_plan(*, node: redis.Redis, deal_id: str, include_protected: bool) -> DealKeyPlan:
    """Fixed names plus the members of the deal's index: no keyspace scan, O(keys of the deal)."""
    members = sorted(_decode(m) for m in node.smembers(keys.index_key(deal_id)))
    by_family: dict[str, list[str]] = {}
    for family, names in keys.fixed_keys(deal_id).items():
        if include_protected or not keys.FAMILIES[family].protected:
            by_family.setdefault(family, []).extend(names)
    kept: list[str] = []
    for member in members:
        found = keys.classify(member)
        # An entry that names another deal's key (or no per-deal key) is never followed: it is
        # dropped from the index, and whatever it names is left alone.
        if found is None or found[0] == INDEX or found[1] != deal_id:
            continue
        if keys.FAMILIES[found[0]].protected and not include_protected:
            kept.append(member)
            continue
        by_family.setdefault(found[0], []).append(member)
    return DealKeyPlan({f: _unique(names) for f, names in by_family.items()}, members, kept)


def purge_deal_keys(*, client, deal_id: str, include_protected: bool, dry_run: bool) -> dict[str, int]:
    """Delete (or, dry, count) one deal's keys; returns keys per family, every family present.

    The deletion and the index update run in one MULTI on the deal's node (one slot), so a reader
    never sees half a deal. Index entries of protected keys that stay are kept, unless their key has
    expired; an index whose entries are all gone disappears with its last SREM.
    """
    node = deal_node_client(client, deal_id)
    index = keys.index_key(deal_id)
    plan = deal_key_plan(node=node, deal_id=deal_id, include_protected=include_protected)
    families = [family for family, names in plan.by_family.items() if names]
    counts = empty_counts()
    with node.pipeline(transaction=not dry_run) as pipe:
        for family in families:
            if dry_run:
                pipe.exists(*plan.by_family[family])
            else:
                pipe.unlink(*plan.by_family[family])
        kept = set(plan.kept_members)
        dropped = [m for m in plan.index_members if m not in kept]
        if not dry_run and dropped:
            pipe.srem(index, *dropped)
        replies = pipe.execute()
    for family, deleted in zip(families, replies, strict=False):
        counts[family] += int(deleted)
    if not dry_run and plan.kept_members:
        with node.pipeline(transaction=False) as pipe:
            for member in plan.kept_members:
                pipe.exists(member)
            alive = pipe.execute()
        expired = [m for m, exists in zip(plan.kept_members, alive, strict=True) if not exists]
        if expired:
            node.srem(index, *expired)
    return counts


# --- every deal (mode all) --------------------------------------------------------------------------
@dataclass
class WalkProgress:
    node: int
    nodes: int
    scanned: int  # keys SCAN returned so far (all nodes)
    matched: int  # keys deleted (or, dry, that would be)
    deals: int  # deals seen so far
    keyspace: int  # DBSIZE of the nodes, read before the walk (a progress estimate only)


@dataclass
class WalkOutcome:
    counts: dict[str, int] = field(default_factory=empty_counts)
    deals_seen: set[str] = field(default_factory=set)
    skipped: dict[str, str] = field(default_factory=dict)  # deal -> reason
    scanned: int = 0
    indexes_deleted: int = 0  # index sets unlinked (with protected families), not in `counts`


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
        self.active_since_ms = (
            None if active_within_secs is None else server_time_ms(node) - active_within_secs * 1000
        )
        self.groups: dict[str | tuple[str, str], list[bytes]] = {}
        # Families this walk leaves in place (the protected ones and the index, unless included).
        self.left_alone = (
            set() if include_protected else {INDEX, *(n for n, f in keys.FAMILIES.items() if f.protected)}
        )
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
                self._settle(bundle, [_reply_or_error(deleter) for _ in bundle])
                bundle, commands = self._next_bundle()
                if commands:
                    deleter.send_packed_command(deleter.pack_commands(commands))
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


def purge_all_keys(
    *,
    client,
    include_protected: bool,
    dry_run: bool,
    allowed: set[str] | None = None,
    pre_skips: dict[str, str] | None = None,
    active_within_secs: int | None = None,
    batch: int = SCAN_BATCH,
    progress: ProgressCallback | None = None,
) -> WalkOutcome:
    """Mode `all`: one SCAN pass per primary, classify each key, UNLINK in pipelined batches.

    `allowed` restricts the walk to those deals (an org); `pre_skips` names deals to leave alone and
    why; `active_within_secs` skips deals whose event stream has an entry that recent. Never KEYS,
    never DEL: UNLINK frees big values off the main thread. Raises redis errors as they come.
    """
    pre_skips = pre_skips or {}
    outcome = WalkOutcome()
    decided: dict[str, object] = {}
    index_deals: set[str] = set()
    kept: dict[str, list[bytes]] = {}
    nodes = primary_clients(client)
    keyspace = 0
    if progress is not None:
        keyspace = sum(int(node.dbsize()) for node in nodes)
    done = 0
    for number, node in enumerate(nodes, start=1):
        walk = _NodeWalk(
            node=node,
            cross_slot=not is_cluster(client),
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

        def report(matched: int, number: int = number, before: int = done) -> None:
            if progress is not None:
                progress(
                    WalkProgress(
                        node=number,
                        nodes=len(nodes),
                        scanned=outcome.scanned,
                        matched=before + matched,
                        deals=len(outcome.deals_seen),
                        keyspace=keyspace,
                    )
                )

        walk.run(batch=batch, on_round=report)
        done += walk.matched
    if not dry_run and index_deals:
        deals = sorted(d for d in index_deals if decided.get(d, None) is None)
        _rewrite_indexes(client=client, deals=deals, kept=kept)
    return outcome
