"""canvas_project.keyspace helpers and the registry's batch classification the walk relies on."""

from __future__ import annotations

import threading
import uuid

import pytest
import redis

from canvas_project import keys
from tests.superadmin.conftest import write_deal_state


def _mixed_batch() -> list[bytes]:
    deal = uuid.uuid4()
    return [
        keys.session_key(deal).encode(),
        b"celery",
        keys.lock_key(deal, "risks").encode(),
        b"canvas:session:{not-a-uuid}",
        keys.index_key(deal).encode(),
        f"canvas:zzz:{{{deal}}}".encode(),
        keys.session_key(deal).encode() + b"trailing",
        keys.run_key(deal, "r1", "trace").encode(),
        keys.rate_limit_key("generate", "u1").encode(),
        b"",
        f"canvas:intel:{{{deal}}}:\u00e9".encode(),
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
    batch = [
        *_mixed_batch(),
        keys.events_key(deal).encode(),
        keys.steps_key(deal).encode(),
        keys.discourse_key(deal).encode(),
    ]
    grouped = keys.classify_batch_grouped(batch)
    flat = sorted((key, family, deal.decode()) for family, rows in grouped.items() for key, _, deal in rows)
    assert flat == sorted(keys.classify_batch(batch))
    assert len(grouped["events"]) == 3
    assert keys.classify_batch_grouped([*batch, b"a\nb"]).keys() == grouped.keys()


# --- mode all: the known deals by name, then the sweep ------------------------------------------------
def test_fixed_name_templates_agree_with_the_registry_builders():
    from canvas_project import keyspace

    deal = str(uuid.uuid4())
    built = [(family, name) for family, names in keys.fixed_keys(deal).items() for name in names]
    assert keyspace.fixed_names(deal) == built


def _untracked_key(client, deal) -> str:
    """A variable key some producer wrote without tracking it in the deal's index."""
    name = keys.brush_key(deal, "untracked")
    client.set(name, "{}", ex=keys.BRUSH_TTL)
    return name


@pytest.mark.parametrize("include_protected", [False, True])
def test_known_deals_then_sweep_delete_exactly_what_the_dry_walk_counts(redis_client, db, include_protected):
    from canvas_project import keyspace
    from tests.superadmin.conftest import EXPECTED, UNPROTECTED, deal_keys_present, write_foreign_keys

    known, orphan = str(uuid.uuid4()), str(uuid.uuid4())  # `orphan`: keys of a deal the caller doesn't know
    for deal in (known, orphan):
        write_deal_state(deal)
        _untracked_key(redis_client, deal)
    foreign = write_foreign_keys(redis_client)
    per_deal = dict(EXPECTED if include_protected else UNPROTECTED)
    per_deal["brush_findings"] += 1
    dry = keyspace.purge_all_keys(client=redis_client, include_protected=include_protected, dry_run=True, deals=[known])
    assert dry.counts == {family: 2 * n for family, n in per_deal.items()}
    assert deal_keys_present(known)["brush_findings"] == 2  # a dry run deletes nothing

    orphan_keys = len(list(redis_client.scan_iter(match=f"*{{{orphan}}}*")))
    real = keyspace.purge_all_keys(
        client=redis_client, include_protected=include_protected, dry_run=False, deals=[known]
    )
    assert real.counts == dry.counts
    # the known deal went by name before the sweep: SCAN met only the orphan's keys, the known deal's
    # untracked key (which only the sweep can find) and, without protected families, the known deal's
    # three run keys and its index, which stay
    assert real.scanned == orphan_keys + 1 + (0 if include_protected else 4)
    assert real.deals_seen == dry.deals_seen == {known, orphan}
    left = {f: (0 if include_protected or not keys.FAMILIES[f].protected else n) for f, n in EXPECTED.items()}
    assert deal_keys_present(known) == deal_keys_present(orphan) == left
    assert all(redis_client.exists(name) for name in foreign)
    for deal in (known, orphan):  # the index lists exactly the keys that stay
        members = {m.decode() for m in redis_client.smembers(keys.index_key(deal))}
        assert members == ({keys.run_key(deal, "r1", p) for p in keys.RUN_PARTS} if not include_protected else set())


def test_known_stage_skips_recent_deals_and_the_sweep_leaves_them_alone(redis_client, db):
    from canvas_project import keyspace
    from tests.superadmin.conftest import EXPECTED, deal_keys_present

    busy, calm = str(uuid.uuid4()), str(uuid.uuid4())
    write_deal_state(busy, events_age_ms=1000)
    write_deal_state(calm, events_age_ms=3_600_000)
    _untracked_key(redis_client, busy)
    outcome = keyspace.purge_all_keys(
        client=redis_client, include_protected=True, dry_run=False, deals=[busy, calm], active_within_secs=60
    )
    assert outcome.skipped == {busy: keyspace.SKIP_RECENT_ACTIVITY}
    assert deal_keys_present(busy) == {**EXPECTED, "brush_findings": 2}
    assert sum(deal_keys_present(calm).values()) == 0
    assert outcome.counts == EXPECTED


def test_an_expired_protected_key_leaves_the_index_with_its_last_entry(redis_client, db):
    from canvas_project import keyspace

    deal = str(uuid.uuid4())
    write_deal_state(deal)
    redis_client.delete(*(keys.run_key(deal, "r1", part) for part in keys.RUN_PARTS))  # as if expired
    keyspace.purge_all_keys(client=redis_client, include_protected=False, dry_run=False, deals=[deal])
    assert not redis_client.exists(keys.index_key(deal))
    assert list(redis_client.scan_iter(match=f"*{{{deal}}}*")) == []


# --- reading many replies at once ---------------------------------------------------------------------
def test_the_installed_redis_py_still_offers_the_fast_reply_reader(redis_client):
    """Mode all reads its replies through the connection's hiredis reader (a redis-py internal); should an
    upgrade take it away the purge would still work, one read_response() a reply, but slower: say so here."""
    from canvas_project import keyspace

    pool = redis_client.connection_pool
    conn = keyspace._pool_connection(pool)
    try:
        assert keyspace._hiredis_reader(conn) is not None
    finally:
        pool.release(conn)


@pytest.mark.parametrize("fast", [True, False])
def test_read_replies_takes_many_replies_across_socket_reads_and_hands_back_errors(redis_client, monkeypatch, fast):
    from canvas_project import keyspace

    if fast:  # the replies must come from the hiredis reader, not one read_response() each
        monkeypatch.setattr(keyspace, "_reply_or_error", lambda conn: pytest.fail("took the slow path"))
    else:
        monkeypatch.setattr(keyspace, "_hiredis_reader", lambda conn: None)
    name = f"test:read-replies:{uuid.uuid4()}"
    redis_client.set(name, b"v" * 100_000, ex=60)  # 40 of these are several reads of the socket's buffer
    pool = redis_client.connection_pool
    conn = keyspace._pool_connection(pool)
    try:
        commands = [("GET", name)] * 40 + [("HGET", name, "field"), ("EXISTS", name)]
        conn.send_packed_command(keyspace._packed(conn, commands))
        replies = keyspace._read_replies(conn, len(commands))
        assert replies[:40] == [b"v" * 100_000] * 40
        assert isinstance(replies[40], redis.exceptions.ResponseError) and "WRONGTYPE" in str(replies[40])
        assert replies[41] == 1
        assert conn.send_command("PING") is None and conn.read_response() in (b"PONG", "PONG")  # still in step
    finally:
        pool.release(conn)
        redis_client.delete(name)


def test_index_entries_that_are_not_variable_keys_of_the_deal_are_never_followed(redis_client):
    """The index lists the variable keys producers track; an entry with a fixed family's kind, another
    deal's key or a name with a newline is dropped from the index and what it names stays."""
    from canvas_project import keyspace

    deal, other = str(uuid.uuid4()), str(uuid.uuid4())
    odd = [f"canvas:session:{{{deal}}}:extra", keys.lock_key(other, "risks"), f"canvas:lock:{{{deal}}}:a\nb"]
    tracked = keys.brush_key(deal, "numbers")
    for name in [*odd, tracked]:
        redis_client.set(name, "1", ex=60)
    redis_client.sadd(keys.index_key(deal), *odd, tracked)
    counts = keyspace.purge_deal_keys(client=redis_client, deal_id=deal, include_protected=True, dry_run=False)
    assert counts["brush_findings"] == 1 and sum(counts.values()) == 1
    assert not redis_client.exists(tracked, keys.index_key(deal))
    assert redis_client.exists(*odd) == len(odd)
    redis_client.delete(*odd)


def test_the_known_stage_reports_what_has_been_deleted_and_ends_on_every_deal(redis_client, db):
    from canvas_project import keyspace

    deals = [str(uuid.uuid4()) for _ in range(keyspace.KNOWN_BATCH + 3)]  # two batches
    for deal in deals:
        write_deal_state(deal)
    steps = []
    outcome = keyspace.purge_all_keys(
        client=redis_client, include_protected=True, dry_run=False, deals=deals, progress=steps.append
    )
    known = [step for step in steps if step.stage == "known"]
    assert [step.deals_done for step in known] == [keyspace.KNOWN_BATCH, len(deals)]
    assert known[0].matched == 16 * keyspace.KNOWN_BATCH  # the first batch's deletions, answered
    assert known[-1].matched == sum(outcome.counts.values()) == 16 * len(deals)


def test_a_single_server_is_purged_in_the_calling_thread(redis_client, db, monkeypatch):
    """One primary: no thread is started; the walk and the progress happen in this thread, as before."""
    from canvas_project import keyspace

    threads: list[int] = []
    sweep = keyspace._NodeWalk.run

    def observed(walk, **kwargs):
        threads.append(threading.get_ident())
        return sweep(walk, **kwargs)

    monkeypatch.setattr(keyspace._NodeWalk, "run", observed)
    deal = str(uuid.uuid4())
    write_deal_state(deal)
    steps = []
    keyspace.purge_all_keys(
        client=redis_client, include_protected=True, dry_run=False, deals=[deal], progress=steps.append
    )
    assert threads == [threading.get_ident()]
    assert (steps[-1].node, steps[-1].nodes, steps[-1].nodes_done) == (1, 1, 1)
