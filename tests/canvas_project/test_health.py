"""GET /api/health against the real servers, with and without a Celery worker, on each Celery broker (Redis,
RabbitMQ), and against a Redis, a PostgreSQL or a broker that is not there. A killed worker ageing out:
tests/faults/test_worker_killed.py."""

from __future__ import annotations

import socket

import pytest
from celery.contrib.testing.worker import start_worker
from django.db import connection
from django.test import override_settings

from canvas_project.celery import app
from tests import factories
from tests.brokers import use_broker

TRANSPORTS = {"redis": "redis", "rabbitmq": "amqp"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.both_brokers
def test_it_is_200_when_everything_is_up(celery_worker, celery_broker):
    response = factories.client_for().get("/api/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["detail"] == "All dependencies are up."
    assert all(body["checks"][name]["ok"] for name in ("postgres", "redis", "store", "broker", "celery"))
    assert body["checks"]["celery"]["workers"] == 1
    assert body["checks"]["broker"] == {
        **body["checks"]["broker"],
        "transport": TRANSPORTS[celery_broker],
        "queued": 0,
        "error": None,
    }


@pytest.mark.both_brokers
def test_the_broker_check_counts_the_tasks_waiting_for_a_worker(db, celery_broker):
    client = factories.client_for()
    assert client.get("/api/health").json()["checks"]["broker"]["queued"] == 0
    for _ in range(3):
        app.send_task("tests.waits_for_a_worker")  # no worker in this test: they stay in the queue
    body = client.get("/api/health").json()
    assert body["checks"]["broker"]["ok"] is True and body["checks"]["broker"]["queued"] == 3
    assert body["checks"]["broker"]["transport"] == TRANSPORTS[celery_broker]
    assert body["status"] == "degraded" and body["detail"].startswith("celery is down.")


@pytest.mark.parametrize("scheme", ["amqp", "redis"])
def test_an_unreachable_broker_is_200_degraded_naming_the_broker(celery_worker, settings, scheme):
    # the worker's heartbeats (in Redis) stay fresh: only asking the broker shows that nothing can be enqueued
    try:
        use_broker(app, f"{scheme}://127.0.0.1:{_free_port()}/")
        response = factories.client_for().get("/api/health")
    finally:
        use_broker(app, settings.CELERY_BROKER_URL)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["detail"].startswith("broker is down. The Celery broker does not answer: the API serves reads")
    broker = body["checks"]["broker"]
    assert broker["ok"] is False and broker["error"] and "queued" not in broker
    assert body["checks"]["celery"]["ok"] is True
    # the broker back: the next probe connects afresh
    again = factories.client_for().get("/api/health").json()
    assert again["status"] == "ok" and again["checks"]["broker"]["ok"] is True


def test_without_a_worker_it_is_200_degraded_naming_celery(db):
    # a web process without workers still serves reads and writes: a load balancer keeps it in rotation
    response = factories.client_for().get("/api/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["detail"].startswith("celery is down. No Celery worker has reported within 30 s")
    assert body["checks"]["celery"] == {
        **body["checks"]["celery"],
        "ok": False,
        "error": "NoWorkerHeartbeat",
        "workers": 0,
    }
    assert all(body["checks"][name]["ok"] for name in ("postgres", "redis", "store"))


def test_a_worker_that_stops_is_gone_at_once_and_the_check_costs_one_round_trip(
    transactional_db, django_assert_max_num_queries
):
    app.conf.task_always_eager = False
    with start_worker(app, pool="solo", concurrency=1, perform_ping_check=False, loglevel="WARNING"):
        with django_assert_max_num_queries(1):  # postgres's SELECT 1; celery reads only Redis
            body = factories.client_for().get("/api/health").json()
        assert body["checks"]["celery"]["ok"] is True and body["status"] == "ok"
        assert body["checks"]["celery"]["latency_ms"] < 100
    # a worker stopping cleanly removes its heartbeat: no waiting for it to age out
    after = factories.client_for().get("/api/health").json()
    assert after["status"] == "degraded" and after["checks"]["celery"]["workers"] == 0


def test_it_is_503_naming_redis_when_redis_is_down(db, settings):
    dead = f"redis://127.0.0.1:{_free_port()}/0"
    caches = {"default": {**settings.CACHES["default"], "LOCATION": dead}}
    with override_settings(CACHES=caches):
        response = factories.client_for().get("/api/health")
    assert response.status_code == 503
    body = response.json()
    # the workers' heartbeats live in Redis too (and so does their broker): celery cannot be up
    assert body["status"] == "unavailable" and body["detail"] == "redis, celery are down."
    assert body["checks"]["redis"]["ok"] is False
    assert body["checks"]["celery"]["error"] == "ConnectionError"
    assert body["checks"]["postgres"]["ok"] is True


def test_it_is_503_naming_postgres_when_postgres_is_down(db, settings):
    # point the connection at a port where nothing listens, then restore it
    original = dict(connection.settings_dict)
    try:
        connection.close()
        connection.settings_dict.update({"HOST": "127.0.0.1", "PORT": str(_free_port())})
        response = factories.client_for().get("/api/health")
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(original)
    assert response.status_code == 503
    # the Store lives in the same PostgreSQL, so it is down with it
    assert response.json()["detail"] == "postgres, store, celery are down."  # and no worker in this test
    assert response.json()["checks"]["redis"]["ok"] is True
