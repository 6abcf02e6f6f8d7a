"""The canvas context that engines pull (GET /api/internal/canvas/context) and that chat pushes.

`revision` is the first 16 hex characters of SHA-256 over the canonical JSON (sorted keys, no
spaces) of the summary, so it is the same in every process and for any key order.
"""

from __future__ import annotations

import hashlib
import json

from canvas.nodes import selectors as node_selectors
from canvas_project.replicas import reads_from_replica
from deals.models import Deal

CONTRACT_VERSION = "2026-02"
SUPPORTED_VERSIONS = (CONTRACT_VERSION,)
MAX_NODES_LIMIT = 1000
DEFAULT_MAX_NODES = 200


def summary_revision(summary: dict) -> str:
    canonical = json.dumps(summary, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def canvas_profile(deal: Deal) -> dict:
    return {
        "project_id": str(deal.pk),
        "name": deal.name,
        "template_key": deal.template_key,
        "document_state": deal.document_state,
        "version": deal.memo_version,
        "sections_populated": deal.sections_populated,
        "sections_total": deal.sections_total,
        "collab_enabled": deal.collab_enabled,
    }


def canvas_summary(deal: Deal) -> tuple[dict, str]:
    """(summary, revision) of the deal's canvas, counted without loading every node. Raises StoreUnavailable."""
    summary = node_selectors.canvas_summary_counts(deal)
    return summary, summary_revision(summary)


def canvas_context(
    *,
    deal: Deal,
    max_nodes: int = DEFAULT_MAX_NODES,
    include_content: bool = False,
    include_relationships: bool = False,
    framework: str | None = None,
    revision: str | None = None,
) -> dict:
    """The `data` and `meta` of the contract's response. Raises StoreUnavailable.

    The summary covers every node (so the revision does not depend on the query); `framework`
    filters the listed nodes. When `revision` equals the current one, nodes and relationships are
    omitted and `unchanged` is true. Its rows (comments, conditions, suggestions) are read from a replica
    when one is usable (canvas_project.replicas); the nodes the Store holds come from the primary.
    """
    with reads_from_replica():
        return _canvas_context(
            deal=deal,
            max_nodes=max_nodes,
            include_content=include_content,
            include_relationships=include_relationships,
            framework=framework,
            revision=revision,
        )


def _canvas_context(
    *,
    deal: Deal,
    max_nodes: int,
    include_content: bool,
    include_relationships: bool,
    framework: str | None,
    revision: str | None,
) -> dict:
    # compare first: an engine whose revision is current gets its answer without the nodes being read
    summary, current = canvas_summary(deal)
    context: dict = {"summary": summary, "nodes": [], "relationships": {}, "unchanged": revision == current}
    if not context["unchanged"]:
        listed, context["truncated"], implicit = node_selectors.nodes_page(deal, limit=max_nodes, framework=framework)
        if not include_content:
            listed = [{k: v for k, v in n.items() if k != "content"} for n in listed]
        context["nodes"] = listed
        if include_relationships:  # edges are read only when asked for
            edges = node_selectors.edges_of(deal, implicit)
            context["relationships"] = node_selectors.relationships_of(edges, {n["id"] for n in listed})
    return {
        "data": {"canvas_profile": canvas_profile(deal), "canvas_context": context},
        "meta": {"revision": current, "contractVersion": CONTRACT_VERSION, "nodeCount": summary["nodeCount"]},
    }
