"""PostgreSQL stopped (immediate shutdown: backends die as in a crash) and started again under a running
service process, on a throwaway cluster of this test's own (never the shared one on 5432).

While it is down, requests answer 503 naming PostgreSQL (or the canvas store, which lives there) and
never 500; once it accepts connections again the same process serves the very next requests, Django's
pool and the Store's pool having replaced their dead connections, and every write acknowledged before
the outage is still there.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
import pytest
from django.conf import settings
from langgraph.store.postgres import PostgresStore

from canvas_project.store import CONNECTION_KWARGS, canvas_namespace
from tests.canvas.conftest import full_memo
from tests.faults.conftest import Api, RunningService
from tests.servers import ThrowawayPostgres

PASSWORD = "fault-pass-1"
SEED = (
    "import django; django.setup(); from django.core.management import call_command; "
    f"call_command('migrate', verbosity=0, interactive=False); call_command('seed_demo', password='{PASSWORD}')"
)


@pytest.fixture
def postgres():
    server = ThrowawayPostgres().start()
    yield server
    server.destroy()


@pytest.fixture
def service(postgres):
    env = {
        "DJANGO_SETTINGS_MODULE": "canvas_project.settings",
        "DATABASE_URL": postgres.create_database("dc_faults"),
        "REDIS_URL": settings.REDIS_URL,
    }
    subprocess.run(
        [sys.executable, "-c", SEED],
        env={**os.environ, **env},
        check=True,
        capture_output=True,
        timeout=180,
        cwd=settings.BASE_DIR,
    )
    # While PostgreSQL is down a request waits DB_POOL_TIMEOUT for a connection before its 503: 3 s here
    # (5 s by default). The reconnect window shrinks with it, keeping its longest retry delay (2 s) below it.
    running = RunningService(
        {**env, "DB_POOL_TIMEOUT": "3", "LANGGRAPH_POOL_TIMEOUT": "3", "DB_POOL_RECONNECT_TIMEOUT": "2"}
    )
    yield running
    running.stop()


def _login(service, role: str) -> httpx.Response:
    return httpx.post(
        f"{service.url}/api/auth/token", json={"username": f"demo-{role}", "password": PASSWORD}, timeout=30
    )


def _stored_memo(url: str, deal_id: str) -> tuple[int, str]:
    """The memo's version and text read from the Store's own tables, not through the service."""
    with psycopg.connect(url, **CONNECTION_KWARGS) as conn:
        store = PostgresStore(conn)
        head = store.get(canvas_namespace(deal_id), "head")
        texts = [item.value.get("markdown", "") for item in store.search(canvas_namespace(deal_id), limit=100)]
    return head.value["version"], "\n".join(texts)


def test_a_postgres_restart_answers_503_meanwhile_and_the_same_process_recovers(postgres, service):
    owner, editor, viewer = (
        Api(service.url, _login(service, role).json()["access"]) for role in ("owner", "editor", "viewer")
    )
    deal_id = owner.get("/api/dashboard/memos").json()["results"][0]["deal_id"]
    canvas = f"/api/canvas/{deal_id}"
    assert owner.post(f"{canvas}/save", json={"content": full_memo()}).json()["version"] == 1
    acknowledged = editor.post(
        f"{canvas}/save", json={"content": full_memo() + "\n## Closing Note\n\nBefore.\n", "base_version": 1}
    )
    assert acknowledged.status_code == 200 and acknowledged.json()["version"] == 2
    assert viewer.get(canvas).status_code == 200  # the session is cached in Redis now

    postgres.stop("immediate")

    calls = {
        "canvas GET": lambda: viewer.get(canvas),
        "save": lambda: editor.post(f"{canvas}/save", json={"content": "## Risks\n\nLost?", "base_version": 2}),
        "versions": lambda: viewer.get(f"{canvas}/versions"),
        "dashboard": lambda: viewer.get("/api/dashboard/memos"),
        "login": lambda: _login(service, "viewer"),
        "events": lambda: viewer.get(f"{canvas}/events"),
        "health": lambda: httpx.get(f"{service.url}/api/health", timeout=30),
    }
    with ThreadPoolExecutor(len(calls)) as pool:  # each waits DB_POOL_TIMEOUT: together, not one after another
        answers = dict(zip(calls, pool.map(lambda call: call(), calls.values()), strict=True))
    statuses = {name: response.status_code for name, response in answers.items()}
    assert set(statuses.values()) == {503}, statuses
    for name, response in answers.items():
        detail = response.json()["detail"]
        assert "postgres" in detail.lower() or "store" in detail.lower(), (name, detail)
    assert answers["health"].json()["checks"]["postgres"]["ok"] is False
    # a second wave finds the pools' dead connections already replaced by retrying ones: 503 again
    assert viewer.get(canvas).status_code == 503

    postgres.start()  # returns once PostgreSQL accepts connections

    # the very next requests are served: no dead connection is left in either pool to fail them
    recovered = viewer.get(canvas)
    assert recovered.status_code == 200, recovered.text
    assert recovered.json()["version"] == 2 and "Before." in recovered.json()["markdown_content"]
    after = editor.post(
        f"{canvas}/save", json={"content": recovered.json()["markdown_content"] + "\nAfter.\n", "base_version": 2}
    )
    assert after.status_code == 200 and after.json()["version"] == 3, after.text
    assert viewer.get(f"{canvas}/versions").status_code == 200
    assert _login(service, "viewer").status_code == 200
    assert httpx.get(f"{service.url}/api/health", timeout=30).json()["checks"]["postgres"]["ok"] is True
    version, text = _stored_memo(postgres.url("dc_faults"), deal_id)
    assert version == 3 and "Before." in text and "After." in text
    assert service.crashes() == []
