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
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import dj_database_url
import orjson
import psycopg
from django.conf import settings
from django.db import connection
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.store.base import PutOp
from langgraph.store.postgres import PostgresStore
from psycopg import Connection
from psycopg.conninfo import make_conninfo
from psycopg.rows import dict_row
from psycopg.types.json import set_json_loads
from psycopg_pool import ConnectionPool, PoolTimeout

from canvas_project.errors import StoreUnavailable

_lock = threading.Lock()
_pool: ConnectionPool | None = None
_pool_conninfo: str | None = None

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
    global _pool, _pool_conninfo
    with _lock:
        if _pool is not None:
            _pool.close()
        _pool, _pool_conninfo = None, None


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
