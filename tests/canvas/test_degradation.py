"""The canvas with Redis killed and restarted mid-test, and with the Store unreachable."""

from __future__ import annotations

import pytest
from django.test import override_settings

from canvas_project.store import close_pool
from tests.canvas.conftest import canvas_url, save
from tests.servers import ThrowawayRedis, free_port


@pytest.fixture
def own_redis(settings):
    """Point the service at a Redis of this test's own, which it may kill and restart."""
    server = ThrowawayRedis().start()
    caches = {"default": {**settings.CACHES["default"], "LOCATION": server.url}}
    with override_settings(CACHES=caches, REDIS_URL=server.url):
        yield server
    server.stop()


def test_with_redis_down_reads_still_work_and_writes_that_need_redis_say_503(cast, written, own_redis):
    viewer, editor = cast.client("viewer"), cast.client("editor")
    assert viewer.get(canvas_url(cast.deal)).json()["initialization_warning"] is None  # cached in own_redis

    own_redis.stop()
    degraded = viewer.get(canvas_url(cast.deal))
    assert degraded.status_code == 200
    body = degraded.json()
    assert "Redis is unavailable" in body["initialization_warning"]
    assert body["version"] == 1 and "Executive Summary" in body["markdown_content"]

    refresh = editor.post(canvas_url(cast.deal, "refresh"))
    assert refresh.status_code == 503 and "Redis" in refresh.json()["detail"]
    # a save needs only the Store: it lands, and nothing is lost when Redis returns
    saved = save(editor, cast.deal, body["markdown_content"] + "\n## Closing Note\n\nStill here.\n", base_version=1)
    assert saved.status_code == 200 and saved.json()["version"] == 2
    health = viewer.get("/api/health")
    assert health.status_code == 503 and health.json()["detail"] == "redis, celery are down."

    own_redis.start()  # the same port, empty: everything must come back without a restart
    recovered = viewer.get(canvas_url(cast.deal)).json()
    assert recovered["initialization_warning"] is None
    assert recovered["version"] == 2 and "Still here." in recovered["markdown_content"]
    assert editor.post(canvas_url(cast.deal, "refresh")).status_code == 200


def test_a_stale_cache_left_by_an_outage_is_not_served_after_recovery(cast, written, own_redis):
    viewer, editor = cast.client("viewer"), cast.client("editor")
    viewer.get(canvas_url(cast.deal))  # cached at version 1
    own_redis.stop()
    save(editor, cast.deal, "## Risks and Mitigants\n\nWritten during the outage.", base_version=1)
    own_redis.start()
    # the restarted server is empty here; the version check covers one that kept its data too
    body = viewer.get(canvas_url(cast.deal)).json()
    assert body["version"] == 2


def test_section_writes_with_collaboration_off_need_redis_for_the_lock_check(cast, written, own_redis):
    cast.deal.collab_enabled = False
    cast.deal.save()
    own_redis.stop()
    response = cast.client("editor").put(canvas_url(cast.deal, "sections/risks"), {"markdown": "x"}, format="json")
    assert response.status_code == 503 and "Redis" in response.json()["detail"]


def test_with_the_store_unreachable_the_canvas_answers_503_saying_so(cast, settings):
    settings.LANGGRAPH_DATABASE_URL = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    settings.LANGGRAPH_POOL_TIMEOUT = 0.5
    try:
        response = cast.client("viewer").get(canvas_url(cast.deal))
        saved = save(cast.client("editor"), cast.deal, "## Risks and Mitigants\n\nx")
        progress = cast.client("viewer").get(canvas_url(cast.deal, "progress"))
    finally:
        close_pool()
    assert response.status_code == 503
    assert "store" in response.json()["detail"].lower()
    assert saved.status_code == 503
    assert progress.status_code == 200 and progress.json()["store_available"] is False
