"""Concurrent saves over real HTTP (Django's threaded live server, real PostgreSQL and Redis)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from canvas.memo.store import read_memo
from deals.tokens import token_pair_for_user

pytestmark = pytest.mark.django_db(transaction=True)
PARALLEL = 20


def _saves(live_server, cast, bodies: list[dict]) -> list[httpx.Response]:
    token = token_pair_for_user(user=cast.users["editor"])["access"]
    url = f"{live_server.url}/api/canvas/{cast.deal.pk}/save"
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(timeout=60, headers=headers) as client, ThreadPoolExecutor(PARALLEL) as pool:
        return list(pool.map(lambda body: client.post(url, json=body), bodies))


def test_parallel_saves_on_the_same_base_version_have_exactly_one_winner(live_server, cast):
    bodies = [{"content": f"## Executive Summary\n\nWriter {n}.", "base_version": 0} for n in range(PARALLEL)]
    responses = _saves(live_server, cast, bodies)

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [409] * (PARALLEL - 1)
    winner = next(body for body, r in zip(bodies, responses, strict=True) if r.status_code == 200)
    doc = read_memo(cast.deal.pk)
    assert doc.version == 1
    assert doc.sections["executive_summary"].markdown == winner["content"].split("\n\n", 1)[1]
    assert all(r.json()["current_version"] == 1 for r in responses if r.status_code == 409)


def test_parallel_saves_without_base_version_each_get_their_own_version(live_server, cast):
    bodies = [{"content": f"## Executive Summary\n\nWriter {n}."} for n in range(PARALLEL)]
    responses = _saves(live_server, cast, bodies)

    assert all(r.status_code == 200 for r in responses), [r.text for r in responses if r.status_code != 200]
    assert sorted(r.json()["version"] for r in responses) == list(range(1, PARALLEL + 1))
    token = token_pair_for_user(user=cast.users["viewer"])["access"]
    listed = httpx.get(
        f"{live_server.url}/api/canvas/{cast.deal.pk}/versions?page_size=100",
        headers={"Authorization": f"Bearer {token}"},
    ).json()
    assert [v["version"] for v in listed["results"]] == list(range(PARALLEL, 0, -1))
    # the last version holds the last writer's text, and every snapshot holds its own writer's
    last = max(responses, key=lambda r: r.json()["version"])
    doc = read_memo(cast.deal.pk)
    assert doc.version == PARALLEL
    assert doc.sections["executive_summary"].markdown in {b["content"].split("\n\n", 1)[1] for b in bodies}
    assert last.json()["version"] == PARALLEL
