"""GET /api/health: is each dependency reachable? 200 when all are, 503 naming what is down."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.db import connection
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from canvas_project.pool_recovery import check_pools_soon
from canvas_project.redis_client import get_redis


class HealthCheckOutput(serializers.Serializer):
    ok = serializers.BooleanField()
    latency_ms = serializers.FloatField()
    error = serializers.CharField(allow_null=True)


class HealthOutput(serializers.Serializer):
    status = serializers.ChoiceField(choices=["ok", "unavailable"])
    detail = serializers.CharField(help_text="'All dependencies are up.' or which are down.")
    checks = serializers.DictField(child=HealthCheckOutput(), help_text="postgres, redis, store (the LangGraph Store)")


def _check_postgres() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _check_redis() -> None:
    get_redis().ping()


def _check_store() -> None:
    from canvas.store import get_pool

    with get_pool().connection(timeout=2.0) as conn:
        conn.execute("SELECT 1 FROM store LIMIT 1")


CHECKS: dict[str, Callable[[], None]] = {"postgres": _check_postgres, "redis": _check_redis, "store": _check_store}


def run_health_checks() -> dict[str, dict]:
    results = {}
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            check()
            error = None
        except Exception as exc:  # any failure means "down"; the class name is enough to act on
            error = exc.__class__.__name__
            if name == "postgres":
                connection.close_if_unusable_or_obsolete()
            if name in ("postgres", "store"):
                check_pools_soon()  # replace the pools' dead connections before requests meet them
        results[name] = {
            "ok": error is None,
            "latency_ms": round((time.perf_counter() - started) * 1000, 2),
            "error": error,
        }
    return results


class HealthApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="health",
        summary="Dependency health",
        responses={200: HealthOutput, 503: OpenApiResponse(HealthOutput, description="A dependency is down.")},
        tags=["service"],
        auth=[],
    )
    def get(self, request):
        checks = run_health_checks()
        down = [name for name, result in checks.items() if not result["ok"]]
        detail = (
            "All dependencies are up."
            if not down
            else ", ".join(down) + (" is" if len(down) == 1 else " are") + " down."
        )
        return Response(
            {"status": "unavailable" if down else "ok", "detail": detail, "checks": checks}, status=503 if down else 200
        )
