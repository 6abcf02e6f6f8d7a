"""Fixtures: the standing cast of users, per-test Redis isolation, and role-matrix helpers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django.conf import settings

from canvas_project.redis_client import get_redis
from deals.models import Deal, DealRole, Org, User
from tests import factories
from tests.brokers import BROKERS, delete_queue, purge_queue, rabbitmq_unreachable, use_broker

ROLES = ("anonymous", "outsider", "other_org", "superadmin", "viewer", "commenter", "editor", "owner")
DEAL_ROLES = ("viewer", "commenter", "editor", "owner")


@pytest.fixture(scope="session", autouse=True)
def _close_langgraph_pool(django_db_setup):
    """The Store's pool holds connections to the test database; close it before the database is dropped."""
    yield
    from canvas_project.store import close_pool

    close_pool()


@pytest.fixture(autouse=True)
def _redis_isolation():
    """Each test starts and ends with an empty Redis database of its own worker."""
    assert f"db={settings.REDIS_TEST_DB}" in settings.REDIS_URL or settings.REDIS_URL.endswith(
        f"/{settings.REDIS_TEST_DB}"
    ), "tests must never touch a non-test Redis database"
    client = get_redis()
    client.flushdb()
    yield
    try:
        get_redis().flushdb()
    except Exception:  # a fault test may leave Redis pointed at a dead server; the next test flushes
        pass


@pytest.fixture(scope="session")
def redis_cluster():
    """A throwaway Redis Cluster (3 primaries, 3 replicas) for the session, started on first use."""
    from canvas_project.redis_client import close_cluster_clients
    from tests.servers import ThrowawayRedisCluster

    cluster = ThrowawayRedisCluster(primaries=3, replicas_per_primary=1).start()
    yield cluster
    close_cluster_clients()
    cluster.stop()


@pytest.fixture
def on_cluster(redis_cluster, settings, monkeypatch):
    """The whole Redis layer of this test on the cluster: REDIS_CLUSTER on, REDIS_URL naming one node (in
    this process's settings and in the environment of service processes the test starts; their Celery
    broker stays the test's single-node Redis). Fails the test when a cross-slot command or a redirection
    leaked out of the cluster client (canvas_project.redis_client.cluster_faults)."""
    from canvas_project import redis_client

    redis_cluster.flush()
    settings.REDIS_CLUSTER = True
    settings.REDIS_URL = redis_cluster.url
    monkeypatch.setenv("REDIS_CLUSTER", "true")
    monkeypatch.setenv("CELERY_BROKER_URL", settings.CELERY_BROKER_URL)
    seen = len(redis_client.cluster_faults)
    yield redis_cluster
    leaked = redis_client.cluster_faults[seen:]
    redis_cluster.flush()
    assert not leaked, f"cross-slot commands or redirections leaked out on the cluster: {leaked}"


@dataclass
class Cast:
    org: Org
    other_org: Org
    deal: Deal
    users: dict[str, User]

    def client(self, role: str):
        if role == "anonymous":
            return factories.client_for(None)
        return factories.client_for(self.users[role])


@pytest.fixture
def cast(db) -> Cast:
    """Org A with an owner, editor, commenter and viewer on a private deal; an org member with no
    grant; an outsider in no org; a user of another org; a superadmin in no org."""
    users = {name: factories.make_user(name) for name in (*DEAL_ROLES, "member", "outsider", "other_org")}
    users["superadmin"] = factories.make_user("superadmin", superuser=True)
    org = factories.make_org("Org A", admin=users["owner"])
    for name in ("editor", "commenter", "viewer", "member"):
        factories.add_member(org, users[name])
    other_org = factories.make_org("Org B", admin=users["other_org"])
    deal = factories.make_deal(org, owner=users["owner"], name="Riverside Apartments")
    for role in ("editor", "commenter", "viewer"):
        factories.grant(deal, users[role], role)
    return Cast(org=org, other_org=other_org, deal=deal, users=users)


def expected_status(role: str, *, minimum: str, ok: int) -> int:
    """What a deal endpoint answers each member of the cast, given its minimum role."""
    if role == "anonymous":
        return 401
    if role in ("outsider", "other_org", "superadmin"):
        return 404
    return ok if DealRole.values.index(role) <= DealRole.values.index(minimum) else 403


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "both_brokers: run this worker test once on each Celery broker (redis, rabbitmq); see `celery_broker`",
    )


def pytest_generate_tests(metafunc):
    if metafunc.definition.get_closest_marker("both_brokers") and "celery_broker" in metafunc.fixturenames:
        metafunc.parametrize("celery_broker", BROKERS, indirect=True)


@pytest.fixture(scope="session")
def rabbitmq_broker_url():
    """The RabbitMQ of the rabbitmq runs, checked once per session; this process's queue is deleted at the end.
    Unreachable: skip with the reason, or fail when CELERY_TEST_RABBITMQ_REQUIRED is set (CI)."""
    url = settings.CELERY_TEST_RABBITMQ_URL
    reason = rabbitmq_unreachable(url)
    if reason and settings.CELERY_TEST_RABBITMQ_REQUIRED:
        pytest.fail(f"{reason}; CELERY_TEST_RABBITMQ_REQUIRED is set, so the rabbitmq runs may not be skipped")
    if reason:
        pytest.skip(f"{reason}: the worker tests' rabbitmq runs are skipped (CI requires them)")
    yield url
    delete_queue(url, settings.CELERY_TASK_DEFAULT_QUEUE)


@pytest.fixture
def celery_broker(request) -> Iterator[str]:
    """The broker of this test's Celery app and worker: redis (the test Redis database), unless a
    `both_brokers` test runs it with rabbitmq too. The rabbitmq run starts on an empty queue."""
    from canvas_project.celery import app

    name = getattr(request, "param", "redis")
    if name == "redis":
        yield name
        return
    url = request.getfixturevalue("rabbitmq_broker_url")
    purge_queue(url, settings.CELERY_TASK_DEFAULT_QUEUE)
    use_broker(app, url)
    try:
        yield name
    finally:
        use_broker(app, settings.CELERY_BROKER_URL)


ACK_POLL_SECONDS = 0.05


def _noop() -> None:
    pass


@pytest.fixture
def celery_worker(transactional_db, celery_broker):
    """A real Celery worker (Celery's own test worker, in a thread of this process) consuming this test
    process's queue on `celery_broker`. Transactional: the worker's thread has its own database connection."""
    from celery.contrib.testing.worker import start_worker
    from celery.worker import state

    from canvas_project.celery import app

    app.conf.task_always_eager = False
    ticks: list = []
    with start_worker(
        app, pool="solo", concurrency=1, perform_ping_check=False, shutdown_timeout=30, loglevel="WARNING"
    ) as worker:
        if celery_broker == "rabbitmq" and worker.hub is not None:
            # kombu's event loop runs a callback scheduled by a ready callback only after its next poll, which
            # sleeps until the next timer (at most 10 s). The AMQP reader is such a callback: a task it hands
            # to the solo pool schedules its late ack that way, and with prefetch 1 the broker sends nothing
            # more until the ack arrives, so tasks would start 10 s apart. A short timer bounds that wait.
            # (Scheduled from the loop's own thread: the timer is not thread-safe.)
            worker.hub.call_soon(lambda: ticks.append(worker.hub.call_repeatedly(ACK_POLL_SECONDS, _noop)))
        yield worker
        # Stopping: the worker's loop sees the flag only when it wakes. Redis's transport wakes it every
        # second; an idle AMQP connection only at the timer's 10 s ceiling, so wake it now.
        state.should_terminate = 0
        if worker.hub is not None:
            worker.hub.call_soon(lambda: None)
    for tick in ticks:  # the hub outlives its worker (kombu keeps one per process): leave no timer behind
        tick.cancel()
