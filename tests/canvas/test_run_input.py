"""Human input: a run whose required sections find nothing to draft from pauses (`waiting_input`, a LangGraph
interrupt checkpointed in PostgreSQL) instead of failing, and continues from its checkpoint when answered with
POST /runs/{run_id}/resume.

The flows run the real graph on the real PostgresSaver and Store: in this process (run_execute, the Celery task's
body) where a test steps through the states, on the real Celery worker with SSE over real HTTP (uvicorn) for the
end-to-end must-show.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.utils import timezone
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from canvas.memo.store import read_memo
from canvas.memo.types import DocumentState
from canvas.memo.writes import memo_write
from canvas.models import RunStatus, SynthesisRun
from canvas.runs import services as runs
from canvas.runs.synthesis import telemetry
from canvas.runs.synthesis.drafters import DefaultDrafter, DraftRequest, LlmDrafter, NoMaterial
from canvas.runs.synthesis.graph import build_graph
from canvas.runs.tasks import sweep_dead_runs
from canvas_project import keys
from canvas_project.redis_client import get_redis
from canvas_project.store import delete_deal_threads, get_checkpointer
from deals.tokens import token_pair_for_user
from tests import factories
from tests.canvas.conftest import canvas_url
from tests.canvas.synthesis_corpus import REQUIRED, make_corpus, make_offering_memorandum, page_texts
from tests.conftest import ROLES, expected_status
from tests.servers import ServiceProcess, database_url_of
from tests.sse_client import SseReader

OPTIONAL = ("rent_roll", "financing")
RISK_NOTES = "Insurance premiums could rise 20% at renewal; the sponsor has quoted a three year fixed policy."
EXEC_NOTES = "The committee is asked to approve a $41.5M acquisition of a 240 unit community in Austin."


def _generate(cast, body=None, role="editor"):
    return cast.client(role).post(canvas_url(cast.deal, "generate"), body or {}, format="json")


def _resume(cast, run_id, body=None, role="editor"):
    return cast.client(role).post(canvas_url(cast.deal, f"runs/{run_id}/resume"), body or {}, format="json")


def _names(cast, run_id) -> list[str]:
    return [name for _, name, _ in telemetry.run_events(cast.deal.pk, run_id)]


def _canvas_events(cast) -> list[str]:
    return [f[b"type"].decode() for _, f in get_redis().xrange(keys.events_key(cast.deal.pk))]


def _paused(cast, body=None) -> SynthesisRun:
    """A run generated through the API and executed here up to its pause for input."""
    response = _generate(cast, body)
    assert response.status_code == 202, response.content
    run_id = response.json()["run_id"]
    assert runs.run_execute(run_id=run_id) == RunStatus.WAITING_INPUT
    return SynthesisRun.objects.get(pk=run_id)


def _drafted_nodes(cast, run_id) -> list[str]:
    """The sections whose drafter started, in order, from the run's event stream (one entry per drafting)."""
    return [
        data["component_id"] for _, name, data in telemetry.run_events(cast.deal.pk, run_id) if name == "node_started"
    ]


def _interrupts(run: SynthesisRun):
    return build_graph(get_checkpointer()).get_state({"configurable": {"thread_id": run.thread_id}}).interrupts


# --- pausing ------------------------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_a_blank_deal_pauses_for_input_instead_of_failing(cast):
    run = _paused(cast)
    assert run.status == RunStatus.WAITING_INPUT and run.finished_at is None and run.error == ""
    request = run.input_request
    assert request["reason"] == "no_documents" and request["documents"] == 0
    assert "Upload documents" in request["message"]
    # every section lacked material: all are asked about (in template order), required ones flagged
    assert [s["key"] for s in request["sections"]] == [
        "executive_summary",
        "property_overview",
        "market_analysis",
        "rent_roll",
        "financial_analysis",
        "underwriting",
        "financing",
        "risks",
        "recommendation",
    ]
    assert {s["key"] for s in request["sections"] if s["required"]} == set(REQUIRED)
    notes = request["schema"]["properties"]["inputs"]["properties"]["notes"]
    assert set(notes["properties"]) == set(REQUIRED) | set(OPTIONAL) and notes["additionalProperties"] is False
    requested = run.input_requested_at
    assert abs((timezone.datetime.fromisoformat(request["expires_at"]) - requested).total_seconds() - 86400) < 1
    # the interrupt is in the run's checkpoint, holding the same request
    pending = _interrupts(run)
    assert len(pending) == 1 and pending[0].value["sections"] == request["sections"]
    # on the run's stream and the canvas's; no workflow_finished, no done: the run is not over
    names = _names(cast, run.pk)
    assert names[0] == "workflow_started" and names[-1] == "input_required"
    assert "done" not in names and "workflow_finished" not in names
    assert telemetry.run_events(cast.deal.pk, run.pk)[-1][2]["input_request"]["sections"] == request["sections"]
    assert _canvas_events(cast)[-1] == "run_input_required"
    # the API shows it, and the run holds the deal
    body = cast.client("viewer").get(canvas_url(cast.deal, f"runs/{run.pk}")).json()
    assert body["status"] == "waiting_input" and body["input_request"]["sections"] == request["sections"]
    assert body["input_answer"] is None and body["input_requested_at"]
    listed = cast.client("viewer").get(canvas_url(cast.deal, "runs?status=waiting_input")).json()["results"]
    assert [r["id"] for r in listed] == [str(run.pk)]
    assert cast.client("viewer").get(canvas_url(cast.deal)).json()["run_in_progress"] is True
    # nothing was marked failed in the memo
    memo = read_memo(cast.deal.pk)
    assert memo is None or all(s.delivery != "failed" for s in memo.sections.values())


@pytest.mark.django_db(transaction=True)
def test_a_blank_canvas_a_newcomer_creates_asks_for_input_on_its_first_run(cast):
    owner = cast.client("owner")
    created = owner.post("/api/canvas/blank", {"deal_name": "First try"}, format="json")
    assert created.status_code == 201, created.content
    deal_id = created.json()["deal_id"]
    response = owner.post(f"/api/canvas/{deal_id}/generate", {}, format="json")
    assert response.status_code == 202, response.content
    assert runs.run_execute(run_id=response.json()["run_id"]) == RunStatus.WAITING_INPUT
    run = owner.get(f"/api/canvas/{deal_id}/runs/{response.json()['run_id']}").json()
    assert run["status"] == "waiting_input" and run["error"] == ""
    assert run["input_request"]["reason"] == "no_documents"


@pytest.mark.django_db(transaction=True)
def test_only_sections_without_material_are_asked_and_the_drafted_ones_stay(cast):
    make_offering_memorandum(cast.deal)  # nothing about risks or a recommendation
    run = _paused(cast)
    asked = [s["key"] for s in run.input_request["sections"]]
    assert run.input_request["reason"] == "no_material" and run.input_request["documents"] == 1
    assert "risks" in asked and "executive_summary" not in asked
    assert set(run.sections_delivered) == set(run.requested_sections) - set(asked)
    memo = read_memo(cast.deal.pk)
    assert all(
        memo.sections[k].markdown.strip() and memo.sections[k].run_id == str(run.pk) for k in run.sections_delivered
    )


@pytest.mark.django_db(transaction=True)
def test_an_optional_section_without_material_fails_as_before_without_a_pause(cast):
    run_id = _generate(cast, {"sections": ["financing"]}).json()["run_id"]  # optional; the deal has no documents
    assert runs.run_execute(run_id=run_id) == RunStatus.FAILED
    run = SynthesisRun.objects.get(pk=run_id)
    assert run.input_request is None and run.sections_failed == ["financing"]
    assert "No section could be drafted" in run.error and _names(cast, run_id)[-1] == "done"
    assert read_memo(cast.deal.pk).sections["financing"].delivery == "failed"


# --- drafting from notes ---------------------------------------------------------------------------------------
def _notes_request(notes: str, hits=()) -> DraftRequest:
    return DraftRequest(
        deal_name="D",
        template_key="acquisition",
        section_key="risks",
        title="Risks and Mitigants",
        order=8,
        required=True,
        retrieval_query="risk mitigant downside sensitivity",
        instructions="",
        hits=list(hits),
        metrics={},
        notes=notes,
        notes_label="Analyst notes (Ed, 2026-12-03)",
    )


def test_the_default_drafter_writes_the_notes_as_a_cited_source():
    draft = DefaultDrafter().draft(_notes_request(RISK_NOTES), emit=lambda _d: None, should_stop=lambda: None)
    assert draft.markdown == f"{RISK_NOTES}[^8.1]\n\n[^8.1]: Analyst notes (Ed, 2026-12-03)"
    assert [(c["text"], c["document"], c["page"]) for c in draft.citations] == [
        ("Analyst notes (Ed, 2026-12-03)", None, None)
    ]
    with pytest.raises(NoMaterial):
        DefaultDrafter().draft(_notes_request(""), emit=lambda _d: None, should_stop=lambda: None)


def test_the_llm_drafter_sees_the_notes_as_a_source_it_can_cite():
    seen = []

    class Model(GenericFakeChatModel):
        def stream(self, messages, *args, **kwargs):
            seen.append(messages)
            return super().stream(messages, *args, **kwargs)

    model = Model(messages=iter([AIMessage(content="Insurance is the key risk [S1].")]))
    draft = LlmDrafter(model).draft(_notes_request(RISK_NOTES), emit=lambda _d: None, should_stop=lambda: None)
    assert draft.markdown == "Insurance is the key risk [^8.1].\n\n[^8.1]: Analyst notes (Ed, 2026-12-03)"
    prompt = "\n".join(str(m[1] if isinstance(m, tuple) else m.content) for m in seen[0])
    assert f"[S1] Analyst notes (Ed, 2026-12-03)\n{RISK_NOTES}" in prompt


# --- resuming -----------------------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_resume_with_notes_drafts_only_the_asked_sections_and_cites_the_notes(cast):
    make_offering_memorandum(cast.deal)  # nothing about risks
    run = _paused(cast)
    assert [s["key"] for s in run.input_request["sections"]] == ["risks"]
    drafted_before = {k: read_memo(cast.deal.pk).sections[k].markdown for k in run.sections_delivered}
    response = _resume(cast, run.pk, {"inputs": {"notes": {"risks": RISK_NOTES}}})
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "queued" and body["input_answered_at"]
    assert body["input_answer"]["notes"] == {"risks": RISK_NOTES}
    assert body["input_answer"]["label"].startswith("Analyst notes (editor")
    received = telemetry.run_events(cast.deal.pk, run.pk)[-1]
    assert received[1] == "input_received" and (received[2]["notes"], received[2]["retry_retrieval"]) == (["risks"], [])
    assert _canvas_events(cast)[-1] == "run_input_received"
    nodes_before = _drafted_nodes(cast, run.pk)

    assert runs.run_execute(run_id=run.pk) == RunStatus.SUCCEEDED
    run.refresh_from_db()
    # the asked section was drafted once more, and only it: what was drafted before the pause stays as it was
    assert _drafted_nodes(cast, run.pk)[len(nodes_before) :] == ["risks"]
    memo = read_memo(cast.deal.pk)
    assert {k: memo.sections[k].markdown for k in drafted_before} == drafted_before
    risks = memo.sections["risks"]
    assert RISK_NOTES in risks.markdown and risks.delivery == "delivered" and risks.run_id == str(run.pk)
    assert [c["text"] for c in risks.citations] == [body["input_answer"]["label"]]
    assert sorted(run.sections_delivered) == sorted(run.requested_sections) and run.sections_missing == []
    assert {r["section_key"]: r["status"] for r in run.trace_summary}["risks"] == "delivered"
    session = cast.client("viewer").get(canvas_url(cast.deal)).json()
    assert session["incomplete_delivery_blocked"] is False and session["run_in_progress"] is False
    names = _names(cast, run.pk)
    assert names.count("input_required") == 1 and names.count("workflow_started") == 1
    assert names[-2:] == ["workflow_finished", "done"]
    # a finished run cannot be resumed
    again = _resume(cast, run.pk)
    assert again.status_code == 409 and again.json()["run_status"] == "succeeded"


@pytest.mark.django_db(transaction=True)
def test_a_section_still_without_material_after_the_answer_is_delivered_missing(cast):
    run = _paused(cast, {"sections": ["risks", "recommendation"]})
    # a blank note is no note
    response = _resume(cast, run.pk, {"inputs": {"notes": {"risks": RISK_NOTES, "recommendation": "  "}}})
    assert response.status_code == 202 and response.json()["input_answer"]["notes"] == {"risks": RISK_NOTES}
    assert telemetry.run_events(cast.deal.pk, run.pk)[-1][2]["retry_retrieval"] == ["recommendation"]
    assert runs.run_execute(run_id=run.pk) == RunStatus.SUCCEEDED
    run.refresh_from_db()
    # asked once, answered, still nothing: the run succeeds and lists it; it never asks again
    assert run.sections_delivered == ["risks"] and run.sections_missing == ["recommendation"]
    assert run.sections_failed == [] and "delivered as missing" in run.error and "recommendation" in run.error
    assert {r["section_key"]: r["status"] for r in run.trace_summary} == {
        "risks": "delivered",
        "recommendation": "missing",
    }
    names = _names(cast, run.pk)
    assert names.count("input_required") == 1 and names[-2:] == ["workflow_finished", "done"]
    memo = read_memo(cast.deal.pk)
    assert memo.sections["recommendation"].markdown == "" and memo.sections["recommendation"].delivery == "missing"
    assert memo.last_run["status"] == "succeeded" and memo.last_run["missing_required"] == ["recommendation"]
    session = cast.client("viewer").get(canvas_url(cast.deal)).json()
    assert session["incomplete_delivery_blocked"] is True and session["can_export"] is False


@pytest.mark.django_db(transaction=True)
def test_empty_inputs_after_uploading_documents_retry_retrieval(cast):
    run = _paused(cast)
    make_corpus(cast.deal)
    get_redis().delete(keys.deal_intel_key(cast.deal.pk))  # as ingestion does when a document is ready
    assert _resume(cast, run.pk, {"inputs": {}}).status_code == 202
    assert runs.run_execute(run_id=run.pk) == RunStatus.SUCCEEDED
    run.refresh_from_db()
    assert sorted(run.sections_delivered) == sorted(run.requested_sections) and run.sections_missing == []
    pages = page_texts(cast.deal)
    memo = read_memo(cast.deal.pk)
    for key in REQUIRED:
        assert memo.sections[key].citations, key
        assert all((c["document"], c["page"]) in pages for c in memo.sections[key].citations), key


@pytest.mark.django_db(transaction=True)
def test_a_resume_whose_checkpoints_were_deleted_fails_the_run_saying_so(cast):
    run = _paused(cast, {"sections": ["risks"]})
    assert delete_deal_threads(cast.deal.pk) >= 1  # a forced purge with include_checkpoints
    assert _resume(cast, run.pk, {"inputs": {"notes": {"risks": RISK_NOTES}}}).status_code == 202
    assert runs.run_execute(run_id=run.pk) == RunStatus.FAILED
    run.refresh_from_db()
    assert "checkpoints were deleted" in run.error and run.sections_missing == ["risks"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"inputs": {"notes": {"nope": "x"}}}, ["body", "inputs", "notes", "nope"]),
        (
            {"inputs": {"notes": {"risks": "ok", "executive_summary": "not asked"}}},
            ["body", "inputs", "notes", "executive_summary"],
        ),
        ({"inputs": {"notes": {"risks": 7}}}, ["body", "inputs", "notes", "risks"]),
        ({"inputs": {"notes": {"risks": "x" * 20_001}}}, ["body", "inputs", "notes", "risks"]),
        ({"inputs": {"notes": ["risks"]}}, ["body", "inputs", "notes"]),
        ({"inputs": {"files": []}}, ["body", "inputs", "files"]),
        ({"inputs": "notes"}, ["body", "inputs"]),
        ({"surprise": True}, ["body", "surprise"]),
    ],
)
def test_resume_validates_its_input(cast, body, loc):
    run = _waiting(cast)
    response = _resume(cast, run.pk, body)
    assert response.status_code == 422, response.content
    assert response.json()["detail"][0]["loc"] == loc
    run.refresh_from_db()
    assert run.status == RunStatus.WAITING_INPUT and run.input_answer is None


@pytest.mark.django_db
def test_resume_of_a_run_not_waiting_is_409_naming_its_status(cast):
    for status in (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.SUCCEEDED, RunStatus.CANCELLED):
        run = SynthesisRun.objects.create(deal=cast.deal, status=status, requested_sections=["risks"])
        response = _resume(cast, run.pk, {"inputs": {"notes": {"nope": "checked after the status"}}})
        assert response.status_code == 409 and response.json()["run_status"] == status
        assert status in response.json()["detail"]
    other = factories.make_deal(cast.org, owner=cast.users["owner"], name="Other")
    foreign = SynthesisRun.objects.create(deal=other, status=RunStatus.WAITING_INPUT, input_request=_REQUEST)
    assert _resume(cast, foreign.pk).status_code == 404
    malformed = _resume(cast, "not-a-uuid")
    assert malformed.status_code == 422 and malformed.json()["detail"][0]["loc"] == ["path", "run_id"]


@pytest.mark.django_db
def test_resume_on_an_approved_memo_is_409(cast):
    run = _waiting(cast)

    def approve(memo, now):
        memo.state = DocumentState.APPROVED

    memo_write(deal=cast.deal, user=None, change=approve, event="state_changed")
    response = _resume(cast, run.pk)
    assert response.status_code == 409 and "reopen" in response.json()["detail"]
    assert SynthesisRun.objects.get(pk=run.pk).status == RunStatus.WAITING_INPUT


@pytest.mark.django_db
def test_resume_shares_the_generate_rate_limit(cast, settings):
    settings.GENERATE_RATE_PER_MINUTE = 1
    settings.GENERATE_RATE_BURST = 1
    run = _waiting(cast)
    assert cast.client("editor").post(canvas_url(cast.deal, "refresh")).status_code == 200
    response = _resume(cast, run.pk)
    assert response.status_code == 429 and int(response["Retry-After"]) >= 1


_REQUEST = {
    "reason": "no_documents",
    "message": "Upload documents.",
    "sections": [{"key": "risks", "title": "Risks and Mitigants", "required": True}],
    "documents": 0,
    "schema": {},
    "requested_at": "2026-12-03T10:00:00+00:00",
    "expires_at": "2026-12-04T10:00:00+00:00",
}


def _waiting(cast) -> SynthesisRun:
    """A run row waiting for input on Risks (no graph behind it: for what is decided before the worker)."""
    return SynthesisRun.objects.create(
        deal=cast.deal,
        status=RunStatus.WAITING_INPUT,
        requested_sections=["risks"],
        created_by=cast.users["editor"],
        started_at=timezone.now(),
        input_request=_REQUEST,
        input_requested_at=timezone.now(),
    )


# --- cancel, other runs, expiry -------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_cancel_ends_a_waiting_run_at_once_keeping_what_it_drafted(cast):
    make_offering_memorandum(cast.deal)
    run = _paused(cast)
    delivered = list(run.sections_delivered)
    started = time.monotonic()
    response = cast.client("editor").post(canvas_url(cast.deal, f"runs/{run.pk}/cancel"))
    assert response.status_code == 200
    assert time.monotonic() - started < django_settings.SYNTHESIS_CANCEL_WAIT_SECONDS  # no worker to wait for
    body = response.json()
    assert body["status"] == "cancelled" and body["error"] == "Cancelled while waiting for input."
    assert body["sections_delivered"] == delivered and set(body["sections_missing"]) == {
        s["key"] for s in run.input_request["sections"] if s["key"] not in body["sections_failed"]
    }
    assert _names(cast, run.pk)[-2:] == ["workflow_finished", "done"]
    memo = read_memo(cast.deal.pk)
    assert all(memo.sections[k].markdown.strip() for k in delivered)
    assert _resume(cast, run.pk).status_code == 409


@pytest.mark.django_db(transaction=True)
def test_rollback_of_a_waiting_run_reverts_what_it_drafted(cast):
    make_offering_memorandum(cast.deal)
    run = _paused(cast)
    assert run.sections_delivered
    body = (
        cast.client("editor")
        .post(canvas_url(cast.deal, f"runs/{run.pk}/cancel"), {"action": "rollback"}, format="json")
        .json()
    )
    assert body["status"] == "cancelled" and sorted(body["rolled_back_sections"]) == sorted(run.sections_delivered)
    memo = read_memo(cast.deal.pk)
    assert all(not memo.sections[k].markdown.strip() for k in run.sections_delivered)


@pytest.mark.django_db(transaction=True)
def test_a_second_run_while_one_waits_is_rejected_queued_behind_it_or_cancels_it(cast):
    waiting = _paused(cast)
    conflict = _generate(cast)
    assert conflict.status_code == 409
    assert (
        conflict.json()["active_run_id"] == str(waiting.pk) and conflict.json()["active_run_status"] == "waiting_input"
    )
    assert "resume" in conflict.json()["detail"]
    # enqueue: it waits behind the waiting run (not claimed while it waits), and runs once that one has ended
    queued_id = _generate(cast, {"multitask_strategy": "enqueue"}).json()["run_id"]
    assert runs.run_execute(run_id=queued_id) == "skipped"
    assert SynthesisRun.objects.get(pk=queued_id).status == RunStatus.QUEUED
    make_corpus(cast.deal)
    assert _resume(cast, waiting.pk).status_code == 202
    assert runs.run_execute(run_id=queued_id) == "skipped"  # the resumed run is older: it goes first
    assert runs.run_execute(run_id=waiting.pk) == RunStatus.SUCCEEDED
    assert runs.run_execute(run_id=queued_id) == RunStatus.SUCCEEDED
    # interrupt: the waiting run is cancelled and the new one starts
    SynthesisRun.objects.filter(pk=queued_id).update(status=RunStatus.SUCCEEDED)
    other = _waiting(cast)
    response = _generate(cast, {"multitask_strategy": "interrupt"})
    assert response.status_code == 202
    other.refresh_from_db()
    assert other.status == RunStatus.CANCELLED and str(other.superseded_by) == response.json()["run_id"]


@pytest.mark.django_db(transaction=True)
def test_a_waiting_run_expires_to_cancelled_by_the_beat_sweeper(cast, settings):
    settings.RUN_INPUT_TIMEOUT_SECONDS = 60
    make_offering_memorandum(cast.deal)
    run = _paused(cast)
    assert sweep_dead_runs() == 0  # within its timeout: left alone
    # waited past the timeout; also older than SYNTHESIS_MAX_RUN_SECONDS, which counts for runs at work only
    long_ago = timezone.now() - timedelta(seconds=61)
    SynthesisRun.objects.filter(pk=run.pk).update(
        input_requested_at=long_ago, created_at=timezone.now() - timedelta(hours=5)
    )
    assert sweep_dead_runs() == 1
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED and "RUN_INPUT_TIMEOUT_SECONDS" in run.error
    assert run.sections_delivered and set(run.sections_missing) >= {"risks"}
    assert _names(cast, run.pk)[-2:] == ["workflow_finished", "done"]
    assert read_memo(cast.deal.pk).last_run["status"] == "cancelled"
    assert _resume(cast, run.pk).status_code == 409
    assert sweep_dead_runs() == 0  # nothing twice


@pytest.mark.django_db
def test_a_waiting_run_is_never_failed_as_dead_and_a_resumed_one_ages_from_its_answer(cast, settings):
    settings.SYNTHESIS_DEAD_RUN_SECONDS = 30
    old = timezone.now() - timedelta(hours=5)
    waiting = _waiting(cast)
    SynthesisRun.objects.filter(pk=waiting.pk).update(created_at=old, heartbeat_at=old)
    assert runs.runs_sweep_dead() == []
    resumed = SynthesisRun.objects.create(
        deal=factories.make_deal(cast.org, owner=cast.users["owner"], name="Other"),
        status=RunStatus.RUNNING,
        started_at=old,
        heartbeat_at=timezone.now(),
        input_answered_at=timezone.now() - timedelta(minutes=5),
    )
    SynthesisRun.objects.filter(pk=resumed.pk).update(created_at=old)
    assert runs.runs_sweep_dead() == []
    SynthesisRun.objects.filter(pk=resumed.pk).update(input_answered_at=old)
    assert runs.runs_sweep_dead() == [str(resumed.pk)]


# --- what a run may ask -----------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_the_input_schema_tells_a_form_what_a_run_may_ask(cast, settings):
    settings.RUN_INPUT_TIMEOUT_SECONDS = 3600
    body = cast.client("viewer").get(canvas_url(cast.deal, "generate/input-schema")).json()
    assert body["deal_id"] == str(cast.deal.pk) and body["template_key"] == "acquisition"
    assert [s["key"] for s in body["sections"]][:3] == ["executive_summary", "property_overview", "market_analysis"]
    assert {s["key"] for s in body["sections"] if s["required"]} == set(REQUIRED)
    assert body["documents"] == 0 and body["timeout_seconds"] == 3600 and body["note_max_chars"] == 20_000
    notes = body["schema"]["properties"]["inputs"]["properties"]["notes"]
    assert set(notes["properties"]) == set(REQUIRED) | set(OPTIONAL)
    assert notes["properties"]["risks"] == {
        "type": "string",
        "title": "Risks and Mitigants",
        "maxLength": 20_000,
        "description": "Required section.",
    }
    # the schema holds exactly what the resume accepts
    import jsonschema

    validator = jsonschema.Draft202012Validator(body["schema"])
    assert validator.is_valid({"inputs": {"notes": {"risks": RISK_NOTES}}})
    assert not validator.is_valid({"inputs": {"notes": {"nope": "x"}}})
    assert not validator.is_valid({"inputs": {"notes": {"risks": 7}}})
    make_corpus(cast.deal)
    assert cast.client("viewer").get(canvas_url(cast.deal, "generate/input-schema")).json()["documents"] == 3


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
def test_role_matrix_input_schema(cast, role):
    response = cast.client(role).get(canvas_url(cast.deal, "generate/input-schema"))
    assert response.status_code == expected_status(role, minimum="viewer", ok=200), response.content


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
def test_role_matrix_resume(cast, role):
    run = _waiting(cast)
    response = _resume(cast, run.pk, {"inputs": {"notes": {"risks": RISK_NOTES}}}, role=role)
    assert response.status_code == expected_status(role, minimum="editor", ok=202), response.content


# --- end to end: HTTP, SSE, the real worker ---------------------------------------------------------------------
@pytest.fixture
def service(cast):
    server = ServiceProcess(
        {
            "DJANGO_SETTINGS_MODULE": "canvas_project.settings",
            "DATABASE_URL": database_url_of(connection.settings_dict),
            "REDIS_URL": django_settings.REDIS_URL,
        }
    ).start()
    yield server
    server.stop()


def _next_event(reader: SseReader, name: str, seen: list, timeout: float = 90):
    deadline = time.monotonic() + timeout
    while True:
        event = reader.events.get(timeout=max(0.1, deadline - time.monotonic()))
        seen.append(event)
        if event.event == name:
            return event


@pytest.mark.django_db(transaction=True)
def test_human_input_end_to_end_over_http_and_sse(cast, celery_worker, service):
    """Blank deal -> waiting_input -> resume with notes -> succeeded, the notes cited; one SSE stream shows it all."""
    editor = cast.client("editor")
    body = _generate(cast).json()
    token = token_pair_for_user(user=cast.users["viewer"])["access"]
    reader = SseReader(service.url + body["stream_url"], token).start()
    seen: list = []
    asked = _next_event(reader, "input_required", seen).data["input_request"]
    assert asked["reason"] == "no_documents" and {s["key"] for s in asked["sections"] if s["required"]} == set(REQUIRED)
    run = cast.client("viewer").get(canvas_url(cast.deal, f"runs/{body['run_id']}")).json()
    assert run["status"] == "waiting_input" and run["input_request"]["sections"] == asked["sections"]
    notes = {"executive_summary": EXEC_NOTES, "risks": RISK_NOTES}
    resumed = editor.post(
        canvas_url(cast.deal, f"runs/{body['run_id']}/resume"), {"inputs": {"notes": notes}}, format="json"
    )
    assert resumed.status_code == 202, resumed.content
    done = _next_event(reader, "done", seen)
    assert done.data["status"] == "succeeded"
    names = [e.event for e in seen]
    assert names.index("input_required") < names.index("input_received") < names.index("workflow_finished")
    ids = [e.id for e in seen]
    assert ids == [i for i, _, _ in telemetry.run_events(cast.deal.pk, body["run_id"])]  # nothing lost or repeated
    run = cast.client("viewer").get(canvas_url(cast.deal, f"runs/{body['run_id']}")).json()
    assert run["status"] == "succeeded" and sorted(run["sections_delivered"]) == sorted(notes)
    assert set(run["sections_missing"]) == (set(REQUIRED) | set(OPTIONAL)) - set(notes)
    label = run["input_answer"]["label"]
    session = cast.client("viewer").get(canvas_url(cast.deal)).json()
    for key, text in notes.items():
        section = session["sections"][key]
        assert text in section["markdown"] and section["delivery"] == "delivered"
        assert [c["text"] for c in section["citations"]] == [label]
    # the message_end of a section drafted from notes carries the citation too
    ends = {
        e.data["component_id"]: e.data for e in seen if e.event == "message_end" and e.data["status"] == "delivered"
    }
    assert [r["text"] for r in ends["risks"]["reference"]] == [label]
