"""The memo in the LangGraph Store: one item per section plus a head item, and version snapshots.

Reads take one Store query. Writes happen in `memo_transaction(deal_id)`: the deal's serialized Store
transaction (canvas_project.store.deal_store_transaction), buffered and flushed in one batch, so a
write lands whole or not at all. Only canvas.memo.writes opens one.

Read-only selectors may ask for a replica (`from_replica=True`; canvas_project.store.store_read_alias()
decides): a snapshot never changes once written, so a replica's copy is the primary's, and one the
replica has not replayed yet is read from the primary; the memo is taken from the replica only when it is
at least as new as the version the caller already knows (the deal row's memo_version, read on the
primary), else from the primary. A replica that fails the read leaves it to the primary too. Without
replicas, or for a pinned caller, nothing changes: one read on the primary, as LangGraph does it.

Failures of the Store (PostgreSQL unreachable, pool exhausted) raise StoreUnavailable.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import DEFAULT_DB_ALIAS
from langgraph.store.base import GetOp, PutOp, SearchOp
from langgraph.store.postgres import PostgresStore

from canvas.memo.types import Memo, Section
from canvas_project.errors import StoreUnavailable
from canvas_project.store import (
    MAX_ITEMS,
    STORE_ERRORS,
    canvas_namespace,
    deal_store_transaction,
    get_store,
    read_on_replica,
    select_items,
    store_read_alias,
    versions_namespace,
)

HEAD_KEY = "head"
SECTION_PREFIX = "section:"


def snapshot_key(version: int) -> str:
    return f"v{version:010d}"


def _memo_from_items(deal_id, items) -> Memo | None:
    head = None
    sections = {}
    for item in items:
        if item.key == HEAD_KEY:
            head = item.value
        elif item.key.startswith(SECTION_PREFIX):
            sections[item.key[len(SECTION_PREFIX) :]] = item.value
    if head is None:
        return None
    return Memo.from_store(deal_id, head, sections)


def read_memo(deal_id, *, from_replica: bool = False, at_least_version: int = 0) -> Memo | None:
    """The stored memo, or None when it was never written. With `from_replica`, from the request's replica
    when its memo is at version `at_least_version` or newer (else from the primary). Raises StoreUnavailable."""
    if from_replica and (alias := store_read_alias()) != DEFAULT_DB_ALIAS:
        # a plain SELECT: LangGraph's default search refreshes TTLs with an UPDATE, refused by a standby
        search = SearchOp(canvas_namespace(deal_id), None, MAX_ITEMS, 0, refresh_ttl=False)
        items = read_on_replica(alias, lambda conn: PostgresStore(conn).batch([search])[0])
        if items is not None:
            memo = _memo_from_items(deal_id, items)
            if (memo.version if memo else 0) >= at_least_version:
                return memo
    try:
        items = get_store().search(canvas_namespace(deal_id), limit=MAX_ITEMS)
    except STORE_ERRORS as exc:
        raise StoreUnavailable() from exc
    return _memo_from_items(deal_id, items)


def read_snapshots(deal_id, versions: list[int], *, from_replica: bool = False) -> list[dict[str, Any]]:
    """Snapshots by version number, in that order (missing ones are skipped). With `from_replica`, from the
    request's replica, and those it lacks (not replayed yet, or the replica failed) from the primary: never
    missing unless the primary lacks it too. Raises StoreUnavailable."""
    if not versions:
        return []
    namespace = versions_namespace(deal_id)
    found: dict[int, dict[str, Any]] = {}
    if from_replica and (alias := store_read_alias()) != DEFAULT_DB_ALIAS:
        keys = [snapshot_key(v) for v in versions]
        rows = read_on_replica(alias, lambda conn: select_items(conn, namespace, keys))
        found = {v: dict(rows[snapshot_key(v)]) for v in versions if rows and snapshot_key(v) in rows}
    missing = [v for v in versions if v not in found]
    if missing:
        try:
            results = get_store().batch([GetOp(namespace, snapshot_key(v)) for v in missing])
        except STORE_ERRORS as exc:
            raise StoreUnavailable() from exc
        found |= {v: dict(item.value) for v, item in zip(missing, results, strict=True) if item is not None}
    return [found[v] for v in versions if v in found]


class MemoWriter:
    """Buffered writes of one memo inside memo_transaction(); flushed in one batch at the end."""

    def __init__(self, store: PostgresStore, deal_id) -> None:
        self.store = store
        self.deal_id = str(deal_id)
        self._ops: list[PutOp] = []

    def load(self) -> Memo | None:
        items = self.store.batch([SearchOp(canvas_namespace(self.deal_id), None, MAX_ITEMS, 0)])[0]
        return _memo_from_items(self.deal_id, items)

    def put_head(self, memo: Memo) -> None:
        self._ops.append(PutOp(canvas_namespace(self.deal_id), HEAD_KEY, memo.head_to_store(), index=False))

    def put_section(self, section: Section) -> None:
        key = SECTION_PREFIX + section.key
        self._ops.append(PutOp(canvas_namespace(self.deal_id), key, section.to_store(), index=False))

    def delete_section(self, key: str) -> None:
        self._ops.append(PutOp(canvas_namespace(self.deal_id), SECTION_PREFIX + key, None))

    def put_snapshot(self, snapshot: dict[str, Any]) -> None:
        key = snapshot_key(snapshot["version"])
        self._ops.append(PutOp(versions_namespace(self.deal_id), key, snapshot, index=False))

    def delete_snapshot(self, version: int) -> None:
        self._ops.append(PutOp(versions_namespace(self.deal_id), snapshot_key(version), None))

    def flush(self) -> None:
        if self._ops:
            self.store.batch(self._ops)
            self._ops = []


@contextmanager
def memo_transaction(deal_id) -> Iterator[MemoWriter]:
    """A serialized, all-or-nothing write of one deal's memo. Raises StoreUnavailable."""
    with deal_store_transaction(deal_id) as store:
        writer = MemoWriter(store, deal_id)
        yield writer
        writer.flush()
