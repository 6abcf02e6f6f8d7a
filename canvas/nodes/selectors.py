"""Reads of canvas nodes: the reviewable items of a memo, as engines and the frontend see them.

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
from collections.abc import Iterable

from canvas.memo.store import read_memo
from canvas.memo.types import Source
from canvas.models import ApprovalCondition, Comment, Suggestion
from canvas.review.brushes import brush_list
from canvas.review.errors import BrushesUnavailable
from canvas_project.errors import StoreUnavailable
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


def normalize_status(raw: str | None) -> str:
    value = (raw or "").strip().lower()
    if value in APPROVE:
        return "approve"
    if value in REJECT:
        return "reject"
    return "pending"


def node_view(
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


def iso(value) -> str | None:
    return value.isoformat() if value else None


def derived_nodes(deal: Deal) -> tuple[list[dict], list[dict]]:
    """Nodes and implicit edges mirrored from the memo, PostgreSQL and the brush passes in Redis: sections,
    suggestions, comments, approval conditions, then brush findings. Raises StoreUnavailable."""
    nodes, edges, _memo_stored = durable_derived_nodes(deal)
    found, found_edges = brush_nodes(deal)
    return nodes + found, edges + found_edges


def durable_derived_nodes(deal: Deal) -> tuple[list[dict], list[dict], bool]:
    """(nodes, implicit edges, whether the memo is stored) of the derived nodes that the memo and PostgreSQL
    hold: sections, suggestions, top-level comments, approval conditions. They change only with the deal's
    memo_version (sections) or nodes_version (the rest), except that a memo never stored is laid out at
    version 0 on its first read. Raises StoreUnavailable."""
    nodes, edges = [], []
    memo = read_memo(deal.pk)
    for section in memo.ordered_sections() if memo else []:
        nodes.append(
            node_view(
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
            node_view(
                id=f"suggestion:{s.pk}",
                type="suggestion",
                raw_status=s.status,
                title=f"{s.kind} in {s.section_key}",
                content=s.content or s.anchor_text,
                section_key=s.section_key,
                created_by=str(s.author_id) if s.author_id else None,
                updated_at=iso(s.updated_at),
            )
        )
        edges.append({"from": f"suggestion:{s.pk}", "to": f"section:{s.section_key}", "type": "targets"})
    for c in Comment.objects.filter(deal=deal, parent=None).only(
        "id", "section_key", "body", "resolved", "author_id", "updated_at"
    ):
        nodes.append(
            node_view(
                id=f"comment:{c.pk}",
                type="comment",
                raw_status="resolved" if c.resolved else "open",
                title=c.body[:80],
                content=c.body,
                section_key=c.section_key,
                created_by=str(c.author_id) if c.author_id else None,
                updated_at=iso(c.updated_at),
            )
        )
        edges.append({"from": f"comment:{c.pk}", "to": f"section:{c.section_key}", "type": "comments_on"})
    for cond in ApprovalCondition.objects.filter(deal=deal).only("id", "section_key", "text", "resolved", "created_at"):
        nodes.append(
            node_view(
                id=f"condition:{cond.pk}",
                type="approval_condition",
                raw_status="resolved" if cond.resolved else "open",
                title=cond.text[:80],
                content=cond.text,
                section_key=cond.section_key,
                updated_at=iso(cond.created_at),
            )
        )
        edges.append({"from": f"condition:{cond.pk}", "to": f"section:{cond.section_key}", "type": "conditions"})
    return nodes, edges, memo is not None


def brush_nodes(deal: Deal, *, index_members=None) -> tuple[list[dict], list[dict]]:
    """Nodes and implicit edges of the findings of the deal's cached brush passes (Redis, with their own TTL);
    `index_members` as brush_list takes it."""
    nodes, edges = [], []
    for finding in brush_findings_of(deal, index_members=index_members):
        node_id = f"brush:{finding['id']}"
        nodes.append(
            node_view(
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


def brush_findings_of(deal: Deal, *, index_members=None) -> list[dict]:
    """Findings of the deal's cached brush passes (Redis, 24 h); none while Redis is down."""
    try:
        passes = brush_list(deal=deal, index_members=index_members)
    except BrushesUnavailable:
        return []
    return [
        {**finding, "created_at": result.get("created_at")}
        for result in passes
        for finding in result.get("findings", [])
    ]


def store_search(namespace: tuple, *, limit: int = MAX_STORED_NODES, filter: dict | None = None) -> list:
    try:
        return get_store().search(namespace, filter=filter, limit=limit)
    except STORE_ERRORS as exc:
        raise StoreUnavailable() from exc


def stored_node_view(value: dict) -> dict:
    return node_view(
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


def all_edges(deal_id) -> list[dict]:
    return [dict(item.value) for item in store_search(edges_namespace(deal_id))]


def canvas_graph(deal: Deal) -> tuple[list[dict], list[dict]]:
    """Every node (derived first: sections in memo order; then stored, newest first) and every edge.

    Raises StoreUnavailable.
    """
    nodes, edges = derived_nodes(deal)
    stored = [stored_node_view(dict(item.value)) for item in store_search(nodes_namespace(deal.pk))]
    stored.sort(key=lambda n: n.get("updated_at") or "", reverse=True)
    return nodes + stored, edges + all_edges(deal.pk)


def nodes_page(deal: Deal, *, limit: int, framework: str | None = None) -> tuple[list[dict], bool, list[dict]]:
    """(the first `limit` nodes in canvas_graph's order, whether more matched, the implicit edges).

    Reads only the newest `limit + 1` stored nodes, not all of them. Raises StoreUnavailable.
    """
    derived, implicit = derived_nodes(deal)
    if framework is not None:
        derived = [n for n in derived if n.get("framework") == framework]
    listed = derived[:limit]
    room = limit - len(listed)
    stored = stored_newest(deal.pk, limit=room + 1, framework=framework)
    truncated = len(derived) > limit or len(stored) > room
    return listed + stored[:room], truncated, implicit


def stored_newest(deal_id, *, limit: int, framework: str | None = None) -> list[dict]:
    """The newest `limit` stored nodes (of `framework` when given), newest first. Raises StoreUnavailable."""
    stored = [
        stored_node_view(dict(item.value))
        for item in store_search(
            nodes_namespace(deal_id), limit=limit, filter={"framework": framework} if framework else None
        )
    ]
    stored.sort(key=lambda n: n.get("updated_at") or "", reverse=True)
    return stored


def edges_of(deal: Deal, implicit: list[dict]) -> list[dict]:
    """The implicit edges of derived nodes plus every stored edge. Raises StoreUnavailable."""
    return implicit + all_edges(deal.pk)


def stored_status_counts(deal_id) -> list[tuple[str, str, int]]:
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
    derived, _edges = derived_nodes(deal)
    return summarize(derived, stored_counts=stored_status_counts(deal.pk))


def summarize(nodes: list[dict], *, stored_counts: Iterable[tuple[str, str, int]] = ()) -> dict:
    """{nodeCount, byType, byStatus} of the nodes plus the (type, raw status, count) rows of stored_status_counts."""
    by_type: dict[str, int] = {}
    by_status = dict.fromkeys(STATUS_KEYS, 0)
    for node in nodes:
        by_type[node["type"]] = by_type.get(node["type"], 0) + 1
        by_status[node["status"]] += 1
    count = len(nodes)
    for node_type, raw_status, n in stored_counts:
        by_type[node_type] = by_type.get(node_type, 0) + n
        by_status[normalize_status(raw_status)] += n
        count += n
    return {"nodeCount": count, "byType": dict(sorted(by_type.items())), "byStatus": by_status}


def summaries_combined(*summaries: dict) -> dict:
    """One summary of the nodes of several (disjoint) summaries."""
    by_type: dict[str, int] = {}
    by_status = dict.fromkeys(STATUS_KEYS, 0)
    for summary in summaries:
        for node_type, n in summary["byType"].items():
            by_type[node_type] = by_type.get(node_type, 0) + n
        for status, n in summary["byStatus"].items():
            by_status[status] += n
    return {
        "nodeCount": sum(s["nodeCount"] for s in summaries),
        "byType": dict(sorted(by_type.items())),
        "byStatus": by_status,
    }


def relationships_of(edges: list[dict], node_ids: set[str] | None = None) -> dict[str, list[dict]]:
    """{from node id: [{to, type}]}, limited to edges whose ends are both in node_ids when given."""
    grouped: dict[str, list[dict]] = {}
    for edge in edges:
        if node_ids is not None and (edge["from"] not in node_ids or edge["to"] not in node_ids):
            continue
        grouped.setdefault(edge["from"], []).append({"to": edge["to"], "type": edge["type"]})
    return grouped


NODE_FILTERS = ("type", "status", "section_key", "agent_id", "framework")


def node_list(*, deal: Deal, filters: dict) -> tuple[list[dict], dict]:
    """(nodes, edges): the nodes matching every given filter (None: any), in canvas_graph's order, and
    the canvas's edges; page them, then take `relationships_from` the page. Raises StoreUnavailable."""
    all_nodes, edges = canvas_graph(deal)
    return [n for n in all_nodes if all(filters.get(f) is None or n.get(f) == filters[f] for f in NODE_FILTERS)], edges


def relationships_from(edges, nodes: list[dict]) -> dict:
    """The edges from the given nodes to any node of the canvas, by node id."""
    listed = {n["id"] for n in nodes}
    return {k: v for k, v in relationships_of(edges).items() if k in listed}
