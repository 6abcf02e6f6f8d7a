"""OWASP API4 (unrestricted resource consumption): bounded bodies, and AI work metered or refused.

The memo has its own character limit (CANVAS_MAX_CONTENT_CHARS) and uploads theirs
(DOCUMENT_MAX_BYTES); every other JSON body is bounded by DATA_UPLOAD_MAX_MEMORY_SIZE, checked
against the declared length before the body is read or parsed.
"""

from __future__ import annotations

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from canvas.models import Comment, SynthesisRun
from tests.canvas.conftest import canvas_url
from tests.servers import free_port


@pytest.mark.parametrize(
    ("role", "path"),
    [
        ("commenter", "comments"),
        ("commenter", "nodes"),
        ("commenter", "suggestions"),
        ("editor", "generate"),
        ("viewer", "/api/v1/chat"),
    ],
)
def test_a_json_body_over_the_request_limit_is_413_before_it_is_parsed(cast, settings, role, path):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4096
    url = path if path.startswith("/") else canvas_url(cast.deal, path)
    body = {"section_key": "executive_summary", "body": "x" * 8000}
    response = cast.client(role).post(url, body, format="json")
    assert response.status_code == 413, response.content
    assert response.json() == {"detail": "The request body is too large."}
    assert not Comment.objects.exists()


def test_the_default_json_body_limit_is_5_mb(settings):
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE == 5 * 1024 * 1024


def test_ai_work_is_refused_not_let_through_unmetered_when_the_rate_limit_store_is_down(cast, monkeypatch):
    """The generate bucket fails closed: with its Redis unreachable, refresh and generate answer 503."""
    dead = redis.Redis(
        host="127.0.0.1", port=free_port(), socket_connect_timeout=0.2, socket_timeout=0.2, retry=Retry(NoBackoff(), 0)
    )
    monkeypatch.setattr("canvas_project.ratelimit.get_redis", lambda: dead)
    editor = cast.client("editor")
    for path in ("refresh", "generate"):
        response = editor.post(canvas_url(cast.deal, path), {}, format="json")
        assert response.status_code == 503, (path, response.content)
        assert "Redis" in response.json()["detail"]
    assert not SynthesisRun.objects.filter(deal=cast.deal).exists()
