"""Engine idempotency records are kept IDEMPOTENCY_RECORD_RETENTION_HOURS, then swept by beat."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from rest_framework.test import APIClient

from internal_api import idempotency
from internal_api.models import ChatThread, IdempotencyRecord
from internal_api.tasks import sweep_idempotency_records

URL = "/api/internal/canvas/mutations"
BODY = {"agent_id": "strategy", "mutations": [{"op": "create_node", "node": {"type": "strategy_item", "title": "A"}}]}


def _record(key: str, *, age: timedelta) -> IdempotencyRecord:
    record = IdempotencyRecord.objects.create(
        scope="user:deal", key=key, request_hash="h", status_code=200, response={}
    )
    IdempotencyRecord.objects.filter(pk=record.pk).update(created_at=timezone.now() - age)
    return record


def test_the_default_retention_is_24_hours():
    from canvas_project import settings as project_settings

    assert project_settings.IDEMPOTENCY_RECORD_RETENTION_HOURS == 24


def test_the_sweeper_deletes_records_older_than_the_retention_and_keeps_the_rest(db):
    old = [_record(f"old-{n}", age=timedelta(hours=24, minutes=1 + n)) for n in range(3)]
    in_progress = IdempotencyRecord.objects.create(
        scope="user:deal", key="crashed", request_hash="h", status_code=0, response={}
    )
    IdempotencyRecord.objects.filter(pk=in_progress.pk).update(created_at=timezone.now() - timedelta(days=3))
    young = [_record("young", age=timedelta(hours=23, minutes=59)), _record("new", age=timedelta())]
    assert sweep_idempotency_records() == 4  # the beat task, run here
    assert set(IdempotencyRecord.objects.values_list("pk", flat=True)) == {r.pk for r in young}
    assert not IdempotencyRecord.objects.filter(pk__in=[r.pk for r in old]).exists()
    assert sweep_idempotency_records() == 0


def test_the_retention_is_a_setting_and_a_backlog_goes_in_batches(db, settings, monkeypatch):
    settings.IDEMPOTENCY_RECORD_RETENTION_HOURS = 1
    monkeypatch.setattr(idempotency, "SWEEP_BATCH", 3)
    for n in range(7):
        _record(f"old-{n}", age=timedelta(hours=2))
    _record("recent", age=timedelta(minutes=30))
    assert idempotency.idempotency_records_sweep() == 7
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["recent"]


def test_a_swept_key_is_free_again(cast, written):
    thread = ChatThread.objects.create(deal=cast.deal, user=cast.users["editor"], agent_id="strategy")
    headers = {
        "HTTP_AUTHORIZATION": "Bearer test-engine-token-primary",
        "HTTP_X_CONTRACT_VERSION": "2026-02",
        "HTTP_X_USER_ID": str(cast.users["editor"].pk),
        "HTTP_X_PROJECT_ID": str(cast.deal.pk),
        "HTTP_X_THREAD_ID": str(thread.pk),
        "HTTP_IDEMPOTENCY_KEY": "k-1",
    }
    other = {**BODY, "mutations": [{"op": "create_node", "node": {"type": "risk_item", "title": "B"}}]}
    assert APIClient().post(URL, BODY, format="json", **headers).status_code == 200
    reused = APIClient().post(URL, other, format="json", **headers)
    assert reused.status_code == 400 and reused.json()["error"]["code"] == "idempotency_key_reused"

    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(hours=25))
    assert sweep_idempotency_records() == 1
    fresh = APIClient().post(URL, other, format="json", **headers)
    assert fresh.status_code == 200 and fresh.json()["meta"]["replayed"] is False


def test_beat_runs_the_sweeper_every_hour():
    from canvas_project.celery import app

    [entry] = [e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == sweep_idempotency_records.name]
    assert entry["schedule"] == 3600.0
    app.loader.import_default_modules()  # what a worker does at start: the beat's task name must resolve
    assert app.tasks[entry["task"]].run.__module__ == "internal_api.tasks"


@pytest.mark.django_db
def test_the_sweep_uses_an_index_on_created_at():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE tablename = %s", [IdempotencyRecord._meta.db_table])
        definitions = [row[0] for row in cursor.fetchall()]
    assert any("(created_at)" in d for d in definitions), definitions
