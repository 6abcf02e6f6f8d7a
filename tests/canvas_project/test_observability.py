"""Request ids, JSON logs without secrets, and the Prometheus endpoint."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid

import pytest
from django.http import HttpResponse

from canvas_project.observability import JsonFormatter, RequestContextMiddleware, deal_id_var, metrics, request_id_var


def test_every_response_carries_a_request_id(cast):
    response = cast.client("owner").get(f"/api/deals/{cast.deal.pk}")
    assert len(response["X-Request-ID"]) == 32
    echoed = cast.client("owner").get(f"/api/deals/{cast.deal.pk}", HTTP_X_REQUEST_ID="trace-abc.1")
    assert echoed["X-Request-ID"] == "trace-abc.1"
    hostile = cast.client("owner").get(f"/api/deals/{cast.deal.pk}", HTTP_X_REQUEST_ID="x\ny" * 40)
    assert hostile["X-Request-ID"] != "x\ny" * 40


def test_the_async_path_sets_the_ids_for_the_request_and_clears_them_after(rf):
    deal_id = uuid.uuid4()
    seen = {}

    async def view(request):
        seen["inside"] = (request_id_var.get(), deal_id_var.get())
        return HttpResponse("ok")

    middleware = RequestContextMiddleware(view)
    request = rf.get(f"/api/canvas/{deal_id}/events", HTTP_X_REQUEST_ID="trace-async.1")

    async def call():
        before = (request_id_var.get(), deal_id_var.get())
        response = await middleware(request)
        return response, before, (request_id_var.get(), deal_id_var.get())

    response, before, after = asyncio.run(call())
    assert response["X-Request-ID"] == request.request_id == "trace-async.1"
    assert seen["inside"] == ("trace-async.1", str(deal_id))
    assert after == before != seen["inside"]


def _json_lines(caplog) -> list[dict]:
    formatter = JsonFormatter()
    return [json.loads(formatter.format(record)) for record in caplog.records]


def test_request_and_deal_ids_reach_records_logged_during_a_request(cast, caplog, monkeypatch):
    from canvas_project.observability import ContextFilter

    caplog.set_level(logging.WARNING)
    caplog.handler.addFilter(ContextFilter())
    seen = {}

    def spy(*args, **kwargs):
        from canvas_project.observability import deal_id_var, request_id_var

        seen["request_id"], seen["deal_id"] = request_id_var.get(), deal_id_var.get()
        logging.getLogger("canvas.memo.services").warning("probe inside the request")
        return []

    monkeypatch.setattr("canvas.memo.selectors.active_run_ids", spy)
    monkeypatch.setattr("canvas.memo.services.active_run_ids", spy)
    response = cast.client("viewer").get(f"/api/canvas/{cast.deal.pk}", HTTP_X_REQUEST_ID="req-42")
    assert response.status_code == 200
    assert seen == {"request_id": "req-42", "deal_id": str(cast.deal.pk)}
    line = next(entry for entry in _json_lines(caplog) if entry["message"] == "probe inside the request")
    assert (line["request_id"], line["deal_id"], line["level"]) == ("req-42", str(cast.deal.pk), "WARNING")
    assert set(line) == {"time", "level", "logger", "message", "request_id", "deal_id"}


@pytest.mark.parametrize("secret", ["test-engine-token-primary", "Bearer eyJhbGciOiJIUzI1NiJ9.abc.def"])
def test_secrets_never_reach_a_log_line(caplog, secret):
    from canvas_project.observability import ContextFilter

    caplog.set_level(logging.INFO)
    caplog.handler.addFilter(ContextFilter())
    logging.getLogger("anything").warning("header was %s", secret)
    text = caplog.text + json.dumps(_json_lines(caplog))
    assert "test-engine-token-primary" not in text and "eyJhbGciOiJIUzI1NiJ9.abc.def" not in text
    assert "[redacted]" in text


def test_the_metrics_endpoint(cast, client, settings):
    labels = {"route": "api/deals/{deal_id}", "method": "GET", "status": "200"}
    before = metrics.registry.get_sample_value("dealcanvas_http_request_seconds_count", labels) or 0
    cast.client("owner").get(f"/api/deals/{cast.deal.pk}")
    counted = metrics.registry.get_sample_value("dealcanvas_http_request_seconds_count", labels)
    assert counted == before + 1  # the middleware observed exactly this request
    assert client.get("/metrics").status_code == 401
    settings.METRICS_TOKEN = "scrape-me"
    scraped = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-me")
    assert scraped.status_code == 200
    text = scraped.content.decode()
    # /metrics serves this process's registry (no PROMETHEUS_MULTIPROC_DIR here), with the count just read
    sample = 'dealcanvas_http_request_seconds_count{method="GET",route="api/deals/{deal_id}",status="200"}'
    assert f"{sample} {counted}" in text.splitlines()
    assert "dealcanvas_sse_subscribers" in text
    client.force_login(cast.users["superadmin"])
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 200


# --- run durations ---------------------------------------------------------------------------------------
def _run_seconds(client, settings) -> dict[tuple[str, str], float]:
    """dealcanvas_run_seconds samples from GET /metrics: (sample name, status or status|le) -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    settings.METRICS_TOKEN = "scrape-me"
    scraped = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-me")
    assert scraped.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(scraped.content.decode()):
        if family.name == "dealcanvas_run_seconds":
            for sample in family.samples:
                label = sample.labels["status"] + (f"|{sample.labels['le']}" if "le" in sample.labels else "")
                samples[(sample.name, label)] = sample.value
    return samples


@pytest.mark.django_db(transaction=True)
def test_run_durations_are_recorded_by_final_status(cast, client, settings):
    from datetime import timedelta

    from django.utils import timezone

    from canvas.models import RunStatus, SynthesisRun
    from canvas.runs import services as runs
    from tests.canvas.synthesis_corpus import make_corpus

    assert _run_seconds(client, settings) == {}
    settings.RUN_MAX_RESUMES = 0  # the silent run below is failed, not resumed
    make_corpus(cast.deal)
    editor = cast.users["editor"]

    def create():
        return runs.run_create(
            deal=cast.deal, user=editor, kind="generate", sections=["risks"], instructions="", enqueue_on_conflict=False
        )

    succeeded = create()
    assert runs.run_execute(run_id=succeeded.pk) == RunStatus.SUCCEEDED
    cancelled = create()
    assert runs.run_cancel(deal=cast.deal, run_id=cancelled.pk, user=editor).status == RunStatus.CANCELLED
    now = timezone.now()
    SynthesisRun.objects.create(
        deal=cast.deal,
        status=RunStatus.RUNNING,
        requested_sections=["risks"],
        started_at=now - timedelta(minutes=5),
        heartbeat_at=now - timedelta(minutes=5),
    )
    assert len(runs.runs_sweep_dead()) == 1

    samples = _run_seconds(client, settings)
    for status in ("succeeded", "cancelled", "failed"):
        assert samples[("dealcanvas_run_seconds_count", status)] == 1, status
        assert samples[("dealcanvas_run_seconds_bucket", f"{status}|+Inf")] == 1, status
    succeeded.refresh_from_db()
    took = (succeeded.finished_at - succeeded.started_at).total_seconds()
    assert samples[("dealcanvas_run_seconds_sum", "succeeded")] == pytest.approx(took, abs=0.001)
    # the swept run had been running for five minutes: above the 300 s bucket, inside the 600 s one
    assert samples[("dealcanvas_run_seconds_bucket", "failed|300.0")] == 0
    assert samples[("dealcanvas_run_seconds_bucket", "failed|600.0")] == 1
    assert 300 <= samples[("dealcanvas_run_seconds_sum", "failed")] < 310
    # cancelled while queued: timed from its creation, well inside the first bucket
    assert samples[("dealcanvas_run_seconds_bucket", "cancelled|1.0")] == 1


@pytest.mark.django_db(transaction=True)
def test_a_run_finished_in_another_process_is_seen_by_this_ones_metrics(cast, client, settings):
    """Runs finish in Celery workers, which nobody scrapes: the web process must report them too."""
    import os
    import subprocess
    import sys

    from django.db import connection

    from canvas.models import RunStatus
    from canvas.runs import services as runs
    from tests.canvas.synthesis_corpus import make_corpus
    from tests.servers import database_url_of

    make_corpus(cast.deal)
    run = runs.run_create(
        deal=cast.deal,
        user=cast.users["editor"],
        kind="generate",
        sections=["risks"],
        instructions="",
        enqueue_on_conflict=False,
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "canvas_project.settings",
        "DATABASE_URL": database_url_of(connection.settings_dict),
        "REDIS_URL": settings.REDIS_URL,
    }
    worker = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django, sys; django.setup(); from canvas.runs import services; "
            "print(services.run_execute(run_id=sys.argv[1]))",
            str(run.pk),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert worker.returncode == 0 and worker.stdout.strip() == RunStatus.SUCCEEDED, worker.stderr[-2000:]
    samples = _run_seconds(client, settings)
    assert samples[("dealcanvas_run_seconds_count", "succeeded")] == 1


def test_with_redis_down_a_run_duration_is_dropped_and_the_scrape_still_answers(monkeypatch, caplog):
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from canvas_project.observability import RunSecondsCollector, record_run_seconds
    from tests.servers import free_port

    dead = redis.Redis(
        host="127.0.0.1", port=free_port(), socket_connect_timeout=0.2, socket_timeout=0.2, retry=Retry(NoBackoff(), 0)
    )
    monkeypatch.setattr("canvas_project.observability.get_redis", lambda: dead)
    record_run_seconds(status="succeeded", seconds=1.5)  # does not raise: a run's bookkeeping goes on
    assert "run duration not recorded" in caplog.text
    [family] = RunSecondsCollector().collect()
    assert family.name == "dealcanvas_run_seconds" and family.samples == []


# --- several worker processes behind one port (prometheus_client's multiprocess mode) ------------------
@pytest.mark.django_db(transaction=True)
def test_with_several_workers_every_scrape_reports_the_sum_over_them(cast, tmp_path):
    """gunicorn, 2 worker processes, PROMETHEUS_MULTIPROC_DIR: whichever worker answers /metrics, it reports
    every request of both (per-process registries would each show only their own share). A previous run's
    files are cleared at start (canvas_project.gunicorn_conf)."""
    import os
    import re

    import httpx
    from django.conf import settings as django_settings
    from django.db import connection

    from tests.servers import ServiceProcess, database_url_of

    folder = tmp_path / "prom"
    folder.mkdir()
    (folder / "counter_999999.db").write_bytes(b"left by a previous run")
    server = ServiceProcess(
        {
            "DJANGO_SETTINGS_MODULE": "canvas_project.settings",
            "DATABASE_URL": database_url_of(connection.settings_dict),
            "REDIS_URL": django_settings.REDIS_URL,
            "PROMETHEUS_MULTIPROC_DIR": str(folder),
            "METRICS_TOKEN": "scrape-token",
            "LOG_LEVEL": "WARNING",
        },
        command=[
            "gunicorn",
            "canvas_project.wsgi:application",
            "-c",
            "python:canvas_project.gunicorn_conf",
            "-k",
            "gthread",
            "--workers",
            "2",
            "--threads",
            "2",
            "--bind",
            "127.0.0.1:{port}",
            "--log-level",
            "warning",
        ],
    )
    base = server.start().url
    try:
        assert not (folder / "counter_999999.db").exists()
        from deals.tokens import token_pair_for_user

        headers = {"Authorization": f"Bearer {token_pair_for_user(user=cast.users['viewer'])['access']}"}

        def workers_with_requests() -> int:
            return len({name for name in os.listdir(folder) if name.startswith("histogram_")})

        sent = 0
        while sent < 400 and (sent < 40 or workers_with_requests() < 2):
            # a new connection each time: the workers take turns accepting, so both serve some
            assert httpx.get(f"{base}/api/deals/{cast.deal.pk}", headers=headers, timeout=10).status_code == 200
            sent += 1
        assert workers_with_requests() == 2
        pattern = re.compile(
            r'dealcanvas_http_request_seconds_count\{method="GET",route="api/deals/{deal_id}",'
            r'status="200"\} (\S+)'
        )
        seen = []
        for _ in range(8):
            text = httpx.get(f"{base}/metrics", headers={"Authorization": "Bearer scrape-token"}, timeout=10).text
            seen.append(float(pattern.search(text).group(1)))
        assert seen == [float(sent)] * 8
    finally:
        server.stop()
