"""Bounded LangGraph data: the run and chat checkpoint sweepers, on real PostgresSaver threads.

Each thread is written by a real three-step LangGraph graph through the project's checkpointer, so every
invoke leaves several checkpoints with their blobs, as a drafting run or a chat does.
"""

from __future__ import annotations

import operator
from datetime import timedelta
from typing import Annotated, TypedDict

import pytest
from django.utils import timezone
from langgraph.graph import END, START, StateGraph

from canvas.models import RunStatus, SynthesisRun
from canvas.runs.retention import run_checkpoints_sweep
from canvas_project.store import deal_checkpoint_footprint, get_checkpointer, get_pool
from internal_api.models import ChatThread
from internal_api.retention import chat_threads_sweep


class Steps(TypedDict):
    log: Annotated[list[str], operator.add]


def _graph():
    graph = StateGraph(Steps)
    for name in ("retrieve", "draft", "cite"):
        graph.add_node(name, lambda state, _name=name: {"log": [_name]})
    graph.add_edge(START, "retrieve")
    graph.add_edge("retrieve", "draft")
    graph.add_edge("draft", "cite")
    graph.add_edge("cite", END)
    return graph.compile(checkpointer=get_checkpointer())


def _write(thread_id: str, invokes: int = 2) -> None:
    graph = _graph()
    for _ in range(invokes):
        graph.invoke({"log": ["start"]}, config={"configurable": {"thread_id": thread_id}})


def _checkpoints(thread_id: str) -> int:
    with get_pool().connection() as conn:
        return conn.execute("SELECT count(*) AS n FROM checkpoints WHERE thread_id = %s", (thread_id,)).fetchone()["n"]


def _latest_log(thread_id: str) -> list[str]:
    return _graph().get_state({"configurable": {"thread_id": thread_id}}).values.get("log", [])


@pytest.fixture
def threads():
    """Thread ids the test writes; whatever the sweep left of them is deleted afterwards."""
    written: list[str] = []
    yield written
    saver = get_checkpointer()
    for thread_id in written:
        saver.delete_thread(thread_id)


def _run(cast, status: str, finished_days_ago: float | None, threads: list[str]) -> SynthesisRun:
    finished = timezone.now() - timedelta(days=finished_days_ago) if finished_days_ago is not None else None
    run = SynthesisRun.objects.create(deal=cast.deal, status=status, finished_at=finished)
    threads.append(run.thread_id)
    _write(run.thread_id)
    return run


def test_finished_runs_keep_their_latest_checkpoint_then_go_after_the_retention(cast, threads, settings):
    settings.RUN_CHECKPOINT_RETENTION_DAYS = 14
    recent = _run(cast, RunStatus.SUCCEEDED, 1, threads)
    expired = _run(cast, RunStatus.FAILED, 15, threads)
    running = _run(cast, RunStatus.RUNNING, None, threads)
    orphan = f"deal:{cast.deal.pk}:run:00000000-0000-4000-8000-000000000001"
    threads.append(orphan)
    _write(orphan)
    before = {t: _checkpoints(t) for t in threads}
    assert min(before.values()) >= 8  # two invokes of a three-step graph
    state_before = _latest_log(recent.thread_id)

    result = run_checkpoints_sweep()

    assert _checkpoints(recent.thread_id) == 1
    assert _latest_log(recent.thread_id) == state_before  # the latest state is intact
    assert _checkpoints(expired.thread_id) == 0
    assert _checkpoints(orphan) == 0
    assert _checkpoints(running.thread_id) == before[running.thread_id]  # never touched
    assert result.pruned >= 1 and result.deleted >= 2
    # a second sweep has nothing left to do for these threads
    again = run_checkpoints_sweep()
    assert _checkpoints(recent.thread_id) == 1 and again.pruned == 0


def test_a_run_finishing_later_is_pruned_by_a_later_sweep(cast, threads):
    run = _run(cast, RunStatus.RUNNING, None, threads)
    run_checkpoints_sweep()
    assert _checkpoints(run.thread_id) > 1
    SynthesisRun.objects.filter(pk=run.pk).update(status=RunStatus.CANCELLED, finished_at=timezone.now())
    run_checkpoints_sweep(batch=1)  # paging one thread at a time reaches it too
    assert _checkpoints(run.thread_id) == 1


def test_idle_chat_threads_go_with_their_checkpoints_and_quiet_ones_keep_the_latest(cast, threads, settings):
    settings.CHAT_RETENTION_DAYS = 90
    now = timezone.now()
    chats = {}
    for name, age in (("idle", timedelta(days=91)), ("quiet", timedelta(hours=3)), ("active", timedelta(0))):
        chat = ChatThread.objects.create(deal=cast.deal, user=cast.users["editor"], agent_id="strategy")
        ChatThread.objects.filter(pk=chat.pk).update(updated_at=now - age)
        threads.append(chat.langgraph_thread_id)
        _write(chat.langgraph_thread_id)
        chats[name] = chat
    active_before = _checkpoints(chats["active"].langgraph_thread_id)
    quiet_state = _latest_log(chats["quiet"].langgraph_thread_id)

    result = chat_threads_sweep()

    assert not ChatThread.objects.filter(pk=chats["idle"].pk).exists()
    assert _checkpoints(chats["idle"].langgraph_thread_id) == 0
    assert _checkpoints(chats["quiet"].langgraph_thread_id) == 1
    assert _latest_log(chats["quiet"].langgraph_thread_id) == quiet_state
    assert _checkpoints(chats["active"].langgraph_thread_id) == active_before
    assert ChatThread.objects.filter(pk__in=[chats["quiet"].pk, chats["active"].pk]).count() == 2
    assert result.deleted >= 1 and result.pruned >= 1


def test_the_admin_deal_page_shows_the_checkpoint_footprint(cast, threads, admin_client):
    _run(cast, RunStatus.SUCCEEDED, 1, threads)
    footprint = deal_checkpoint_footprint(cast.deal.pk)
    assert footprint.threads == 1 and footprint.rows > 8 and footprint.bytes > 0
    html = admin_client.get(f"/admin/deals/deal/{cast.deal.pk}/change/").content.decode()
    assert f'<span id="checkpoint-footprint">1 threads, {footprint.rows} rows, ' in html
    run_checkpoints_sweep()
    smaller = deal_checkpoint_footprint(cast.deal.pk)
    assert smaller.threads == 1 and smaller.rows < footprint.rows and smaller.bytes < footprint.bytes


def test_the_sweepers_are_on_the_beat_schedule():
    from canvas_project.celery import app

    app.loader.import_default_modules()  # what a worker does at start: autodiscovery registers the tasks
    schedule = {entry["task"] for entry in app.conf.beat_schedule.values()}
    assert {"canvas.sweep_run_checkpoints", "internal_api.sweep_chat_threads"} <= schedule
    assert {"canvas.sweep_run_checkpoints", "internal_api.sweep_chat_threads"} <= set(app.tasks)
