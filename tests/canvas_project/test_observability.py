"""Request ids, JSON logs without secrets, and the Prometheus endpoint."""

from __future__ import annotations

import json
import logging

import pytest

from canvas_project.observability import JsonFormatter, metrics
from tests import factories


def test_every_response_carries_a_request_id(cast):
    response = cast.client("owner").get(f"/api/deals/{cast.deal.pk}")
    assert len(response["X-Request-ID"]) == 32
    echoed = cast.client("owner").get(f"/api/deals/{cast.deal.pk}", HTTP_X_REQUEST_ID="trace-abc.1")
    assert echoed["X-Request-ID"] == "trace-abc.1"
    hostile = cast.client("owner").get(f"/api/deals/{cast.deal.pk}", HTTP_X_REQUEST_ID="x\ny" * 40)
    assert hostile["X-Request-ID"] != "x\ny" * 40


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
        logging.getLogger("canvas.services").warning("probe inside the request")
        return []

    monkeypatch.setattr("canvas.selectors.active_run_ids", spy)
    monkeypatch.setattr("canvas.services.active_run_ids", spy)
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
    cast.client("owner").get(f"/api/deals/{cast.deal.pk}")
    assert client.get("/metrics").status_code == 401
    settings.METRICS_TOKEN = "scrape-me"
    scraped = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-me")
    assert scraped.status_code == 200
    text = scraped.content.decode()
    assert 'dealcanvas_http_request_seconds_count{method="GET",route="api/deals/<str:deal_id>",status="200"}' in text
    assert "dealcanvas_sse_subscribers" in text
    client.force_login(cast.users["superadmin"])
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 200
    assert metrics.registry is not None and factories
