"""superadmin.keyspace helpers and the registry's batch classification the walk relies on."""

from __future__ import annotations

import uuid

import pytest

from canvas import keys
from tests.superadmin.conftest import write_deal_state


def _mixed_batch() -> list[bytes]:
    deal = uuid.uuid4()
    return [
        keys.session_key(deal).encode(), b"celery", keys.lock_key(deal, "risks").encode(),
        b"canvas:session:{not-a-uuid}", keys.index_key(deal).encode(), f"canvas:zzz:{{{deal}}}".encode(),
        keys.session_key(deal).encode() + b"trailing", keys.run_key(deal, "r1", "trace").encode(),
        keys.rate_limit_key("generate", "u1").encode(), b"", f"canvas:intel:{{{deal}}}:\u00e9".encode(),
    ]


def test_classify_batch_answers_like_classify_key_by_key():
    batch = _mixed_batch()
    expected = [(key, *found) for key in batch if (found := keys.classify(key)) is not None]
    assert keys.classify_batch(batch) == expected
    assert [family for _, family, _ in expected] == ["canvas_sessions", "locks", "index", "runs", "deal_intel"]


@pytest.mark.parametrize("odd", [b"canvas:session:{%s}\n", b"x\ncanvas:session:{%s}", b"canvas:lock:{%s}:a\nb"])
def test_a_name_with_a_newline_cannot_smuggle_a_key_into_the_batch(odd):
    deal = str(uuid.uuid4()).encode()
    batch = [*_mixed_batch(), odd % deal]
    assert keys.classify_batch(batch) == [(k, *f) for k in batch if (f := keys.classify(k)) is not None]


def test_classify_batch_of_real_scan_replies(redis_client, db):
    deal = uuid.uuid4()
    write_deal_state(deal)
    cursor, found = redis_client.scan(0, match=keys.scan_pattern(), count=1000)
    assert cursor == 0
    assert sorted(keys.classify_batch(found)) == sorted((k, *keys.classify(k)) for k in found)
    assert len(found) == 17  # 16 keys of every family and the index


def test_classify_batch_grouped_groups_what_classify_batch_finds():
    deal = uuid.uuid4()
    batch = [*_mixed_batch(), keys.events_key(deal).encode(), keys.steps_key(deal).encode(),
             keys.discourse_key(deal).encode()]
    grouped = keys.classify_batch_grouped(batch)
    flat = sorted((key, family, deal.decode()) for family, rows in grouped.items() for key, _, deal in rows)
    assert flat == sorted(keys.classify_batch(batch))
    assert len(grouped["events"]) == 3
    assert keys.classify_batch_grouped([*batch, b"a\nb"]).keys() == grouped.keys()
