"""Writes of canvas nodes: stored nodes (created by engines or the frontend) and the typed edges between
any two nodes. Derived nodes change through their own endpoints. What a node is: canvas.nodes.selectors.

Every write bumps the deal's `nodes_version` (deals.services.deal_nodes_touch) once the Store holds it: the
engines' cached canvas context is validated by that counter, so a write that skipped it would leave engines
told `unchanged` about a canvas that changed.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from langgraph.store.base import PutOp

from canvas.nodes.errors import DerivedNodeReadOnly, NodeNotFound
from canvas.nodes.selectors import (
    DERIVED_TYPES,
    EDGE_PREFIX,
    EDGE_TYPE_RE,
    NODE_PREFIX,
    TYPE_RE,
    derived_nodes,
    node_view,
    store_search,
)
from canvas_project import events
from canvas_project.errors import InvalidInputError, StoreUnavailable
from canvas_project.store import STORE_ERRORS, edges_namespace, get_store, nodes_namespace
from deals.models import Deal
from deals.services import deal_nodes_touch


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _put(deal_id, key: str, value: dict | None, namespace: tuple | None = None) -> None:
    try:
        get_store().batch([PutOp(namespace or nodes_namespace(deal_id), key, value, index=False)])
    except STORE_ERRORS as exc:
        raise StoreUnavailable() from exc


def _get_stored(deal_id, node_id: str) -> dict | None:
    try:
        item = get_store().get(nodes_namespace(deal_id), NODE_PREFIX + node_id)
    except STORE_ERRORS as exc:
        raise StoreUnavailable() from exc
    return dict(item.value) if item else None


def node_exists(deal: Deal, node_id: str) -> bool:
    if ":" in node_id:
        nodes, _ = derived_nodes(deal)
        return any(n["id"] == node_id for n in nodes)
    return _get_stored(deal.pk, node_id) is not None


def node_create(
    *,
    deal: Deal,
    actor_id: str | None,
    type: str,
    title: str,
    content: str = "",
    status: str = "pending",
    section_key: str | None = None,
    agent_id: str | None = None,
    framework: str | None = None,
    thread_id: str | None = None,
    loc_prefix: list | None = None,
) -> dict:
    """Create a stored node. Raises InvalidInputError (a derived or malformed type), StoreUnavailable."""
    prefix = loc_prefix or ["body"]
    if type in DERIVED_TYPES or not TYPE_RE.fullmatch(type):
        raise InvalidInputError(
            "type must be lowercase letters, digits and underscores, and not one of "
            + ", ".join(DERIVED_TYPES)
            + " (those mirror the memo).",
            loc=[*prefix, "type"],
            value=type,
        )
    node_id = str(uuid.uuid4())
    now = _now()
    value = {
        "id": node_id,
        "type": type,
        "status": status,
        "title": title,
        "content": content,
        "section_key": section_key,
        "agent_id": agent_id,
        "framework": framework,
        "thread_id": thread_id,
        "created_by": actor_id,
        "created_at": now,
        "updated_at": now,
    }
    _put(deal.pk, NODE_PREFIX + node_id, value)
    deal_nodes_touch(deal=deal)
    events.emit(deal.pk, "node_created", {"node_id": node_id, "type": type}, actor_id=actor_id)
    return node_view(
        id=node_id,
        type=type,
        raw_status=status,
        title=title,
        content=content,
        section_key=section_key,
        agent_id=agent_id,
        framework=framework,
        thread_id=thread_id,
        created_by=actor_id,
        updated_at=now,
        derived=False,
    )


def _require_stored(deal: Deal, node_id: str) -> dict:
    if ":" in node_id:
        if node_exists(deal, node_id):
            raise DerivedNodeReadOnly(
                "This node mirrors a section, suggestion, comment or condition; change it "
                "through that item's own endpoint."
            )
        raise NodeNotFound()
    value = _get_stored(deal.pk, node_id)
    if value is None:
        raise NodeNotFound()
    return value


def node_update(*, deal: Deal, actor_id: str | None, node_id: str, changes: dict) -> dict:
    """Change a stored node's status, title or content. Raises NodeNotFound, DerivedNodeReadOnly."""
    value = _require_stored(deal, node_id)
    value.update(changes)
    value["updated_at"] = _now()
    _put(deal.pk, NODE_PREFIX + node_id, value)
    deal_nodes_touch(deal=deal)
    events.emit(deal.pk, "node_updated", {"node_id": node_id, "changes": sorted(changes)}, actor_id=actor_id)
    return node_view(
        id=node_id,
        type=value["type"],
        raw_status=value.get("status", "pending"),
        title=value["title"],
        content=value.get("content", ""),
        section_key=value.get("section_key"),
        agent_id=value.get("agent_id"),
        framework=value.get("framework"),
        thread_id=value.get("thread_id"),
        created_by=value.get("created_by"),
        updated_at=value["updated_at"],
        derived=False,
    )


def node_delete(*, deal: Deal, actor_id: str | None, node_id: str) -> None:
    """Delete a stored node and its edges. Raises NodeNotFound, DerivedNodeReadOnly."""
    _require_stored(deal, node_id)
    ops = [PutOp(nodes_namespace(deal.pk), NODE_PREFIX + node_id, None)]
    for end in ("from", "to"):
        for item in store_search(edges_namespace(deal.pk), filter={end: node_id}):
            ops.append(PutOp(edges_namespace(deal.pk), item.key, None))
    try:
        get_store().batch(ops)
    except STORE_ERRORS as exc:
        raise StoreUnavailable() from exc
    deal_nodes_touch(deal=deal)
    events.emit(deal.pk, "node_deleted", {"node_id": node_id}, actor_id=actor_id)


def _edge_key(source: str, edge_type: str, target: str) -> str:
    return f"{EDGE_PREFIX}{source}|{edge_type}|{target}"


def link_create(
    *, deal: Deal, actor_id: str | None, source: str, target: str, edge_type: str, loc_prefix: list | None = None
) -> dict:
    """A typed edge source -> target. Raises NodeNotFound, InvalidInputError, StoreUnavailable."""
    prefix = loc_prefix or ["body"]
    if not EDGE_TYPE_RE.fullmatch(edge_type):
        raise InvalidInputError(
            "type must be lowercase letters, digits and underscores.", loc=[*prefix, "type"], value=edge_type
        )
    if source == target:
        raise InvalidInputError("A node cannot link to itself.", loc=[*prefix, "to"], value=target)
    for node_id, field in ((source, "from"), (target, "to")):
        if not node_exists(deal, node_id):
            if field == "from":
                raise NodeNotFound()
            raise InvalidInputError("No node of this canvas has this id.", loc=[*prefix, "to"], value=target)
    edge = {"from": source, "to": target, "type": edge_type, "created_by": actor_id, "created_at": _now()}
    _put(deal.pk, _edge_key(source, edge_type, target), edge, edges_namespace(deal.pk))
    deal_nodes_touch(deal=deal)
    events.emit(deal.pk, "link_created", {"from": source, "to": target, "type": edge_type}, actor_id=actor_id)
    return edge


def link_delete(*, deal: Deal, actor_id: str | None, source: str, target: str, edge_type: str) -> None:
    """Remove the edge (idempotent). Raises StoreUnavailable."""
    _put(deal.pk, _edge_key(source, edge_type, target), None, edges_namespace(deal.pk))
    deal_nodes_touch(deal=deal)
    events.emit(deal.pk, "link_deleted", {"from": source, "to": target, "type": edge_type}, actor_id=actor_id)
