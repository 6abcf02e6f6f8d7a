"""The shared generate bucket holds exactly across two server processes (real uvicorn, real Redis)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from django.conf import settings
from django.db import connection

from deals.tokens import token_pair_for_user
from tests.servers import ServiceProcess, database_url_of

pytestmark = pytest.mark.django_db(transaction=True)
BURST = 5


def test_two_processes_share_one_bucket_and_admit_exactly_the_burst(cast):
    env = {
        "DJANGO_SETTINGS_MODULE": "canvas_project.settings",
        "DATABASE_URL": database_url_of(connection.settings_dict),
        "REDIS_URL": settings.REDIS_URL,
        "GENERATE_RATE_PER_MINUTE": "1",  # nothing refills during the test
        "GENERATE_RATE_BURST": str(BURST),
    }
    servers = [ServiceProcess(env).start(), ServiceProcess(env).start()]
    try:
        token = token_pair_for_user(user=cast.users["editor"])["access"]
        headers = {"Authorization": f"Bearer {token}"}
        urls = [f"{servers[n % 2].url}/api/canvas/{cast.deal.pk}/refresh" for n in range(20)]
        with httpx.Client(timeout=30, headers=headers) as client, ThreadPoolExecutor(10) as pool:
            responses = list(pool.map(client.post, urls))
    finally:
        for server in servers:
            server.stop()

    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == BURST, statuses
    assert statuses.count(429) == 20 - BURST, statuses
    assert all(int(r.headers["Retry-After"]) >= 1 for r in responses if r.status_code == 429)
    # both processes served requests and both refused some: the bucket is shared, not per process
    by_server = {
        s.url: [r.status_code for r, u in zip(responses, urls, strict=True) if u.startswith(s.url)] for s in servers
    }
    assert all(429 in codes for codes in by_server.values())
