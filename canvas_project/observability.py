"""Request ids, structured JSON logs and Prometheus metrics.

- Every request gets an id (the client's `X-Request-ID` when it is sane, else a new UUID), returned in
  the `X-Request-ID` response header and attached to every log line written while it is handled,
  with the deal id when the URL names one.
- Logs are JSON lines (LOG_FORMAT=json, the default in production) or plain text.
- Metrics: request latency by route, method and status; purge counters and the SSE gauge updated by
  their own modules through `metrics`. Per process, unless PROMETHEUS_MULTIPROC_DIR names a directory
  (prometheus_client's multiprocess mode): then every process of a server writes its values there and
  /metrics answers the sum over them, whichever worker serves the scrape (canvas_project/gunicorn_conf.py
  empties it at start and drops an exited worker's live gauge). Synthesis run durations are kept in Redis
  (`record_run_seconds`), since runs finish in Celery workers. Exposed at GET /metrics (plain text,
  Prometheus format), open to anyone holding METRICS_TOKEN when it is set, else only to superadmins'
  sessions.
No secret ever reaches a log line: headers are never logged, and the filter below masks bearer
tokens and stream tickets (`?ticket=`) in anything that is.
"""

from __future__ import annotations

import contextlib
import contextvars
import hmac
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Iterator

import redis
from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve
from django.views.decorators.csrf import csrf_exempt
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.utils import floatToGoString

from canvas_project import keys
from canvas_project.redis_client import get_redis

logger = logging.getLogger(__name__)
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
deal_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("deal_id", default=None)
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_BEARER_RE = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")
# A stream ticket travels in the query string (`?ticket=`, for a browser's EventSource), so request lines
# that reach a log (uvicorn's access log is routed through this filter) carry it: masked like a bearer token.
_TICKET_RE = re.compile(r"(?i)([?&]ticket=)[^&\s\"']+")


def mask_secrets_in(text: str) -> str:
    """`text` with bearer tokens and stream tickets replaced by [redacted]."""
    return _TICKET_RE.sub(r"\1[redacted]", _BEARER_RE.sub(r"\1[redacted]", text))


class Metrics:
    """The process's metrics, in a registry of their own (so tests can read exact values)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.request_latency = Histogram(
            "dealcanvas_http_request_seconds",
            "HTTP request latency",
            ["route", "method", "status"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.purges = Counter(
            "dealcanvas_purges_total",
            "Purges of per-deal Redis state",
            ["source", "mode", "dry_run", "status"],
            registry=self.registry,
        )
        self.purged_keys = Counter(
            "dealcanvas_purged_keys_total", "Keys deleted by purges", ["family"], registry=self.registry
        )
        self.registry.register(RunSecondsCollector())
        self.sse_subscribers = Gauge(
            "dealcanvas_sse_subscribers",
            "Open SSE subscriptions (summed over live processes in multiprocess mode)",
            registry=self.registry,
            multiprocess_mode="livesum",
        )


# Runs finish in Celery workers, whose registries nobody scrapes, so this histogram lives in Redis: the
# process that finishes a run adds it there, and every /metrics reads the deployment-wide totals.
RUN_SECONDS_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600)
_RUN_SECONDS_HELP = "Synthesis run durations by final status (deployment-wide, kept in Redis)"


def record_run_seconds(*, status: str, seconds: float) -> None:
    """Count one finished run in dealcanvas_run_seconds. Never raises: with Redis unreachable the
    observation is dropped (logged), as a metric is not worth failing a run's bookkeeping."""

    key = keys.run_seconds_metric_key()
    try:
        with get_redis().pipeline(transaction=True) as pipe:
            pipe.hincrby(key, f"{status}:count", 1)
            pipe.hincrbyfloat(key, f"{status}:sum", seconds)
            for bound in RUN_SECONDS_BUCKETS:
                if seconds <= bound:
                    pipe.hincrby(key, f"{status}:le:{bound}", 1)
            pipe.execute()
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        logger.warning("run duration not recorded: redis unavailable (%s)", exc.__class__.__name__)


class RunSecondsCollector:
    """dealcanvas_run_seconds read from Redis at each scrape (one HGETALL); nothing when Redis is down."""

    def describe(self):
        return [HistogramMetricFamily("dealcanvas_run_seconds", _RUN_SECONDS_HELP, labels=["status"])]

    def collect(self):

        family = HistogramMetricFamily("dealcanvas_run_seconds", _RUN_SECONDS_HELP, labels=["status"])
        try:
            raw = get_redis().hgetall(keys.run_seconds_metric_key())
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            logger.warning("dealcanvas_run_seconds not scraped: redis unavailable (%s)", exc.__class__.__name__)
            raw = {}
        fields = {name.decode(): value.decode() for name, value in raw.items()}
        for status in sorted({name.split(":", 1)[0] for name in fields}):
            count = int(fields.get(f"{status}:count", 0))
            buckets = [
                (floatToGoString(bound), int(fields.get(f"{status}:le:{bound}", 0))) for bound in RUN_SECONDS_BUCKETS
            ]
            family.add_metric([status], buckets + [("+Inf", count)], float(fields.get(f"{status}:sum", 0)))
        yield family


metrics = Metrics()


_ROUTE_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)")
_ROUTE_CONVERTER = re.compile(r"<(?:\w+:)?(\w+)>")


def route_label(route: str) -> str:
    """A URL pattern as a metric label: `path()` converters and the routers' regex groups both read as
    `{name}`, anchors dropped (api/canvas/{deal_id}/save, whichever way the route was declared)."""
    route = _ROUTE_GROUP.sub(r"{\1}", route.replace("^", "").replace("$", ""))
    return _ROUTE_CONVERTER.sub(r"{\1}", route)


def _route_of(request: HttpRequest) -> tuple[str, str | None]:
    match = getattr(request, "resolver_match", None)
    if match is None:
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return "unmatched", None
    deal_id = match.kwargs.get("deal_id")
    label = route_label(match.route) if match.route else (match.view_name or "unknown")
    return label, (str(deal_id) if deal_id else None)


@contextlib.contextmanager
def _request_scope(request: HttpRequest) -> Iterator[tuple[str, str, float]]:
    """The request's id (the caller's X-Request-ID when well-formed, else a new one), and the request and deal
    ids in the logs' context while the rest of the stack runs (sync or async); yields (route, request id, start)."""
    incoming = request.headers.get("X-Request-ID", "")
    request_id = incoming if _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
    route, deal_id = _route_of(request)
    request.request_id = request_id
    tokens = (request_id_var.set(request_id), deal_id_var.set(deal_id))
    started = time.perf_counter()
    try:
        yield route, request_id, started
    finally:
        request_id_var.reset(tokens[0])
        deal_id_var.reset(tokens[1])


class RequestContextMiddleware:
    """Request id in and out, request/deal ids for the logs, and the latency histogram.

    Sync and async (Django picks by the handler): under ASGI a sync-only middleware makes Django run the rest
    of the stack through async_to_sync on a request thread, for every request, event streams included."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest):
        if iscoroutinefunction(self):
            return self._acall(request)
        with _request_scope(request) as (route, request_id, started):
            response = self.get_response(request)
        return self._finish(request, response, route, request_id, started)

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        with _request_scope(request) as (route, request_id, started):
            response = await self.get_response(request)
        return self._finish(request, response, route, request_id, started)

    def _finish(self, request: HttpRequest, response: HttpResponse, route: str, request_id: str, started: float):
        status = getattr(response, "status_code", 500)
        # streaming responses are measured to their first byte only; that is what this histogram means
        metrics.request_latency.labels(route, request.method, str(status)).observe(time.perf_counter() - started)
        response["X-Request-ID"] = request_id
        return response


class ContextFilter(logging.Filter):
    """Adds request_id and deal_id to every record, and masks bearer tokens and known secrets."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        record.deal_id = deal_id_var.get()
        message = record.getMessage()
        masked = mask_secrets_in(message)
        for secret in _secrets():
            if secret and secret in masked:
                masked = masked.replace(secret, "[redacted]")
        if masked != message:
            record.msg, record.args = masked, ()
        return True


def _secrets() -> list[str]:
    return [
        *settings.INTERNAL_ENGINE_TOKENS,
        settings.JWT_SIGNING_KEY,
        settings.SECRET_KEY,
        settings.METRICS_TOKEN,
        settings.SECRETS_ENCRYPTION_KEY,
    ]


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
            "deal_id": getattr(record, "deal_id", None),
        }
        if record.exc_info:
            payload["exception"] = mask_secrets_in(self.formatException(record.exc_info))
        return json.dumps(payload, default=str)


@csrf_exempt  # read-only and token-authenticated: a POST is the JSON 405 below, not Django's CSRF page
def metrics_view(request: HttpRequest) -> HttpResponse:
    """GET /metrics: Prometheus text format. METRICS_TOKEN as a bearer token, or a superadmin session."""

    if request.method not in ("GET", "HEAD"):  # read-only, like every other endpoint's undeclared methods
        return HttpResponse(
            json.dumps({"detail": f'Method "{request.method}" not allowed.'}),
            status=405,
            content_type="application/json",
            headers={"Allow": "GET, HEAD"},
        )
    expected = settings.METRICS_TOKEN
    presented = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    allowed = (expected and hmac.compare_digest(presented.encode(), expected.encode())) or (
        getattr(request, "user", None) is not None and request.user.is_authenticated and request.user.is_superuser
    )
    if not allowed:
        return HttpResponse(
            '{"detail": "Metrics need METRICS_TOKEN or a superadmin session."}',
            status=401,
            content_type="application/json",
        )
    return HttpResponse(generate_latest(scrape_registry()), content_type=CONTENT_TYPE_LATEST)


def multiprocess_dir() -> str | None:
    """The directory of prometheus_client's multiprocess mode, when it is on (read at its import)."""

    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir") or None


def scrape_registry() -> CollectorRegistry:
    """What /metrics reports: this process's registry, or in multiprocess mode the sum over every process
    that wrote to the directory, plus the Redis-kept run durations (deployment-wide either way)."""
    path = multiprocess_dir()
    if path is None:
        return metrics.registry

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=path)
    registry.register(RunSecondsCollector())
    return registry
