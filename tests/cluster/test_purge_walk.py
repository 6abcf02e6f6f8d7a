"""The purge against a real Redis Cluster: the session's throwaway cluster (3 primaries, 3 replicas on
spare loopback ports, never the shared Redis; tests/conftest.py `redis_cluster`)."""

from __future__ import annotations

import pytest
import redis
from redis.cluster import RedisCluster

from canvas_project import keys
from superadmin import services
from tests.superadmin.conftest import EXPECTED, UNPROTECTED, deal_keys_present, new_deal_id, write_deal_state


@pytest.fixture
def cluster(on_cluster):
    client = RedisCluster(host="127.0.0.1", port=on_cluster.ports[0])
    yield client
    client.close()


def _deals_over_every_node(client: RedisCluster, count: int = 9) -> list[str]:
    """`count` deals (at least one on each primary), their state written through the registry."""
    primaries = {node.name for node in client.get_primaries()}
    while True:
        deals = [new_deal_id() for _ in range(count)]
        if {client.get_node_from_key(keys.index_key(d)).name for d in deals} == primaries:
            break
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
