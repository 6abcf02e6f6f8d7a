"""Celery worker heartbeats, read by GET /api/health.

Every worker process runs a thread (the WorkerHeartbeat bootstep, added in canvas_project.celery) that
records its hostname in one sorted set every WORKER_HEARTBEAT_SECONDS, scored by Redis's own clock
(TIME inside the script: the web and worker machines' clocks need not agree). The health check counts
the members younger than WORKER_HEARTBEAT_MAX_AGE in one round trip, instead of broadcasting a ping to
the workers and waiting out its timeout. A worker that stops cleanly removes itself; a killed one ages
out.

A thread rather than the worker's timer: the solo pool runs tasks on the thread of the timer's loop,
so a long task (a drafting run) would silence the beat of a worker that is alive and busy.
"""

from __future__ import annotations

import logging
import threading

from celery import bootsteps
from django.conf import settings

from canvas_project import keys
from canvas_project.redis_client import get_redis

logger = logging.getLogger(__name__)

# KEYS[1] the set; ARGV[1] hostname, ARGV[2] how long a beat is kept (ms)
_RECORD = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return now
"""
# KEYS[1] the set; ARGV[1] the largest age of a live beat (ms)
_COUNT_LIVE = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
return redis.call('ZCOUNT', KEYS[1], now - tonumber(ARGV[1]), '+inf')
"""


def heartbeat_record(*, hostname: str) -> None:
    """Record that the worker `hostname` is alive now. Raises redis errors."""

    get_redis().eval(_RECORD, 1, keys.worker_heartbeats_key(), hostname, keys.WORKER_HEARTBEATS_TTL * 1000)


def heartbeat_remove(*, hostname: str) -> None:
    """Forget the worker `hostname` (it is stopping). Raises redis errors."""

    get_redis().zrem(keys.worker_heartbeats_key(), hostname)


def live_worker_count() -> int:
    """How many workers sent a heartbeat within WORKER_HEARTBEAT_MAX_AGE seconds. Raises redis errors."""

    max_age_ms = int(settings.WORKER_HEARTBEAT_MAX_AGE * 1000)
    return int(get_redis().eval(_COUNT_LIVE, 1, keys.worker_heartbeats_key(), max_age_ms))


class WorkerHeartbeat(bootsteps.StartStopStep):
    """Worker bootstep: a thread that records the worker's heartbeat until the worker stops."""

    label = "Deal Canvas heartbeat"

    def __init__(self, worker, **kwargs) -> None:
        super().__init__(worker, **kwargs)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._hostname = ""

    def start(self, worker) -> None:
        self._hostname = worker.hostname
        self._stopping.clear()
        self._thread = threading.Thread(target=self._beat, name="worker-heartbeat", daemon=True)
        self._thread.start()

    def stop(self, worker) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        try:
            heartbeat_remove(hostname=self._hostname)
        except Exception:  # noqa: BLE001 - Redis down: the beat ages out instead
            logger.warning("worker %s: heartbeat not removed (Redis unavailable)", self._hostname)

    def terminate(self, worker) -> None:  # a cold shutdown (and Celery's test worker) stops steps this way
        self.stop(worker)

    def _beat(self) -> None:

        while True:
            try:
                heartbeat_record(hostname=self._hostname)
            except Exception:  # noqa: BLE001 - Redis down: health says so; beat again when it is back
                logger.warning("worker %s: heartbeat not recorded (Redis unavailable)", self._hostname)
            if self._stopping.wait(settings.WORKER_HEARTBEAT_SECONDS):
                return
