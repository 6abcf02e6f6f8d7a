"""Celery on each broker (Redis, RabbitMQ): the test worker really runs tasks, beat's schedule reaches it,
and an unreachable broker leaves work queued instead of failing the request."""

import time

import pytest
from celery import beat
from celery.signals import task_postrun

from canvas.models import RunStatus, SynthesisRun
from canvas_project.celery import app
from canvas_project.redis_client import get_redis
from tests.brokers import use_broker
from tests.canvas.conftest import canvas_url
from tests.servers import free_port


@app.task(name="tests.add_into_redis")
def add_into_redis(a: int, b: int) -> None:
    get_redis().set("tests:celery-sum", a + b)


@pytest.mark.both_brokers
def test_a_task_runs_on_the_real_worker(celery_worker, celery_broker):
    assert app.connection_for_write().transport.driver_type == {"redis": "redis", "rabbitmq": "amqp"}[celery_broker]
    add_into_redis.delay(2, 3)
    deadline = time.monotonic() + 20
    while get_redis().get("tests:celery-sum") is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert get_redis().get("tests:celery-sum") == b"5"


@pytest.mark.both_brokers
def test_beat_sends_every_sweeper_through_the_broker_and_the_worker_runs_it(celery_worker, celery_broker):
    sweepers = {entry["task"] for entry in app.conf.beat_schedule.values()}
    finished: dict[str, str] = {}

    def on_postrun(task=None, state=None, **_kwargs):  # called on the worker's thread, in this process
        finished[task.name] = state
        print("FIN", task.name, time.monotonic())

    task_postrun.connect(on_postrun, weak=False)
    try:
        # `celery beat`'s scheduler with the project's schedule, every entry due now; it publishes as beat does
        scheduler = beat.Scheduler(app=app, lazy=False)
        due = [entry for entry in scheduler.schedule.values() if entry.task in sweepers]
        assert {entry.task for entry in due} == sweepers
        print("PUB0", time.monotonic())
        for entry in due:
            scheduler.apply_entry(entry, producer=scheduler.producer)
            print("PUB", entry.task, time.monotonic())
        deadline = time.monotonic() + 60
        while not sweepers <= finished.keys() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        task_postrun.disconnect(on_postrun)
    assert {name: finished.get(name) for name in sweepers} == dict.fromkeys(sweepers, "SUCCESS")


@pytest.mark.django_db
def test_with_rabbitmq_unreachable_a_generate_is_accepted_and_its_run_waits_queued(
    cast, settings, django_capture_on_commit_callbacks
):
    use_broker(app, f"amqp://guest:guest@127.0.0.1:{free_port()}//")
    try:
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            response = cast.client("editor").post(canvas_url(cast.deal, "generate"), {}, format="json")
        health = cast.client("viewer").get("/api/health").json()
    finally:
        use_broker(app, settings.CELERY_BROKER_URL)
    assert response.status_code == 202 and response.json()["status"] == "queued"
    assert len(callbacks) == 1  # the enqueue ran, failed, and was logged: the run sweeper enqueues it later
    assert SynthesisRun.objects.get(pk=response.json()["run_id"]).status == RunStatus.QUEUED
    assert health["checks"]["broker"]["ok"] is False and health["detail"].startswith("broker, celery are down.")
