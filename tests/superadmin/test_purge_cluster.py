"""The purge against a real Redis Cluster: three redis-server primaries started by this module on spare
loopback ports (never the shared Redis), joined with `redis-cli --cluster create`."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest
import redis
from redis.cluster import RedisCluster

from canvas_project import keys, keyspace
from superadmin import services
from tests.superadmin.conftest import EXPECTED, UNPROTECTED, deal_keys_present, new_deal_id, write_deal_state

REDIS_SERVER = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")
pytestmark = pytest.mark.skipif(not (REDIS_SERVER and REDIS_CLI), reason="needs redis-server and redis-cli")


def _spare_port() -> int:
    # The cluster bus listens on port + 10000: both must be free.
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port + 10000 > 65535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


def _wait(predicate, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except redis.exceptions.RedisError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def cluster_ports(tmp_path_factory):
    folder = tmp_path_factory.mktemp("redis-cluster")
    ports = [_spare_port() for _ in range(3)]
    processes = [
        subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                f"nodes-{port}.conf",
                "--cluster-node-timeout",
                "5000",
                "--dir",
                str(folder),
                "--save",
                "",
                "--appendonly",
                "no",
                "--logfile",
                str(folder / f"{port}.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for port in ports
    ]
    try:
        for port in ports:
            _wait(lambda port=port: redis.Redis(port=port).ping(), f"redis-server on {port}")
        subprocess.run(
            [
                REDIS_CLI,
                "--cluster",
                "create",
                *(f"127.0.0.1:{p}" for p in ports),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        for port in ports:
            _wait(
                lambda port=port: redis.Redis(port=port).cluster("info")["cluster_state"] == "ok",
                f"cluster state ok on {port}",
            )
        yield ports
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
def cluster(cluster_ports, settings):
    url = f"redis://127.0.0.1:{cluster_ports[0]}/0"
    settings.REDIS_CLUSTER = True
    settings.REDIS_URL = url
    client = RedisCluster(host="127.0.0.1", port=cluster_ports[0])
    client.flushall(target_nodes=RedisCluster.PRIMARIES)
    yield client
    client.close()
    cached = keyspace._cluster_clients.pop(url, None)
    if cached is not None:
        cached.close()


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
