"""RabbitMQ, the Celery broker, killed and restarted while a drafting run is in flight on a real worker.

A RabbitMQ node of the test's own (tests/servers.py ThrowawayRabbitMQ, never the machine's :5672), a real
`celery worker` child process on it (prefork, as docs/operations.md says to run workers on RabbitMQ), this
process publishing to it. The node is SIGKILLed (a crash, not a clean stop) once the run has delivered a
section, and started again on the same port and data. What users get, as docs/operations.md "Celery broker
down" promises:

- the run in flight goes on (it needs the broker only to be handed to the worker; the worker lets it finish,
  CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS being off) and succeeds once, every section
  drafted once, not resumed; the copy of its message RabbitMQ gives back after the restart (it was
  never acknowledged) is skipped by the worker, since the run is no longer queued;
- health says `degraded` naming the broker while it is down (200, never 503), `ok` once it is back;
- a generate during the outage answers 202 and its run waits `queued` (the enqueue failed and was logged);
  the dead-run sweeper (beat's tick, called here once) enqueues it once the broker is back, and it runs;
- the worker reconnects by itself: the same process consumes the queue again, no restart.

The figures (seconds to reconnect, the run's duration across the restart) are printed with `-s`.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest
from django.conf import settings as django_settings
from kombu import Connection

from canvas.models import RunStatus, SynthesisRun
from canvas.runs.services import runs_sweep_dead
from tests import factories
from tests.canvas.conftest import canvas_url
from tests.canvas.synthesis_corpus import make_corpus
from tests.faults.conftest import wait_for
from tests.servers import ThrowawayRabbitMQ, WorkerProcess, service_env

pytestmark = pytest.mark.django_db(transaction=True)

SLOW_DRAFTER = "tests.canvas.slow_drafter.SlowDrafter"
DEAD_WINDOW = 4  # SYNTHESIS_DEAD_RUN_SECONDS of this process, which runs the sweeper


def _consumers(node: ThrowawayRabbitMQ) -> int:
    """How many consumers the tasks' queue has on the node (0 while it is down or nobody consumes)."""
    try:
        with Connection(node.url, connect_timeout=1) as connection:
            channel = connection.channel()
            return channel.queue_declare(django_settings.CELERY_TASK_DEFAULT_QUEUE, passive=True).consumer_count
    except Exception:  # noqa: BLE001 - down, or the queue not declared yet: nobody consumes it
        return 0


def _run(run_id) -> SynthesisRun:
    return SynthesisRun.objects.get(pk=run_id)


def test_a_run_in_flight_survives_a_rabbitmq_restart_and_a_generate_during_it_runs_after(cast, settings, own_rabbitmq):
    settings.SYNTHESIS_DEAD_RUN_SECONDS = DEAD_WINDOW
    make_corpus(cast.deal)
    other = factories.make_deal(cast.org, owner=cast.users["owner"], name="Harbor Point Offices")
    factories.grant(other, cast.users["editor"], "editor")
    make_corpus(other)
    editor, viewer = cast.client("editor"), cast.client("viewer")

    def health() -> dict:
        response = viewer.get("/api/health")
        assert response.status_code == 200, response.content  # never 503: the broker only degrades
        return response.json()

    env = service_env(
        SYNTHESIS_DRAFTER=SLOW_DRAFTER,
        SYNTHESIS_MAX_CONCURRENCY="1",
        SYNTHESIS_HEARTBEAT_SECONDS="1",
        SLOW_DRAFTER_DELAY="0.5",
        WORKER_HEARTBEAT_SECONDS="1",
    )
    assert env["CELERY_BROKER_URL"] == own_rabbitmq.url
    with WorkerProcess(env, pool="prefork") as worker:
        wait_for(lambda: worker.alive() and _consumers(own_rabbitmq) == 1, timeout=60, what="the worker consumes")
        wait_for(lambda: health()["status"] == "ok", timeout=30, what="health is ok")

        response = editor.post(canvas_url(cast.deal, "generate"), {}, format="json")
        assert response.status_code == 202, response.content
        run_id = response.json()["run_id"]
        created = time.monotonic()
        wait_for(
            lambda: worker.alive() and _run(run_id).status == RunStatus.RUNNING and _run(run_id).sections_delivered,
            timeout=60,
            what="the worker delivers a section",
        )

        own_rabbitmq.stop()  # SIGKILL: a crash
        down_at = time.monotonic()

        during = health()
        assert during["status"] == "degraded" and during["detail"].startswith("broker is down."), during
        assert during["checks"]["broker"]["ok"] is False and during["checks"]["celery"]["ok"] is True
        # a generate on another deal while the broker is down: accepted, recorded as queued
        started = time.monotonic()
        queued = editor.post(canvas_url(other, "generate"), {"sections": ["risks"]}, format="json")
        generate_seconds = time.monotonic() - started
        assert queued.status_code == 202 and queued.json()["status"] == "queued", queued.content
        waiting_id = queued.json()["run_id"]
        assert _run(waiting_id).status == RunStatus.QUEUED

        own_rabbitmq.start()
        up_at = time.monotonic()
        # usually still drafting (its last sections come after the restart); on a quick machine it may have
        # ended during the outage: either way its message was never acknowledged and comes back
        in_flight_at_restart = _run(run_id).status == RunStatus.RUNNING
        wait_for(lambda: worker.alive() and _consumers(own_rabbitmq) == 1, timeout=60, what="the worker reconnects")
        reconnect_seconds = time.monotonic() - up_at
        wait_for(lambda: health()["checks"]["broker"]["ok"], timeout=10, what="health sees the broker back")

        # beat's sweeper tick (every 60 s in production): the run queued during the outage goes to the broker
        wait_for(lambda: time.monotonic() - started > DEAD_WINDOW, timeout=DEAD_WINDOW + 1, what="the window")
        runs_sweep_dead()
        done = wait_for(
            lambda: _run(waiting_id).status not in (RunStatus.QUEUED, RunStatus.RUNNING) and _run(waiting_id),
            timeout=120,
            what="the run generated during the outage ends",
        )
        assert done.status == RunStatus.SUCCEEDED, done.error
        first = wait_for(lambda: _run(run_id).status != RunStatus.RUNNING and _run(run_id), timeout=120, what="end")
        run_seconds = time.monotonic() - created
        # every task handed to the worker was taken (the redelivered copy of the first run's message too)
        wait_for(lambda: health()["checks"]["broker"].get("queued") == 0, timeout=30, what="the queue drains")
        final = health()
        worker.alive()  # the same process throughout: it reconnected by itself
        log = worker.log()
        open("/tmp/i15rmq-worker.log", "w").write(log)

    assert first.status == RunStatus.SUCCEEDED and first.resume_count == 0, first.error
    body = viewer.get(canvas_url(cast.deal, f"runs/{run_id}")).json()
    assert body["status"] == "succeeded" and body["sections_missing"] == []
    trace = viewer.get(canvas_url(cast.deal, f"runs/{run_id}/trace")).json()
    drafted = Counter(node["section_key"] for node in trace["nodes"] if node["node"] == "draft_section")
    assert drafted == Counter(body["requested_sections"]), drafted  # each once: the redelivery was skipped
    assert final["status"] == "ok" and final["checks"]["broker"]["transport"] == "amqp", final
    assert "raised unexpected" not in log, log[-3000:]  # no task failed in the worker
    print(
        f"\nRabbitMQ restart: down {up_at - down_at:.1f} s; generate while down answered in {generate_seconds:.1f} s;"
        f" worker consuming again {reconnect_seconds:.1f} s after the node was up; first run {run_seconds:.1f} s"
        f" from generate to its end, {'still' if in_flight_at_restart else 'no longer'} running at the restart"
    )
