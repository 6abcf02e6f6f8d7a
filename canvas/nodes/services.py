"""Canvas nodes: the reviewable items of a memo, as engines and the frontend see them.

Two kinds of node:
- derived nodes mirror what lives elsewhere: every section (the Store), suggestion, top-level comment
  and approval condition (PostgreSQL); their ids are `<type>:<id>` and they change through their own
  endpoints;
- stored nodes are created by engines or the frontend (e.g. `strategy_item`) and live in the Store,
  namespace ("deals", D, "nodes"), one item per node; typed edges between any two nodes are items
  `edge:<from>|<type>|<to>` of their own namespace ("deals", D, "edges"), so listing a page of nodes
  never reads the edges.
Statuses normalise to approve (approved, accepted, approve), reject (rejected, declined, dismissed,
reject) and pending (anything else).
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

from langgraph.store.base import PutOp

from canvas.memo.store import read_memo
from canvas.memo.types import Source
from canvas.models import ApprovalCondition, Comment, Suggestion
from canvas.review.brushes import brush_list
from canvas.review.errors import BrushesUnavailable
from canvas_project import events
from canvas_project.errors import ConflictError, InvalidInputError, NotFoundError, StoreUnavailable
from canvas_project.store import STORE_ERRORS, edges_namespace, get_pool, get_store, nodes_namespace
from deals.models import Deal

APPROVE = {"approved", "accepted", "approve"}
REJECT = {"rejected", "declined", "dismissed", "reject"}
STATUS_KEYS = ("approve", "reject", "pending")
DERIVED_TYPES = ("section", "suggestion", "comment", "approval_condition", "brush_finding")
TYPE_RE = re.compile(r"^[a-z][a-z0-9_]{1,39}$")
EDGE_TYPE_RE = re.compile(r"^[a-z][a-z0-9_]{1,39}$")
MAX_STORED_NODES = 20_000
NODE_PREFIX, EDGE_PREFIX = "node:", "edge:"


class NodeNotFound(NotFoundError):
    code = "node_not_found"
    default_message = "This canvas has no such node."


class DerivedNodeReadOnly(ConflictError):
    code = "derived_node"


def normalize_status(raw: str | None) -> str:
    value = (raw or "").strip().lower()
    if value in APPROVE:
        return "approve"
    if value in REJECT:
        return "reject"
    return "pending"


def _node(
    *,
    id: str,
    type: str,
    raw_status: str,
    title: str,
    content: str,
    section_key: str | None,
    agent_id: str | None = None,
    framework: str | None = None,
    thread_id: str | None = None,
    created_by: str | None = None,
    updated_at: str | None = None,
    derived: bool = True,
) -> dict:
    return {
        "id": id,
        "type": type,
        "status": normalize_status(raw_status),
        "raw_status": raw_status,
        "title": title,
        "content": content,
        "section_key": section_key,
        "agent_id": agent_id,
        "framework": framework,
        "thread_id": thread_id,
        "created_by": created_by,
        "updated_at": updated_at,
        "derived": derived,
    }


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def _derived_nodes(deal: Deal) -> tuple[list[dict], list[dict]]:
    """Nodes and implicit edges mirrored from the memo and PostgreSQL. Raises StoreUnavailable."""
    nodes, edges = [], []
    memo = read_memo(deal.pk)
    for section in memo.ordered_sections() if memo else []:
        nodes.append(
            _node(
                id=f"section:{section.key}",
                type="section",
                raw_status=str(section.state),
                title=section.title,
                content=section.markdown,
                section_key=section.key,
                agent_id="drafter" if section.source == Source.AI else None,
                updated_at=section.updated_at,
            )
        )
    for s in Suggestion.objects.filter(deal=deal).only(
        "id", "section_key", "kind", "status", "content", "anchor_text", "author_id", "updated_at"
    ):
        nodes.append(
            _node(
                id=f"suggestion:{s.pk}",
                type="suggestion",
                raw_status=s.status,
                title=f"{s.kind} in {s.section_key}",
                content=s.content or s.anchor_text,
                section_key=s.section_key,
                created_by=str(s.author_id) if s.author_id else None,
                updated_at=_iso(s.updated_at),
            )
        )
        edges.append({"from": f"suggestion:{s.pk}", "to": f"section:{s.section_key}", "type": "targets"})
    for c in Comment.objects.filter(deal=deal, parent=None).only(
        "id", "section_key", "body", "resolved", "author_id", "updated_at"
    ):
        nodes.append(
            _node(
                id=f"comment:{c.pk}",
                type="comment",
                raw_status="resolved" if c.resolved else "open",
                title=c.body[:80],
                content=c.body,
                section_key=c.section_key,
                created_by=str(c.author_id) if c.author_id else None,
                updated_at=_iso(c.updated_at),
            )
        )
        edges.append({"from": f"comment:{c.pk}", "to": f"section:{c.section_key}", "type": "comments_on"})
    for cond in ApprovalCondition.objects.filter(deal=deal).only("id", "section_key", "text", "resolved", "created_at"):
        nodes.append(
            _node(
                id=f"condition:{cond.pk}",
                type="approval_condition",
                raw_status="resolved" if cond.resolved else "open",
                title=cond.text[:80],
                content=cond.text,
                section_key=cond.section_key,
                updated_at=_iso(cond.created_at),
            )
        )
        edges.append({"from": f"condition:{cond.pk}", "to": f"section:{cond.section_key}", "type": "conditions"})
    for finding in _brush_findings(deal):
        node_id = f"brush:{finding['id']}"
        nodes.append(
            _node(
                id=node_id,
                type="brush_finding",
                raw_status=finding.get("status") or "open",
                title=finding["message"][:80],
                content=finding["message"],
                section_key=finding.get("section_key"),
                agent_id="brush",
                updated_at=finding.get("created_at"),
            )
        )
        if finding.get("section_key"):
            edges.append({"from": node_id, "to": f"section:{finding['section_key']}", "type": "flags"})
    return nodes, edges


def _brush_findings(deal: Deal) -> list[dict]:
    """Findings of the deal's cached brush passes (Redis, 24 h); none while Redis is down."""
    try:
        passes = brush_list(deal=deal)
    except BrushesUnavailable:
        return []
    return [
        {**finding, "created_at": result.get("created_at")}
        for result in passes
        for finding in result.get("findings", [])
    ]


def _search(namespace: tuple, *, limit: int = MAX_STORED_NODES, filter: dict | None = None) -> list:
    try:
        return get_store().search(namespace, filter=filter, limit=limit)
    except STORE_ERRORS as exc:
        raise StoreUnavailable() from exc


def _stored_node(value: dict) -> dict:
    return _node(
        id=value["id"],
        type=value["type"],
        raw_status=value.get("status", "pending"),
        title=value.get("title", ""),
        content=value.get("content", ""),
        section_key=value.get("section_key"),
        agent_id=value.get("agent_id"),
        framework=value.get("framework"),
        thread_id=value.get("thread_id"),
        created_by=value.get("created_by"),
        updated_at=value.get("updated_at"),
        derived=False,
    )


def _all_edges(deal_id) -> list[dict]:
    return [dict(item.value) for item in _search(edges_namespace(deal_id))]


def canvas_graph(deal: Deal) -> tuple[list[dict], list[dict]]:
    """Every node (derived first: sections in memo order; then stored, newest first) and every edge.

    Raises StoreUnavailable.
    """
    nodes, edges = _derived_nodes(deal)
    stored = [_stored_node(dict(item.value)) for item in _search(nodes_namespace(deal.pk))]
    stored.sort(key=lambda n: n.get("updated_at") or "", reverse=True)
    return nodes + stored, edges + _all_edges(deal.pk)


def nodes_page(deal: Deal, *, limit: int, framework: str | None = None) -> tuple[list[dict], bool, list[dict]]:
    """(the first `limit` nodes in canvas_graph's order, whether more matched, the implicit edges).

    Reads only the newest `limit + 1` stored nodes, not all of them. Raises StoreUnavailable.
    """
    derived, implicit = _derived_nodes(deal)
    if framework is not None:
        derived = [n for n in derived if n.get("framework") == framework]
    listed = derived[:limit]
    room = limit - len(listed)
    stored = [
        _stored_node(dict(item.value))
        for item in _search(
            nodes_namespace(deal.pk), limit=room + 1, filter={"framework": framework} if framework else None
        )
    ]
    stored.sort(key=lambda n: n.get("updated_at") or "", reverse=True)
    truncated = len(derived) > limit or len(stored) > room
    return listed + stored[:room], truncated, implicit


def edges_of(deal: Deal, implicit: list[dict]) -> list[dict]:
    """The implicit edges of derived nodes plus every stored edge. Raises StoreUnavailable."""
    return implicit + _all_edges(deal.pk)


def _stored_status_counts(deal_id) -> list[tuple[str, str, int]]:
    """(type, raw status, count) of the deal's stored nodes, by one aggregate over LangGraph's `store`
    table (prefix = the namespace joined by dots). Reading the table directly is deliberate: it is ~15x
    cheaper than loading every node; tests pin it to equal summarize(canvas_graph())."""
    prefix = ".".join(nodes_namespace(deal_id))
    try:
        with get_pool().connection() as conn:
            rows = conn.execute(
                "SELECT value->>'type' AS type, coalesce(value->>'status', 'pending') AS status, count(*) AS n "
                "FROM store WHERE prefix = %s AND key LIKE 'node:%%' GROUP BY 1, 2",
                (prefix,),
            ).fetchall()
    except STORE_ERRORS as exc:
        raise StoreUnavailable() from exc
    return [(row["type"], row["status"], int(row["n"])) for row in rows]


def canvas_summary_counts(deal: Deal) -> dict:
    """The summary of every node without loading the stored ones. Raises StoreUnavailable."""
    derived, _edges = _derived_nodes(deal)
    summary = summarize(derived)
    for node_type, raw_status, count in _stored_status_counts(deal.pk):
        summary["nodeCount"] += count
        summary["byType"][node_type] = summary["byType"].get(node_type, 0) + count
        summary["byStatus"][normalize_status(raw_status)] += count
    summary["byType"] = dict(sorted(summary["byType"].items()))
    return summary


def summarize(nodes: list[dict]) -> dict:
    by_type: dict[str, int] = {}
    by_status = dict.fromkeys(STATUS_KEYS, 0)
    for node in nodes:
        by_type[node["type"]] = by_type.get(node["type"], 0) + 1
        by_status[node["status"]] += 1
    return {"nodeCount": len(nodes), "byType": dict(sorted(by_type.items())), "byStatus": by_status}


def relationships_of(edges: list[dict], node_ids: set[str] | None = None) -> dict[str, list[dict]]:
    """{from node id: [{to, type}]}, limited to edges whose ends are both in node_ids when given."""
    grouped: dict[str, list[dict]] = {}
    for edge in edges:
        if node_ids is not None and (edge["from"] not in node_ids or edge["to"] not in node_ids):
            continue
        grouped.setdefault(edge["from"], []).append({"to": edge["to"], "type": edge["type"]})
    return grouped


# --- stored nodes: writes ---------------------------------------------------------------------------
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
        nodes, _ = _derived_nodes(deal)
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
    if type in DERIVED_TYPES or not TYPE_RE.match(type):
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
    events.emit(deal.pk, "node_created", {"node_id": node_id, "type": type}, actor_id=actor_id)
    return _node(
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
    events.emit(deal.pk, "node_updated", {"node_id": node_id, "changes": sorted(changes)}, actor_id=actor_id)
    return _node(
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
        for item in _search(edges_namespace(deal.pk), filter={end: node_id}):
            ops.append(PutOp(edges_namespace(deal.pk), item.key, None))
    try:
        get_store().batch(ops)
    except STORE_ERRORS as exc:
        raise StoreUnavailable() from exc
    events.emit(deal.pk, "node_deleted", {"node_id": node_id}, actor_id=actor_id)


def _edge_key(source: str, edge_type: str, target: str) -> str:
    return f"{EDGE_PREFIX}{source}|{edge_type}|{target}"


def link_create(
    *, deal: Deal, actor_id: str | None, source: str, target: str, edge_type: str, loc_prefix: list | None = None
) -> dict:
    """A typed edge source -> target. Raises NodeNotFound, InvalidInputError, StoreUnavailable."""
    prefix = loc_prefix or ["body"]
    if not EDGE_TYPE_RE.match(edge_type):
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
    events.emit(deal.pk, "link_created", {"from": source, "to": target, "type": edge_type}, actor_id=actor_id)
    return edge


def link_delete(*, deal: Deal, actor_id: str | None, source: str, target: str, edge_type: str) -> None:
    """Remove the edge (idempotent). Raises StoreUnavailable."""
    _put(deal.pk, _edge_key(source, edge_type, target), None, edges_namespace(deal.pk))
    events.emit(deal.pk, "link_deleted", {"from": source, "to": target, "type": edge_type}, actor_id=actor_id)
