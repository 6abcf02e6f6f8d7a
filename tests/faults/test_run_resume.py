"""A drafting run whose worker is killed (SIGKILL) mid-run is resumed from its last LangGraph checkpoint by
another worker, up to RUN_MAX_RESUMES times, then failed.

Real `celery -A canvas_project worker` subprocesses drafting with the paced drafter (SYNTHESIS_DRAFTER, one
section at a time), the run's SSE stream read over real HTTP from a uvicorn child process, and the dead-run
sweeper run by this process when it reads the run (GET /runs/{id} sweeps the deal's dead runs), with a
dead-run window of a few seconds. Every wait polls with a deadline.

Each test runs on both brokers (`both_brokers`): on RabbitMQ the killed worker's unacknowledged message goes
back to the queue at once and reaches the next worker, which skips it (the run is not `queued`); the resume
comes, as on Redis, from the sweeper's own enqueue.
"""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest

from canvas.memo.store import read_memo
from canvas.models import SynthesisRun
from canvas_project import keys
from canvas_project.redis_client import get_redis
from deals.tokens import token_pair_for_user
from tests.canvas.conftest import canvas_url
from tests.canvas.synthesis_corpus import make_corpus
from tests.faults.conftest import wait_for
from tests.servers import ServiceProcess, WorkerProcess, service_env
from tests.sse_client import SseEvent, SseReader

SLOW_DRAFTER = "tests.canvas.slow_drafter.SlowDrafter"
DEAD_WINDOW = 4  # SYNTHESIS_DEAD_RUN_SECONDS in this process, whose reads run the sweeper


def _worker(max_resumes: int) -> WorkerProcess:
    """A real Celery worker process drafting with the paced drafter, on this test's broker and queue."""
    return WorkerProcess(
        service_env(
            SYNTHESIS_DRAFTER=SLOW_DRAFTER,
            SYNTHESIS_MAX_CONCURRENCY="1",
            SYNTHESIS_HEARTBEAT_SECONDS="1",
            SLOW_DRAFTER_DELAY="0.3",
            RUN_MAX_RESUMES=str(max_resumes),
        )
    ).start()


@pytest.fixture
def workers(celery_broker):
    """workers(max_resumes): start a worker process; all are stopped at the end. On each broker: the
    rabbitmq run starts on an empty queue of this process, and the workers consume it."""
    started: list[WorkerProcess] = []

    def start(max_resumes: int) -> WorkerProcess:
        started.append(_worker(max_resumes))
        return started[-1]

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def service(cast, celery_broker):
    server = ServiceProcess(service_env()).start()
    yield server
    server.stop()


def _row(run_id) -> SynthesisRun:
    return SynthesisRun.objects.get(pk=run_id)


def _mid_draft(reader: SseReader, seen: list[SseEvent], worker: WorkerProcess, finished: int) -> None:
    """Read the run's stream into `seen` until `finished` more sections have finished and the next one is
    streaming its draft: killed then, the worker dies in the middle of a section, after the previous
    sections' results are all recorded."""
    done = {e.data["component_id"] for e in seen if e.event == "node_finished"}
    wanted = len(done) + finished
    deadline = time.monotonic() + 120
    while True:
        worker.alive()
        event = reader.events.get(timeout=max(0.1, deadline - time.monotonic()))
        seen.append(event)
        if event.event == "node_finished":
            done.add(event.data["component_id"])
        elif event.event == "message" and len(done) >= wanted and event.data["component_id"] not in done:
            return


def _final(client, deal, run_id, timeout: float = 180) -> dict:
    """Read the run (which sweeps dead runs) until it is terminal."""

    def check():
        body = client.get(canvas_url(deal, f"runs/{run_id}")).json()
        return body if body["status"] in ("succeeded", "failed", "cancelled") else None

    return wait_for(check, timeout=timeout, what="the run ends", interval=0.25)


def _read_until_done(reader: SseReader, got: list[SseEvent], timeout: float = 60) -> list[SseEvent]:
    deadline = time.monotonic() + timeout
    while not got or got[-1].event != "done":
        got.append(reader.events.get(timeout=max(0.1, deadline - time.monotonic())))
    return got


def _canvas_events(deal) -> list[tuple[str, dict]]:
    raw = get_redis().xrange(keys.events_key(deal.pk))
    return [(fields[b"type"].decode(), json.loads(fields[b"data"])) for _, fields in raw]


def _start_run(cast, service):
    editor = cast.client("editor")
    response = editor.post(canvas_url(cast.deal, "generate"), {}, format="json")
    assert response.status_code == 202, response.content
    body = response.json()
    token = token_pair_for_user(user=cast.users["viewer"])["access"]
    reader = SseReader(service.url + body["stream_url"], token).start()
    return body["run_id"], reader


@pytest.mark.both_brokers
@pytest.mark.django_db(transaction=True)
def test_a_killed_workers_run_is_resumed_from_its_checkpoint_by_another_worker(cast, settings, service, workers):
    make_corpus(cast.deal)
    settings.SYNTHESIS_DEAD_RUN_SECONDS = DEAD_WINDOW
    settings.RUN_MAX_RESUMES = 2
    first = workers(2)
    run_id, reader = _start_run(cast, service)
    seen: list[SseEvent] = []
    _mid_draft(reader, seen, first, finished=2)
    first.kill()
    delivered_before = list(_row(run_id).sections_delivered)  # what it had when it died
    second = workers(2)
    second.alive()

    viewer = cast.client("viewer")
    body = _final(viewer, cast.deal, run_id)
    requested = body["requested_sections"]
    assert body["status"] == "succeeded", body["error"]
    assert body["resume_count"] == 1
    assert sorted(body["sections_delivered"]) == sorted(requested) and body["sections_missing"] == []
    # those delivered before the kill came back from the LangGraph checkpoint (their node results, with the
    # time they took), not from drafting them again
    summary = {entry["section_key"]: entry for entry in body["trace_summary"]}
    assert len(body["trace_summary"]) == len(requested) and delivered_before
    assert all(summary[key]["status"] == "delivered" and summary[key]["elapsed"] > 0 for key in delivered_before)

    # the trace: every section drafted exactly once (those delivered before the kill were not redrafted), and
    # the resume between them
    trace = viewer.get(canvas_url(cast.deal, f"runs/{run_id}/trace")).json()
    drafted = Counter(node["section_key"] for node in trace["nodes"] if node["node"] == "draft_section")
    assert drafted == Counter(requested), drafted
    resumed = [node for node in trace["nodes"] if node["node"] == "run_resumed"]
    assert len(resumed) == 1 and resumed[0]["outputs"]["resume_count"] == 1
    assert set(delivered_before) <= set(resumed[0]["outputs"]["delivered"])
    assert set(resumed[0]["outputs"]["remaining"]) == set(requested) - set(resumed[0]["outputs"]["delivered"])
    order = [node.get("section_key") or node["node"] for node in trace["nodes"]]
    assert set(order[: order.index("run_resumed")]) == set(resumed[0]["outputs"]["delivered"])

    # the run's stream, read over HTTP across the kill: run_resumed once, each section delivered once
    events = _read_until_done(reader, seen)
    names = [event.event for event in events]
    assert names.count("workflow_started") == 1 and names.count("run_resumed") == 1
    assert names[-2:] == ["workflow_finished", "done"] and events[-1].data["status"] == "succeeded"
    resumed_event = events[names.index("run_resumed")].data
    assert resumed_event["resume_count"] == 1 and resumed_event["max_resumes"] == 2
    delivered_messages = Counter(
        event.data["component_id"]
        for event in events
        if event.event == "message_end" and event.data["status"] == "delivered"
    )
    assert delivered_messages == Counter(requested)
    after_resume = {e.data["component_id"] for e in events[names.index("run_resumed") :] if e.event == "node_started"}
    assert not after_resume & set(delivered_before)  # nothing delivered before the kill was started again

    # the canvas events: run_resumed, and each section written to the memo once
    canvas = _canvas_events(cast.deal)
    assert [data["resume_count"] for kind, data in canvas if kind == "run_resumed"] == [1]
    written = Counter(data["section_key"] for kind, data in canvas if kind == "run_section_delivered")
    assert written == Counter(requested)
    memo = read_memo(cast.deal.pk)
    assert all(memo.sections[key].markdown.strip() and memo.sections[key].run_id == run_id for key in requested)
    assert memo.last_run["run_id"] == run_id and memo.last_run["status"] == "succeeded"


@pytest.mark.both_brokers
@pytest.mark.django_db(transaction=True)
def test_a_run_whose_workers_keep_dying_fails_once_run_max_resumes_is_spent(cast, settings, service, workers):
    make_corpus(cast.deal)
    settings.SYNTHESIS_DEAD_RUN_SECONDS = DEAD_WINDOW
    settings.RUN_MAX_RESUMES = 1
    first = workers(1)
    run_id, reader = _start_run(cast, service)
    seen: list[SseEvent] = []
    _mid_draft(reader, seen, first, finished=1)
    first.kill()

    second = workers(1)
    viewer = cast.client("viewer")
    wait_for(
        lambda: viewer.get(canvas_url(cast.deal, f"runs/{run_id}")).json()["resume_count"] == 1,  # the read sweeps
        timeout=60,
        what="the dead run is requeued for a resume",
        interval=0.25,
    )
    _mid_draft(reader, seen, second, finished=1)
    second.kill()
    delivered = list(_row(run_id).sections_delivered)

    body = _final(viewer, cast.deal, run_id)
    assert body["status"] == "failed" and body["resume_count"] == 1
    assert "heartbeat" in body["error"] and "RUN_MAX_RESUMES=1" in body["error"], body["error"]
    assert set(delivered) <= set(body["sections_delivered"]) and body["sections_missing"]
    events = _read_until_done(reader, seen)
    names = [event.event for event in events]
    assert names.count("run_resumed") == 1 and names[-3:] == ["error", "workflow_finished", "done"]
    memo = read_memo(cast.deal.pk)
    assert memo.last_run["status"] == "failed" and all(memo.sections[key].markdown.strip() for key in delivered)
    # no third worker ever touches it: a failed run is not resumed
    assert _row(run_id).resume_count == 1
