"""Human input of drafting runs: answering a run that waits for input (service), and what a run of a deal may ask
(selector, for a form). The graph side (the interrupt and the drafting with the answer) is
canvas.runs.synthesis.human_input; pausing, continuing and expiry are in canvas.runs.services.

A run pauses (`waiting_input`) when required sections find nothing to draft from. POST /runs/{run_id}/resume
answers it: notes per asked section (cited as "Analyst notes (<who>, <date>)"), or nothing after uploading
documents (retrieval runs again). The run goes back to `queued` and the worker continues it from its checkpoint.
"""

from __future__ import annotations

import uuid

from django.db import transaction
from django.utils import timezone

from canvas.memo.errors import MemoApproved
from canvas.memo.store import read_memo
from canvas.memo.types import DocumentState
from canvas.models import RunStatus, SynthesisRun
from canvas.runs import services
from canvas.runs.errors import RunNotFound, RunNotWaiting
from canvas.runs.synthesis import config, human_input, telemetry
from canvas_project import events
from canvas_project.errors import InvalidInputError
from deals.models import Deal, Document, FileState, User


def run_resume(*, deal: Deal, run_id: uuid.UUID, user: User, notes: dict[str, str]) -> SynthesisRun:
    """Answer a run waiting for input and queue it to continue from its checkpoint; returns it (queued).

    `notes`: section key -> text, for sections the run asked about; blank texts count as no notes. Sections without
    notes are retried on the deal's documents as they are now, and delivered as missing when still without
    material (the run never asks twice).

    Raises RunNotFound, RunNotWaiting (the run is not waiting for input: names its status), InvalidInputError (a
    key that is no section the run asked about), MemoApproved (the memo was approved meanwhile: reopen it first).
    """
    with transaction.atomic():
        run = SynthesisRun.objects.select_for_update().filter(pk=run_id, deal=deal).first()
        if run is None:
            raise RunNotFound()
        if run.status != RunStatus.WAITING_INPUT:
            raise RunNotWaiting(
                f"Run {run.pk} is {run.status}; only a run waiting for input can be resumed.", run_status=run.status
            )
        asked = [section["key"] for section in (run.input_request or {}).get("sections") or []]
        for key in notes:
            if key not in asked:
                raise InvalidInputError(
                    f"Run {run.pk} did not ask about section {key!r}; it asked about: {', '.join(asked)}.",
                    loc=["body", "inputs", "notes", key],
                    value=notes[key],
                    code="unknown_section",
                )
        memo = read_memo(deal.pk)
        if memo is not None and memo.state == DocumentState.APPROVED:
            raise MemoApproved("The memo was approved meanwhile; an owner must reopen it before the run can go on.")
        now = timezone.now()
        given = {key: text.strip() for key, text in notes.items() if text.strip()}
        run.input_answer = {
            "notes": given,
            "label": f"{human_input.NOTES_LABEL} ({user.display_name}, {now.date().isoformat()})",
            "by": str(user.pk),
            "by_name": user.display_name,
        }
        run.status, run.input_answered_at = RunStatus.QUEUED, now
        run.save(update_fields=["input_answer", "status", "input_answered_at", "updated_at"])
        services.run_enqueue_on_commit(run.pk)
    retried = [key for key in asked if key not in given]
    telemetry.emit_run_event(
        deal.pk,
        run.pk,
        "input_received",
        {"notes": sorted(given), "retry_retrieval": retried, "by": str(user.pk), "by_name": user.display_name},
    )
    events.emit(
        deal.pk,
        "run_input_received",
        {"run_id": str(run.pk), "notes": sorted(given), "retry_retrieval": retried},
        actor_id=user.pk,
    )
    return run


def generate_input_schema(*, deal: Deal) -> dict:
    """What a drafting run of this deal may ask when it pauses for input: the memo's sections (a run asks only about
    those it finds no material for, required ones making it pause), the JSON Schema of the resume body for all of
    them, the deal's ready documents and how long a run waits. Raises StoreUnavailable."""
    memo = read_memo(deal.pk)
    plans = sorted(services.section_plans(deal=deal, memo=memo).values(), key=lambda p: (p.order, p.key))
    sections = [{"key": plan.key, "title": plan.title, "required": plan.required} for plan in plans]
    documents = Document.objects.filter(deal=deal, state=FileState.READY).count()
    return {
        "deal_id": str(deal.pk),
        "template_key": memo.template.key if memo is not None else deal.template_key,
        "sections": sections,
        "documents": documents,
        "schema": human_input.resume_body_schema(sections),
        "note_max_chars": human_input.NOTE_MAX_CHARS,
        "timeout_seconds": config.input_timeout_seconds(),
    }
