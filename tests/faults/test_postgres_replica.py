"""Read replicas (DATABASE_REPLICA_URLS) against a real streaming replica: a throwaway primary and a
pg_basebackup -R of it from the same PostgreSQL programs, on spare ports (never the shared server), with the
service as a real process on them.

Which database answered is seen in the data: with the replica's replay paused (pg_wal_replay_pause()), a
change committed on the primary is visible there and not on the replica. A routed read (the dashboard, the
comment list) shows the replica's older data; the caller who just wrote reads the primary (read-your-writes);
a replica lagging beyond REPLICA_MAX_LAG_SECONDS, or down, gets no reads: they fall back to the primary,
never a 500, and /api/health shows each replica's lag.

The LangGraph Store's reads that may go there (approval-snapshot exports, versions, progress) are seen the
same way: an approval snapshot edited on the primary alone (never done by the service: a snapshot does not
change) shows which database served it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from django.conf import settings

from canvas_project.store import REPLICA_APPLICATION_NAME
from tests.canvas.conftest import full_memo
from tests.faults.conftest import Api, RunningService, wait_for
from tests.servers import ThrowawayPostgres

PASSWORD = "replica-pass-1"
ENGINE_TOKEN = "replica-engine-token"
DATABASE = "dc_replica"
PRIMARY_ONLY = "Edited on the primary alone"
# the service's Store reads on the replica are made while the service runs with a gate it can pass
STORE_ENV = {"CANVAS_READINESS_GATE": "0"}
SEED = (
    "import django; django.setup(); from django.core.management import call_command; "
    "call_command('migrate', verbosity=0, interactive=False); "
    f"call_command('seed_demo', password='{PASSWORD}', no_documents=True)"
)


def _execute(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


class Cluster:
    """The throwaway primary and its streaming replica, both holding the seeded database."""

    def __init__(self) -> None:
        self.primary = ThrowawayPostgres().start()
        self.replica: ThrowawayPostgres | None = None
        self.primary_url = self.primary.create_database(DATABASE)
        subprocess.run(
            [sys.executable, "-c", SEED],
            env={**os.environ, "DJANGO_SETTINGS_MODULE": "canvas_project.settings", "DATABASE_URL": self.primary_url},
            check=True,
            capture_output=True,
            timeout=300,
            cwd=settings.BASE_DIR,
        )
        self.replica = self.primary.start_standby()
        self.replica_url = self.replica.url(DATABASE)
        self.deal_id = str(_execute(self.primary_url, "SELECT id FROM deals_deal")[0][0])
        # a commit replayed since the replica started gives its lag a reference time
        self.rename_on_primary("Streaming check")
        wait_for(lambda: self.name_on_replica() == "Streaming check", timeout=60, what="the replica streams")

    def rename_on_primary(self, name: str) -> None:
        """A change the service did not make: nobody is pinned to the primary by it."""
        _execute(self.primary_url, "UPDATE deals_deal SET name = %s WHERE id = %s", (name, self.deal_id))

    def name_on_replica(self) -> str | None:
        try:
            return _execute(self.replica_url, "SELECT name FROM deals_deal WHERE id = %s", (self.deal_id,))[0][0]
        except psycopg.OperationalError:
            return None

    def snapshot_on_replica(self, version: int) -> bool:
        rows = _execute(
            self.replica_url,
            "SELECT 1 FROM store WHERE prefix = %s AND key = %s",
            (f"deals.{self.deal_id}.versions", f"v{version:010d}"),
        )
        return bool(rows)

    def edit_snapshot_on_primary(self, version: int) -> None:
        """Rewrite a snapshot's title and every section's text on the primary (what the service never does)."""
        prefix, key = f"deals.{self.deal_id}.versions", f"v{version:010d}"
        sql = "SELECT value FROM store WHERE prefix = %s AND key = %s"
        ((value,),) = _execute(self.primary_url, sql, (prefix, key))
        value["title"] = PRIMARY_ONLY
        for section in value["sections"].values():
            section["markdown"] = PRIMARY_ONLY
        _execute(
            self.primary_url,
            "UPDATE store SET value = %s WHERE prefix = %s AND key = %s",
            (psycopg.types.json.Jsonb(value), prefix, key),
        )

    def store_connections_on_replica(self) -> int:
        return _execute(
            self.replica_url,
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
            (REPLICA_APPLICATION_NAME,),
        )[0][0]

    def pause_replay(self) -> None:
        _execute(self.replica_url, "SELECT pg_wal_replay_pause()")

    def resume_replay(self) -> None:
        _execute(self.replica_url, "SELECT pg_wal_replay_resume()")

    def replica_running(self) -> bool:
        return (self.replica.data / "postmaster.pid").exists()

    def destroy(self) -> None:
        try:
            if self.replica is not None:
                self.replica.destroy()
        finally:
            self.primary.destroy()


@pytest.fixture(scope="module")
def module_cluster() -> Iterator[Cluster]:
    cluster = Cluster()
    yield cluster
    cluster.destroy()


@pytest.fixture
def cluster(module_cluster: Cluster) -> Iterator[Cluster]:
    """The cluster, left streaming again after the test whatever it did to the replica."""
    yield module_cluster
    if not module_cluster.replica_running():
        module_cluster.replica.start()
    module_cluster.resume_replay()
    module_cluster.rename_on_primary("Caught up")
    wait_for(lambda: module_cluster.name_on_replica() == "Caught up", timeout=60, what="the replica catches up")


@pytest.fixture
def start(cluster: Cluster) -> Iterator:
    """start(VAR=value, ...): the service on the primary with the replica configured."""
    started: list[RunningService] = []

    def run(**env: str) -> RunningService:
        service = RunningService(
            {
                "DJANGO_SETTINGS_MODULE": "canvas_project.settings",
                "DATABASE_URL": cluster.primary_url,
                "DATABASE_REPLICA_URLS": cluster.replica_url,
                "REDIS_URL": settings.REDIS_URL,
                "REPLICA_PROBE_SECONDS": "0.2",
                "INTERNAL_ENGINE_TOKENS": ENGINE_TOKEN,
                **env,
            }
        )
        started.append(service)
        return service

    yield run
    for service in started:
        service.stop()


def _as(service: RunningService, role: str) -> Api:
    response = httpx.post(
        f"{service.url}/api/auth/token", json={"username": f"demo-{role}", "password": PASSWORD}, timeout=30
    )
    assert response.status_code == 200, response.text
    return Api(service.url, response.json()["access"])


def _dashboard_name(api: Api) -> str:
    response = api.get("/api/dashboard/memos")
    assert response.status_code == 200, response.text
    (row,) = response.json()["results"]
    return row["deal_name"]


def _engine_comment_ids(service: RunningService, *, deal_id: str, user_id: str, thread_id: str) -> list[str]:
    """The comment nodes an AI engine reads in the internal canvas context."""
    response = httpx.get(
        f"{service.url}/api/internal/canvas/context",
        params={"agentId": "strategy", "projectId": deal_id, "threadId": thread_id},
        headers={
            "Authorization": f"Bearer {ENGINE_TOKEN}",
            "X-Contract-Version": "2026-02",
            "X-User-Id": user_id,
            "X-Project-Id": deal_id,
            "X-Thread-Id": thread_id,
        },
        timeout=30,
    )
    assert response.status_code == 200, response.text
    nodes = response.json()["data"]["canvas_context"]["nodes"]
    return [node["id"].removeprefix("comment:") for node in nodes if node["type"] == "comment"]


def _health(service: RunningService) -> httpx.Response:
    return httpx.get(f"{service.url}/api/health", timeout=30)


def _approve_a_new_version(owner: Api, deal_id: str) -> int:
    """Save new text and approve it (reopening first when approved); the approval snapshot's version. The
    owner is pinned to the primary by these writes."""
    canvas = f"/api/canvas/{deal_id}"
    if owner.get(canvas).json()["document_state"] == "approved":
        assert owner.post(f"{canvas}/reopen").json()["success"]
    content = full_memo() + f"\n## Closing Note\n\nDraft {os.urandom(4).hex()}.\n"
    saved = owner.post(f"{canvas}/save", json={"content": content})
    assert saved.status_code == 200 and saved.json()["saved"], saved.text
    approved = owner.post(f"{canvas}/approve")
    assert approved.status_code == 200 and approved.json()["success"], approved.text
    return owner.get(canvas).json()["approval_versions"][-1]


def _exported(api: Api, deal_id: str, version: int) -> str:
    response = api.get(f"/api/canvas/{deal_id}/export", params={"format": "md", "version": version})
    assert response.status_code == 200, response.text
    return response.text


def _version_titles(api: Api, deal_id: str) -> dict[int, str]:
    response = api.get(f"/api/canvas/{deal_id}/versions", params={"page_size": 100})
    assert response.status_code == 200, response.text
    return {row["version"]: row["title"] for row in response.json()["results"]}


def test_routed_reads_come_from_the_replica_and_a_writer_reads_its_own_writes(cluster, start):
    service = start(REPLICA_MAX_LAG_SECONDS="3600", REPLICA_PIN_SECONDS="600")
    owner, viewer = _as(service, "owner"), _as(service, "viewer")
    canvas = f"/api/canvas/{cluster.deal_id}"
    section = next(iter(owner.get(canvas).json()["sections"]))
    # the engine's thread: the editor's chat (a write, pinning the editor alone)
    editor = _as(service, "editor")
    chat = editor.post("/api/v1/chat", json={"message": "Hello", "project_id": cluster.deal_id, "agent_id": "strategy"})
    assert chat.status_code == 200, chat.text
    engine = {
        "deal_id": cluster.deal_id,
        "user_id": editor.get("/api/me").json()["id"],
        "thread_id": chat.json()["thread_id"],
    }
    before = cluster.name_on_replica()
    assert _dashboard_name(viewer) == before

    cluster.pause_replay()
    cluster.rename_on_primary("Renamed on the primary")
    # the dashboard is a routed read: the replica answers, whose replay stopped before the rename (logging in
    # wrote nothing: nobody is pinned yet)
    assert _dashboard_name(viewer) == before
    assert _dashboard_name(owner) == before

    renamed = owner.request("PATCH", f"/api/deals/{cluster.deal_id}", json={"name": "Renamed by the owner"})
    assert renamed.status_code == 200, renamed.text
    comment = owner.post(f"{canvas}/comments", json={"section_key": section, "body": "Check the rent roll."})
    assert comment.status_code == 201, comment.text

    # the owner wrote: pinned to the primary, they read what they wrote
    assert _dashboard_name(owner) == "Renamed by the owner"
    assert [c["id"] for c in owner.get(f"{canvas}/comments").json()["results"]] == [comment.json()["id"]]
    # the viewer did not: still the replica, still behind
    assert _dashboard_name(viewer) == before
    assert viewer.get(f"{canvas}/comments").json()["results"] == []
    # the engine's canvas context reads the primary whatever the replicas: its Redis cache is stamped with the
    # primary's counters, so a fill from the paused replica would keep old rows under a current stamp
    assert _engine_comment_ids(service, **engine) == [comment.json()["id"]]

    # within the bound the paused replica keeps its reads, and the health shows how far behind it is
    check = wait_for(
        lambda: (c := _health(service).json()["checks"]["replica_1"])["lag_bytes"] and c,
        timeout=30,
        what="the replica's received WAL shows in the health",
    )
    assert check["ok"] is True and check["replay_paused"] is True and check["lag_seconds"] > 0, check

    cluster.resume_replay()
    wait_for(lambda: _dashboard_name(viewer) == "Renamed by the owner", timeout=30, what="the replica replays")
    assert [c["id"] for c in viewer.get(f"{canvas}/comments").json()["results"]] == [comment.json()["id"]]
    assert _engine_comment_ids(service, **engine) == [comment.json()["id"]]
    assert service.crashes() == []


def test_approval_snapshot_exports_and_versions_read_the_replica_and_the_primary_for_what_it_lacks(cluster, start):
    service = start(REPLICA_MAX_LAG_SECONDS="3600", REPLICA_PIN_SECONDS="600", **STORE_ENV)
    owner, viewer = _as(service, "owner"), _as(service, "viewer")
    deal, canvas = cluster.deal_id, f"/api/canvas/{cluster.deal_id}"
    version = _approve_a_new_version(owner, deal)
    wait_for(lambda: cluster.snapshot_on_replica(version), timeout=60, what="the snapshot replayed on the replica")
    original = _exported(viewer, deal, version)

    cluster.pause_replay()
    cluster.edit_snapshot_on_primary(version)
    # the viewer wrote nothing: the replica's Store pool serves the export, the snapshot and the versions list
    assert _exported(viewer, deal, version) == original and PRIMARY_ONLY not in original
    assert PRIMARY_ONLY not in viewer.get(f"{canvas}/versions/{version}").text
    assert _version_titles(viewer, deal)[version] != PRIMARY_ONLY
    assert cluster.store_connections_on_replica() >= 1
    # the owner approved: pinned to the primary, they read the primary's copy
    assert PRIMARY_ONLY in _exported(owner, deal, version)
    assert _version_titles(owner, deal)[version] == PRIMARY_ONLY

    # a newer approval the paused replica has not replayed: read from the primary, never a false 404
    newer = _approve_a_new_version(owner, deal)
    assert not cluster.snapshot_on_replica(newer)
    assert "Draft" in _exported(viewer, deal, newer)
    # the replica's memo is older than the deal row says: the list of versions comes from the primary, and of
    # their snapshots those the replica lacks (the replica's copy of the others is the primary's, edits aside)
    listed = viewer.get(f"{canvas}/versions").json()
    assert listed["current_version"] >= newer and listed["results"][0]["version"] >= newer, listed
    titles = _version_titles(viewer, deal)
    assert newer in titles and titles[version] != PRIMARY_ONLY
    # and a version nobody has is still a 404
    missing = viewer.get(f"{canvas}/export", params={"version": newer + 1000})
    assert missing.status_code == 404, missing.text

    cluster.resume_replay()
    assert service.crashes() == []


def test_a_replica_lagging_beyond_the_bound_gets_no_reads_and_the_health_shows_its_lag(cluster, start):
    service = start(REPLICA_MAX_LAG_SECONDS="1", **STORE_ENV)
    viewer = _as(service, "viewer")
    version = _approve_a_new_version(_as(service, "owner"), cluster.deal_id)
    wait_for(lambda: cluster.snapshot_on_replica(version), timeout=60, what="the snapshot replayed on the replica")
    check = wait_for(
        lambda: (c := _health(service).json()["checks"]["replica_1"])["lag_seconds"] == 0 and c,
        timeout=30,
        what="the replica caught up",
    )
    assert check["ok"] is True and check["error"] is None, check

    cluster.pause_replay()
    cluster.rename_on_primary("Behind the replica")
    cluster.edit_snapshot_on_primary(version)
    lagging = wait_for(
        lambda: (response := _health(service)).json()["checks"]["replica_1"]["ok"] is False and response,
        timeout=30,
        what="the health reports the replica lagging",
    )
    assert lagging.status_code == 200  # the primary serves: degraded, not unavailable
    body = lagging.json()
    check = body["checks"]["replica_1"]
    assert check["error"] == "ReplicaLagging" and check["lag_seconds"] > 1 and check["replay_paused"] is True, check
    assert body["status"] == "degraded" and "replica_1" in body["detail"], body
    # routed reads go to the primary meanwhile: the rename the replica has not replayed is there, and so is
    # the snapshot's edit (the Store's reads follow the same decision)
    assert _dashboard_name(viewer) == "Behind the replica"
    assert PRIMARY_ONLY in _exported(viewer, cluster.deal_id, version)

    cluster.resume_replay()
    wait_for(
        lambda: _health(service).json()["checks"]["replica_1"]["ok"],
        timeout=30,
        what="the replica routable again once caught up",
    )
    assert service.crashes() == []


def test_a_replica_going_down_sends_reads_to_the_primary_without_an_error(cluster, start):
    service = start(REPLICA_MAX_LAG_SECONDS="3600", REPLICA_CONNECT_TIMEOUT="1", **STORE_ENV)
    viewer = _as(service, "viewer")
    canvas = f"/api/canvas/{cluster.deal_id}"
    version = _approve_a_new_version(_as(service, "owner"), cluster.deal_id)
    wait_for(lambda: cluster.snapshot_on_replica(version), timeout=60, what="the snapshot replayed on the replica")
    cluster.pause_replay()
    cluster.rename_on_primary("Only on the primary")
    cluster.edit_snapshot_on_primary(version)
    assert _dashboard_name(viewer) == cluster.name_on_replica() != "Only on the primary"  # served by the replica
    assert PRIMARY_ONLY not in _exported(viewer, cluster.deal_id, version)

    cluster.replica.stop("immediate")

    # the very next reads fall back to the primary: 200 with the primary's data, never a 500 or a 503
    for _ in range(5):
        assert _dashboard_name(viewer) == "Only on the primary"
        listed = viewer.get(f"{canvas}/comments")
        assert listed.status_code == 200, listed.text
        assert viewer.get(f"{canvas}/readiness").status_code == 200
        assert PRIMARY_ONLY in _exported(viewer, cluster.deal_id, version)
        assert _version_titles(viewer, cluster.deal_id)[version] == PRIMARY_ONLY
    health = _health(service)
    assert health.status_code == 200
    check = health.json()["checks"]["replica_1"]
    assert check["ok"] is False and check["error"] and check["lag_seconds"] is None, check

    cluster.replica.start()  # replay resumes with the restart: not paused any more
    wait_for(lambda: _health(service).json()["checks"]["replica_1"]["ok"], timeout=60, what="the replica back")
    # routed reads use the replica again: pause it, change the primary, and the viewer reads the older name (once
    # the service's pool of replica connections has reconnected: until then its reads go to the primary)
    wait_for(lambda: cluster.name_on_replica() == "Only on the primary", timeout=60, what="the replica catches up")
    cluster.pause_replay()
    cluster.rename_on_primary("Not replayed yet")
    wait_for(
        lambda: _dashboard_name(viewer) == "Only on the primary", timeout=30, what="reads routed to the replica again"
    )
    assert service.crashes() == []
