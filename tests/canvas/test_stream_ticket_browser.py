"""A browser's native EventSource on the canvas events, with a stream ticket, from a page of another origin.

Real Chromium (tests/browser.py), real servers (tests/servers.py): the API (ticket and saves) on one uvicorn,
the event streams on another, as production splits them, and the page on a third origin served by a tiny
http.server. The streams' server is stopped and started again on the same port while the page is open, which
really drops the EventSource's connection; saves made meanwhile must arrive after the browser reconnects
(with the same ticket and its Last-Event-ID), each exactly once.
"""

from __future__ import annotations

import http.server
import threading

import httpx
import pytest
from django.conf import settings
from django.db import connection

from canvas_project import keys
from canvas_project.redis_client import get_redis
from deals.tokens import token_pair_for_user
from tests.browser import chromium_page, needs_chromium
from tests.servers import ServiceProcess, database_url_of, free_port

pytestmark = [needs_chromium, pytest.mark.django_db(transaction=True)]

# What a frontend would write: get a ticket with its JWT, open a native EventSource with it, collect events.
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>canvas events</title></head><body>
<script>
window.collected = [];
window.opens = 0;
window.errors = 0;
window.follow = async (api, streams, dealId, jwt) => {
  const response = await fetch(`${api}/api/auth/stream-ticket`, {
    method: "POST",
    headers: {"Authorization": `Bearer ${jwt}`, "Content-Type": "application/json"},
    body: JSON.stringify({deal_id: dealId}),
  });
  if (response.status !== 201) throw new Error(`stream-ticket answered ${response.status}`);
  const {ticket} = await response.json();
  const source = new EventSource(
    `${streams}/api/canvas/${dealId}/events?ticket=${encodeURIComponent(ticket)}`);
  source.onopen = () => { window.opens += 1; };
  source.onerror = () => { window.errors += 1; };
  source.addEventListener("document_saved", (event) => {
    window.collected.push({id: event.lastEventId, version: JSON.parse(event.data).version});
  });
  window.source = source;
};
</script></body></html>
"""


class _PageHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        body = PAGE.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # noqa: A002 (http.server's signature)
        pass


@pytest.fixture
def page_origin():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _PageHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def server_env(page_origin):
    return {
        "DJANGO_SETTINGS_MODULE": "canvas_project.settings",
        "DATABASE_URL": database_url_of(connection.settings_dict),
        "REDIS_URL": settings.REDIS_URL,
        "CORS_ALLOWED_ORIGINS": page_origin,
        "SSE_RETRY_MS": "300",  # the EventSource's reconnect delay, set by the stream's `retry:` line
    }


@pytest.fixture
def api(server_env):
    server = ServiceProcess(server_env).start()
    yield server
    server.stop()


def _saved_ids(deal_id) -> list[str]:
    entries = get_redis().xrange(keys.events_key(deal_id))
    return [entry_id.decode() for entry_id, fields in entries if fields[b"type"] == b"document_saved"]


def test_a_native_event_source_on_another_origin_follows_saves_across_a_dropped_connection(
    cast, page_origin, server_env, api
):
    deal_id = str(cast.deal.pk)
    viewer_jwt = token_pair_for_user(user=cast.users["viewer"])["access"]
    editor = httpx.Client(
        base_url=api.url,
        headers={"Authorization": f"Bearer {token_pair_for_user(user=cast.users['editor'])['access']}"},
    )

    def save(n: int) -> int:
        response = editor.post(f"/api/canvas/{deal_id}/save", json={"content": f"## Risks\n\nDraft number {n}.\n"})
        assert response.status_code == 200, response.text
        return response.json()["version"]

    streams = ServiceProcess(server_env).start()
    versions = []
    try:
        # No ORM inside this block (Playwright's sync API runs an event loop in this thread); Redis and HTTP are fine.
        with chromium_page() as page:
            page.goto(f"{page_origin}/")
            page.evaluate("([a, s, d, j]) => window.follow(a, s, d, j)", [api.url, streams.url, deal_id, viewer_jwt])
            page.wait_for_function("window.opens === 1")

            versions.append(save(1))
            page.wait_for_function("window.collected.length === 1")

            # drop the connection for real: the streams' server goes away, and the browser notices
            port = streams.port
            streams.stop()
            page.wait_for_function("window.errors >= 1")
            versions += [save(2), save(3)]  # while the page is disconnected

            streams = ServiceProcess(server_env, port=port).start()
            page.wait_for_function("window.opens === 2")  # the EventSource reconnected by itself
            page.wait_for_function("window.collected.length >= 3")
            versions.append(save(4))
            page.wait_for_function("window.collected.length >= 4")
            # anything duplicated or late would have arrived by the time a marker save after it does
            versions.append(save(5))
            page.wait_for_function("window.collected.length >= 5")
            collected = page.evaluate("window.collected")
            state = page.evaluate("[window.source.readyState, window.opens, window.errors]")
    finally:
        streams.stop()
        editor.close()

    assert [event["version"] for event in collected] == versions
    assert len(set(versions)) == 5
    ids = [event["id"] for event in collected]
    assert ids == _saved_ids(deal_id)  # each save's event, once, in order: nothing lost, nothing repeated
    assert state[0] == 1 and state[1] == 2  # open, after exactly one reconnect
