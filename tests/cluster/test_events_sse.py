"""tests.canvas.test_events_sse on the Redis Cluster (see conftest.py), and where the stream readers read.

The tests that read Redis streams (fan-out, resume, reset, heartbeats) are re-run; the single-node module's
reader-count test counts XREAD clients of one server's test database, so here the same promise is checked
per node: one reader per deal per process, on the primary that owns the deal's slot; and that closed streams
leave no reader blocked on any node.
"""

import time
import uuid

import httpx
import pytest

from canvas_project import events, keys
from canvas_project.sse import hub
from deals.models import Deal
from deals.tokens import token_pair_for_user
from tests import factories
from tests.canvas.test_events_sse import (  # noqa: F401 - the tests that read Redis streams; role and input checks are not re-run
    _open,
    pytestmark,
    service,
    test_an_id_older_than_the_kept_history_gets_reset,
    test_resuming_after_a_disconnect_loses_nothing_and_repeats_nothing,
    test_the_query_parameter_resumes_too,
    test_the_server_sends_heartbeats,
    test_two_subscribers_see_the_same_events_in_the_same_order,
)


def _xread_clients(cluster) -> dict[int, int]:
    """Per node, the connections blocked in an XREAD now (flag b). A pooled cluster connection whose last
    command was a finished XREAD keeps cmd=xread while idle, so the command name alone does not say."""
    return {
        port: sum(1 for c in cluster.node(port).client_list() if c.get("cmd") == "xread" and "b" in c.get("flags", ""))
        for port in cluster.alive_ports()
    }


def _deal_on_another_node(cluster, cast) -> Deal:
    taken = cluster.port_of_key(keys.events_key(cast.deal.pk))
    while True:
        deal_id = uuid.uuid4()
        if cluster.port_of_key(keys.events_key(deal_id)) != taken:
            deal = factories.make_deal(cast.org, owner=cast.users["owner"], name="Elsewhere", id=deal_id)
            return deal


def test_one_reader_per_deal_per_process_reads_on_the_node_that_owns_the_deal(service, cast, on_cluster):  # noqa: F811
    other = _deal_on_another_node(on_cluster, cast)
    token = token_pair_for_user(user=cast.users["owner"])["access"]
    readers = [_open(f"{service.url}/api/canvas/{deal.pk}/events", token) for deal in (cast.deal, cast.deal, other)]
    for deal in (cast.deal, other):
        events.emit(deal.pk, "document_saved", {"n": 1})
    assert [len(r.take(1)) for r in readers] == [1, 1, 1]
    # two subscribers of one deal share its reader; each reader blocks on the node owning its stream's slot
    expected = {port: 0 for port in on_cluster.alive_ports()}
    expected[on_cluster.port_of_key(keys.events_key(cast.deal.pk))] = 1
    expected[on_cluster.port_of_key(keys.events_key(other.pk))] = 1
    deadline = time.monotonic() + 10  # between two XREADs a reader is briefly not blocked
    while _xread_clients(on_cluster) != expected and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _xread_clients(on_cluster) == expected
    for reader in readers:
        reader.close()


def _xread_calls(cluster) -> int:
    """XREADs every node has answered or is blocked in (INFO commandstats)."""
    return sum(
        cluster.node(port).info("commandstats").get("cmdstat_xread", {}).get("calls", 0)
        for port in cluster.alive_ports()
    )


@pytest.fixture
def metrics_token(monkeypatch):
    """The service (when started after this fixture) serves /metrics to this token."""
    monkeypatch.setenv("METRICS_TOKEN", "i15-scrape")
    return "i15-scrape"


def _open_subscriptions(server, token) -> float:
    """The service's dealcanvas_sse_subscribers gauge: subscriptions its hub holds (released = gone)."""
    text = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=10).text
    return next(float(line.split()[1]) for line in text.splitlines() if line.startswith("dealcanvas_sse_subscribers "))


def test_closed_streams_leave_no_reader_on_any_node(metrics_token, service, cast, on_cluster):  # noqa: F811
    """Two streams of one deal and one of a deal on another node close: once the hub has released them, no
    reader is left blocked on any node, nor reads again (issue 15: a cancel lost as a reader's XREAD was
    being written left that reader reading for good)."""
    other = _deal_on_another_node(on_cluster, cast)
    token = token_pair_for_user(user=cast.users["owner"])["access"]
    readers = [_open(f"{service.url}/api/canvas/{deal.pk}/events", token) for deal in (cast.deal, cast.deal, other)]
    for deal in (cast.deal, other):
        events.emit(deal.pk, "document_saved", {"n": 1})
    assert [len(r.take(1)) for r in readers] == [1, 1, 1]
    assert _open_subscriptions(service, metrics_token) == 3
    for reader in readers:
        reader.close()
    for deal in (cast.deal, other):
        events.emit(deal.pk, "document_saved", {"n": 2})  # the client sees its close on the next line it reads
    deadline = time.monotonic() + 20
    while _open_subscriptions(service, metrics_token) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _open_subscriptions(service, metrics_token) == 0
    # The hub has stopped both readers: their XREADs end (a stop takes milliseconds, a lost cancel 20 s here).
    while sum(_xread_clients(on_cluster).values()) and time.monotonic() < deadline + 20:
        time.sleep(0.2)
    assert sum(_xread_clients(on_cluster).values()) == 0
    # A reader still running is blocked nearly all the time, but not in the instant between two XREADs: for one
    # whole block (and a second) no XREAD may block again, nor a new one be sent.
    calls = _xread_calls(on_cluster)
    watch_until = time.monotonic() + hub.BLOCK_MS / 1000 + 1
    while time.monotonic() < watch_until:
        assert sum(_xread_clients(on_cluster).values()) == 0
        time.sleep(0.2)
    assert _xread_calls(on_cluster) == calls
