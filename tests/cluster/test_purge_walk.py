"""The purge against a real Redis Cluster: the session's throwaway cluster (3 primaries, 3 replicas on
spare loopback ports, never the shared Redis; tests/conftest.py `redis_cluster`)."""

from __future__ import annotations

import io
import re
import threading

import pytest
import redis
from django.core.management import CommandError, call_command
from redis.cluster import RedisCluster

from canvas_project import keys, keyspace
from superadmin import services
from superadmin.models import PurgeAudit, PurgeStatus
from tests.superadmin.conftest import EXPECTED, UNPROTECTED, deal_keys_present, new_deal_id, write_deal_state


@pytest.fixture
def cluster(on_cluster):
    client = RedisCluster(host="127.0.0.1", port=on_cluster.ports[0])
    yield client
    client.close()


def _deal_ids_over_every_node(client: RedisCluster, count: int) -> list[str]:
    """`count` new deal ids, at least one on each primary."""
    primaries = {node.name for node in client.get_primaries()}
    while True:
        deals = [new_deal_id() for _ in range(count)]
        if {client.get_node_from_key(keys.index_key(d)).name for d in deals} == primaries:
            return deals


def _deals_over_every_node(client: RedisCluster, count: int = 9) -> list[str]:
    """`count` deals (at least one on each primary), their state written through the registry."""
    deals = _deal_ids_over_every_node(client, count)
    for deal in deals:
        write_deal_state(deal, client=client)
    return deals


def _foreign(client: RedisCluster) -> list[str]:
    bucket = keys.rate_limit_key("generate", "user-1")
    client.set(bucket, "1", ex=60)
    client.lpush("celery", "{}")
    return [bucket, "celery"]


def test_one_deal_is_one_slot_and_cross_deal_unlink_is_refused(cluster):
    deals = _deals_over_every_node(cluster, 4)
    slots = {keys.classify(k)[1]: cluster.keyslot(k) for k in write_deal_state(deals[0], client=cluster)}
    assert len(set(slots.values())) == 1
    node = cluster.get_redis_connection(cluster.get_node_from_key(keys.session_key(deals[0])))
    other = next(
        d for d in deals[1:] if cluster.keyslot(keys.session_key(d)) != cluster.keyslot(keys.session_key(deals[0]))
    )
    with pytest.raises(redis.exceptions.ResponseError, match="same slot|CROSSSLOT|MOVED"):
        node.unlink(keys.session_key(deals[0]), keys.session_key(other))


def test_by_deal_on_a_cluster(cluster, db):
    deals = _deals_over_every_node(cluster)
    foreign = _foreign(cluster)
    result = services.deals_purge(mode="by_deal", deal_id=deals[0], dry_run=False, source="command")
    assert result.keys_by_family == UNPROTECTED
    assert deal_keys_present(deals[0], cluster) == {**dict.fromkeys(EXPECTED, 0), "runs": 3}
    assert all(deal_keys_present(d, cluster) == EXPECTED for d in deals[1:])
    assert all(cluster.exists(k) for k in foreign)


def test_all_mode_walks_every_primary(cluster, db):
    deals = _deals_over_every_node(cluster)
    foreign = _foreign(cluster)
    dry = services.deals_purge(mode="all", dry_run=True, source="command")
    assert dry.keys_by_family == {f: 9 * n for f, n in UNPROTECTED.items()} and dry.deals_considered == 9
    real = services.deals_purge(mode="all", dry_run=False, source="command")
    assert real.keys_by_family == dry.keys_by_family
    for deal in deals:
        assert deal_keys_present(deal, cluster) == {**dict.fromkeys(EXPECTED, 0), "runs": 3}
        assert len(cluster.smembers(keys.index_key(deal))) == 3
    everything = services.deals_purge(mode="all", dry_run=False, include_checkpoints=True, source="command")
    assert everything.keys_by_family == {**dict.fromkeys(EXPECTED, 0), "runs": 27}
    left = sorted(k.decode() for k in cluster.scan_iter(count=1000))
    assert left == sorted(foreign)


def test_all_mode_skips_active_deals_on_a_cluster(cluster, db):
    active = [new_deal_id() for _ in range(3)]
    idle = [new_deal_id() for _ in range(3)]
    for deal in active:
        write_deal_state(deal, client=cluster, events_age_ms=500)
    for deal in idle:
        write_deal_state(deal, client=cluster)
    result = services.deals_purge(mode="all", dry_run=False, exclude_active_within_secs=60, source="command")
    assert sorted(s["deal_id"] for s in result.deals_skipped) == sorted(active)
    assert all(deal_keys_present(d, cluster) == EXPECTED for d in active)


def test_footprint_on_a_cluster(cluster, db):
    from superadmin.selectors import deal_redis_footprint

    deal = _deals_over_every_node(cluster, 3)[1]
    footprint = deal_redis_footprint(deal_id=deal, with_checkpoints=False)
    assert {row.family: row.key_count for row in footprint.families} == EXPECTED


# --- mode all purges the primaries at once ------------------------------------------------------------
def _node_of(client: RedisCluster, deal: str) -> str:
    return client.get_node_from_key(keys.index_key(deal)).name


def _meet(monkeypatch, *, parties: int = 3) -> dict[str, list[tuple[str, int]]]:
    """Make each node's known stage and each node's sweep start only once `parties` of them are running
    at the same time. Run one after another, the first would wait for the others for ever and the
    barrier would break (its timeout only guards against a hang; nothing is timed). Returns the
    (node, thread) of every call, by stage."""
    calls: dict[str, list[tuple[str, int]]] = {"known": [], "sweep": []}
    barriers = {stage: threading.Barrier(parties, timeout=60) for stage in calls}
    known_stage, sweep = keyspace._purge_known_deals, keyspace._NodeWalk.run

    def met(stage: str, node) -> None:
        calls[stage].append((keyspace._node_name(node), threading.get_ident()))
        barriers[stage].wait()

    def known_met(**kwargs):
        met("known", kwargs["node"])
        return known_stage(**kwargs)

    def sweep_met(walk, **kwargs):
        met("sweep", walk.node)
        return sweep(walk, **kwargs)

    monkeypatch.setattr(keyspace, "_purge_known_deals", known_met)
    monkeypatch.setattr(keyspace._NodeWalk, "run", sweep_met)
    return calls


def test_all_mode_purges_the_primaries_at_once_and_reports_from_the_calling_thread(cluster, monkeypatch):
    known = _deals_over_every_node(cluster)
    orphans = _deals_over_every_node(cluster, 3)  # written, unknown to the caller: the sweep's
    calls = _meet(monkeypatch)
    steps: list[tuple[keyspace.WalkProgress, int]] = []
    outcome = keyspace.purge_all_keys(
        client=cluster,
        include_protected=True,
        dry_run=False,
        deals=known,
        progress=lambda step: steps.append((step, threading.get_ident())),
    )
    primaries = {node.name for node in cluster.get_primaries()}
    main = threading.get_ident()
    for stage in ("known", "sweep"):  # each primary once, each from a thread of its own, none this one
        assert {node for node, _ in calls[stage]} == primaries and len(calls[stage]) == 3
        assert len({thread for _, thread in calls[stage]}) == 3 and main not in {t for _, t in calls[stage]}
    assert outcome.counts == {family: 12 * n for family, n in EXPECTED.items()}
    assert outcome.deals_seen == {*known, *orphans}
    assert all(deal_keys_present(deal, cluster) == dict.fromkeys(EXPECTED, 0) for deal in known + orphans)
    # progress: only from this thread, the nodes' figures summed, ending on every node done
    assert {thread for _, thread in steps} == {main}
    last = steps[-1][0]
    assert (last.nodes, last.nodes_done, last.stage) == (3, 3, "sweep")
    assert last.matched == sum(outcome.counts.values()) and last.scanned == outcome.scanned
    assert max(step.deals_done for step, _ in steps) == last.deals_total == len(known)
    assert all(step.matched <= last.matched for step, _ in steps)


def _write_varied_state(client: RedisCluster, known: list[str], orphans: list[str]) -> dict[str, str]:
    """State of known deals (the first recently active, the fourth pre-skipped) and of orphans, untracked
    keys and foreign keys. Returns the pre-skips."""
    for deal in known[1:] + orphans:
        write_deal_state(deal, client=client)
    write_deal_state(known[0], client=client, events_age_ms=1000)  # active: skipped
    for deal in (known[2], orphans[0]):  # a key a producer failed to track: only the sweep finds it
        client.set(keys.brush_key(deal, "untracked"), "{}", ex=keys.BRUSH_TTL)
    _foreign(client)
    return {known[3]: keyspace.SKIP_ACTIVE_RUN}


def _everything(client: RedisCluster) -> dict[bytes, object]:
    """Every key left, and the members of each set (the indexes)."""
    found = {}
    for node in keyspace.primary_clients(client):
        for name in node.scan_iter(count=1000):
            found[name] = sorted(node.smembers(name)) if node.type(name) == b"set" else None
    return found


@pytest.mark.parametrize("include_protected", [False, True])
def test_parallel_and_one_node_after_another_purge_the_same_keys_with_the_same_counts(
    cluster, on_cluster, include_protected
):
    def purge(*, dry_run: bool, threads: int) -> keyspace.WalkOutcome:
        return keyspace.purge_all_keys(
            client=cluster,
            include_protected=include_protected,
            dry_run=dry_run,
            deals=known,
            pre_skips=skips,
            active_within_secs=60,
            threads=threads,
        )

    known, orphans = _deal_ids_over_every_node(cluster, 6), _deal_ids_over_every_node(cluster, 3)
    skips = _write_varied_state(cluster, known, orphans)
    dry_parallel, dry_sequential = purge(dry_run=True, threads=8), purge(dry_run=True, threads=1)
    assert dry_parallel == dry_sequential
    one_by_one = purge(dry_run=False, threads=1)
    left_one_by_one = _everything(cluster)

    on_cluster.flush()
    _write_varied_state(cluster, known, orphans)  # the same keys again
    parallel = purge(dry_run=False, threads=8)

    assert parallel == one_by_one  # counts, deals seen, skips, keys scanned, indexes deleted
    assert parallel.counts == dry_parallel.counts  # a dry run counts what goes
    assert list(parallel.skipped) == [*sorted({known[0], known[3]})]  # merged in one order
    assert len(parallel.deals_seen) == 9
    assert _everything(cluster) == left_one_by_one  # the same keys stay, the indexes list the same
    for deal in (known[0], known[3]):
        assert deal_keys_present(deal, cluster) == EXPECTED
    left = {**dict.fromkeys(EXPECTED, 0), "runs": 0 if include_protected else 3}
    assert all(deal_keys_present(deal, cluster) == left for deal in known[1:3] + known[4:] + orphans)


def test_a_failing_node_lets_the_others_finish_then_its_error_is_raised(cluster):
    """The known stage of one node fails (its deal's index is not a set): the other nodes purge their
    known deals and sweep to the end; the failed node stops there (no sweep); the error names it."""
    known = _deals_over_every_node(cluster)
    orphans = _deals_over_every_node(cluster, 3)
    broken = known[0]
    cluster.delete(keys.index_key(broken))
    cluster.set(keys.index_key(broken), "not a set")
    failed_node = _node_of(cluster, broken)
    with pytest.raises(redis.exceptions.ResponseError, match="WRONGTYPE") as raised:
        keyspace.purge_all_keys(client=cluster, include_protected=True, dry_run=False, deals=known)
    assert f"on Redis node {failed_node}" in raised.value.__notes__
    gone = dict.fromkeys(EXPECTED, 0)
    for deal in known + orphans:
        if _node_of(cluster, deal) == failed_node:  # its first batch failed before any deletion
            assert sum(deal_keys_present(deal, cluster).values()) > 0
        else:
            assert deal_keys_present(deal, cluster) == gone


def test_a_node_failing_in_the_sweep_fails_the_audited_purge_and_the_command(cluster, db):
    """Through the service and the command: an orphan's index that is not a set fails its node's index
    rewrite (after that node's sweep); the other nodes' orphans are purged; the purge is audited as
    failed with the node's error, and the command exits non-zero with it."""
    orphans = _deals_over_every_node(cluster, 3)  # no deal rows in PostgreSQL: all of them the sweep's
    broken = orphans[0]
    cluster.delete(keys.index_key(broken))
    cluster.set(keys.index_key(broken), "not a set")
    with pytest.raises(redis.exceptions.ResponseError, match="WRONGTYPE"):
        services.deals_purge(mode="all", dry_run=False, source="command")
    audit = PurgeAudit.objects.get()
    failed_node = _node_of(cluster, broken)
    assert audit.status == PurgeStatus.FAILED and audit.error.startswith("ResponseError: ")
    assert "WRONGTYPE" in audit.error and audit.error.endswith(f"(on Redis node {failed_node})")
    for deal in orphans[1:]:
        assert deal_keys_present(deal, cluster) == {**dict.fromkeys(EXPECTED, 0), "runs": 3}
    with pytest.raises(CommandError, match=rf"purge failed: ResponseError: .*WRONGTYPE.*on Redis node {failed_node}"):
        call_command("purge_deals", "--all", "--yes")


def test_the_command_progress_line_sums_the_primaries(cluster, db):
    _deals_over_every_node(cluster, 3)  # no deal rows in PostgreSQL: the sweep takes them
    out, err = io.StringIO(), io.StringIO()
    call_command("purge_deals", "--all", "--yes", stdout=out, stderr=err)
    lines = err.getvalue().splitlines()
    # the figures of the three primaries, summed (the keyspace: all of them, read before any started)
    assert re.fullmatch(
        r" *\d+% sweep: [0-3]/3 nodes done scanned \d+ of ~51 keys: purged \d+ keys of \d deals so far", lines[0]
    )
    assert lines[-1].startswith("100% done: purged 39 keys of 3 deals")
