"""LangGraph persistence on PostgreSQL: the Store (memo content) and the Saver (workflow checkpoints).

Both run on their own psycopg pool, never on Django's connection: LangGraph needs autocommit (a
non-autocommit connection silently loses checkpoint writes), no server-side prepared statements
(prepare_threshold=0, safe behind PgBouncer) and dict rows. The pool is created lazily in each
process (so Celery's forked workers each get their own) from LANGGRAPH_DATABASE_URL, or without it
from Django's database settings, which in tests point at the test database. Their tables live in that
same database: `migrate` creates them there (the canvas migration 0001 on a fresh install) and brings
them up to date on every run (a post_migrate hook in canvas.apps, for upgrades of
langgraph-checkpoint-postgres), both through setup_langgraph_tables.

Namespaces: ("deals", D, "canvas") for the memo, ("deals", D, "versions") for snapshots,
("deals", D, "nodes") for canvas nodes, ("deals", D, "edges") for the typed edges between them.
LangGraph threads of a deal are named `deal:<D>:...`.

Read replicas (DATABASE_REPLICA_URLS): a read-only selector may read the Store on a replica, through a
read-only pool of that replica's own (`replica_pool(alias)`, created on first use, like the primary's),
by `read_on_replica()`: the replica is the one canvas_project.replicas.read_alias() chose for the request
(`store_read_alias()`), and a replica that fails the read is marked down and answers None, so the caller
reads the primary. LangGraph's own reads cannot run there: its get (GetOp) always, and its search unless
told `refresh_ttl=False`, wrap the SELECT in a `WITH ... UPDATE store` (a TTL refresh), which a hot
standby refuses even when it would update nothing.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import dj_database_url
import orjson
import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.store.base import PutOp
from langgraph.store.postgres import PostgresStore
from psycopg import Connection
from psycopg.conninfo import make_conninfo
from psycopg.rows import dict_row
from psycopg.types.json import set_json_loads
from psycopg_pool import ConnectionPool, PoolTimeout

from canvas_project.errors import StoreUnavailable
from canvas_project.replicas import read_alias, replica_failed

logger = logging.getLogger(__name__)
T = TypeVar("T")

_lock = threading.Lock()
_pool: ConnectionPool | None = None
_pool_conninfo: str | None = None
# alias -> (conninfo, pool) of the replicas' Store pools, created by the first read routed to each
_replica_pools: dict[str, tuple[str, ConnectionPool]] = {}

# What the Store raises when PostgreSQL is unreachable or the pool is exhausted (callers answer 503).
STORE_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout)
MAX_ITEMS = 1000

CONNECTION_KWARGS = {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}


def _configure_connection(conn: Connection) -> None:
    # orjson decodes the Store's jsonb about 4x faster than the stdlib (measured by bench/context)
    set_json_loads(orjson.loads, conn)


def conninfo_from_settings(settings_dict: dict) -> str:
    """A libpq conninfo string for the database Django is using (the test database in tests)."""
    params = {
        "dbname": settings_dict.get("NAME"),
        "user": settings_dict.get("USER") or None,
        "password": settings_dict.get("PASSWORD") or None,
        "host": settings_dict.get("HOST") or None,
        "port": str(settings_dict["PORT"]) if settings_dict.get("PORT") else None,
        "connect_timeout": str(settings_dict.get("OPTIONS", {}).get("connect_timeout", 5)),
    }
    return make_conninfo(**{k: v for k, v in params.items() if v})


def store_conninfo_for(django_settings_dict: dict) -> str:
    """The Store's database: LANGGRAPH_DATABASE_URL when set, else the given Django database."""
    if settings.LANGGRAPH_DATABASE_URL:
        return conninfo_from_settings(dj_database_url.parse(settings.LANGGRAPH_DATABASE_URL))
    return conninfo_from_settings(django_settings_dict)


def store_conninfo() -> str:
    return store_conninfo_for(connection.settings_dict)


def get_pool() -> ConnectionPool:
    """The process's LangGraph pool, (re)created when Django's database target changes."""
    global _pool, _pool_conninfo
    conninfo = store_conninfo()
    with _lock:
        if _pool is None or _pool_conninfo != conninfo:
            if _pool is not None:
                _pool.close()
            _pool = ConnectionPool(
                conninfo,
                min_size=1,
                max_size=settings.LANGGRAPH_POOL_MAX_SIZE,
                kwargs=CONNECTION_KWARGS,
                timeout=settings.LANGGRAPH_POOL_TIMEOUT,
                reconnect_timeout=settings.DB_POOL_RECONNECT_TIMEOUT,
                open=True,
                name="langgraph",
                configure=_configure_connection,
            )
            _pool_conninfo = conninfo
        return _pool


def current_pool() -> ConnectionPool | None:
    """The process's LangGraph pool if it was created, without creating it."""
    with _lock:
        return _pool


def close_pool() -> None:
    """Close the primary's Store pool and every replica's."""
    global _pool, _pool_conninfo
    with _lock:
        if _pool is not None:
            _pool.close()
        _pool, _pool_conninfo = None, None
        for _conninfo, pool in _replica_pools.values():
            pool.close()
        _replica_pools.clear()


# --- reads on the read replicas ------------------------------------------------------------------
REPLICA_APPLICATION_NAME = "deal-canvas-store-replica"
# A replica that cannot serve a read: unreachable, its pool exhausted or reconnecting, the connection lost.
REPLICA_DOWN_ERRORS = STORE_ERRORS
# A standby cancels a query whose rows the primary's vacuum removed (a recovery conflict, SQLSTATE 40001):
# the replica is fine, this one read goes to the primary.
REPLICA_CONFLICT_ERRORS = (psycopg.errors.SerializationFailure,)


def replica_store_conninfo(alias: str) -> str:
    """The conninfo of a replica's Store pool: the replica's URL (with its parameters, sslmode included),
    read-only (default_transaction_read_only), named in pg_stat_activity, connecting within
    REPLICA_CONNECT_TIMEOUT."""
    url = settings.DATABASE_REPLICA_URLS[int(alias.removeprefix("replica_")) - 1]
    return make_conninfo(
        url,
        connect_timeout=str(settings.REPLICA_CONNECT_TIMEOUT),
        application_name=REPLICA_APPLICATION_NAME,
        options="-c default_transaction_read_only=on",
    )


def replica_pool(alias: str) -> ConnectionPool:
    """The process's Store pool on one replica, created on first use and (re)created when its URL changes.

    Configured like the primary's, except that a request waits at most REPLICA_CONNECT_TIMEOUT for a
    connection (then it reads the primary) and every connection is tested at checkout, as Django's replica
    connections are: a replica that restarted leaves dead idle connections, replaced instead of failing.
    """
    conninfo = replica_store_conninfo(alias)
    with _lock:
        found = _replica_pools.get(alias)
        if found is None or found[0] != conninfo:
            if found is not None:
                found[1].close()
            pool = ConnectionPool(
                conninfo,
                min_size=1,
                max_size=settings.LANGGRAPH_POOL_MAX_SIZE,
                kwargs=CONNECTION_KWARGS,
                timeout=float(settings.REPLICA_CONNECT_TIMEOUT),
                reconnect_timeout=settings.DB_POOL_RECONNECT_TIMEOUT,
                open=True,
                name=f"langgraph-{alias}",
                configure=_configure_connection,
                check=ConnectionPool.check_connection,
            )
            found = _replica_pools[alias] = (conninfo, pool)
        return found[1]


def replica_pools() -> dict[str, ConnectionPool]:
    """The replicas' Store pools created so far in this process, by alias (none without replicas)."""
    with _lock:
        return {alias: pool for alias, (_conninfo, pool) in _replica_pools.items()}


def store_read_alias() -> str:
    """Where a read-only Store selector of this request may read: read_alias()'s choice (a fit replica, or
    "default" for a pinned caller, a write request, a lagging or down replica, no replica configured), but
    always "default" when the Store has a database of its own (LANGGRAPH_DATABASE_URL): the replicas copy
    Django's database."""
    if settings.LANGGRAPH_DATABASE_URL:
        return DEFAULT_DB_ALIAS
    return read_alias()


def read_on_replica(alias: str, read: Callable[[Connection], T]) -> T | None:
    """`read(conn)` on a read-only Store connection of the replica `alias`; None when the replica cannot
    serve it (then the caller reads the primary). A replica that is down, unreachable or out of connections
    is marked down (replicas.replica_failed): no reads go there until a probe finds it fit."""
    try:
        with replica_pool(alias).connection() as conn:
            return read(conn)
    except REPLICA_CONFLICT_ERRORS as exc:
        logger.info("Store read on %s cancelled (%s): reading the primary", alias, exc.__class__.__name__)
    except REPLICA_DOWN_ERRORS as exc:
        replica_failed(alias, exc)
    return None


def select_items(conn: Connection, namespace: tuple[str, ...], keys: list[str]) -> dict[str, dict]:
    """{key: value} of the Store items of `namespace` among `keys`, by one plain SELECT on LangGraph's
    `store` table (prefix = the namespace joined by dots), which a read-only replica can run. The Store has
    no TTLs here, so nothing is expired; tests pin the values to equal LangGraph's own get."""
    rows = conn.execute(
        "SELECT key, value FROM store WHERE prefix = %s AND key = ANY(%s)", (".".join(namespace), keys)
    ).fetchall()
    return {row["key"]: row["value"] for row in rows}


def get_store() -> PostgresStore:
    return PostgresStore(get_pool())


def get_checkpointer() -> PostgresSaver:
    return PostgresSaver(get_pool())


def setup_langgraph_tables(settings_dict: dict) -> None:
    """Create or migrate the Store's and the Saver's tables in the database the Store uses (idempotent;
    run by `migrate`). `settings_dict` is the Django database being migrated; the tables go there only
    when LANGGRAPH_DATABASE_URL is unset. Raises psycopg.OperationalError when that database cannot be
    reached (a missing database included: create it first)."""
    with Connection.connect(store_conninfo_for(settings_dict), **CONNECTION_KWARGS) as conn:
        PostgresStore(conn).setup()
        PostgresSaver(conn).setup()


# --- namespaces and threads ---------------------------------------------------------------------
def canvas_namespace(deal_id) -> tuple[str, str, str]:
    return ("deals", str(uuid.UUID(str(deal_id))), "canvas")


def versions_namespace(deal_id) -> tuple[str, str, str]:
    return ("deals", str(uuid.UUID(str(deal_id))), "versions")


def nodes_namespace(deal_id) -> tuple[str, str, str]:
    return ("deals", str(uuid.UUID(str(deal_id))), "nodes")


def edges_namespace(deal_id) -> tuple[str, str, str]:
    return ("deals", str(uuid.UUID(str(deal_id))), "edges")


def deal_thread_prefix(deal_id) -> str:
    return f"deal:{uuid.UUID(str(deal_id))}:"


def deal_thread_ids(deal_id) -> list[str]:
    """Every LangGraph checkpoint thread of the deal (`deal:<D>:...`)."""
    prefix = deal_thread_prefix(deal_id)
    with get_pool().connection() as conn:
        rows = conn.execute(
            "SELECT DISTINCT thread_id FROM checkpoints WHERE thread_id LIKE %s ORDER BY thread_id",
            (prefix.replace("_", r"\_") + "%",),
        ).fetchall()
    return [row["thread_id"] for row in rows]


def delete_deal_threads(deal_id) -> int:
    """Delete every checkpoint thread of the deal through LangGraph; returns how many threads went."""
    saver = get_checkpointer()
    threads = deal_thread_ids(deal_id)
    for thread_id in threads:
        saver.delete_thread(thread_id)
    return len(threads)


# --- bounded checkpoint data (the retention sweepers of canvas.runs and internal_api) ------------------
THREAD_KINDS = ("run", "chat")


@dataclass(frozen=True)
class CheckpointFootprint:
    threads: int
    rows: int  # rows of checkpoints, checkpoint_blobs and checkpoint_writes together
    bytes: int  # their stored size (pg_column_size of each row)


def checkpoint_threads_page(kind: str, *, after: str = "", limit: int = 500) -> list[str]:
    """Up to `limit` checkpoint thread ids `deal:<D>:<kind>:<id>` after `after`, in order (a sweeper's page)."""
    if kind not in THREAD_KINDS:
        raise ValueError(f"unknown thread kind {kind!r}")
    with get_pool().connection() as conn:
        rows = conn.execute(
            "SELECT DISTINCT thread_id FROM checkpoints WHERE thread_id > %s AND thread_id LIKE %s "
            "ORDER BY thread_id LIMIT %s",
            (after, f"deal:%:{kind}:%", limit),
        ).fetchall()
    return [row["thread_id"] for row in rows]


def threads_with_history(thread_ids: list[str]) -> list[str]:
    """Those of the threads that hold more than one checkpoint (what keep_latest would prune)."""
    if not thread_ids:
        return []
    with get_pool().connection() as conn:
        rows = conn.execute(
            "SELECT thread_id FROM checkpoints WHERE thread_id = ANY(%s) GROUP BY thread_id HAVING count(*) > 1 "
            "ORDER BY thread_id",
            (thread_ids,),
        ).fetchall()
    return [row["thread_id"] for row in rows]


def prune_threads(thread_ids: list[str], *, keep_latest: bool) -> None:
    """Through LangGraph's own prune: keep each thread's latest checkpoint (what a run's record or a resume
    reads) and delete the rest, or delete the threads whole."""
    if thread_ids:
        get_checkpointer().prune(thread_ids, strategy="keep_latest" if keep_latest else "delete")


def deal_checkpoint_footprint(deal_id) -> CheckpointFootprint:
    """Threads, rows and bytes of the deal's LangGraph checkpoint data (the admin's deal page)."""
    pattern = deal_thread_prefix(deal_id).replace("_", r"\_") + "%"
    with get_pool().connection() as conn:
        row = conn.execute(
            "SELECT (SELECT count(DISTINCT thread_id) FROM checkpoints WHERE thread_id LIKE %(p)s) AS threads, "
            "(SELECT count(*) FROM checkpoints WHERE thread_id LIKE %(p)s) "
            "+ (SELECT count(*) FROM checkpoint_blobs WHERE thread_id LIKE %(p)s) "
            "+ (SELECT count(*) FROM checkpoint_writes WHERE thread_id LIKE %(p)s) AS rows, "
            "(SELECT coalesce(sum(pg_column_size(c.*)), 0) FROM checkpoints c WHERE thread_id LIKE %(p)s) "
            "+ (SELECT coalesce(sum(pg_column_size(b.*)), 0) FROM checkpoint_blobs b WHERE thread_id LIKE %(p)s) "
            "+ (SELECT coalesce(sum(pg_column_size(w.*)), 0) FROM checkpoint_writes w WHERE thread_id LIKE %(p)s) "
            "AS bytes",
            {"p": pattern},
        ).fetchone()
    return CheckpointFootprint(threads=row["threads"], rows=row["rows"], bytes=row["bytes"])


def deal_namespaces(deal_id) -> tuple[tuple[str, str, str], ...]:
    """Every Store namespace of one deal."""
    return (canvas_namespace(deal_id), versions_namespace(deal_id), nodes_namespace(deal_id), edges_namespace(deal_id))


def _deal_lock_id(deal_id) -> int:
    digest = hashlib.sha256(f"canvas-write:{deal_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def deal_store_transaction(deal_id) -> Iterator[PostgresStore]:
    """A serialized, all-or-nothing write of one deal's Store items.

    One PostgreSQL transaction on the Store's own pool that first takes the deal's advisory lock, so
    concurrent writers of one deal queue up, each sees the previous one's result, and a write lands whole
    or not at all. Raises StoreUnavailable.
    """
    try:
        with get_pool().connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_deal_lock_id(deal_id),))
            yield PostgresStore(conn)
    except STORE_ERRORS as exc:
        raise StoreUnavailable() from exc


def delete_deal_items(deal_id) -> int:
    """Remove every Store item of the deal (memo, snapshots, nodes, edges); returns how many.

    Raises StoreUnavailable."""
    removed = 0
    with deal_store_transaction(deal_id) as store:
        for namespace in deal_namespaces(deal_id):
            while True:
                items = store.search(namespace, limit=MAX_ITEMS)
                if not items:
                    break
                store.batch([PutOp(namespace, item.key, None) for item in items])
                removed += len(items)
    return removed
