"""A primary of the Redis Cluster dies under load; its replica is promoted; the service rides it out.

A cluster of this test's own (3 primaries, 3 replicas: it kills one of them), the service as a real process
(uvicorn) on it, and a thread issuing requests to the deal whose slot the killed primary owns: reads of the
canvas (the session cache), presence heartbeats (Redis only) and saves (durable in PostgreSQL, then the
cache and the event stream in Redis). The primary's process is killed (SIGKILL, no CLUSTER FAILOVER):
while the cluster switches, requests answer 503 and never 500; the same service process serves again
without a restart once the replica is primary; every save that was acknowledged (200 with its version) is
in the memo afterwards.

Prints the figures: requests served, 503s, seconds from the kill to the answer of the first success after
the last failure, the slowest request, when the promotion was seen.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import httpx
import pytest
from django.conf import settings

from canvas_project import keys
from tests.canvas.conftest import canvas_url
from tests.faults.conftest import RunningService, api_as, service_env, wait_for
from tests.servers import ThrowawayRedisCluster

pytestmark = pytest.mark.django_db(transaction=True)


@dataclass
class Outcome:
    started: float
    kind: str  # read | presence | save
    status: int
    finished: float = 0.0
    marker: str | None = None
    version: int | None = None


@pytest.fixture
def own_cluster():
    cluster = ThrowawayRedisCluster(primaries=3, replicas_per_primary=1, node_timeout_ms=1000).start()
    yield cluster
    cluster.stop()


def _load(api, deal, outcomes: list[Outcome], stop: threading.Event) -> None:
    """Requests in a loop: a canvas read (degrades to the Store when Redis fails), a presence heartbeat
    (needs Redis: 503 while it cannot be served), a save (durable in PostgreSQL, then Redis)."""
    n = 0
    while not stop.is_set():
        n += 1
        kind = ("read", "presence", "save")[n % 3]
        started = time.monotonic()
        marker, version = None, None
        try:
            if kind == "read":
                response = api.get(canvas_url(deal))
            elif kind == "presence":
                response = api.post(canvas_url(deal, "presence"), json={"section_key": "risks"})
            else:
                marker = f"failover-save-{n}"
                response = api.post(
                    canvas_url(deal, "save"), json={"content": f"## Executive Summary\n\n{marker} of the memo."}
                )
                version = response.json().get("version") if response.status_code == 200 else None
            status = response.status_code
        except httpx.HTTPError:
            status = 0
        outcomes.append(Outcome(started, kind, status, time.monotonic(), marker, version))


def test_a_killed_primary_is_replaced_and_the_service_recovers_without_a_restart(own_cluster, cast, capsys):
    service = RunningService(
        service_env(REDIS_CLUSTER="true", REDIS_URL=own_cluster.url, CELERY_BROKER_URL=settings.CELERY_BROKER_URL)
    )
    outcomes: list[Outcome] = []
    stop = threading.Event()
    try:
        api = api_as(service, cast, "owner")
        assert api.get(canvas_url(cast.deal)).status_code == 200
        victim = own_cluster.port_of_key(keys.session_key(cast.deal.pk))
        worker = threading.Thread(target=_load, args=(api, cast.deal, outcomes, stop), daemon=True)
        worker.start()
        wait_for(lambda: len(outcomes) >= 20, timeout=60, what="load before the kill")
        killed_at = time.monotonic()
        own_cluster.kill(victim)
        slot_key = keys.session_key(cast.deal.pk)
        promoted = wait_for(
            lambda: (port := own_cluster.port_of_key(slot_key)) != victim and port,
            timeout=60,
            what="a replica promoted in the killed primary's place",
        )
        promoted_after = time.monotonic() - killed_at
        own_cluster.wait_healthy(timeout=60)
        healthy_at = time.monotonic()

        def recovered() -> bool:
            after = [o for o in outcomes if o.started > healthy_at]
            return len(after) >= 20 and all(o.status == 200 for o in after[-20:])

        wait_for(recovered, timeout=60, what="20 successes in a row after the promotion")
        stop.set()
        worker.join(30)
        final = api.get(canvas_url(cast.deal)).json()
    finally:
        stop.set()
        service.stop()

    statuses = [o.status for o in outcomes]
    assert set(statuses) <= {200, 503}, sorted(set(statuses))
    assert service.crashes() == []
    assert promoted != victim
    # recovery: from the kill to the completion of the first success after the last failure (a request
    # that rode the switch out by waiting counts until it answered)
    during = [o for o in outcomes if o.finished >= killed_at]
    last_failure = max((o.finished for o in during if o.status != 200), default=killed_at)
    recovery = min(o.finished for o in during if o.status == 200 and o.finished > last_failure) - killed_at
    slowest = max(o.finished - o.started for o in during)

    # no acknowledged durable write is lost: the memo holds the last acknowledged save, or a later one
    # (a save answered 503 may still have been written to PostgreSQL before Redis failed it)
    saves = [o for o in outcomes if o.kind == "save"]
    acknowledged = [o for o in saves if o.status == 200]
    last_ack = acknowledged[-1]
    later_markers = [o.marker for o in saves[saves.index(last_ack) :]]
    assert any(marker in final["markdown_content"] for marker in later_markers)
    assert final["version"] >= max(o.version for o in acknowledged)

    served, unavailable = statuses.count(200), statuses.count(503)
    with capsys.disabled():
        print(
            f"\n[failover] requests {len(statuses)}, served {served}, 503 {unavailable}, "
            f"acknowledged saves {len(acknowledged)}, seconds to recovery {recovery:.2f}, "
            f"slowest request {slowest:.2f} s, promotion seen after {promoted_after:.2f} s "
            f"(primary :{victim} killed, replica :{promoted} promoted)"
        )
