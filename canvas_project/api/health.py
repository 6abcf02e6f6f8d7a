"""GET /api/health: is each dependency reachable?

503 when PostgreSQL, Redis or the Store is down: this process cannot serve requests, and a load
balancer should send them elsewhere. No live Celery worker only degrades the service (200, status
`degraded`): reads and writes are served, drafting runs and ingestion wait in the queue until a worker
is back; taking the web process out of rotation would not bring one back. The same holds for a Celery
broker that does not answer (canvas_project.broker): with RabbitMQ as the broker the workers' heartbeats,
kept in Redis, stay fresh while nothing can be enqueued, so the broker is asked directly.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.db import connection
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from canvas_project.broker import broker_check
from canvas_project.pool_recovery import check_pools_soon
from canvas_project.redis_client import get_redis
from canvas_project.replicas import replica_states
from canvas_project.store import get_pool
from canvas_project.worker_heartbeat import live_worker_count

# Without one of these the process cannot serve: 503. Every other check only degrades the service.
REQUIRED = ("postgres", "redis", "store")


class HealthCheckOutput(serializers.Serializer):
    ok = serializers.BooleanField()
    latency_ms = serializers.FloatField()
    error = serializers.CharField(allow_null=True, help_text="The failure's class name, e.g. NoWorkerHeartbeat.")
    workers = serializers.IntegerField(
        required=False, help_text="celery only: workers whose heartbeat is younger than WORKER_HEARTBEAT_MAX_AGE."
    )
    transport = serializers.ChoiceField(
        choices=["redis", "amqp"], required=False, help_text="broker only, when it answers: redis or amqp (RabbitMQ)."
    )
    queued = serializers.IntegerField(
        required=False,
        help_text="broker only, when it answers: tasks waiting in the queue (not those a worker is running).",
    )
    lag_seconds = serializers.FloatField(
        required=False,
        allow_null=True,
        help_text="replica_<n> only: how far the replica's replay is behind the primary (0: caught up; null: "
        "unknown or unreachable). Over REPLICA_MAX_LAG_SECONDS the replica gets no reads (ok false, ReplicaLagging).",
    )
    lag_bytes = serializers.IntegerField(
        required=False, allow_null=True, help_text="replica_<n> only: WAL received but not replayed yet, in bytes."
    )
    replay_paused = serializers.BooleanField(
        required=False, allow_null=True, help_text="replica_<n> only: replay paused (pg_wal_replay_pause())."
    )


class HealthOutput(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=["ok", "degraded", "unavailable"],
        help_text="ok; degraded (200) when only the broker, celery or a read replica is down; unavailable (503) when "
        "postgres, redis or store is.",
    )
    detail = serializers.CharField(help_text="'All dependencies are up.' or which are down.")
    checks = serializers.DictField(
        child=HealthCheckOutput(),
        help_text="postgres, redis, store (the LangGraph Store), broker (Celery's), celery (worker heartbeats), and "
        "replica_<n> for each read replica (DATABASE_REPLICA_URLS) when there are any",
    )


class NoWorkerHeartbeat(Exception):
    """No Celery worker has recorded a heartbeat within WORKER_HEARTBEAT_MAX_AGE seconds."""


def _check_postgres() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _check_redis() -> None:
    get_redis().ping()


def _check_store() -> None:

    with get_pool().connection(timeout=2.0) as conn:
        conn.execute("SELECT 1 FROM store LIMIT 1")


def _check_broker() -> dict:
    """One round trip to the Celery broker (Redis or RabbitMQ), which the worker heartbeats cannot vouch for."""
    state = broker_check()
    return {"transport": state.transport, "queued": state.queued}


def _check_celery() -> dict:
    """One Redis round trip over the workers' heartbeats (canvas_project.worker_heartbeat); no broadcast."""
    workers = live_worker_count()
    if not workers:
        raise NoWorkerHeartbeat()
    return {"workers": workers}


CHECKS: dict[str, Callable[[], dict | None]] = {
    "postgres": _check_postgres,
    "redis": _check_redis,
    "store": _check_store,
    "broker": _check_broker,
    "celery": _check_celery,
}


def run_health_checks() -> dict[str, dict]:
    results = {}
    for name, check in CHECKS.items():
        started = time.perf_counter()
        extra: dict = {}
        try:
            extra = check() or {}
            error = None
        except Exception as exc:  # any failure means "down"; the class name is enough to act on
            error = exc.__class__.__name__
            if name == "postgres":
                connection.close_if_unusable_or_obsolete()
            if name in ("postgres", "store"):
                check_pools_soon()  # replace the pools' dead connections before requests meet them
            if name == "celery":
                extra = {"workers": 0} if isinstance(exc, NoWorkerHeartbeat) else {}
        results[name] = {
            "ok": error is None,
            "latency_ms": round((time.perf_counter() - started) * 1000, 2),
            "error": error,
            **extra,
        }
    if settings.DATABASE_REPLICA_URLS:
        # probed now, which also refreshes the router's view of them in this process
        results.update({state.alias: state.as_health_check() for state in replica_states(fresh=True)})
    return results


def health_summary(checks: dict[str, dict]) -> tuple[str, str]:
    """(status, detail) of the checks' results."""
    down = [name for name, result in checks.items() if not result["ok"]]
    if not down:
        return "ok", "All dependencies are up."
    detail = ", ".join(down) + (" is" if len(down) == 1 else " are") + " down."
    if any(name in REQUIRED for name in down):
        return "unavailable", detail
    if not checks["broker"]["ok"]:
        detail += (
            " The Celery broker does not answer: the API serves reads and writes; new drafting runs and uploads "
            "are recorded as queued and are enqueued by the sweepers once the broker is back."
        )
    if any(name.startswith("replica_") for name in down):
        detail += " Reads that would go to a replica down or lagging go to the primary."
    if checks["celery"].get("error") == NoWorkerHeartbeat.__name__:
        detail += (
            f" No Celery worker has reported within {settings.WORKER_HEARTBEAT_MAX_AGE:g} s: the API serves "
            "reads and writes; drafting runs and document ingestion wait in the queue."
        )
    return "degraded", detail


class HealthApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="health",
        summary="Dependency health",
        description=(
            "Checks PostgreSQL, Redis, the LangGraph Store, the Celery broker (Redis or RabbitMQ) and the Celery "
            "workers. 503 (`unavailable`) when PostgreSQL, Redis or the Store is down: this process cannot serve. "
            "`broker` is ok when the broker answers a declaration of the tasks' queue (and says how many tasks wait "
            "in it); without it the answer is 200 `degraded`. `celery` is ok when at least one "
            "worker recorded a heartbeat within WORKER_HEARTBEAT_MAX_AGE (30 s; workers beat every "
            "WORKER_HEARTBEAT_SECONDS, 10 s); without one the answer stays 200 with status `degraded`, since the "
            "API still serves reads and writes and only drafting runs and ingestion wait. With read replicas "
            "(DATABASE_REPLICA_URLS) each has a check `replica_<n>` with its lag; one down or lagging beyond "
            "REPLICA_MAX_LAG_SECONDS is also `degraded` (reads go to the primary). Alert on `degraded`; "
            "route traffic on the status code."
        ),
        responses={200: HealthOutput, 503: OpenApiResponse(HealthOutput, description="A required dependency is down.")},
        tags=["service"],
        auth=[],
    )
    def get(self, request):
        checks = run_health_checks()
        status, detail = health_summary(checks)
        return Response(
            {"status": status, "detail": detail, "checks": checks}, status=503 if status == "unavailable" else 200
        )
