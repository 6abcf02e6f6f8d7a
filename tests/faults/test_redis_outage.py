"""Redis killed and restarted under a running service process (uvicorn, real HTTP).

tests/canvas/test_degradation.py covers the canvas's degraded reads in-process; here the same process
lives through the outage: what needs Redis answers 503 naming it, what does not keeps working, nothing
answers 500, and after Redis comes back (empty, on the same port) the process recovers by itself with
every acknowledged write still in the Store.
"""

from __future__ import annotations

import pytest

from canvas.memo.store import read_memo
from tests.canvas.conftest import full_memo
from tests.faults.conftest import DEGRADED_OK, api_as, assert_unavailable, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def service(cast, own_redis, start_service):
    return start_service(REDIS_URL=own_redis.url)


def test_requests_during_a_redis_outage_are_served_or_503_and_the_process_recovers(cast, own_redis, service):
    deal = f"/api/canvas/{cast.deal.pk}"
    owner, editor, viewer = (api_as(service, cast, role) for role in ("owner", "editor", "viewer"))
    saved = owner.post(f"{deal}/save", json={"content": full_memo()})
    assert saved.status_code == 200 and saved.json()["version"] == 1
    assert viewer.get(deal).json()["initialization_warning"] is None  # now cached in Redis
    assert viewer.post(f"{deal}/presence", json={"section_key": "risks"}).status_code == 200

    own_redis.stop()

    answers = {}

    def call(name, response):
        answers[name] = response
        return response

    session = call("canvas GET", viewer.get(deal))
    assert session.status_code == 200, session.text
    assert "Redis is unavailable" in session.json()["initialization_warning"]
    assert session.json()["version"] == 1
    # a save needs only the Store: acknowledged during the outage, it must survive it
    during = call(
        "save",
        editor.post(
            f"{deal}/save",
            json={"content": full_memo() + "\n## Closing Note\n\nWritten while Redis was down.\n", "base_version": 1},
        ),
    )
    assert during.status_code == 200 and during.json()["version"] == 2, during.text
    call("comment", editor.post(f"{deal}/comments", json={"section_key": "risks", "body": "Outage comment"}))
    call("versions", viewer.get(f"{deal}/versions"))
    call("progress", viewer.get(f"{deal}/progress"))
    call("dashboard", viewer.get("/api/dashboard/memos"))
    for name, response in {
        "presence POST": viewer.post(f"{deal}/presence", json={"section_key": "risks"}),
        "presence GET": viewer.get(f"{deal}/presence"),
        "refresh": editor.post(f"{deal}/refresh"),
        "collab steps": viewer.get(f"{deal}/collab/steps?since=0"),
        "generate": editor.post(f"{deal}/generate", json={}),
        "upload": editor.post(
            f"/api/deals/{cast.deal.pk}/documents",
            files={"file": ("notes.txt", b"Purchase price $10,000,000.\n", "text/plain")},
        ),
        "health": viewer.get("/api/health"),
    }.items():
        call(name, response)
    statuses = {name: response.status_code for name, response in answers.items()}
    assert all(code in DEGRADED_OK for code in statuses.values()), statuses
    for name in ("presence POST", "presence GET", "refresh", "collab steps"):
        assert_unavailable(answers[name], "Redis")
    assert statuses["comment"] == 201 and statuses["versions"] == 200 and statuses["dashboard"] == 200
    assert_unavailable(answers["generate"], "Redis")  # the rate limit and the run stream live there
    # an upload lands (file and row) and waits queued: the sweeper enqueues it once the broker is back
    assert statuses["upload"] == 201 and answers["upload"].json()["state"] == "queued", answers["upload"].text
    assert answers["health"].status_code == 503 and answers["health"].json()["checks"]["redis"]["ok"] is False

    own_redis.start()  # the same port, empty

    recovered = wait_for(
        lambda: (r := viewer.get(deal)).status_code == 200 and r.json()["initialization_warning"] is None and r,
        timeout=20,
        what="canvas GET recovers",
    )
    assert recovered.json()["version"] == 2 and "Written while Redis was down." in recovered.json()["markdown_content"]
    assert viewer.post(f"{deal}/presence", json={"section_key": "risks"}).status_code == 200
    assert editor.post(f"{deal}/refresh").status_code == 200
    after = editor.post(
        f"{deal}/save", json={"content": recovered.json()["markdown_content"] + "\nAfter.\n", "base_version": 2}
    )
    assert after.status_code == 200 and after.json()["version"] == 3
    assert viewer.get("/api/health").json()["checks"]["redis"]["ok"] is True
    document = f"/api/deals/{cast.deal.pk}/documents/{answers['upload'].json()['id']}"
    assert viewer.get(f"{document}/download").content == b"Purchase price $10,000,000.\n"
    # every acknowledged write is in the Store itself, not only in what the API shows
    stored = read_memo(cast.deal.pk)
    assert stored.version == 3
    assert "Written while Redis was down." in stored.markdown() and "After." in stored.markdown()
    assert service.crashes() == []
