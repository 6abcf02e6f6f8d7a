"""The Celery broker as GET /api/health sees it: Redis (the default) or RabbitMQ (amqp://).

The web process puts runs and ingestion on the broker; workers take them off. Worker heartbeats live in
Redis whatever the broker is, so they cannot tell whether the broker itself is reachable: with RabbitMQ the
heartbeats stay fresh while nothing can be enqueued. This probe asks the broker directly, in one round
trip on a connection kept per process: it declares the tasks' queue (with Celery's own arguments, so it is
a no-op when the queue exists) and reads back how many messages wait in it. A connection that fails is
dropped, so the next probe connects afresh and a broker that came back is seen at once.

Bounded: connecting, reading and writing each give up after PROBE_TIMEOUT seconds, without retries (Celery's
own connections retry for a long time, which a health check must not).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

from kombu import Connection

from canvas_project.celery import app as celery_app

PROBE_TIMEOUT = 2.0


@dataclass(frozen=True)
class BrokerState:
    transport: str  # "redis" or "amqp"
    queue: str
    queued: int  # messages waiting in the queue (not those a worker holds unacknowledged)


def broker_transport(url: str) -> str:
    """The transport's driver type of a broker URL: "redis" (redis://, rediss://, redis+socket://) or "amqp"."""

    return Connection(url).transport.driver_type


def _timeouts(transport: str) -> dict:
    # each transport names its socket timeouts its own way, and refuses the other's
    if transport == "amqp":
        return {"read_timeout": PROBE_TIMEOUT, "write_timeout": PROBE_TIMEOUT}
    if transport == "redis":
        return {"socket_timeout": PROBE_TIMEOUT, "socket_connect_timeout": PROBE_TIMEOUT}
    return {}


class _Probe:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connection: Connection | None = None
        self._channel = None
        self._url = ""
        self._transport = ""

    def _connect(self, url: str):
        if self._channel is not None and self._url == url:
            return self._channel
        self._drop()
        transport = broker_transport(url)
        connection = Connection(url, connect_timeout=PROBE_TIMEOUT, transport_options=_timeouts(transport))
        self._connection = connection
        connection.ensure_connection(max_retries=0, timeout=PROBE_TIMEOUT)  # one attempt
        # a channel of our own, not default_channel: that one reconnects in a loop when the broker is gone
        self._channel, self._url, self._transport = connection.channel(), url, transport
        return self._channel

    def _drop(self) -> None:
        if self._connection is not None:
            try:
                self._connection.release()
            except Exception:  # noqa: BLE001 - a dead connection may fail to close; it is gone either way
                pass
        self._connection, self._channel, self._url, self._transport = None, None, "", ""

    def check(self) -> BrokerState:
        url = celery_app.conf.broker_url
        queue = celery_app.amqp.queues[celery_app.conf.task_default_queue]
        with self._lock:
            try:
                channel = self._connect(url)
                _name, queued, _consumers = queue.bind(channel).queue_declare()
            except Exception:
                self._drop()
                raise
            return BrokerState(transport=self._transport, queue=queue.name, queued=queued)

    def close(self) -> None:
        with self._lock:
            self._drop()

    def forget(self) -> None:
        """In a forked child: the parent's socket is not ours to use or close; connect afresh."""
        self._lock = threading.Lock()
        self._connection, self._channel, self._url, self._transport = None, None, "", ""


_probe = _Probe()
os.register_at_fork(after_in_child=_probe.forget)


def broker_check() -> BrokerState:
    """Whether the Celery broker answers, and how many tasks wait in the queue.

    Raises the transport's errors (OSError and its ConnectionError subclasses; amqp and kombu errors)
    when the broker is unreachable or answers late (PROBE_TIMEOUT).
    """

    return _probe.check()


def broker_probe_close() -> None:
    """Close this process's probe connection (tests that point Celery at another broker)."""

    _probe.close()
