"""The synthesis graph: one drafter per section, fanned out with Send, checkpointed in PostgreSQL.

    START --dispatch--> draft_section (x N, in parallel up to SYNTHESIS_MAX_CONCURRENCY) --> review --> END

`review` pauses the run for human input (a LangGraph interrupt) when required sections found nothing to draft
from, and sends those sections to one more drafting with the answer: see canvas.runs.synthesis.human_input.

The state is small and serializable (the section keys in, one result per section out); everything a
drafter needs that is not state (the deal, the BM25 index, the figures, the drafter, the deadline,
and the hooks that write the memo, the run row and Redis) travels in the LangGraph runtime context,
which is never checkpointed. PostgresSaver checkpoints the run on thread `deal:<D>:run:<run_id>`:
each finished section's result is saved as a pending write the moment its node returns.

Each node checks the cancel flag and the time budget before it starts and between the deltas it
streams (DraftStopped), writes its section to the Store as soon as it is drafted, and reports
node_started / message / message_end / node_finished on the run's event stream, a trace entry
(inputs, outputs, elapsed) and a discourse entry.
"""

from __future__ import annotations

import logging
import operator
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, TypedDict

from django.db import connections
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Command, Send

from canvas.runs.synthesis import human_input, telemetry
from canvas.runs.synthesis.drafters import DraftFailed, DraftRequest, DraftStopped, NoMaterial, has_material
from canvas.runs.synthesis.retrieval import PassageIndex

logger = logging.getLogger(__name__)

CANCELLED = "cancelled"
TIME_BUDGET = "time_budget"


class RunState(TypedDict, total=False):
    sections: list[str]
    results: Annotated[list[dict], operator.add]
    # human input: the sections the run asked for (never twice) and the answer it was resumed with
    asked: Annotated[list[str], operator.add]
    answer: dict


class SectionTask(TypedDict, total=False):
    section_key: str
    # the drafting after a human-input answer: the section's notes (maybe empty) and how they are cited
    final: bool
    notes: str
    notes_label: str


@dataclass(frozen=True)
class SectionPlan:
    key: str
    title: str
    order: float
    required: bool
    retrieval_query: str


@dataclass(frozen=True)
class SectionWrite:
    """What writing a drafted section did: the memo's version after it, and, when the section was left as
    it was because someone holds its lock, that lock ({section_key, holder, holder_id, expires_at})."""

    version: int
    locked_by: dict | None = None


class SectionWriteRefused(Exception):
    """The run may no longer write (cancelled, failed by the sweeper, or reset meanwhile)."""


class RunSuperseded(Exception):
    """This worker's attempt was superseded: the run was resumed on another worker (this one had been silent
    past the dead-run window). Raised out of the node, so no result of it enters the shared checkpoint thread
    (a failed task is run again by the resuming worker); the worker then drops the run without ending it."""


@dataclass
class RunContext:
    """What the nodes need beyond the state. Hooks are plain callables so the graph has no Django
    service imports: `write_section(key, markdown) -> SectionWrite` (raises SectionWriteRefused and the
    memo's own errors), `mark_failed(key, reason)`, `record(key, status, detail=None)`, `beat()`,
    `cancelled()`."""

    deal_id: str
    deal_name: str
    template_key: str
    run_id: str
    plans: dict[str, SectionPlan]
    index: PassageIndex
    metrics: dict[str, dict]
    drafter: Any
    instructions: str
    top_k: int
    deadline: float
    write_section: Callable[[str, str], SectionWrite]
    mark_failed: Callable[[str, str], None]
    record: Callable[..., None]
    beat: Callable[[], None]
    cancelled: Callable[[], bool]
    superseded: Callable[[], bool] = lambda: False
    # a resumed run: sections it delivered before its worker died (recorded on the run or written to the memo
    # as this run's), also those whose node result the checkpoint missed (killed between the write and it)
    delivered_before: frozenset[str] = frozenset()
    # SYNTHESIS_MAX_CONCURRENCY drafting slots (set by run_graph; see there)
    slots: threading.Semaphore | None = None
    owner_thread: int = field(default_factory=threading.get_ident)

    def stop_reason(self) -> str | None:
        if self.cancelled():
            return CANCELLED
        if time.monotonic() > self.deadline:
            return TIME_BUDGET
        return None

    def emit(self, event_type: str, data: dict) -> None:
        telemetry.emit_run_event(self.deal_id, self.run_id, event_type, data)


def dispatch(state: RunState) -> list[Send]:
    return [Send("draft_section", {"section_key": key}) for key in state["sections"]]


def _query(plan: SectionPlan, instructions: str) -> str:
    return f"{plan.retrieval_query} {instructions}".strip() if instructions.strip() else plan.retrieval_query


def draft_section(task: SectionTask, runtime: Runtime[RunContext]) -> dict:
    ctx = runtime.context
    key = task["section_key"]
    if ctx.slots is not None:
        ctx.slots.acquire()
    try:
        return {
            "results": [
                _draft_section(
                    ctx,
                    key,
                    final=bool(task.get("final")),
                    notes=task.get("notes") or "",
                    notes_label=task.get("notes_label") or human_input.NOTES_LABEL,
                )
            ]
        }
    finally:
        if ctx.slots is not None:
            ctx.slots.release()
        if threading.get_ident() != ctx.owner_thread:
            connections.close_all()  # a pool thread's Django connections go back to the pool


def _draft_section(
    ctx: RunContext, key: str, *, final: bool = False, notes: str = "", notes_label: str = human_input.NOTES_LABEL
) -> dict:
    """Draft one section. Without material: `needs_input` the first time (review asks), `missing` after the
    answer (`final`)."""
    if key in ctx.delivered_before:
        # delivered before the worker died, after the checkpoint last saw it: not drafted again
        ctx.record(key, "delivered")
        return {"section_key": key, "status": "delivered", "error": None, "elapsed": 0.0, "recovered": True}
    plan = ctx.plans[key]
    started = time.monotonic()
    result: dict[str, Any] = {"section_key": key, "status": "", "error": None, "elapsed": 0.0}
    reason = ctx.stop_reason()
    if reason == CANCELLED and ctx.superseded():
        raise RunSuperseded()
    if reason is not None:  # never started: cancelled (missing) or out of time (failed)
        result["status"] = "cancelled" if reason == CANCELLED else "failed"
        result["error"] = None if reason == CANCELLED else "The run's time budget ran out before this section."
        if reason != CANCELLED:
            ctx.record(key, "failed")
        return result

    query = _query(plan, ctx.instructions)
    inputs = {"retrieval_query": query, "top_k": ctx.top_k, "instructions": ctx.instructions}
    if final:
        inputs["analyst_notes"] = bool(notes.strip())
    ctx.emit(
        "node_started",
        {
            "component_id": key,
            "component_name": plan.title,
            "component_type": getattr(ctx.drafter, "name", "drafter"),
            "thoughts": f"Retrieving passages for: {query}",
        },
    )
    ctx.beat()
    hits = ctx.index.search(query, ctx.top_k)
    inputs["passages"] = [{**h.passage.source, "score": h.score} for h in hits]
    telemetry.discourse_emit(
        ctx.deal_id,
        "retrieval",
        {
            "run_id": ctx.run_id,
            "agent": f"drafter:{key}",
            "text": f"Found {len(hits)} passage(s) for {plan.title} in "
            f"{len({h.passage.document_id for h in hits})} document(s).",
        },
    )
    request = DraftRequest(
        deal_name=ctx.deal_name,
        template_key=ctx.template_key,
        section_key=key,
        title=plan.title,
        order=plan.order,
        required=plan.required,
        retrieval_query=query,
        instructions=ctx.instructions,
        hits=hits,
        metrics=ctx.metrics,
        notes=notes,
        notes_label=notes_label,
    )

    def emit_delta(delta: str) -> None:
        ctx.emit("message", {"component_id": key, "content": delta})
        ctx.beat()

    outputs: dict[str, Any] = {}
    try:
        if not has_material(request):
            raise NoMaterial("Nothing to draft from: no passage matches, no deal figure applies, no analyst notes.")
        draft = ctx.drafter.draft(request, emit=emit_delta, should_stop=ctx.stop_reason)
        reason = ctx.stop_reason()
        if reason is not None:
            raise DraftStopped(reason)
        written = ctx.write_section(key, draft.markdown)
        if written.locked_by is not None:
            _skipped_locked(ctx, key, plan, written, result)
            outputs = {"status": "skipped_locked", "version": written.version, "locked_by": written.locked_by}
        else:
            result["status"] = "delivered"
            outputs = {
                "status": "delivered",
                "version": written.version,
                "usage": draft.usage,
                "citations": len(draft.citations),
            }
            ctx.record(key, "delivered")
            ctx.emit(
                "message_end",
                {"component_id": key, "status": "delivered", "content": draft.markdown, "reference": draft.references},
            )
            words, cited = draft.usage.get("words", 0), len(draft.citations)
            telemetry.discourse_emit(
                ctx.deal_id,
                "draft",
                {
                    "run_id": ctx.run_id,
                    "agent": f"drafter:{key}",
                    "text": f"Wrote {plan.title}: {words} words, {cited} citation(s).",
                },
            )
        result["usage"] = draft.usage
    except (DraftStopped, SectionWriteRefused) as exc:
        stopped = getattr(exc, "reason", CANCELLED)
        if stopped == CANCELLED and ctx.superseded():
            raise RunSuperseded() from None
        if stopped == TIME_BUDGET:
            result["status"], result["error"] = "failed", "The run's time budget ran out while drafting."
            ctx.record(key, "failed")
        else:
            result["status"] = "cancelled"
        ctx.emit("message_end", {"component_id": key, "status": result["status"], "reference": []})
    except NoMaterial as exc:
        # first time: review asks for input; after the answer: delivered as missing (never asked twice)
        result["status"] = human_input.MISSING if final else human_input.NEEDS_INPUT
        result["error"] = str(exc)
        ctx.emit("message_end", {"component_id": key, "status": result["status"], "reference": []})
    except DraftFailed as exc:
        result["status"], result["error"] = "failed", str(exc)
        _mark_failed_quietly(ctx, key, str(exc))
        ctx.emit("message_end", {"component_id": key, "status": "failed", "reference": []})
    except Exception as exc:  # noqa: BLE001 - a section's failure must not take the run down
        logger.exception("drafting %s of run %s failed", key, ctx.run_id)
        result["status"], result["error"] = "failed", f"{exc.__class__.__name__}: {exc}"
        _mark_failed_quietly(ctx, key, result["error"])
        ctx.emit("message_end", {"component_id": key, "status": "failed", "reference": []})
    result["elapsed"] = round(time.monotonic() - started, 4)
    outputs = outputs or {"status": result["status"]}
    ctx.emit(
        "node_finished",
        {
            "component_id": key,
            "component_name": plan.title,
            "inputs": inputs,
            "outputs": outputs,
            "error": result["error"],
            "elapsed_time": result["elapsed"],
        },
    )
    telemetry.trace_append(
        ctx.deal_id,
        ctx.run_id,
        {
            "node": "draft_section",
            "section_key": key,
            "drafter": getattr(ctx.drafter, "name", "drafter"),
            "inputs": inputs,
            "outputs": outputs,
            "error": result["error"],
            "elapsed": result["elapsed"],
        },
    )
    ctx.beat()
    return result


def _skipped_locked(ctx: RunContext, key: str, plan: SectionPlan, written: SectionWrite, result: dict) -> None:
    """The drafted section was not written: someone holds its lock (collaboration off)."""
    lock = written.locked_by or {}
    who = lock.get("holder") or "another user"
    result["status"] = "skipped_locked"
    result["error"] = f"Not written: {who} holds the lock on this section until {lock.get('expires_at')}."
    ctx.record(key, "skipped_locked", lock)
    ctx.emit(
        "message_end",
        {"component_id": key, "status": "skipped_locked", "locked_by": lock, "error": result["error"], "reference": []},
    )
    telemetry.discourse_emit(
        ctx.deal_id,
        "draft",
        {"run_id": ctx.run_id, "agent": f"drafter:{key}", "text": f"Left {plan.title} as it was: {who} is editing it."},
    )


def _mark_failed_quietly(ctx: RunContext, key: str, reason: str) -> None:
    ctx.record(key, "failed")
    try:
        ctx.mark_failed(key, reason)
    except Exception:  # noqa: BLE001 - the failure is on the run row either way
        logger.warning("could not mark %s failed in the memo of deal %s", key, ctx.deal_id, exc_info=True)


def build_graph(checkpointer):
    builder = StateGraph(RunState, context_schema=RunContext)
    builder.add_node("draft_section", draft_section)
    builder.add_node("review", human_input.review)
    builder.add_conditional_edges(START, dispatch, ["draft_section"])
    builder.add_edge("draft_section", "review")
    builder.add_conditional_edges("review", human_input.route, ["draft_section", END])
    return builder.compile(checkpointer=checkpointer)


def run_graph(
    *,
    ctx: RunContext,
    sections: list[str],
    thread_id: str,
    checkpointer,
    max_concurrency: int,
    answer: dict | None = None,
    from_checkpoint: bool = False,
) -> list[dict]:
    """Draft the sections; returns the last result of each section ({section_key, status, error, elapsed}).

    `answer`: continue the thread from its human-input interrupt with that answer (or, when the answer was
    given already and the run stopped mid-way, from its last checkpoint). `from_checkpoint`: continue the
    thread from its last checkpoint (the run's worker died): LangGraph invoked with no input on the same thread
    reloads the checkpoint and runs only the nodes whose results it does not hold (each finished node's result
    was saved as a pending write when it returned), so finished sections are not drafted again. A thread
    without a checkpoint yet (the worker died before the first) starts afresh.

    Raises InputRequired when the graph stops at its interrupt (the checkpoint keeps everything drafted),
    NoPendingInput when `answer` is given but the thread holds neither an interrupt nor unfinished work."""
    graph = build_graph(checkpointer)
    # At most `max_concurrency` sections draft at once, through the context's slots rather than LangGraph's
    # max_concurrency: LangGraph saves each finished node's result (put_writes) on the same thread pool as
    # the nodes, so a pool as small as the drafting limit would hold those saves back behind the waiting
    # sections, and a worker killed meanwhile would lose finished sections from its checkpoint. The pool gets
    # a thread for every section plus some for the checkpoint writes.
    ctx.slots = threading.BoundedSemaphore(max(1, max_concurrency))
    config = {"configurable": {"thread_id": thread_id}, "max_concurrency": len(sections) + 4}
    start: Any = {"sections": sections, "results": []}
    if answer is not None:
        snapshot = graph.get_state(config)
        if snapshot.interrupts:
            # by the interrupt's id: a bare dict could be read as a map of ids (an empty one resumes nothing)
            start = Command(resume={snapshot.interrupts[0].id: answer})
        elif snapshot.next:
            start = None  # answered already and stopped mid-way (its worker died): go on from the checkpoint
        else:
            raise human_input.NoPendingInput(
                "The run's checkpoint holds no question to answer (its checkpoints were deleted); start a new run."
            )
    elif from_checkpoint and checkpointer.get_tuple({"configurable": {"thread_id": thread_id}}) is not None:
        start = None
    final = graph.invoke(start, config=config, context=ctx) or {}
    interrupts = final.get("__interrupt__") or ()
    if interrupts:
        raise human_input.InputRequired(interrupts[0].value)
    return list(human_input.latest_results(final.get("results") or []).values())
