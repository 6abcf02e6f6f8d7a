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

import time
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from deals.documents.services import STALL_AFTER, STALL_REASON, fail_stuck_ingestions
from deals.models import Document, DocumentPage, FileState
from tests.faults.conftest import wait_for
from tests.servers import WorkerProcess, service_env

NOTES = b"# Riverside notes\n\nPurchase price of $41,500,000 and NOI of $2,450,000.\n"


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


@pytest.fixture
def slow_worker(transactional_db, media, celery_broker):
    """A real worker process (tests/faults/slow_ingest_worker.py) that sleeps a minute in digitization."""
    with WorkerProcess(
        service_env(MEDIA_ROOT=str(media), SLOW_INGEST_SECONDS="60"), module="tests.faults.slow_ingest_worker"
    ) as worker:
        yield worker


def _state(document_id) -> tuple[str, str]:
    document = Document.objects.get(pk=document_id)
    return document.state, document.error


@pytest.mark.both_brokers
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

    wait_for(
        lambda: slow_worker.alive() and _state(document_id)[0] == FileState.PROCESSING,
        timeout=60,
        what="the worker claims the document",
    )
    slow_worker.kill()

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


@pytest.mark.both_brokers
@pytest.mark.django_db(transaction=True)
def test_health_reports_a_killed_worker_gone_once_its_heartbeat_ages_out(settings, celery_broker):
    settings.WORKER_HEARTBEAT_MAX_AGE = 1.5
    client = Client()
    with WorkerProcess(service_env(WORKER_HEARTBEAT_SECONDS="0.2")) as worker:
        wait_for(
            lambda: worker.alive() and client.get("/api/health").json()["checks"]["celery"]["ok"],
            timeout=60,
            what="the worker's heartbeat reaches health",
        )
        worker.kill()
        killed_at = time.monotonic()
    # killed, it cannot remove its heartbeat: health reports it gone once the last beat is 1.5 s old
    wait_for(
        lambda: not client.get("/api/health").json()["checks"]["celery"]["ok"],
        timeout=10,
        what="health notices the killed worker",
    )
    assert time.monotonic() - killed_at < 1.5 + 2
    response = client.get("/api/health")
    assert response.status_code == 200 and response.json()["status"] == "degraded"  # the API still serves
    # the broker the worker consumed from (the rabbitmq run's is RabbitMQ) still answers: only celery is down
    broker = response.json()["checks"]["broker"]
    assert broker["ok"] and broker["transport"] == {"redis": "redis", "rabbitmq": "amqp"}[celery_broker]
