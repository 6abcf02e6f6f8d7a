"""The two Celery brokers the worker tests run on: Redis (this test process's own database) and RabbitMQ
(vhost `/`, shared with other test processes and other people: this process's own queue, deleted at the end).

The in-process test worker (tests/conftest.py `celery_worker`) moves between them within one pytest
process. The app keeps a connection pool and a producer pool made for the broker it first talked to; unless
both are forgotten when the URL changes, `.delay()` keeps publishing to the old broker while the worker
consumes the new one, and the test waits forever for a task that went elsewhere.
"""

from __future__ import annotations

from kombu import Connection

from canvas_project.broker import broker_probe_close

BROKERS = ("redis", "rabbitmq")


def rabbitmq_unreachable(url: str) -> str | None:
    """Why RabbitMQ at `url` cannot be used (a sentence), or None when it answers."""
    try:
        with Connection(url, connect_timeout=3) as connection:
            connection.ensure_connection(max_retries=1, timeout=3)
    except Exception as exc:  # noqa: BLE001 - any failure means "not usable here"; the reason says which
        return f"RabbitMQ at {Connection(url).as_uri()} is unreachable ({exc.__class__.__name__}: {exc})"
    return None


def use_broker(app, url: str) -> None:
    """Point the Celery app (producers, workers started from now on, the health probe) at the broker `url`."""
    app.conf.broker_url = url
    # What Celery itself resets after a fork: both pools are bound to the old broker's connection.
    # kombu keeps one pool per broker URL, so moving back and forth reuses them rather than piling up.
    app._pool = None
    app.amqp._producer_pool = None
    broker_probe_close()


def purge_queue(url: str, queue: str) -> None:
    """Drop the messages waiting in `queue` (left by an earlier test); a missing queue is fine."""
    with Connection(url, connect_timeout=3) as connection:
        channel = connection.channel()
        try:
            channel.queue_purge(queue)
        except connection.channel_errors:  # 404: nothing declared it yet (and the channel is closed)
            pass


def delete_queue(url: str, queue: str) -> None:
    """Delete `queue` and its exchange (Celery names the default exchange after the default queue)."""
    with Connection(url, connect_timeout=3) as connection:
        channel = connection.channel()
        channel.queue_delete(queue)
        channel.exchange_delete(queue)
