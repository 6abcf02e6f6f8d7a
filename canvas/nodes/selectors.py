"""Reads of canvas nodes for the frontend. The graph itself (derived and stored nodes, edges) is built
in canvas.nodes.services, which the internal contract shares."""

from __future__ import annotations

from canvas.nodes import services as nodes
from deals.models import Deal

NODE_FILTERS = ("type", "status", "section_key", "agent_id", "framework")


def node_list(*, deal: Deal, filters: dict, offset: int, limit: int) -> dict:
    """{count, results, relationships}: the nodes matching every given filter (None: any), `limit` of them
    from `offset` in canvas_graph's order, and the edges from the listed nodes to any node of the canvas.

    Raises StoreUnavailable.
    """
    all_nodes, edges = nodes.canvas_graph(deal)
    wanted = [n for n in all_nodes if all(filters.get(f) is None or n.get(f) == filters[f] for f in NODE_FILTERS)]
    page = wanted[offset : offset + limit]
    listed = {n["id"] for n in page}
    relationships = {k: v for k, v in nodes.relationships_of(edges).items() if k in listed}
    return {"count": len(wanted), "results": page, "relationships": relationships}
