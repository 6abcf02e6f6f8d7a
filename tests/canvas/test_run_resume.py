"""Resume after a crash, below the API: what the dead-run sweeper decides for a silent run (resume, fail
once RUN_MAX_RESUMES is spent, cancel when a cancel was asked), how the resuming worker continues without
redrafting, and the fencing of a worker whose run was resumed elsewhere. The real SIGKILL of a worker is
tests/faults/test_run_resume.py."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from canvas.memo.store import read_memo
from canvas.models import RunStatus, SynthesisRun
from canvas.runs import services as runs
from canvas.runs.synthesis import telemetry
from canvas.runs.synthesis.graph import SectionWriteRefused
from canvas_project import keys
from canvas_project.redis_client import get_redis
from canvas_project.store import delete_deal_threads
from tests.canvas.conftest import canvas_url
from tests.canvas.synthesis_corpus import make_corpus


def _silent_run(cast, **fields) -> SynthesisRun:
    """A run whose worker stopped beating five minutes ago (dead for any window below that)."""
    now = timezone.now()
    fields.setdefault("requested_sections", ["risks", "market_analysis"])
    return SynthesisRun.objects.create(
        deal=cast.deal,
        status=RunStatus.RUNNING,
        created_by=cast.users["editor"],
        started_at=now - timedelta(minutes=6),
        heartbeat_at=now - timedelta(minutes=5),
        **fields,
    )


def _canvas_events(deal, kind: str) -> list[dict]:
    raw = get_redis().xrange(keys.events_key(deal.pk))
    return [json.loads(fields[b"data"]) for _, fields in raw if fields[b"type"].decode() == kind]


@pytest.mark.django_db(transaction=True)
def test_a_silent_run_is_requeued_and_resumed_without_redrafting_what_it_delivered(cast, settings):
    settings.SYNTHESIS_DEAD_RUN_SECONDS = 60
    settings.RUN_MAX_RESUMES = 2
    make_corpus(cast.deal)
    run = _silent_run(cast, sections_delivered=["risks"])
    assert runs.runs_sweep_dead() == [str(run.pk)]  # requeued, its task enqueued again on commit
    run.refresh_from_db()
    assert (run.status, run.resume_count, run.finished_at) == (RunStatus.QUEUED, 1, None)
    assert runs.runs_sweep_dead() == []  # queued for its resume: nothing more to do (not enqueued twice)
    body = cast.client("viewer").get(canvas_url(cast.deal, f"runs/{run.pk}")).json()
    assert body["status"] == "queued" and body["resume_count"] == 1

    # the next worker to take it resumes it: only what was not delivered is drafted
    assert runs.run_execute(run_id=run.pk) == RunStatus.SUCCEEDED
    run.refresh_from_db()
    assert sorted(run.sections_delivered) == ["market_analysis", "risks"] and run.resume_count == 1
    nodes = telemetry.trace_read(cast.deal.pk, run.pk)
    assert [n["node"] for n in nodes] == ["run_resumed", "draft_section"]
    assert nodes[0]["outputs"] == {
        "resume_count": 1,
        "max_resumes": 2,
        "delivered": ["risks"],
        "remaining": ["market_analysis"],
    }
    assert nodes[1]["section_key"] == "market_analysis"
    names = [name for _, name, _ in telemetry.run_events(cast.deal.pk, run.pk)]
    assert "workflow_started" not in names and names[0] == "run_resumed" and names[-1] == "done"
    [event] = _canvas_events(cast.deal, "run_resumed")
    assert event["run_id"] == str(run.pk) and event["resume_count"] == 1 and event["remaining"] == ["market_analysis"]
    trace = cast.client("viewer").get(canvas_url(cast.deal, f"runs/{run.pk}/trace")).json()
    assert [n["node"] for n in trace["nodes"]] == ["run_resumed", "draft_section"]
    assert read_memo(cast.deal.pk).sections["market_analysis"].run_id == str(run.pk)


@pytest.mark.django_db(transaction=True)
def test_a_section_written_just_before_the_worker_died_is_not_drafted_again(cast, settings):
    make_corpus(cast.deal)
    run = runs.run_create(
        deal=cast.deal,
        user=cast.users["editor"],
        kind="generate",
        sections=["risks", "market_analysis"],
        instructions="",
    )
    assert runs.run_execute(run_id=run.pk) == RunStatus.SUCCEEDED
    # the same run as if its worker had died after writing both sections to the memo, before recording them
    # or checkpointing: the memo says they are this run's
    SynthesisRun.objects.filter(pk=run.pk).update(
        status=RunStatus.QUEUED, resume_count=1, requeued_at=timezone.now(), sections_delivered=[], finished_at=None
    )
    delete_deal_threads(cast.deal.pk)  # no checkpoint either: the resume starts the graph afresh
    get_redis().delete(keys.run_key(cast.deal.pk, run.pk, "trace"))
    assert runs.run_execute(run_id=run.pk) == RunStatus.SUCCEEDED
    run.refresh_from_db()
    assert sorted(run.sections_delivered) == ["market_analysis", "risks"]
    assert [n["node"] for n in telemetry.trace_read(cast.deal.pk, run.pk)] == ["run_resumed"]
    assert all(entry["elapsed"] == 0.0 for entry in run.trace_summary)


@pytest.mark.django_db(transaction=True)
def test_a_silent_run_that_spent_its_resumes_is_failed(cast, settings):
    settings.SYNTHESIS_DEAD_RUN_SECONDS = 60
    settings.RUN_MAX_RESUMES = 1
    run = _silent_run(cast, resume_count=1)
    assert runs.runs_sweep_dead() == [str(run.pk)]
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and run.resume_count == 1
    assert "heartbeat" in run.error and "resumed 1 time(s) (RUN_MAX_RESUMES=1)" in run.error
    settings.RUN_MAX_RESUMES = 0
    never = _silent_run(cast)
    assert runs.runs_sweep_dead() == [str(never.pk)]
    never.refresh_from_db()
    assert never.status == RunStatus.FAILED and never.resume_count == 0


@pytest.mark.django_db(transaction=True)
def test_a_run_cancelled_meanwhile_is_not_resumed(cast, settings):
    settings.SYNTHESIS_DEAD_RUN_SECONDS = 60
    # asked to stop while its worker was already dead: the sweeper ends it cancelled
    asked = _silent_run(cast, cancel_requested_at=timezone.now())
    assert runs.runs_sweep_dead() == [str(asked.pk)]
    asked.refresh_from_db()
    assert asked.status == RunStatus.CANCELLED and asked.resume_count == 0 and "not resumed" in asked.error
    # cancelled while it waited for a worker to resume it: at once, and the worker then skips it
    waiting = _silent_run(cast)
    runs.runs_sweep_dead()
    waiting.refresh_from_db()
    assert waiting.status == RunStatus.QUEUED and waiting.resume_count == 1
    response = cast.client("editor").post(canvas_url(cast.deal, f"runs/{waiting.pk}/cancel"))
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert response.json()["error"] == "Cancelled while it waited to resume."
    assert runs.run_execute(run_id=waiting.pk) == "skipped"


@pytest.mark.django_db(transaction=True)
def test_a_worker_whose_run_was_resumed_elsewhere_can_no_longer_touch_it(cast, settings):
    settings.SYNTHESIS_DEAD_RUN_SECONDS = 60
    run = _silent_run(cast)
    stale_worker = runs._RunGuard(SynthesisRun.objects.get(pk=run.pk))  # attempt 0, silent, not dead
    runs.runs_sweep_dead()
    resumed = runs._claim(run.pk)  # another worker takes it: attempt 1
    assert resumed is not None and resumed.resume_count == 1 and resumed.status == RunStatus.RUNNING
    stale = SynthesisRun.objects.get(pk=run.pk)
    stale.resume_count = 0

    assert stale_worker.superseded()
    with pytest.raises(SectionWriteRefused):
        runs._check_running_and_keep_before(stale, "risks", None)
    runs._record_section(run.pk, "risks", "delivered", attempt=0)
    assert runs.run_finish(run_id=run.pk, status=RunStatus.FAILED, error="late", attempt=0) is None
    before = SynthesisRun.objects.get(pk=run.pk).heartbeat_at
    stale_worker._last_beat = 0.0
    stale_worker.beat()
    row = SynthesisRun.objects.get(pk=run.pk)
    assert row.status == RunStatus.RUNNING and row.sections_delivered == [] and row.heartbeat_at == before
    # the current worker's own records still land
    runs._record_section(run.pk, "risks", "delivered", attempt=1)
    assert SynthesisRun.objects.get(pk=run.pk).sections_delivered == ["risks"]


def test_a_claim_after_the_sweepers_requeue_is_a_crash_resume_and_one_after_an_answer_is_not(cast, settings):
    # both queue a run again; only the sweeper's announces run_resumed and restarts from the checkpoint as such
    settings.RUN_MAX_RESUMES = 2
    run = _silent_run(cast)
    assert runs._after_crash(run) is False  # never requeued
    assert runs.runs_sweep_dead() == [str(run.pk)]
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED and run.resume_count == 1 and run.requeued_at is not None
    assert runs._after_crash(run) is True
    # resumed, it paused for input later, and was answered: the next claim continues with the answer
    run.input_answer, run.input_answered_at = {"notes": {"risks": "Tenant concentration."}}, timezone.now()
    assert runs._after_crash(run) is False
    # its worker died while it went on with the answer: requeued again, a crash resume (carrying the answer)
    run.requeued_at = run.input_answered_at + timedelta(seconds=30)
    assert runs._after_crash(run) is True
