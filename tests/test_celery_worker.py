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
