"""Multitask strategies (reject, enqueue, interrupt, rollback) and cancel actions (interrupt, rollback, wait).

The must-shows run a real Celery worker (the test worker thread) with the slow drafter (a setting, not a
mock), on a memo whose every section already has known text: after each strategy or cancel action the memo
is checked section by section (what the cancelled run wrote: kept after interrupt, back to its earlier text
after rollback; what it never touched: unchanged; a person's edit of another section during the run: kept).
The race of a rollback with a write of the cancelled run in flight is played with real row and advisory
locks on PostgreSQL.
"""

from __future__ import annotations

import json
import threading
import time

import pytest
from django.db import connection, transaction

from canvas.memo.store import read_memo
from canvas.memo.types import Source
from canvas.models import RunStatus, SynthesisRun
from canvas.runs import services as runs
from canvas.runs.synthesis.graph import SectionWriteRefused
from canvas.runs.synthesis.telemetry import run_events
from canvas_project import keys
from canvas_project.redis_client import get_redis
from tests.canvas.conftest import canvas_url
from tests.canvas.synthesis_corpus import make_corpus

SLOW_DRAFTER = "tests.canvas.slow_drafter.SlowDrafter"
RUN_SECTIONS = ["executive_summary", "property_overview", "market_analysis"]
HUMAN_SECTION = "risks"  # edited by a person while the run drafts others
NEW_RUN_SECTION = "recommendation"  # drafted by the run that supersedes the first


def _wait_event(deal_id, run_id, predicate, timeout: float = 60.0) -> dict:
    """Block on the run's Redis stream (XREAD BLOCK) until an entry matches predicate(type, data)."""
    client = get_redis()
    key = keys.run_key(deal_id, run_id, "events")
    for _id, event_type, data in run_events(deal_id, run_id):
        if predicate(event_type, data):
            return data
    last = client.xrevrange(key, count=1)
    last_id = last[0][0] if last else b"0-0"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for _stream, entries in client.xread({key: last_id}, block=500) or ():
            for entry_id, fields in entries:
                last_id = entry_id
                data = json.loads(fields.get(b"data", b"{}"))
                if predicate(fields.get(b"type", b"").decode(), data):
                    return data
    raise AssertionError(f"no matching event on run {run_id} within {timeout} s")


def _first_delivered(deal_id, run_id) -> str:
    data = _wait_event(deal_id, run_id, lambda t, d: t == "message_end" and d.get("status") == "delivered")
    return data["component_id"]


def _done(deal_id, run_id) -> dict:
    return _wait_event(deal_id, run_id, lambda t, d: t == "done", timeout=120)


def _texts(deal) -> dict[str, str]:
    return {key: s.markdown for key, s in read_memo(deal.pk).sections.items()}


@pytest.fixture
def slow(settings, monkeypatch):
    settings.SYNTHESIS_DRAFTER = SLOW_DRAFTER
    settings.SYNTHESIS_MAX_CONCURRENCY = 1
    monkeypatch.setenv("SLOW_DRAFTER_DELAY", "0.3")


def _start_slow_run(cast, written_memo) -> tuple[dict, str, dict[str, str]]:
    """A memo with text in every section; a slow run of RUN_SECTIONS; returns (run body, the first section it
    delivered, the memo's texts before the run)."""
    make_corpus(cast.deal)
    before = _texts(cast.deal)
    assert all(before[k].strip() for k in [*RUN_SECTIONS, HUMAN_SECTION, NEW_RUN_SECTION])
    response = cast.client("editor").post(canvas_url(cast.deal, "generate"), {"sections": RUN_SECTIONS}, format="json")
    assert response.status_code == 202, response.content
    body = response.json()
    first = _first_delivered(cast.deal.pk, body["run_id"])
    return body, first, before


def _human_edit(cast, text: str = "Edited by a person during the run.") -> None:
    response = cast.client("owner").put(
        canvas_url(cast.deal, f"sections/{HUMAN_SECTION}"), {"markdown": text}, format="json"
    )
    assert response.status_code == 200, response.content


def _assert_sections(cast, *, before, run_id, written_by_run, action) -> dict[str, str]:
    """Section by section: the run's sections per the action, the person's edit kept, the rest unchanged."""
    memo = read_memo(cast.deal.pk)
    after = {key: s.markdown for key, s in memo.sections.items()}
    assert written_by_run, "the run should have written at least one section"
    for key in written_by_run:
        if action == "rollback":
            assert after[key] == before[key], key
            assert memo.sections[key].run_id != run_id, key
        else:
            assert after[key] != before[key] and memo.sections[key].source == Source.AI, key
            assert memo.sections[key].run_id == run_id, key
    assert after[HUMAN_SECTION] == "Edited by a person during the run."
    for key in set(before) - set(written_by_run) - {HUMAN_SECTION, NEW_RUN_SECTION}:
        assert after[key] == before[key], key
    return after


# --- cancel actions, real worker ---------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("action", ["interrupt", "rollback"])
def test_cancel_action_section_by_section(cast, written, celery_worker, slow, action):
    body, first, before = _start_slow_run(cast, written)
    run_id = body["run_id"]
    _human_edit(cast)
    version_before_cancel = read_memo(cast.deal.pk).version
    response = cast.client("editor").post(
        canvas_url(cast.deal, f"runs/{run_id}/cancel"), {"action": action}, format="json"
    )
    assert response.status_code == 200, response.content
    run = response.json()
    assert run["status"] == "cancelled" and run["cancel_action"] == action
    row = SynthesisRun.objects.get(pk=run_id)
    written_by_run = sorted(row.sections_before)
    assert first in written_by_run and set(written_by_run) <= set(RUN_SECTIONS)
    _assert_sections(cast, before=before, run_id=run_id, written_by_run=written_by_run, action=action)
    memo = read_memo(cast.deal.pk)
    if action == "rollback":
        assert sorted(run["rolled_back_sections"]) == written_by_run
        assert memo.version > version_before_cancel
        assert memo.last_run["status"] == "cancelled"
    else:
        assert run["rolled_back_sections"] == []
        # rollback of a run already cancelled with interrupt: rolled back then, once
        again = cast.client("editor").post(
            canvas_url(cast.deal, f"runs/{run_id}/cancel"), {"action": "rollback"}, format="json"
        )
        assert again.status_code == 200 and again.json()["cancel_action"] == "rollback"
        assert sorted(again.json()["rolled_back_sections"]) == written_by_run
        _assert_sections(cast, before=before, run_id=run_id, written_by_run=written_by_run, action="rollback")
        version = read_memo(cast.deal.pk).version
        third = cast.client("editor").post(
            canvas_url(cast.deal, f"runs/{run_id}/cancel"), {"action": "rollback"}, format="json"
        )
        assert third.json()["finished_at"] == run["finished_at"] and read_memo(cast.deal.pk).version == version


@pytest.mark.both_brokers
@pytest.mark.django_db(transaction=True)
def test_cancel_with_wait_answers_once_the_worker_ended_the_run(cast, written, celery_worker, slow, settings):
    settings.SYNTHESIS_CANCEL_WAIT_SECONDS = 0  # without wait the cancel would end it itself at once
    body, _first, _before = _start_slow_run(cast, written)
    response = cast.client("editor").post(
        canvas_url(cast.deal, f"runs/{body['run_id']}/cancel"), {"wait": True}, format="json"
    )
    assert response.status_code == 200
    run = response.json()
    assert run["status"] == "cancelled" and run["cancel_action"] == "interrupt"
    # ended by its worker (the cancel did not decide it): no "did not confirm" error
    assert "did not confirm" not in run["error"]


# --- multitask strategies, real worker -----------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("strategy", ["interrupt", "rollback"])
@pytest.mark.parametrize("endpoint", ["generate", "regenerate"])
def test_strategy_cancels_the_active_run_then_starts(cast, written, celery_worker, slow, strategy, endpoint):
    body, first, before = _start_slow_run(cast, written)
    old_id = body["run_id"]
    _human_edit(cast)
    editor = cast.client("editor")
    if endpoint == "generate":
        response = editor.post(
            canvas_url(cast.deal, "generate"),
            {"sections": [NEW_RUN_SECTION], "multitask_strategy": strategy},
            format="json",
        )
    else:
        response = editor.post(
            canvas_url(cast.deal, f"sections/{NEW_RUN_SECTION}/regenerate"),
            {"multitask_strategy": strategy},
            format="json",
        )
    assert response.status_code == 202, response.content
    new_id = response.json()["run_id"]
    old = SynthesisRun.objects.get(pk=old_id)
    assert old.status == RunStatus.CANCELLED and str(old.superseded_by) == new_id and old.cancel_action == strategy
    assert _done(cast.deal.pk, new_id)["status"] == "succeeded"
    written_by_run = sorted(old.sections_before)
    assert first in written_by_run
    after = _assert_sections(cast, before=before, run_id=old_id, written_by_run=written_by_run, action=strategy)
    memo = read_memo(cast.deal.pk)
    assert memo.sections[NEW_RUN_SECTION].run_id == new_id and after[NEW_RUN_SECTION] != before[NEW_RUN_SECTION]
    detail = editor.get(canvas_url(cast.deal, f"runs/{old_id}")).json()
    assert detail["superseded_by"] == new_id
    assert sorted(detail["rolled_back_sections"]) == (written_by_run if strategy == "rollback" else [])


@pytest.mark.both_brokers
@pytest.mark.django_db(transaction=True)
def test_strategy_enqueue_waits_and_reject_names_the_active_run(cast, written, celery_worker, slow):
    body, _first, before = _start_slow_run(cast, written)
    editor = cast.client("editor")
    rejected = editor.post(canvas_url(cast.deal, "generate"), {"multitask_strategy": "reject"}, format="json")
    assert rejected.status_code == 409 and rejected.json()["active_run_id"] == body["run_id"]
    queued = editor.post(
        canvas_url(cast.deal, "generate"),
        {"sections": [NEW_RUN_SECTION], "multitask_strategy": "enqueue"},
        format="json",
    )
    assert queued.status_code == 202 and queued.json()["status"] == "queued"
    assert _done(cast.deal.pk, body["run_id"])["status"] == "succeeded"
    assert _done(cast.deal.pk, queued.json()["run_id"])["status"] == "succeeded"
    memo = read_memo(cast.deal.pk)
    for key in RUN_SECTIONS:
        assert memo.sections[key].run_id == body["run_id"] and memo.sections[key].markdown != before[key]
    assert memo.sections[NEW_RUN_SECTION].run_id == queued.json()["run_id"]
    assert SynthesisRun.objects.get(pk=body["run_id"]).cancel_action == ""


# --- the race: a write of the cancelled run in flight during the rollback ---------------------------------------
def _advisory_waiters() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
        return cursor.fetchone()[0]


def _until(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "the other sessions never queued on the lock"
        time.sleep(0.02)


@pytest.mark.django_db(transaction=True)
def test_a_write_in_flight_when_rollback_cancels_is_reverted_or_refused(cast, written):
    """The run's worker is inside its write (holding the deal's write lock, about to check its row) when a
    rollback cancel comes: either order ends with the section back to its earlier text."""
    deal = cast.deal
    before = _texts(deal)
    run = SynthesisRun.objects.create(
        deal=deal, status=RunStatus.RUNNING, requested_sections=["risks"], created_by=cast.users["editor"]
    )
    plans = runs.section_plans(deal=deal, memo=read_memo(deal.pk))
    outcome: dict[str, object] = {}
    row_locked, release_row = threading.Event(), threading.Event()

    def hold_row() -> None:  # the run's row held, so the worker's write waits inside the deal's write lock
        with transaction.atomic():
            SynthesisRun.objects.select_for_update().get(pk=run.pk)
            row_locked.set()
            release_row.wait(30)
        connection.close()

    def worker_write() -> None:
        try:
            runs._write_ai_section(deal=deal, user=None, run=run, plan=plans["risks"], markdown="AI text [^1]")
            outcome["write"] = "landed"
        except SectionWriteRefused:
            outcome["write"] = "refused"
        finally:
            connection.close()

    def cancel() -> None:
        try:
            outcome["run"] = runs.run_cancel(deal=deal, run_id=run.pk, user=cast.users["editor"], action="rollback")
        finally:
            connection.close()

    holder = threading.Thread(target=hold_row)
    holder.start()
    assert row_locked.wait(10)
    waiting = _advisory_waiters()
    writer = threading.Thread(target=worker_write)
    writer.start()
    _until(lambda: _advisory_waiters() > waiting)  # the write holds the deal lock and waits for the row
    canceller = threading.Thread(target=cancel)
    canceller.start()
    _until(lambda: _advisory_waiters() > waiting + 1)  # the cancel waits for the row too
    release_row.set()
    for thread in (holder, writer, canceller):
        thread.join(60)
    assert outcome["write"] in ("landed", "refused")
    final = outcome["run"]
    assert final.status == RunStatus.CANCELLED and final.cancel_action == "rollback"
    assert _texts(deal)["risks"] == before["risks"]
    assert final.rolled_back_sections == (["risks"] if outcome["write"] == "landed" else [])
    # and any write after that is refused
    with pytest.raises(SectionWriteRefused):
        runs._write_ai_section(deal=deal, user=None, run=run, plan=plans["risks"], markdown="late")
    assert _texts(deal)["risks"] == before["risks"]


# --- validation, wait without a worker ------------------------------------------------------------------------
@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "body", "query", "loc"),
    [
        ("generate", {"multitask_strategy": "cancel"}, "", ["body", "multitask_strategy"]),
        ("generate", {"multitask_strategy": "interrupt"}, "?on_conflict=enqueue", ["body", "multitask_strategy"]),
        ("generate", {"multitask_strategy": "enqueue"}, "?on_conflict=reject", ["body", "multitask_strategy"]),
        ("sections/risks/regenerate", {"multitask_strategy": 3}, "", ["body", "multitask_strategy"]),
        (
            "sections/risks/regenerate",
            {"multitask_strategy": "rollback"},
            "?on_conflict=enqueue",
            ["body", "multitask_strategy"],
        ),
    ],
)
def test_strategy_validation(cast, path, body, query, loc):
    response = cast.client("editor").post(canvas_url(cast.deal, path) + query, body, format="json")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == loc
    assert not SynthesisRun.objects.exists()


@pytest.mark.django_db
def test_on_conflict_alias_agreeing_with_the_body_is_accepted(cast):
    client = cast.client("editor")
    first = client.post(canvas_url(cast.deal, "generate"), {}, format="json").json()["run_id"]
    second = client.post(
        canvas_url(cast.deal, "generate") + "?on_conflict=enqueue", {"multitask_strategy": "enqueue"}, format="json"
    )
    assert second.status_code == 202 and second.json()["status"] == "queued"
    assert SynthesisRun.objects.get(pk=first).status == RunStatus.QUEUED


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"action": "undo"}, ["body", "action"]),
        ({"wait": "soon"}, ["body", "wait"]),
        ({"surprise": 1}, ["body", "surprise"]),
    ],
)
def test_cancel_validation(cast, body, loc):
    run = SynthesisRun.objects.create(deal=cast.deal, created_by=cast.users["editor"], requested_sections=["risks"])
    response = cast.client("editor").post(canvas_url(cast.deal, f"runs/{run.pk}/cancel"), body, format="json")
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == loc
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED and run.cancel_requested_at is None


@pytest.mark.django_db
def test_cancel_wait_of_a_run_whose_worker_never_answers_is_202_with_its_state(cast, settings):
    settings.SYNTHESIS_CANCEL_WAIT_MAX_SECONDS = 0.3
    run = SynthesisRun.objects.create(
        deal=cast.deal, status=RunStatus.RUNNING, created_by=cast.users["editor"], requested_sections=["risks"]
    )
    response = cast.client("editor").post(
        canvas_url(cast.deal, f"runs/{run.pk}/cancel"), {"action": "rollback", "wait": True}, format="json"
    )
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "running" and body["cancel_action"] == "rollback" and body["cancel_requested_at"]
    # without wait the cancel ends it (the worker did not confirm), and rolls back what it wrote: nothing
    settings.SYNTHESIS_CANCEL_WAIT_SECONDS = 0.1
    ended = cast.client("editor").post(canvas_url(cast.deal, f"runs/{run.pk}/cancel"), format="json")
    assert ended.status_code == 200 and ended.json()["status"] == "cancelled"
    assert ended.json()["cancel_action"] == "rollback" and ended.json()["rolled_back_sections"] == []


@pytest.mark.django_db
def test_strategies_over_a_queued_run(cast):
    client = cast.client("editor")
    first = client.post(canvas_url(cast.deal, "generate"), {}, format="json").json()["run_id"]
    second = client.post(canvas_url(cast.deal, "generate"), {"multitask_strategy": "interrupt"}, format="json")
    assert second.status_code == 202
    old = SynthesisRun.objects.get(pk=first)
    assert old.status == RunStatus.CANCELLED and str(old.superseded_by) == second.json()["run_id"]
    assert old.cancel_action == "interrupt" and "Interrupted by run" in old.error
    third = client.post(canvas_url(cast.deal, "generate"), {"multitask_strategy": "rollback"}, format="json")
    assert third.status_code == 202
    assert SynthesisRun.objects.get(pk=second.json()["run_id"]).cancel_action == "rollback"
    assert list(SynthesisRun.objects.filter(status__in=["queued", "running"]).values_list("pk", flat=True)) == [
        SynthesisRun.objects.get(pk=third.json()["run_id"]).pk
    ]
