"""Human input in the synthesis graph: a run whose required sections find no material pauses with a LangGraph
interrupt instead of failing, and continues from its checkpoint with the answer.

    START --dispatch--> draft_section (x N) --> review --route--> draft_section (the asked sections, once) --> review
                                                       \\--> END

A first drafting of a section that finds nothing to draft from (no passage, no figure: NoMaterial) returns
`needs_input` instead of failing. `review` runs once all drafters of a step are done: when a required section
needs input and was never asked, it calls `interrupt(request)`; the graph stops there, checkpointed
(PostgresSaver, thread `deal:<D>:run:<run_id>`), and the worker is free. The run is resumed with
`Command(resume=answer)`: LangGraph re-executes `review` from its start (so nothing before the interrupt has side
effects), `interrupt` returns the answer, and `route` sends the asked sections, and only those, to a last drafting
with the analyst's notes and a fresh retrieval (documents uploaded meanwhile count). The sections already drafted
stay as the checkpoint holds them. A section still without material then is `missing` (the run succeeds and lists
it): a run never asks twice. Optional sections without material fail as before when no required section asks.
"""

from __future__ import annotations

import logging
from typing import Any

from langgraph.graph import END
from langgraph.runtime import Runtime
from langgraph.types import Send, interrupt

NEEDS_INPUT = "needs_input"
MISSING = "missing"
NOTES_LABEL = "Analyst notes"
# The longest note one section takes (characters); longer is 422 at the resume.
NOTE_MAX_CHARS = 20_000
REASON_NO_DOCUMENTS = "no_documents"
REASON_NO_MATERIAL = "no_material"

logger = logging.getLogger(__name__)


class InputRequired(Exception):
    """The graph stopped at its interrupt: `request` says what it needs (input_request_value)."""

    def __init__(self, request: dict) -> None:
        super().__init__("input required")
        self.request = request


class NoPendingInput(Exception):
    """A resume, but the run's thread is not stopped at an interrupt (its checkpoints are gone)."""


def latest_results(results: list[dict]) -> dict[str, dict]:
    """The last result of each section (a section asked for input has two), in first-drafted order."""
    latest: dict[str, dict] = {}
    for result in results:
        latest[result["section_key"]] = result
    return latest


def notes_schema(sections: list[dict]) -> dict:
    """JSON Schema of `inputs` in POST /runs/{run_id}/resume: optional notes (a string each) for these sections,
    no other key. `sections`: [{key, title, required}]."""
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "notes": {
                "type": "object",
                "additionalProperties": False,
                "description": "What you know about each section, in your words; cited as 'Analyst notes'. A "
                "section left out (or blank) is drafted from the documents alone, else delivered as missing.",
                "properties": {
                    section["key"]: {
                        "type": "string",
                        "title": section["title"],
                        "maxLength": NOTE_MAX_CHARS,
                        "description": ("Required section." if section["required"] else "Optional section."),
                    }
                    for section in sections
                },
            }
        },
    }


def resume_body_schema(sections: list[dict]) -> dict:
    """JSON Schema of the whole body of POST /runs/{run_id}/resume for these sections."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "additionalProperties": False,
        "properties": {"inputs": notes_schema(sections)},
    }


def input_request_value(*, sections: list[dict], documents: int) -> dict:
    """What the run asks: {reason, message, sections: [{key, title, required}], documents, schema}."""
    asked = ", ".join(s["title"] for s in sections)
    if documents == 0:
        reason = REASON_NO_DOCUMENTS
        message = (
            f"The deal has no ready documents, so nothing could be drafted for: {asked}. Upload documents, then "
            "resume with empty inputs to retry retrieval; or resume with notes for these sections."
        )
    else:
        reason = REASON_NO_MATERIAL
        message = (
            f"The deal's documents hold nothing relevant for: {asked}. Resume with notes for these sections, or "
            "upload documents that cover them and resume with empty inputs to retry retrieval."
        )
    return {
        "reason": reason,
        "message": message,
        "sections": sections,
        "documents": documents,
        "schema": resume_body_schema(sections),
    }


def review(state: dict, runtime: Runtime) -> dict:
    """After a drafting step: ask once for the required sections without material (interrupt), or fail the
    optional ones (as a drafting without material always did). Re-executed from its start on resume: nothing
    before `interrupt` may have side effects."""
    ctx = runtime.context
    asked = set(state.get("asked") or [])
    latest = latest_results(state.get("results") or [])
    # (on resume the plans are read again: a custom section deleted while the run waited is not asked about)
    pending = [key for key, r in latest.items() if r["status"] == NEEDS_INPUT and key not in asked and key in ctx.plans]
    if not pending:
        return {}
    if ctx.cancelled() or any(r["status"] == "cancelled" for r in latest.values()):
        return {"results": [{"section_key": k, "status": "cancelled", "error": None, "elapsed": 0.0} for k in pending]}
    if ctx.stop_reason() is not None or not any(ctx.plans[key].required for key in pending):
        return {"results": [_failed_without_input(ctx, key) for key in pending]}
    sections = [
        {"key": key, "title": ctx.plans[key].title, "required": ctx.plans[key].required}
        for key in sorted(pending, key=lambda k: (ctx.plans[k].order, k))
    ]
    answer = interrupt(input_request_value(sections=sections, documents=ctx.index.documents))
    return {"asked": pending, "answer": answer if isinstance(answer, dict) else {}}


def _failed_without_input(ctx, key: str) -> dict:
    """An optional section without material, when nobody is asked (or the run stops): failed, as before."""
    reason = "Nothing to draft from: no passage of the deal's documents matches it and no deal figure applies."
    ctx.record(key, "failed")
    try:
        ctx.mark_failed(key, reason)
    except Exception:  # noqa: BLE001 - the failure is on the run row either way
        logger.warning("could not mark %s failed in the memo of deal %s", key, ctx.deal_id, exc_info=True)
    return {"section_key": key, "status": "failed", "error": reason, "elapsed": 0.0}


def route(state: dict) -> list[Send] | str:
    """After review: the asked sections that still need input go to their last drafting, with the notes."""
    latest = latest_results(state.get("results") or [])
    answer: dict[str, Any] = state.get("answer") or {}
    notes = answer.get("notes") or {}
    label = answer.get("label") or NOTES_LABEL
    redo = [key for key in state.get("asked") or [] if latest.get(key, {}).get("status") == NEEDS_INPUT]
    if not redo:
        return END
    return [
        Send("draft_section", {"section_key": key, "final": True, "notes": notes.get(key) or "", "notes_label": label})
        for key in redo
    ]
