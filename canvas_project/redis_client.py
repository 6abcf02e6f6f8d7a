"""The one Redis client factory of the service: a single node (django-redis's pool) or a Redis Cluster.

With `REDIS_CLUSTER=true`, `REDIS_URL` names any node of a cluster and every producer gets a
`ServiceRedisCluster` (redis-py's RedisCluster: it reads the slot map, sends each command to the node
that owns its slot, follows MOVED/ASK and refreshes the map after a failover). The SSE hub gets the
asyncio twin from `async_cluster_client()`. Keys come from canvas_project.keys: every per-deal key carries
the deal as a hash tag and every Lua script's keys share one slot (LuaScript refuses others, on a single
node too, so the single-node suite already keeps to the cluster's rule).

A cluster that cannot serve a slot for a while (a primary died and its replica is not promoted yet:
CLUSTERDOWN, TRYAGAIN, a slot without a node) is "Redis is unavailable" for the callers: those errors
leave this module as `ClusterUnavailableError`, a redis ConnectionError, so every path that already
degrades or answers 503 when Redis is down does the same during a failover (never a 500). A cross-slot
command or a redirection the client did not follow is a bug, not an outage: it is raised unchanged and
recorded in `cluster_faults` (the cluster test suite fails on any).
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Sequence
from urllib.parse import urlsplit

import redis
import redis.asyncio as aioredis
import redis.asyncio.cluster as async_cluster
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django_redis import get_redis_connection
from django_redis.client import DefaultClient
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialWithJitterBackoff
from redis.cluster import ClusterPipeline, RedisCluster
from redis.crc import key_slot
from redis.exceptions import (
    AskError,
    ClusterCrossSlotError,
    ClusterError,
    RedisClusterException,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.retry import Retry


class ClusterUnavailableError(redis.exceptions.ConnectionError):
    """The cluster cannot serve the command right now (failover in progress, slot not covered)."""


# Errors that mean "the cluster is switching", raised as ClusterUnavailableError. ClusterError covers
# CLUSTERDOWN, MASTERDOWN and redis-py's "TTL exhausted" after too many redirections during a reshard.
_UNAVAILABLE = (ClusterError, TryAgainError, SlotNotCoveredError)
# Programming errors a cluster reveals: keys of one command in several slots, a redirection leaking out.
_FAULTS = (ClusterCrossSlotError, AskError, RedisClusterException)

# (command, error) of every cross-slot error or leaked redirection seen by this process.
cluster_faults: list[tuple[str, str]] = []
_faults_lock = threading.Lock()


def _translate(exc: BaseException, command: object) -> BaseException | None:
    """The exception to raise instead of `exc`, or None to raise it unchanged."""
    if isinstance(exc, _UNAVAILABLE):
        return ClusterUnavailableError(f"Redis Cluster unavailable: {exc}")
    if isinstance(exc, _FAULTS) and not isinstance(exc, redis.exceptions.ConnectionError):
        if "cannot be connected" in str(exc) or "No targets" in str(exc):
            return ClusterUnavailableError(f"Redis Cluster unavailable: {exc}")
        with _faults_lock:
            cluster_faults.append((str(command), f"{exc.__class__.__name__}: {exc}"))
    return None


class ServiceClusterPipeline(ClusterPipeline):
    def execute(self, raise_on_error: bool = True):
        try:
            return super().execute(raise_on_error=raise_on_error)
        except Exception as exc:
            replacement = _translate(exc, "pipeline")
            if replacement is not None:
                raise replacement from exc
            raise


class ServiceRedisCluster(RedisCluster):
    """RedisCluster whose failover errors read as ConnectionError (see the module's docstring)."""

    def execute_command(self, *args, **kwargs):
        try:
            return super().execute_command(*args, **kwargs)
        except Exception as exc:
            replacement = _translate(exc, args[0] if args else "?")
            if replacement is not None:
                raise replacement from exc
            raise

    def pipeline(self, transaction=None, shard_hint=None):
        pipe = super().pipeline(transaction=transaction, shard_hint=shard_hint)
        pipe.__class__ = ServiceClusterPipeline  # same layout; only execute() differs
        return pipe


class KeepsCancellation:
    """An asyncio client whose commands never lose a cancellation of the task awaiting them.

    With a socket timeout, redis-py writes each command under `asyncio.wait_for`, which on Python 3.11 returns
    the write's result instead of raising when the task is cancelled just as the write completes (CPython
    gh-86296, fixed in 3.12 by building wait_for on asyncio.timeout). The command then goes on as if nothing
    happened: an SSE stream reader cancelled at the start of its XREAD blocked on for BLOCK_MS and read on for
    good (issue 15: on the cluster, a reader blocked 20 s after its streams had closed), a stream whose client
    left kept its subscription. A cancel that the task's count of requests (Task.cancelling) shows and no
    CancelledError delivered is raised here once the command has returned (its reply is read, so the
    connection is clean). On 3.12 wait_for delivers it itself and this never fires."""

    async def execute_command(self, *args, **kwargs):
        task = asyncio.current_task()
        requested = task.cancelling() if task is not None else 0
        result = await super().execute_command(*args, **kwargs)
        if task is not None and task.cancelling() > requested:
            raise asyncio.CancelledError(f"cancelled during Redis {args[0] if args else 'command'}")
        return result


class AsyncServiceRedis(KeepsCancellation, aioredis.Redis):
    """The asyncio single-node client of the SSE hub (redis.asyncio.Redis keeping cancellations)."""


class AsyncServiceRedisCluster(KeepsCancellation, async_cluster.RedisCluster):
    """The asyncio twin of ServiceRedisCluster (the SSE hub's client), keeping cancellations."""

    async def execute_command(self, *args, **kwargs):
        try:
            return await super().execute_command(*args, **kwargs)
        except Exception as exc:
            replacement = _translate(exc, args[0] if args else "?")
            if replacement is not None:
                raise replacement from exc
            raise


CLUSTER_RETRIES = 3

_cluster_clients: dict[str, ServiceRedisCluster] = {}
_cluster_lock = threading.Lock()


def _cluster_kwargs(*, socket_timeout: float, asynchronous: bool = False) -> dict:
    # Reads go to primaries only (redis-py's default): a replica lags its primary, and a session version
    # read back from one could go backwards. A command that meets a dead node re-reads the slot map and
    # tries again CLUSTER_RETRIES times (redis-py's default, 10, holds a request for 10 connect timeouts
    # when a node is unreachable); past that it is a 503 and the client's next request tries again.
    return {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": settings.REDIS_SOCKET_TIMEOUT,
        "retry": (AsyncRetry if asynchronous else Retry)(
            ExponentialWithJitterBackoff(base=0.05, cap=0.5), CLUSTER_RETRIES
        ),
    }


def cluster_client(url: str | None = None) -> ServiceRedisCluster:
    """The process-wide cluster client of `url` (REDIS_URL by default). Thread-safe; built on first use.

    Raises ClusterUnavailableError when no node of the cluster answers.
    """
    url = url or settings.REDIS_URL
    client = _cluster_clients.get(url)
    if client is not None:
        return client
    with _cluster_lock:
        client = _cluster_clients.get(url)
        if client is None:
            try:
                client = ServiceRedisCluster.from_url(
                    _node_url(url), **_cluster_kwargs(socket_timeout=settings.REDIS_SOCKET_TIMEOUT)
                )
            except (RedisClusterException, redis.exceptions.RedisError) as exc:
                raise ClusterUnavailableError(f"Redis Cluster unavailable: {exc}") from exc
            _cluster_clients[url] = client
    return client


def async_cluster_client(url: str | None = None, *, socket_timeout: float | None = None):
    """A new asyncio cluster client (the SSE hub keeps one per event loop). Connects on first command."""
    return AsyncServiceRedisCluster.from_url(
        _node_url(url or settings.REDIS_URL),
        **_cluster_kwargs(socket_timeout=socket_timeout or settings.REDIS_SOCKET_TIMEOUT, asynchronous=True),
    )


def _node_url(url: str) -> str:
    """A cluster has database 0 only: drop a `/N` path (REDIS_URL may name one for the single-node case)."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise redis.exceptions.ConnectionError(
            f"REDIS_CLUSTER needs a redis:// or rediss:// URL, got {parts.scheme}://"
        )
    return parts._replace(path="").geturl()


def close_cluster_clients() -> None:
    """Close every cluster client of this process (tests switching clusters; worker shutdown)."""
    with _cluster_lock:
        for client in _cluster_clients.values():
            client.close()
        _cluster_clients.clear()


def get_redis() -> redis.Redis | ServiceRedisCluster:
    """The shared client. Keys written through it carry no cache prefix: canvas_project.keys names them.

    A RedisCluster when REDIS_CLUSTER is on; it offers the same commands, routed by slot.
    """
    if settings.REDIS_CLUSTER:
        return cluster_client()
    return get_redis_connection("default")


def is_cluster(client) -> bool:
    return isinstance(client, RedisCluster)


class ClusterCacheClient(DefaultClient):
    """django-redis client class of the `default` cache when REDIS_CLUSTER is on: the same cluster client
    as get_redis(); multi-key reads and deletes are split by slot."""

    def connect(self, index: int = 0):
        return cluster_client()

    def get_many(self, keys, version=None, client=None):
        client = client or self.get_client(write=False)
        names = [self.make_key(key, version=version) for key in keys]
        found = {}
        for key, value in zip(keys, client.mget_nonatomic(names), strict=True):
            if value is not None:
                found[key] = self.decode(value)
        return found


class LuaScript:
    """A Lua script run by its SHA1 (EVALSHA), so the source crosses the wire and is hashed by Redis once.

    A server that does not know it yet (fresh, restarted, SCRIPT FLUSH) answers NOSCRIPT; the script is then
    run with EVAL, which also caches it. Same replies and errors as EVAL.

    Every key of one call must hash to one cluster slot (a cluster refuses anything else with CROSSSLOT):
    checked on every call, on a single node too, so a script that would break on a cluster fails its tests
    everywhere. Raises ValueError then.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def __call__(self, keys: Sequence, args: Sequence = (), *, client: redis.Redis | None = None):
        if len(keys) > 1 and len({key_slot(k.encode() if isinstance(k, str) else k) for k in keys}) > 1:
            raise ValueError(f"the keys of one Lua script must share a cluster slot (hash tag): {list(keys)}")
        client = client if client is not None else get_redis()
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            return client.eval(self.source, len(keys), *keys, *args)


def refuse_cluster_broker(broker_url: str) -> None:
    """Refuse a Redis broker that is a node of a Redis Cluster (any node of any cluster: kombu cannot use
    one). Asked at worker start, when REDIS_URL may name another node of the broker's cluster.

    Raises django's ImproperlyConfigured with what to do instead.
    """
    if not urlsplit(broker_url).scheme.startswith("redis"):
        return
    try:
        enabled = redis.Redis.from_url(broker_url, socket_connect_timeout=settings.REDIS_SOCKET_TIMEOUT).info("cluster")
    except redis.exceptions.RedisError:
        return  # unreachable: Celery's own connection retries say so
    if enabled.get("cluster_enabled"):
        raise ImproperlyConfigured(
            "CELERY_BROKER_URL names a Redis Cluster node: Celery cannot use a Redis Cluster as its broker; "
            "use RabbitMQ (amqp://...) or a separate non-cluster Redis."
        )


def pipeline_unlink(pipe, *names: str) -> None:
    """Queue one UNLINK of `names` in a pipeline; its reply is how many existed. The keys must share one
    slot (one deal's). redis-py's cluster pipeline refuses a multi-key `.unlink()` outright; the command
    itself is legal on a cluster when every key is in one slot."""
    pipe.execute_command("UNLINK", *names)
