"""canvas_project.keys: the one key registry."""

from __future__ import annotations

import inspect
import re
import uuid

import pytest

from canvas_project import keys
from canvas_project.redis_client import get_redis

DEAL = uuid.UUID("6f1c0d52-3b7e-4d0a-9a51-2f3c4b5d6e7f")

ALL_BUILT = {
    "canvas_sessions": [keys.session_key(DEAL)],
    "locks": [keys.lock_key(DEAL, "executive_summary")],
    "presence": [keys.presence_key(DEAL), keys.presence_meta_key(DEAL)],
    "events": [keys.events_key(DEAL), keys.steps_key(DEAL), keys.discourse_key(DEAL)],
    "image_crops": [keys.image_crop_key(DEAL, "doc1", 3)],
    "digitization": [keys.digitization_key(DEAL, "doc1")],
    "intake_summaries": [keys.intake_key(DEAL)],
    "doc_readiness": [keys.readiness_key(DEAL)],
    "context_cache": [keys.context_key(DEAL)],
    "deal_intel": [keys.deal_intel_key(DEAL)],
    "brush_findings": [keys.brush_key(DEAL, "numbers")],
    "runs": [keys.run_key(DEAL, "r1", part) for part in keys.RUN_PARTS],
}


def test_every_family_of_the_design_is_declared():
    assert set(keys.FAMILIES) == {
        "canvas_sessions",
        "locks",
        "presence",
        "events",
        "image_crops",
        "digitization",
        "intake_summaries",
        "doc_readiness",
        "context_cache",
        "deal_intel",
        "brush_findings",
        "runs",
    }
    assert keys.CHECKPOINTS_FAMILY in keys.ALL_FAMILY_NAMES
    assert {name for name, f in keys.FAMILIES.items() if f.protected} == {"runs"}


def test_the_design_key_shapes():
    assert keys.session_key(DEAL) == "canvas:session:{6f1c0d52-3b7e-4d0a-9a51-2f3c4b5d6e7f}"
    assert keys.lock_key(DEAL, "risks") == "canvas:lock:{6f1c0d52-3b7e-4d0a-9a51-2f3c4b5d6e7f}:risks"
    assert keys.run_key(DEAL, "r9", "cancel") == "canvas:run:{6f1c0d52-3b7e-4d0a-9a51-2f3c4b5d6e7f}:r9:cancel"


@pytest.mark.parametrize(("family", "built"), ALL_BUILT.items())
def test_every_key_classifies_back_to_its_family_and_deal(family, built):
    for key in built:
        assert keys.classify(key) == (family, str(DEAL))
        assert keys.classify(key.encode()) == (family, str(DEAL))


def test_every_builder_is_covered_by_this_test():
    builders = {
        name
        for name, fn in inspect.getmembers(keys, inspect.isfunction)
        if name.endswith("_key") and not name.startswith("track_") and fn.__module__ == keys.__name__
    }
    assert builders == {
        "session_key",
        "lock_key",
        "presence_key",
        "presence_meta_key",
        "events_key",
        "steps_key",
        "discourse_key",
        "image_crop_key",
        "digitization_key",
        "intake_key",
        "readiness_key",
        "context_key",
        "deal_intel_key",
        "brush_key",
        "run_key",
        "index_key",
        "rate_limit_key",
        "worker_heartbeats_key",
        "run_seconds_metric_key",
        "replica_pin_key",
    }


def test_every_per_deal_key_is_hash_tagged_with_the_deal():
    for built in ALL_BUILT.values():
        for key in built:
            assert re.search(r"\{" + str(DEAL) + r"\}", key)


def test_one_deals_keys_share_one_cluster_slot():
    # Redis Cluster hashes only the {tag}: one deal, one slot, so a multi-key UNLINK is legal
    from redis.crc import key_slot

    slots = {key_slot(key.encode()) for built in ALL_BUILT.values() for key in built}
    assert len(slots) == 1


def test_fixed_keys_cover_every_non_variable_family():
    fixed = keys.fixed_keys(DEAL)
    assert set(fixed) == {name for name, f in keys.FAMILIES.items() if not f.variable}
    assert fixed["events"] == ALL_BUILT["events"]


def test_non_deal_keys_are_outside_every_family():
    assert keys.classify(keys.rate_limit_key("generate", "user-1")) is None
    assert keys.classify(keys.worker_heartbeats_key()) is None
    assert not keys.worker_heartbeats_key().startswith(keys.scan_pattern().rstrip("*"))  # purge all never sees it
    assert keys.classify(keys.run_seconds_metric_key()) is None
    assert not keys.run_seconds_metric_key().startswith(keys.scan_pattern().rstrip("*"))
    assert keys.classify(keys.replica_pin_key("engine")) is None
    assert not keys.replica_pin_key("engine").startswith(keys.scan_pattern().rstrip("*"))
    assert keys.classify("celery") is None
    assert keys.classify("_kombu.binding.celery") is None
    assert keys.classify("canvas:session:not-a-uuid") is None
    assert keys.classify(keys.index_key(DEAL)) == ("index", str(DEAL))


@pytest.mark.parametrize("bad", ["", "a:b", "a b", "x{y}", "glob*", "q?"])
def test_variable_segments_cannot_break_the_key_shape(bad):
    with pytest.raises(ValueError):
        keys.lock_key(DEAL, bad)


def test_malformed_deal_ids_are_refused():
    with pytest.raises(ValueError):
        keys.session_key("not-a-uuid")


def test_variable_keys_are_tracked_in_the_deal_index(db):
    client = get_redis()
    lock = keys.lock_key(DEAL, "risks")
    with client.pipeline() as pipe:
        pipe.set(lock, "token", ex=keys.LOCK_TTL)
        keys.track_variable_key(pipe, DEAL, lock)
        pipe.execute()
    assert client.smembers(keys.index_key(DEAL)) == {lock.encode()}
    assert 0 < client.ttl(keys.index_key(DEAL)) <= keys.INDEX_TTL
    assert keys.INDEX_TTL >= max(f.ttl_seconds for f in keys.FAMILIES.values())


def test_no_module_outside_the_registry_spells_a_canvas_key():
    import pathlib

    root = pathlib.Path(keys.__file__).resolve().parent.parent
    offenders = []
    for path in root.glob("*/**/*.py"):
        if ".venv" in path.parts or "tests" in path.parts or path.name == "keys.py":
            continue
        if re.search(
            r"[\"']canvas:(session|lock|presence|presmeta|events|steps|discourse|crops|digitize|intake|readiness|"
            r"intel|brush|run|index):",
            path.read_text(),
        ):
            offenders.append(str(path))
    assert offenders == []
