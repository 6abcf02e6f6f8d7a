"""The memo in the LangGraph Store: one item per section plus a head item, and version snapshots.

Reads take one Store query. Writes happen in `canvas_write(deal_id)`: one PostgreSQL transaction on
the Store's own connection that first takes a per-deal advisory lock, so concurrent writers of one
deal queue up, each sees the previous one's result, and a write lands whole or not at all.

Failures of the Store (PostgreSQL unreachable, pool exhausted) raise StoreUnavailable.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from langgraph.store.base import GetOp, PutOp, SearchOp
from langgraph.store.postgres import PostgresStore
from psycopg_pool import PoolTimeout

from canvas.memo import markdown as memo
from canvas.memo.errors import StoreUnavailable
from canvas.memo.templates import MemoTemplate, get_template
from canvas_project.store import (
    canvas_namespace,
    edges_namespace,
    get_pool,
    get_store,
    nodes_namespace,
    versions_namespace,
)

HEAD_KEY = "head"
SECTION_PREFIX = "section:"
MAX_ITEMS = 1000
STORE_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout)


def _advisory_lock_id(deal_id) -> int:
    digest = hashlib.sha256(f"canvas-write:{deal_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def snapshot_key(version: int) -> str:
    return f"v{version:010d}"


@dataclass
class CanvasDoc:
    """The memo as stored: the head and the sections by key."""

    deal_id: str
    head: dict[str, Any]
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    exists: bool = True

    @property
    def version(self) -> int:
        return int(self.head.get("version", 0))

    @property
    def state(self) -> str:
        state = self.head.get("state", "draft")
        return "approved" if state == "exported" else state  # legacy `exported` reads as approved

    @property
    def template(self) -> MemoTemplate:
        return get_template(self.head.get("template_key", ""))

    def ordered_sections(self) -> list[dict[str, Any]]:
        return sorted(self.sections.values(), key=lambda s: (s.get("order", 0), s["key"]))

    def markdown(self) -> str:
        return memo.assemble_markdown(self.ordered_sections())

    def populated_keys(self) -> list[str]:
        return [k for k, s in self.sections.items() if (s.get("markdown") or "").strip()]


def new_section(*, key: str, title: str, order: float, required: bool, custom: bool, now: str) -> dict[str, Any]:
    """An empty section as the Store holds it (the one place its fields are listed)."""
    return {
        "key": key,
        "title": title,
        "order": order,
        "required": required,
        "custom": custom,
        "state": "draft",
        "markdown": "",
        "source": None,
        "updated_at": now,
        "updated_by": None,
        "updated_by_name": None,
        "delivery": "missing",
        "citations": [],
        "version": 0,  # the memo version that last wrote this section (canvas.memo.services._write_memo)
    }


def blank_section(spec, *, now: str) -> dict[str, Any]:
    """The empty section of a template's SectionSpec."""
    return new_section(key=spec.key, title=spec.title, order=spec.order, required=spec.required, custom=False, now=now)


def new_canvas(*, deal_id: str, template_key: str, is_blank: bool, created_by: str | None, now: str) -> CanvasDoc:
    template = get_template(template_key)
    head = {
        "schema": 1,
        "state": "draft",
        "version": 0,
        "is_blank": is_blank,
        "template_key": template.key,
        "created_at": now,
        "created_by": created_by,
        "last_modified_by": None,
        "last_modified_by_id": None,
        "last_modified_at": None,
        "versions": [],
        "approval_versions": [],
        "last_run": None,
    }
    sections = {spec.key: blank_section(spec, now=now) for spec in template.sections}
    return CanvasDoc(deal_id=str(deal_id), head=head, sections=sections, exists=False)


def _doc_from_items(deal_id: str, items) -> CanvasDoc | None:
    head = None
    sections = {}
    for item in items:
        if item.key == HEAD_KEY:
            head = dict(item.value)
        elif item.key.startswith(SECTION_PREFIX):
            sections[item.key[len(SECTION_PREFIX) :]] = dict(item.value)
    if head is None:
        return None
    return CanvasDoc(deal_id=str(deal_id), head=head, sections=sections)


def read_canvas(deal_id) -> CanvasDoc | None:
    """The stored memo, or None when it was never created. Raises StoreUnavailable."""
    try:
        items = get_store().search(canvas_namespace(deal_id), limit=MAX_ITEMS)
    except STORE_ERRORS as exc:
        raise StoreUnavailable() from exc
    return _doc_from_items(str(deal_id), items)


def read_snapshots(deal_id, versions: list[int]) -> list[dict[str, Any]]:
    """Snapshots by version number (missing ones are skipped). Raises StoreUnavailable."""
    if not versions:
        return []
    namespace = versions_namespace(deal_id)
    try:
        results = get_store().batch([GetOp(namespace, snapshot_key(v)) for v in versions])
    except STORE_ERRORS as exc:
        raise StoreUnavailable() from exc
    return [dict(item.value) for item in results if item is not None]


class CanvasWriter:
    """Buffered writes of one canvas inside canvas_write(); flushed in one batch at the end."""

    def __init__(self, store: PostgresStore, deal_id: str) -> None:
        self.store = store
        self.deal_id = deal_id
        self._ops: list[PutOp] = []

    def load(self) -> CanvasDoc | None:
        items = self.store.batch([SearchOp(canvas_namespace(self.deal_id), None, MAX_ITEMS, 0)])[0]
        return _doc_from_items(self.deal_id, items)

    def put_head(self, head: dict[str, Any]) -> None:
        self._ops.append(PutOp(canvas_namespace(self.deal_id), HEAD_KEY, head, index=False))

    def put_section(self, section: dict[str, Any]) -> None:
        self._ops.append(PutOp(canvas_namespace(self.deal_id), SECTION_PREFIX + section["key"], section, index=False))

    def delete_section(self, key: str) -> None:
        self._ops.append(PutOp(canvas_namespace(self.deal_id), SECTION_PREFIX + key, None))

    def put_snapshot(self, snapshot: dict[str, Any]) -> None:
        self._ops.append(
            PutOp(versions_namespace(self.deal_id), snapshot_key(snapshot["version"]), snapshot, index=False)
        )

    def delete_snapshot(self, version: int) -> None:
        self._ops.append(PutOp(versions_namespace(self.deal_id), snapshot_key(version), None))

    def flush(self) -> None:
        if self._ops:
            self.store.batch(self._ops)
            self._ops = []


@contextmanager
def canvas_write(deal_id) -> Iterator[CanvasWriter]:
    """A serialized, all-or-nothing write of one deal's canvas. Raises StoreUnavailable."""
    try:
        with get_pool().connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_advisory_lock_id(deal_id),))
            writer = CanvasWriter(PostgresStore(conn), str(deal_id))
            yield writer
            writer.flush()
    except STORE_ERRORS as exc:
        raise StoreUnavailable() from exc


def delete_canvas(deal_id) -> int:
    """Remove every Store item of the deal (memo, snapshots, nodes, edges); returns how many.

    Raises StoreUnavailable."""
    removed = 0
    with canvas_write(deal_id) as writer:
        for namespace in (
            canvas_namespace(deal_id),
            versions_namespace(deal_id),
            nodes_namespace(deal_id),
            edges_namespace(deal_id),
        ):
            while True:
                items = writer.store.search(namespace, limit=MAX_ITEMS)
                if not items:
                    break
                writer.store.batch([PutOp(namespace, item.key, None) for item in items])
                removed += len(items)
    return removed
