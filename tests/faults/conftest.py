"""Fault tests: the service as a real process (uvicorn) against throwaway servers this test may kill.

Every check polls with a deadline instead of sleeping for a guessed time: a dependency that comes
back is noticed as soon as the service sees it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
from django.conf import settings
from django.test import override_settings

from canvas_project.celery import app as celery_app
from deals.tokens import token_pair_for_user
from tests.brokers import use_broker
from tests.servers import ServiceProcess, ThrowawayRabbitMQ, ThrowawayRedis, rabbitmq_scripts, service_env

# What a request may answer while a dependency is down; a 500 is never among them.
DEGRADED_OK = {200, 201, 202, 204, 503}
# Lines of a service log that mean a crash: a 500, an exception escaping the ASGI app or a task.
CRASH_MARKERS = ("Internal Server Error", "Exception in ASGI application", "exception was never retrieved")


@dataclass
class Api:
    """HTTP calls to the service process as one member of the cast."""

    base: str
    token: str | None

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return httpx.request(method, self.base + path, headers=headers, timeout=30, **kwargs)

    def get(self, path: str, **kwargs) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs) -> httpx.Response:
        return self.request("PUT", path, **kwargs)


def api_as(service: ServiceProcess, cast, role: str) -> Api:
    return Api(service.url, token_pair_for_user(user=cast.users[role])["access"])


def wait_for(check: Callable[[], object], *, timeout: float, what: str, interval: float = 0.1):
    """Call `check` until it returns something truthy; its last value. Fails the test at the deadline."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout} s (last: {last!r})")


def assert_unavailable(response: httpx.Response, dependency: str) -> None:
    """A 503 in the documented shape, {"detail": sentence}, naming the dependency that is down."""
    assert response.status_code == 503, (response.status_code, response.text[:500])
    detail = response.json()["detail"]
    assert isinstance(detail, str) and dependency.lower() in detail.lower(), detail


@pytest.fixture
def own_redis() -> Iterator[ThrowawayRedis]:
    """A Redis of this test's own, which it may kill and restart; this process uses it too."""
    server = ThrowawayRedis().start()
    caches = {"default": {**settings.CACHES["default"], "LOCATION": server.url}}
    try:
        with override_settings(CACHES=caches, REDIS_URL=server.url):
            yield server
    finally:
        server.stop()


@pytest.fixture
def own_rabbitmq() -> Iterator[ThrowawayRabbitMQ]:
    """A RabbitMQ node of this test's own (never the machine's :5672, which other test processes use), started,
    with this process's Celery app on it (and so service_env()'s children); the test may kill and restart it.
    RabbitMQ not installed: skipped with the reason, or failed when CELERY_TEST_RABBITMQ_REQUIRED is set (CI)."""
    if rabbitmq_scripts() is None:
        reason = "no rabbitmq-server on PATH or in /usr/sbin"
        if settings.CELERY_TEST_RABBITMQ_REQUIRED:
            pytest.fail(f"{reason}; CELERY_TEST_RABBITMQ_REQUIRED is set, so the RabbitMQ fault tests may not skip")
        pytest.skip(f"{reason}: the RabbitMQ fault tests are skipped (CI requires them)")
    node = ThrowawayRabbitMQ()
    try:
        node.start()
        use_broker(celery_app, node.url)
        yield node
    finally:
        use_broker(celery_app, settings.CELERY_BROKER_URL)
        node.destroy()


class RunningService:
    """A ServiceProcess whose log (stderr) is read as it is written: unread, a full pipe would block it."""

    def __init__(self, env: dict[str, str]) -> None:
        self.server = ServiceProcess({"LOG_LEVEL": "WARNING", **env}).start()
        self.url = self.server.url
        self.log: list[str] = []
        self._reader = threading.Thread(target=self._drain, args=(self.server.process.stderr,), daemon=True)
        self._reader.start()

    def _drain(self, pipe) -> None:
        for line in iter(pipe.readline, b""):
            self.log.append(line.decode(errors="replace"))

    def crashes(self) -> list[str]:
        return [line for line in self.log if any(marker in line for marker in CRASH_MARKERS)]

    def stop(self) -> None:
        self.server.stop()
        self._reader.join(5)


@pytest.fixture
def start_service() -> Iterator[Callable[..., RunningService]]:
    """start_service(VAR=value, ...): the service process on the test database, with env overrides."""
    started: list[RunningService] = []

    def start(**env: str) -> RunningService:
        service = RunningService(service_env(**env))
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()
