"""The Celery test worker fixture really runs tasks, through each broker (Redis and RabbitMQ)."""

import time

import pytest

from canvas_project.celery import app
from canvas_project.redis_client import get_redis


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
    from celery import beat
    from celery.signals import task_postrun

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
