"""The memo's Store reads on read replicas (canvas.memo.store with `from_replica`, canvas_project.store's
replica pools), in this process against the test database; tests/faults/test_postgres_replica.py runs them
against a real streaming replica.

Without replicas nothing changes: no replica pool, the same Store queries on the primary. The replica's
reads are plain SELECTs that a read-only connection accepts (LangGraph's get does not), returning what
LangGraph returns. A replica whose Store pool cannot give a connection is marked down and the primary
answers, for this read and the rest of the request.
"""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import psycopg
import pytest
from django.db import DEFAULT_DB_ALIAS, connection
from django.test import RequestFactory, override_settings
from langgraph.store.base import GetOp, SearchOp
from langgraph.store.postgres import PostgresStore

from canvas.memo import store as memo_store
from canvas.memo.store import memo_transaction, read_memo, read_snapshots, snapshot_key
from canvas.memo.types import Memo
from canvas_project import replicas
from canvas_project import store as lg_store
from tests.canvas.conftest import canvas_url
from tests.servers import database_url_of

DEAD_REPLICA = "postgresql://postgres@127.0.0.1:9/none"  # nothing listens on port 9


def _store_checkouts() -> int:
    return lg_store.get_pool().get_stats().get("requests_num", 0)


def _write_memo_with_snapshots(deal_id: str, versions: list[int]) -> Memo:
    memo = Memo.new(deal_id=deal_id, template_key="acquisition", is_blank=False, created_by=None, now="")
    with memo_transaction(deal_id) as writer:
        writer.put_head(memo)
        for version in versions:
            writer.put_snapshot({"version": version, "markdown": f"text {version}", "sections": {}})
    return memo


@pytest.fixture
def approved(cast, written):
    """The cast's deal approved once: version 2 is an approval snapshot."""
    response = cast.client("owner").post(canvas_url(cast.deal, "approve"))
    assert response.status_code == 200 and response.json()["success"], response.content
    return cast


@pytest.mark.parametrize(
    ("suffix", "status", "store_reads"),
    [
        ("export?version=2&format=md", 200, 1),
        ("export?version=99", 404, 1),
        ("versions", 200, 2),
        ("versions/2", 200, 1),
        ("versions/2/diff", 200, 2),
        ("progress", 200, 1),
    ],
)
def test_without_replicas_the_store_reads_are_unchanged(approved, suffix, status, store_reads):
    assert lg_store.replica_pools() == {}
    lg_store.get_pool().pop_stats()
    response = approved.client("viewer").get(canvas_url(approved.deal, suffix))
    assert response.status_code == status, response.content
    # the same Store checkouts as before replicas existed, all on the primary's pool, and no replica pool
    assert _store_checkouts() == store_reads
    assert lg_store.replica_pools() == {}


def test_the_replica_reads_are_plain_selects_equal_to_langgraphs_reads(django_db_setup):
    deal_id = str(uuid.uuid4())
    memo = _write_memo_with_snapshots(deal_id, [1, 2, 3])
    namespace = lg_store.versions_namespace(deal_id)
    keys = [snapshot_key(v) for v in (3, 1, 7)]
    got = lg_store.get_store().batch([GetOp(namespace, k) for k in keys])
    expected = {item.key: item.value for item in got if item is not None}
    read_only = psycopg.connect(
        lg_store.store_conninfo(), options="-c default_transaction_read_only=on", **lg_store.CONNECTION_KWARGS
    )
    with read_only:
        assert lg_store.select_items(read_only, namespace, keys) == expected and set(expected) == {keys[0], keys[1]}
        search = SearchOp(lg_store.canvas_namespace(deal_id), None, lg_store.MAX_ITEMS, 0, refresh_ttl=False)
        (items,) = PostgresStore(read_only).batch([search])
        assert memo_store._memo_from_items(deal_id, items).head_to_store() == memo.head_to_store()
        # why the replica does not use LangGraph's get: it refreshes TTLs with an UPDATE, refused there
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            PostgresStore(read_only).batch([GetOp(namespace, keys[0])])


@pytest.fixture
def replica_is_the_test_database():
    """replica_1 names the test database itself: not a standby, but its Store pool is read-only all the same."""
    with override_settings(DATABASE_REPLICA_URLS=[database_url_of(connection.settings_dict)]):
        yield
    lg_store.close_pool()
    replicas._states.clear()


def test_a_replica_pool_is_read_only_named_and_recreated_when_its_url_changes(replica_is_the_test_database):
    pool = lg_store.replica_pool("replica_1")
    assert lg_store.replica_pools() == {"replica_1": pool} and pool.name == "langgraph-replica_1"
    row = lg_store.read_on_replica(
        "replica_1",
        lambda conn: conn.execute(
            "SELECT current_setting('default_transaction_read_only') AS ro, current_setting('application_name') AS app"
        ).fetchone(),
    )
    assert row == {"ro": "on", "app": lg_store.REPLICA_APPLICATION_NAME}
    assert lg_store.replica_pool("replica_1") is pool  # one pool per replica and process
    with override_settings(DATABASE_REPLICA_URLS=[database_url_of(connection.settings_dict) + "?sslmode=disable"]):
        moved = lg_store.replica_pool("replica_1")
    assert moved is not pool and pool.closed and not moved.closed
    lg_store.close_pool()
    assert moved.closed and lg_store.replica_pools() == {}


def _serving_routed_to(alias: str):
    """A GET request being served whose reads were routed to `alias` (read_alias() keeps its first choice)."""
    request = RequestFactory().get("/api/canvas/x/export")
    request.user = SimpleNamespace(is_authenticated=True, is_engine=False, pk=uuid.uuid4())
    request._replica_alias = alias
    return request, replicas._request_var.set(request)


@pytest.mark.parametrize("read", ["snapshots", "memo"])
def test_a_replica_whose_store_pool_gives_no_connection_leaves_the_read_to_the_primary(django_db_setup, read):
    deal_id = str(uuid.uuid4())
    memo = _write_memo_with_snapshots(deal_id, [1])
    with override_settings(DATABASE_REPLICA_URLS=[DEAD_REPLICA], REPLICA_CONNECT_TIMEOUT=1):
        request, token = _serving_routed_to("replica_1")
        try:
            assert not connection.in_atomic_block and lg_store.store_read_alias() == "replica_1"
            if read == "snapshots":
                assert [s["version"] for s in read_snapshots(deal_id, [1], from_replica=True)] == [1]
            else:
                assert read_memo(deal_id, from_replica=True).head_to_store() == memo.head_to_store()
            # marked down for every request until a probe finds it fit; this request reads the primary from now on
            state = replicas._states["replica_1"]
            assert not state.routable and state.error == "PoolTimeout"
            assert request._replica_alias == DEFAULT_DB_ALIAS and lg_store.store_read_alias() == DEFAULT_DB_ALIAS
        finally:
            replicas._request_var.reset(token)
            lg_store.close_pool()
            replicas._states.clear()


def test_a_store_of_its_own_is_never_read_on_the_replicas(replica_is_the_test_database, settings):
    settings.LANGGRAPH_DATABASE_URL = database_url_of(connection.settings_dict)
    request, token = _serving_routed_to("replica_1")
    try:
        # the replicas copy Django's database; a Store elsewhere is not on them
        assert lg_store.store_read_alias() == DEFAULT_DB_ALIAS
    finally:
        replicas._request_var.reset(token)


def _checkouts(pool) -> int:
    return pool.get_stats().get("requests_num", 0)


def test_routed_reads_take_the_replica_and_the_primary_only_for_what_it_lacks(replica_is_the_test_database):
    deal_id = str(uuid.uuid4())
    memo = _write_memo_with_snapshots(deal_id, [1, 2])
    primary, replica = lg_store.get_pool(), lg_store.replica_pool("replica_1")
    request, token = _serving_routed_to("replica_1")
    try:
        primary.pop_stats(), replica.pop_stats()
        # snapshots the replica holds: one read there, none on the primary
        assert [s["version"] for s in read_snapshots(deal_id, [2, 1], from_replica=True)] == [2, 1]
        assert (_checkouts(replica), _checkouts(primary)) == (1, 0)
        # one it lacks (not replayed yet, or no such version): the primary is asked for that one alone
        assert [s["version"] for s in read_snapshots(deal_id, [1, 9], from_replica=True)] == [1]
        assert (_checkouts(replica), _checkouts(primary)) == (2, 1)
        # the memo: the replica's when it is at least as new as the version the caller knows
        assert read_memo(deal_id, from_replica=True, at_least_version=memo.version).head_to_store() == (
            memo.head_to_store()
        )
        assert (_checkouts(replica), _checkouts(primary)) == (3, 1)
        # else the primary's (the replica has not replayed the write the deal row already shows)
        assert read_memo(deal_id, from_replica=True, at_least_version=memo.version + 1) is not None
        assert (_checkouts(replica), _checkouts(primary)) == (4, 2)
        # a read that does not ask stays on the primary
        read_snapshots(deal_id, [1])
        assert (_checkouts(replica), _checkouts(primary)) == (4, 3)
        assert request._replica_alias == "replica_1"  # nothing failed: the request keeps its replica
    finally:
        replicas._request_var.reset(token)
