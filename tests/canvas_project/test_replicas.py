"""Read replicas when none is configured (the whole suite but tests/faults/test_postgres_replica.py, which runs
the service against a real streaming replica): no router, no middleware, and the replica helpers answer the
primary without a query or a Redis call. Plus how DATABASE_REPLICA_URLS becomes database aliases."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from types import SimpleNamespace

import pytest
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection
from django.http import HttpResponse
from django.test import RequestFactory, override_settings
from django.test.utils import CaptureQueriesContext

from canvas_project import keys, replicas
from canvas_project.api.engine_auth import EnginePrincipal
from canvas_project.redis_client import get_redis
from deals.models import Deal
from tests import factories

PROBE = (
    "import json, django; django.setup(); from django.conf import settings; "
    "print(json.dumps({'aliases': sorted(settings.DATABASES), 'routers': settings.DATABASE_ROUTERS, "
    "'middleware': [m for m in settings.MIDDLEWARE if 'replicas' in m], "
    "'replica_2': {k: settings.DATABASES.get('replica_2', {}).get(k) for k in ('HOST', 'PORT', 'NAME')}, "
    "'pool_timeout': settings.DATABASES.get('replica_1', {}).get('OPTIONS', {}).get('pool', {}).get('timeout')}))"
)


def _settings_with(env_extra: dict) -> dict:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "canvas_project.settings", **env_extra}
    result = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_without_replicas_there_is_no_router_and_no_pin_middleware():
    assert settings.DATABASE_REPLICA_URLS == []
    assert settings.DATABASE_ROUTERS == []
    assert not any("replicas" in name for name in settings.MIDDLEWARE)
    assert list(settings.DATABASES) == [DEFAULT_DB_ALIAS]


def test_each_replica_url_becomes_an_alias_with_the_router_and_the_middleware():
    found = _settings_with(
        {
            "DATABASE_REPLICA_URLS": "postgresql://u@10.0.0.2:5433/dc, postgresql://u@10.0.0.3:5434/dc",
            "REPLICA_CONNECT_TIMEOUT": "1",
        }
    )
    assert found["aliases"] == ["default", "replica_1", "replica_2"]
    assert found["routers"] == ["canvas_project.replicas.ReplicaRouter"]
    assert found["middleware"] == ["canvas_project.replicas.ReplicaPinMiddleware"]
    assert found["replica_2"] == {"HOST": "10.0.0.3", "PORT": 5434, "NAME": "dc"}
    assert found["pool_timeout"] == 1.0


def test_without_replicas_the_helpers_answer_the_primary_with_no_query_and_no_redis(db):
    get_redis().set(keys.replica_pin_key("someone"), b"1")
    with CaptureQueriesContext(connection) as queries:
        assert replicas.read_alias() == DEFAULT_DB_ALIAS
        with replicas.reads_from_replica() as alias:
            assert alias == DEFAULT_DB_ALIAS
        routed = replicas.replica_reads(Deal.objects)
    assert len(queries) == 0
    assert routed.db == DEFAULT_DB_ALIAS and routed._db is None  # not bound: the usual routing applies


def test_the_dashboard_makes_no_extra_query_without_replicas(cast, django_assert_max_num_queries):
    # the dashboard's selector asks for a replica; with none configured that costs nothing
    with django_assert_max_num_queries(4):
        response = cast.client("viewer").get("/api/dashboard/memos")
    assert response.status_code == 200 and len(response.json()["results"]) == 1


def test_pins_are_per_caller_and_not_per_deal(db):
    user = factories.make_user()
    assert replicas.pin_subject(user) == str(user.pk)
    assert replicas.pin_subject(EnginePrincipal()) == "engine"
    assert replicas.pin_subject(None) is None
    key = keys.replica_pin_key(str(user.pk))
    assert key == f"replica:pin:{user.pk}" and keys.classify(key) is None  # outside every purge family


def test_the_router_writes_to_the_primary_and_migrates_only_it():
    router = replicas.ReplicaRouter()
    assert router.db_for_write(Deal) == DEFAULT_DB_ALIAS
    assert router.db_for_read(Deal) is None
    assert router.allow_migrate(DEFAULT_DB_ALIAS, "deals") is True
    assert router.allow_migrate("replica_1", "deals") is False


@pytest.fixture
def one_replica_configured():
    """A replica URL that nothing listens on: any attempt to probe or use it would show as an error."""
    with override_settings(DATABASE_REPLICA_URLS=["postgresql://postgres@127.0.0.1:9/none"]):
        yield
    replicas._states.clear()


def _caller() -> SimpleNamespace:
    """An authenticated caller; no database row (these tests run outside any transaction, unlike `db`'s)."""
    return SimpleNamespace(is_authenticated=True, is_engine=False, pk=uuid.uuid4())


def _serving(method: str, user) -> object:
    request = getattr(RequestFactory(), method.lower())("/api/dashboard/memos")
    request.user = user
    return replicas._request_var.set(request)


def test_outside_a_request_reads_stay_on_the_primary(one_replica_configured):
    assert replicas.read_alias() == DEFAULT_DB_ALIAS
    assert replicas._states == {}  # decided without probing the replica


def test_inside_a_transaction_reads_stay_on_the_primary(one_replica_configured, db):
    # pytest-django runs this test inside a transaction on the primary: what it wrote is only there
    assert connection.in_atomic_block
    token = _serving("GET", _caller())
    try:
        assert replicas.read_alias() == DEFAULT_DB_ALIAS
    finally:
        replicas._request_var.reset(token)
    assert replicas._states == {}


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_a_write_request_reads_its_own_writes_on_the_primary(one_replica_configured, method):
    token = _serving(method, _caller())
    try:
        assert replicas.read_alias() == DEFAULT_DB_ALIAS
    finally:
        replicas._request_var.reset(token)
    assert replicas._states == {}


def test_a_caller_who_wrote_recently_reads_from_the_primary(one_replica_configured):
    user = _caller()
    get_redis().set(keys.replica_pin_key(user.pk), b"1", ex=10)
    token = _serving("GET", user)
    try:
        assert replicas.read_alias() == DEFAULT_DB_ALIAS
    finally:
        replicas._request_var.reset(token)
    assert replicas._states == {}


def test_a_replica_that_cannot_be_reached_is_not_used(one_replica_configured):
    token = _serving("GET", _caller())
    try:
        assert replicas.read_alias() == DEFAULT_DB_ALIAS
    finally:
        replicas._request_var.reset(token)
    (state,) = replicas._states.values()
    assert state.alias == "replica_1" and not state.routable and not state.reachable
    assert state.as_health_check()["ok"] is False and state.error == "OperationalError"


def test_the_pin_middleware_pins_the_caller_of_a_write(one_replica_configured):
    user = _caller()
    middleware = replicas.ReplicaPinMiddleware(lambda request: HttpResponse(status=201))
    for method, pinned in (("get", False), ("post", True)):
        request = getattr(RequestFactory(), method)("/api/anything")
        request.user = user
        middleware(request)
        assert bool(get_redis().exists(keys.replica_pin_key(user.pk))) is pinned
    ttl = get_redis().ttl(keys.replica_pin_key(user.pk))
    assert 0 < ttl <= settings.REPLICA_PIN_SECONDS
