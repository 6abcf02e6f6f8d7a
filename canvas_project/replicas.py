"""PostgreSQL read replicas: which database a read-only selector reads from.

The rule (docs/architecture.md, "Read replicas"): every read goes to the primary unless a read-only
selector asks for a replica explicitly, with `replica_reads(queryset)` (a lazy list, evaluated later by
the pagination) or `with reads_from_replica():` (a block that evaluates its reads inside). Routing every
read implicitly would break read-your-writes inside a request. Even a selector that asks is served by the
primary when:

- no replica is configured (DATABASE_REPLICA_URLS empty): the helpers answer "default" at once, with no
  query and no Redis call, and no router or middleware is installed;
- there is no request (a Celery task, a management command): a task often reads what it just wrote;
- the request is not a safe method (a write request reads its own writes), or a transaction is open on
  the primary;
- the caller wrote within REPLICA_PIN_SECONDS (read-your-writes): ReplicaPinMiddleware sets the Redis key
  `keys.replica_pin_key(<caller>)` after every unsafe request, and a request that cannot read it (Redis
  down) reads from the primary;
- no replica is up and within REPLICA_MAX_LAG_SECONDS of the primary. Each process probes each replica's
  lag (`replica_states()`) at most once every REPLICA_PROBE_SECONDS, on a connection of its own, and a
  replica whose pooled connection cannot be had when a request picks it is marked down at once.

Objects read from a replica carry its alias (`obj._state.db`); ReplicaRouter sends every write to the
primary whatever the object says, and never migrates a replica (it follows the primary's WAL).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import psycopg
import redis
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.models import Manager, QuerySet
from django.http import HttpRequest, HttpResponse

from canvas_project import keys
from canvas_project.redis_client import get_redis

logger = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
REDIS_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)

# The request being served (set by ReplicaPinMiddleware) and the alias of an open reads_from_replica() block.
_request_var: ContextVar[HttpRequest | None] = ContextVar("replica_request", default=None)
_block_alias: ContextVar[str | None] = ContextVar("replica_block_alias", default=None)

# Lag in seconds: 0 when the replica has replayed all the WAL it received, else the age of the last
# transaction it replayed (the primary committed newer ones it has not applied). Bytes: WAL received but
# not replayed yet. A server not in recovery is no replica (promoted, or a misconfigured URL).
LAG_SQL = """
SELECT pg_is_in_recovery(),
       CASE WHEN NOT pg_is_in_recovery() THEN NULL
            WHEN pg_last_wal_receive_lsn() IS NULL OR pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
            ELSE EXTRACT(EPOCH FROM clock_timestamp() - pg_last_xact_replay_timestamp()) END,
       CASE WHEN pg_is_in_recovery()
            THEN pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()) END,
       CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() END
"""


class ReplicaLagging(Exception):
    """The replica is behind the primary by more than REPLICA_MAX_LAG_SECONDS (or by an unknown time)."""


class NotAReplica(Exception):
    """The server named by a replica URL is not in recovery: a promoted replica or a wrong URL."""


@dataclass(frozen=True)
class ReplicaState:
    """One probe of one replica. `routable`: reads may go there."""

    alias: str
    reachable: bool
    lag_seconds: float | None
    lag_bytes: int | None
    replay_paused: bool | None
    error: str | None
    latency_ms: float
    probed_at: float  # time.monotonic()

    @property
    def routable(self) -> bool:
        return self.error is None

    def as_health_check(self) -> dict:
        return {
            "ok": self.routable,
            "latency_ms": self.latency_ms,
            "error": self.error,
            "lag_seconds": self.lag_seconds,
            "lag_bytes": self.lag_bytes,
            "replay_paused": self.replay_paused,
        }


def replica_aliases() -> list[str]:
    """The DATABASES aliases of the replicas, in DATABASE_REPLICA_URLS order (canvas_project/settings.py)."""
    return [f"replica_{n}" for n in range(1, len(settings.DATABASE_REPLICA_URLS) + 1)]


# --- lag probes (per process, cached REPLICA_PROBE_SECONDS) ------------------------------------------
_states: dict[str, ReplicaState] = {}
_probe_connections: dict[str, psycopg.Connection] = {}
_probe_lock = threading.Lock()
_rotation = itertools.count()


def _probe_connection(alias: str) -> psycopg.Connection:
    conn = _probe_connections.get(alias)
    if conn is not None and not conn.closed and not conn.broken:
        return conn
    url = settings.DATABASE_REPLICA_URLS[int(alias.removeprefix("replica_")) - 1]
    conn = psycopg.connect(
        url,
        autocommit=True,
        connect_timeout=settings.REPLICA_CONNECT_TIMEOUT,
        options="-c statement_timeout=2000",
        application_name="deal-canvas-replica-probe",
    )
    _probe_connections[alias] = conn
    return conn


def _probe(alias: str) -> ReplicaState:
    started = time.perf_counter()
    reachable, lag_seconds, lag_bytes, paused, error = False, None, None, None, None
    try:
        in_recovery, lag, behind, paused = _probe_connection(alias).execute(LAG_SQL).fetchone()
        reachable = True
        lag_seconds = None if lag is None else round(max(float(lag), 0.0), 3)
        lag_bytes = None if behind is None else int(behind)
        if not in_recovery:
            error = NotAReplica.__name__
        elif lag_seconds is None or lag_seconds > settings.REPLICA_MAX_LAG_SECONDS:
            error = ReplicaLagging.__name__
    except psycopg.Error as exc:  # down, unreachable, or the probe timed out: not routable
        error = exc.__class__.__name__
        conn = _probe_connections.pop(alias, None)
        if conn is not None:
            conn.close()
    return ReplicaState(
        alias=alias,
        reachable=reachable,
        lag_seconds=lag_seconds,
        lag_bytes=lag_bytes,
        replay_paused=paused,
        error=error,
        latency_ms=round((time.perf_counter() - started) * 1000, 2),
        probed_at=time.monotonic(),
    )


def replica_states(*, fresh: bool = False) -> list[ReplicaState]:
    """Each replica's last probe, probing again those older than REPLICA_PROBE_SECONDS (all when `fresh`).

    One thread probes at a time; the others meanwhile use the previous probe when there is one.
    """
    aliases = replica_aliases()
    now = time.monotonic()
    stale = [
        a for a in aliases if fresh or a not in _states or now - _states[a].probed_at > settings.REPLICA_PROBE_SECONDS
    ]
    if stale and _probe_lock.acquire(blocking=fresh or any(a not in _states for a in stale)):
        try:
            for alias in stale:
                _states[alias] = _probe(alias)
        finally:
            _probe_lock.release()
    return [_states[a] for a in aliases if a in _states]


def _mark_down(alias: str, error: BaseException) -> None:
    _states[alias] = ReplicaState(
        alias=alias,
        reachable=False,
        lag_seconds=None,
        lag_bytes=None,
        replay_paused=None,
        error=error.__class__.__name__,
        latency_ms=0.0,
        probed_at=time.monotonic(),
    )


def replica_failed(alias: str, error: BaseException) -> None:
    """A replica failed a read routed to it (e.g. its Store pool had no connection to give): no reads go
    there until a probe finds it fit again, and the rest of this request reads the primary."""
    logger.warning("replica %s unusable (%s): reading from the primary", alias, error.__class__.__name__)
    _mark_down(alias, error)
    request = _request_var.get()
    if request is not None and getattr(request, "_replica_alias", None) == alias:
        request._replica_alias = DEFAULT_DB_ALIAS


# --- read-your-writes ----------------------------------------------------------------------------
def pin_subject(user) -> str | None:
    """Whose writes pin reads to the primary: a user's id, `engine` for the internal engine token."""
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    if getattr(user, "is_engine", False):
        return "engine"
    return None if user.pk is None else str(user.pk)


def _pinned(request: HttpRequest) -> bool:
    subject = pin_subject(getattr(request, "user", None))
    if subject is None:
        return False
    try:
        return bool(get_redis().exists(keys.replica_pin_key(subject)))
    except REDIS_ERRORS:
        return True  # cannot tell whether the caller just wrote: the primary is always right


class ReplicaPinMiddleware:
    """Makes the request visible to the replica helpers, and pins its caller to the primary for
    REPLICA_PIN_SECONDS after an unsafe request (installed only when replicas are configured)."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = _request_var.set(request)
        try:
            response = self.get_response(request)
        finally:
            _request_var.reset(token)
        if request.method not in SAFE_METHODS:
            # request.user is the caller DRF authenticated (its Request writes the user back here)
            subject = pin_subject(getattr(request, "user", None))
            if subject is not None:
                try:
                    get_redis().set(keys.replica_pin_key(subject), b"1", ex=settings.REPLICA_PIN_SECONDS)
                except REDIS_ERRORS:
                    # the caller's next reads find Redis down too, and so read from the primary
                    logger.warning("replica pin of %s not recorded: Redis unavailable", subject)
        return response


# --- choosing the alias --------------------------------------------------------------------------
def _choose(request: HttpRequest) -> str:
    if request.method not in SAFE_METHODS or _pinned(request):
        return DEFAULT_DB_ALIAS
    routable = [state.alias for state in replica_states() if state.routable]
    if not routable:
        return DEFAULT_DB_ALIAS
    start = next(_rotation)
    for offset in range(len(routable)):
        alias = routable[(start + offset) % len(routable)]
        try:
            # take this request's connection now: a replica that died since its last probe is found here,
            # not in the middle of the selector's query
            connections[alias].ensure_connection()
            return alias
        except DatabaseError as exc:
            logger.warning("replica %s unusable (%s): reading from the primary", alias, exc.__class__.__name__)
            _mark_down(alias, exc)
            connections[alias].close()
    return DEFAULT_DB_ALIAS


def read_alias() -> str:
    """The database a read-only selector of this request reads from: a replica or "default"."""
    if not settings.DATABASE_REPLICA_URLS:
        return DEFAULT_DB_ALIAS
    request = _request_var.get()
    if request is None or connections[DEFAULT_DB_ALIAS].in_atomic_block:
        return DEFAULT_DB_ALIAS
    chosen = getattr(request, "_replica_alias", None)
    if chosen is None:
        chosen = request._replica_alias = _choose(request)
    return chosen


def replica_reads(queryset: QuerySet | Manager) -> QuerySet:
    """The queryset (or the manager's) bound to read_alias(); unbound when that is the primary."""
    queryset = queryset.all()
    alias = read_alias()
    return queryset if alias == DEFAULT_DB_ALIAS else queryset.using(alias)


@contextmanager
def reads_from_replica() -> Iterator[str]:
    """Reads evaluated inside the block go to read_alias(); yields that alias."""
    alias = read_alias()
    if alias == DEFAULT_DB_ALIAS:
        yield alias
        return
    token = _block_alias.set(alias)
    try:
        yield alias
    finally:
        _block_alias.reset(token)


class ReplicaRouter:
    """DATABASE_ROUTERS entry when replicas are configured: replicas only where a selector asked."""

    def db_for_read(self, model, **hints) -> str | None:
        return _block_alias.get()  # None: Django's choice (the instance's database, else the primary)

    def db_for_write(self, model, **hints) -> str:
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints) -> bool:
        return True  # the replicas hold the primary's rows

    def allow_migrate(self, db, app_label, model_name=None, **hints) -> bool:
        return db == DEFAULT_DB_ALIAS
