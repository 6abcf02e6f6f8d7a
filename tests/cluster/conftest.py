"""The cluster suite: Redis-touching tests of the canvas GET/save, collaboration, locks, SSE resume, rate
limits and purge, re-run unchanged with the whole Redis layer on a real Redis Cluster (the session's
throwaway 3-primary, 3-replica cluster: tests/conftest.py `redis_cluster`).

Each module here imports the test functions (and their module fixtures) of one single-node module, so the
same assertions run twice: once on the shared single Redis where they live, once here on the cluster. A
cross-slot command or a redirection leaking out of the cluster client fails the test (`on_cluster`).
"""

from __future__ import annotations

import pytest

# The fixtures the re-run modules take from their own folders' conftest files.
from tests.canvas.conftest import memo_text, written  # noqa: F401
from tests.superadmin.conftest import _no_threads_of_other_tests, checkpoints, redis_client  # noqa: F401


@pytest.fixture(autouse=True)
def _everything_on_the_cluster(on_cluster):
    yield on_cluster
