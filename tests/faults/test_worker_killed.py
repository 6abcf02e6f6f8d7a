"""A Celery worker killed (SIGKILL) in the middle of a document's ingestion.

The run counterpart is tests/canvas/test_runs_api.py::
test_a_worker_killed_mid_run_leaves_a_failed_run_within_the_dead_run_window (a real `celery worker`
killed mid-run with RUN_MAX_RESUMES=0: the dead-run sweeper fails the run within its heartbeat window and a
new run starts), and tests/faults/test_run_resume.py (killed mid-run, the run is resumed from its checkpoint
by another worker, up to RUN_MAX_RESUMES times).

Here the document the killed worker was digitizing stays `processing` (nothing reports for it); the
stall sweeper fails it with a reason once it has been stuck for 20 minutes, and re-ingesting it from
the admin on a live worker makes it ready. And GET /api/health stops counting a killed worker once its
last heartbeat is older than WORKER_HEARTBEAT_MAX_AGE.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from deals.documents.services import STALL_AFTER, STALL_REASON, fail_stuck_ingestions
from deals.models import Document, DocumentPage, FileState
from tests.faults.conftest import service_env, wait_for

NOTES = b"# Riverside notes\n\nPurchase price of $41,500,000 and NOI of $2,450,000.\n"


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


@pytest.fixture
def slow_worker(transactional_db, media):
    """A real worker process (tests/faults/slow_ingest_worker.py) that sleeps a minute in digitization."""
    env = {
        **os.environ,
        **service_env(MEDIA_ROOT=str(media), SLOW_INGEST_SECONDS="60"),
        "PYTHONPATH": str(settings.BASE_DIR),
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.faults.slow_ingest_worker"],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    yield worker
    if worker.poll() is None:
        worker.kill()
    worker.wait(10)


def _state(document_id) -> tuple[str, str]:
    document = Document.objects.get(pk=document_id)
    return document.state, document.error


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_ingestion_leaves_a_document_the_sweeper_fails_and_reingest_fixes(
    cast, slow_worker, request
):
    editor = cast.client("editor")
    uploaded = editor.post(
        f"/api/deals/{cast.deal.pk}/documents", {"file": SimpleUploadedFile("notes.md", NOTES)}, format="multipart"
    )
    assert uploaded.status_code == 201, uploaded.content
    document_id = uploaded.json()["id"]

    def claimed():
        assert slow_worker.poll() is None, slow_worker.stderr.read().decode()[-2000:]
        return _state(document_id)[0] == FileState.PROCESSING

    wait_for(claimed, timeout=60, what="the worker claims the document")
    slow_worker.send_signal(signal.SIGKILL)
    slow_worker.wait(10)

    # nothing reports for it: it stays processing, and a sweep before the stall window leaves it so
    assert fail_stuck_ingestions() == 0
    assert _state(document_id) == (FileState.PROCESSING, "")
    # twenty minutes on (the beat sweeper's clock, moved instead of waited for), it is failed with a reason
    assert fail_stuck_ingestions(now=timezone.now() + STALL_AFTER + timedelta(minutes=1)) == 1
    row = editor.get(f"/api/deals/{cast.deal.pk}/documents/{document_id}").json()
    assert (row["state"], row["error"]) == ("failed", STALL_REASON)

    # re-ingested from the admin, a live worker makes it ready
    request.getfixturevalue("celery_worker")
    admin = cast.client("superadmin")
    admin.force_login(cast.users["superadmin"])
    response = admin.post("/admin/deals/document/", {"action": "reingest", "_selected_action": [document_id]})
    assert response.status_code == 302
    wait_for(lambda: _state(document_id)[0] == FileState.READY, timeout=60, what="the re-ingested document is ready")
    row = editor.get(f"/api/deals/{cast.deal.pk}/documents/{document_id}").json()
    assert row["state"] == "ready" and row["error"] in ("", None) and row["pages"] >= 1
    assert "Purchase price" in DocumentPage.objects.get(document_id=document_id, page_number=1).text


@pytest.mark.django_db(transaction=True)
def test_health_reports_a_killed_worker_gone_once_its_heartbeat_ages_out(settings):
    settings.WORKER_HEARTBEAT_MAX_AGE = 1.5
    env = {**os.environ, **service_env(WORKER_HEARTBEAT_SECONDS="0.2"), "PYTHONPATH": str(settings.BASE_DIR)}
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "canvas_project",
            "worker",
            "--pool",
            "solo",
            "--concurrency",
            "1",
            "--without-heartbeat",
            "--without-mingle",
            "--without-gossip",
            "--loglevel",
            "WARNING",
        ],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    client = Client()
    try:

        def celery_check():
            assert worker.poll() is None, worker.stderr.read().decode()[-2000:]
            return client.get("/api/health").json()["checks"]["celery"]

        wait_for(lambda: celery_check()["ok"], timeout=60, what="the worker's heartbeat reaches health")
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        killed_at = time.monotonic()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)
    # killed, it cannot remove its heartbeat: health reports it gone once the last beat is 1.5 s old
    wait_for(
        lambda: not client.get("/api/health").json()["checks"]["celery"]["ok"],
        timeout=10,
        what="health notices the killed worker",
    )
    assert time.monotonic() - killed_at < 1.5 + 2
    response = client.get("/api/health")
    assert response.status_code == 200 and response.json()["status"] == "degraded"  # the API still serves
