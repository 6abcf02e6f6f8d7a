"""Real per-deal Redis state of every family, written through the key registry, and real checkpoints."""

from __future__ import annotations

import json
import time
import uuid
from typing import TypedDict

import pytest

from canvas_project import keys
from canvas_project.redis_client import get_redis
from canvas_project.store import delete_deal_threads, get_checkpointer, get_pool

# What write_deal_state() leaves per family (protected `runs` included).
EXPECTED = {
    "canvas_sessions": 1,
    "locks": 1,
    "presence": 1,
    "events": 3,
    "image_crops": 2,
    "digitization": 1,
    "intake_summaries": 1,
    "doc_readiness": 1,
    "context_cache": 0,  # written by the engines' context reads: tests/internal_api/test_context_freshness.py
    "deal_intel": 1,
    "brush_findings": 1,
    "runs": 3,
}
UNPROTECTED = {family: (0 if keys.FAMILIES[family].protected else n) for family, n in EXPECTED.items()}
HOUR_MS = 3600 * 1000


def write_deal_state(deal_id, *, client=None, events_age_ms: int = HOUR_MS) -> list[str]:
    """Write one key or more of every family for the deal, the way producers do; returns the names.

    The last canvas event is `events_age_ms` old (recent activity when small).
    """
    client = client or get_redis()
    deal = str(deal_id)
    now_ms = int(time.time() * 1000)
    variable = [
        keys.lock_key(deal, "risks"),
        keys.image_crop_key(deal, "doc1", 0),
        keys.image_crop_key(deal, "doc1", 1),
        keys.digitization_key(deal, "doc1"),
        keys.brush_key(deal, "numbers"),
        *(keys.run_key(deal, "r1", part) for part in keys.RUN_PARTS),
    ]
    with client.pipeline(transaction=False) as pipe:
        pipe.set(keys.session_key(deal), json.dumps({"deal_id": deal}), ex=keys.SESSION_TTL)
        pipe.set(keys.lock_key(deal, "risks"), "token", ex=keys.LOCK_TTL)
        pipe.zadd(keys.presence_key(deal), {"user-1": now_ms})
        pipe.expire(keys.presence_key(deal), keys.PRESENCE_TTL)
        pipe.xadd(keys.events_key(deal), {"event": "saved"}, id=f"{now_ms - events_age_ms}-0")
        pipe.xadd(keys.steps_key(deal), {"step": "{}"}, id=f"{now_ms - HOUR_MS}-0")
        pipe.xadd(keys.discourse_key(deal), {"message": "hi"})
        pipe.set(keys.image_crop_key(deal, "doc1", 0), b"\x89PNG...", ex=keys.IMAGE_CROP_TTL)
        pipe.set(keys.image_crop_key(deal, "doc1", 1), b"\x89PNG...", ex=keys.IMAGE_CROP_TTL)
        pipe.set(keys.digitization_key(deal, "doc1"), "{}", ex=keys.DIGITIZATION_TTL)
        pipe.set(keys.intake_key(deal), "{}", ex=keys.INTAKE_TTL)
        pipe.set(keys.readiness_key(deal), "{}", ex=keys.READINESS_TTL)
        pipe.set(keys.deal_intel_key(deal), "{}", ex=keys.DEAL_INTEL_TTL)
        pipe.set(keys.brush_key(deal, "numbers"), "{}", ex=keys.BRUSH_TTL)
        pipe.xadd(keys.run_key(deal, "r1", "events"), {"event": "workflow_started"})
        pipe.set(keys.run_key(deal, "r1", "cancel"), "1", ex=keys.RUN_CANCEL_TTL)
        pipe.set(keys.run_key(deal, "r1", "trace"), "{}", ex=keys.RUN_TRACE_TTL)
        for key in variable:
            keys.track_variable_key(pipe, deal, key)
        pipe.execute()
    return [*(k for names in keys.fixed_keys(deal).values() for k in names), *variable]


def write_foreign_keys(client=None) -> list[str]:
    """Keys that are not per deal: a rate-limit bucket and Celery's. No purge may touch them."""
    client = client or get_redis()
    bucket = keys.rate_limit_key("generate", "user-1")
    client.set(bucket, "1700000000000", ex=60)
    client.lpush("celery", json.dumps({"task": "canvas.runs.tasks.run"}))
    client.sadd("_kombu.binding.celery", "celery")
    return [bucket, "celery", "_kombu.binding.celery"]


def deal_keys_present(deal_id, client=None) -> dict[str, int]:
    """Family -> how many of the deal's keys exist (by SCAN: the test's own ground truth)."""
    client = client or get_redis()
    counts = dict.fromkeys(keys.FAMILIES, 0)
    for key in client.scan_iter(match=f"*{{{deal_id}}}*", count=1000):
        found = keys.classify(key)
        if found and found[0] in counts:
            counts[found[0]] += 1
    return counts


class _Count(TypedDict):
    n: int


def write_checkpoint(thread_id: str) -> None:
    """A real LangGraph checkpoint: a one-node graph run once on the thread with the project's Saver."""
    from langgraph.graph import END, START, StateGraph

    graph = StateGraph(_Count)
    graph.add_node("count", lambda state: {"n": state["n"] + 1})
    graph.add_edge(START, "count")
    graph.add_edge("count", END)
    graph.compile(checkpointer=get_checkpointer()).invoke({"n": 0}, {"configurable": {"thread_id": thread_id}})


@pytest.fixture
def checkpoints(db):
    """write(deal_id, name) -> thread id; every deal's threads are deleted afterwards (the Saver's pool
    commits outside the test's transaction)."""
    deals: set[str] = set()

    def write(deal_id, name: str = "x") -> str:
        deals.add(str(deal_id))
        thread_id = f"deal:{deal_id}:run:{name}"
        write_checkpoint(thread_id)
        return thread_id

    yield write
    for deal in deals:
        delete_deal_threads(deal)


@pytest.fixture(autouse=True)
def _no_threads_of_other_tests(django_db_setup, django_db_blocker):
    """Mode `all` counts every checkpoint thread of the database, and runs of earlier tests leave theirs (the
    Saver's pool commits outside the tests' transactions): each purge test starts with none."""
    with django_db_blocker.unblock(), get_pool().connection() as conn:
        for table in ("checkpoint_writes", "checkpoint_blobs", "checkpoints"):
            conn.execute(f"DELETE FROM {table} WHERE thread_id LIKE 'deal:%'")  # noqa: S608 - fixed names


@pytest.fixture
def redis_client():
    return get_redis()


def new_deal_id() -> str:
    return str(uuid.uuid4())


@pytest.fixture(scope="session", autouse=True)
def _close_langgraph_pool(django_db_setup, django_db_blocker):
    """The Saver's pool holds connections to the test database; close it before that database is dropped."""
    yield
    from canvas_project.store import close_pool

    close_pool()
