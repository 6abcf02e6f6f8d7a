"""The canvas context that engines pull (GET /api/internal/canvas/context) and that chat pushes.

Two revisions, both 16 hex characters of SHA-256 over canonical JSON (sorted keys, no spaces), so they are
the same in every process and for any key order:

- `revision` (the contract's): over the summary, the counts of nodes by type and status. It says whether
  the counts changed; an edit of a node's text, title or edges changes no count.
- `contentRevision`: over what this answer lists, `{nodes, relationships, truncated}` exactly as returned
  (content only with includeContent, relationships only with includeRelationships, the page that maxNodes
  and framework select). It changes whenever anything the engine asked for changed, and only then.

An engine sends back the revision it last saw as `revision`. `unchanged` is true, and nodes and
relationships are omitted, when that is the current `contentRevision` of the same question, or when it is
the current summary `revision` and the question asks for neither content nor relationships (the counts are
what such an engine compares). A summary revision never makes a question with content or relationships
`unchanged`.
"""

from __future__ import annotations

import hashlib
import json

import orjson

from canvas.nodes import selectors as node_selectors
from deals.models import Deal
from internal_api.context_cache import ContextReader, without_content

CONTRACT_VERSION = "2026-02"
SUPPORTED_VERSIONS = (CONTRACT_VERSION,)
MAX_NODES_LIMIT = 1000
DEFAULT_MAX_NODES = 200


def summary_revision(summary: dict) -> str:
    canonical = json.dumps(summary, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def content_revision(answer: dict) -> str:
    """16 hex characters of SHA-256 over the canonical JSON of `{nodes, relationships, truncated}`."""
    canonical = orjson.dumps(
        {"nodes": answer["nodes"], "relationships": answer["relationships"], "truncated": answer["truncated"]},
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.sha256(canonical).hexdigest()[:16]


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
    """(summary, revision) of the deal's canvas (through the context cache: `deal` must be the row the
    request's access check read). Raises StoreUnavailable."""
    reader = ContextReader(deal, want_page=False)
    summary = reader.snapshot().summary
    reader.save()
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

    `deal` must be the row the request's access check read (its counters validate the cache). The summary
    covers every node (so `revision` does not depend on the question); `framework` filters the listed nodes:
    derived nodes first (sections in memo order, suggestions, comments, conditions, brush findings), then
    stored nodes, newest first. See the module's docstring for `unchanged`.
    """
    reader = ContextReader(deal, framework=framework, with_content=include_content, want_edges=include_relationships)
    snapshot = reader.snapshot()
    current = summary_revision(snapshot.summary)
    derived = snapshot.derived if framework is None else [n for n in snapshot.derived if n["framework"] == framework]
    listed = derived[:max_nodes]
    stored, more = reader.stored(max_nodes - len(listed))  # with content only when asked
    truncated = len(derived) > max_nodes or more
    listed = (listed if include_content else without_content(listed)) + stored
    relationships = {}
    if include_relationships:  # edges are read only when asked for
        ids = {n["id"] for n in listed}
        relationships = node_selectors.relationships_of(snapshot.implicit + reader.edges(), ids)
    reader.save()
    answer = {"nodes": listed, "relationships": relationships, "truncated": truncated}
    content = content_revision(answer)
    unchanged = revision is not None and (
        revision == content or (revision == current and not include_content and not include_relationships)
    )
    context: dict = {"summary": snapshot.summary, "nodes": [], "relationships": {}, "unchanged": unchanged}
    if not unchanged:
        context.update(answer)
    return {
        "data": {"canvas_profile": canvas_profile(deal), "canvas_context": context},
        "meta": {
            "revision": current,
            "contentRevision": content,
            "contractVersion": CONTRACT_VERSION,
            "nodeCount": snapshot.summary["nodeCount"],
        },
    }
