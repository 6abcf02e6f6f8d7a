"""superadmin.services.deals_purge against the real Redis and PostgreSQL, with keys of every family."""

from __future__ import annotations

import pytest

from canvas.models import RunStatus, SynthesisRun
from canvas_project import keys, keyspace
from canvas_project.store import deal_thread_ids
from deals.models import Deal, DealAccess, Org, OrgMembership
from superadmin import services
from superadmin.errors import ActiveRunConflict, DealOrgMismatch, OrgUnknown, PurgeInputInvalid
from superadmin.models import PurgeAudit, PurgeStatus
from tests import factories
from tests.superadmin.conftest import (
    EXPECTED,
    UNPROTECTED,
    deal_keys_present,
    new_deal_id,
    write_deal_state,
    write_foreign_keys,
)

ZERO = dict.fromkeys(keys.FAMILIES, 0)
RUNS_ONLY = {**ZERO, "runs": 3}


def purge(**kwargs) -> services.PurgeResult:
    kwargs.setdefault("dry_run", False)
    return services.deals_purge(source="command", **kwargs)


@pytest.fixture
def two_deals(cast):
    other = factories.make_deal(cast.other_org, owner=cast.users["other_org"], name="Harbor Point")
    write_deal_state(cast.deal.pk)
    write_deal_state(other.pk)
    foreign = write_foreign_keys()
    return cast.deal, other, foreign


def test_by_deal_removes_exactly_that_deals_unprotected_keys(two_deals, redis_client):
    deal, other, foreign = two_deals
    result = purge(mode="by_deal", deal_id=deal.pk)
    assert result.keys_by_family == UNPROTECTED
    assert result.keys_total == sum(UNPROTECTED.values())
    assert (result.deals_considered, result.deals_purged, result.deals_skipped) == (1, 1, [])
    assert deal_keys_present(deal.pk) == RUNS_ONLY
    assert deal_keys_present(other.pk) == EXPECTED
    assert all(redis_client.exists(key) for key in foreign)
    # the index keeps only the entries of what is still there: the protected run keys
    members = {m.decode() for m in redis_client.smembers(keys.index_key(deal.pk))}
    assert members == {keys.run_key(deal.pk, "r1", part) for part in keys.RUN_PARTS}
    assert len(redis_client.smembers(keys.index_key(other.pk))) == 8


def test_by_deal_dry_run_deletes_nothing_and_counts_what_the_real_run_deletes(two_deals, redis_client):
    deal, _, _ = two_deals
    before = redis_client.dbsize()
    dry = purge(mode="by_deal", deal_id=deal.pk, dry_run=True)
    assert redis_client.dbsize() == before
    assert dry.dry_run is True
    real = purge(mode="by_deal", deal_id=deal.pk)
    assert dry.keys_by_family == real.keys_by_family == UNPROTECTED
    # and a second run finds nothing left
    assert purge(mode="by_deal", deal_id=deal.pk).keys_total == 0


def test_by_deal_with_checkpoints_takes_runs_the_index_and_langgraph_threads(two_deals, checkpoints, redis_client):
    deal, other, foreign = two_deals
    mine = checkpoints(deal.pk, "x")
    theirs = checkpoints(other.pk, "y")

    without = purge(mode="by_deal", deal_id=deal.pk)
    assert without.checkpoint_threads_deleted == 0
    assert deal_thread_ids(deal.pk) == [mine]

    dry = purge(mode="by_deal", deal_id=deal.pk, include_checkpoints=True, dry_run=True)
    assert dry.checkpoint_threads_deleted == 1 and deal_thread_ids(deal.pk) == [mine]
    assert dry.keys_by_family == RUNS_ONLY

    result = purge(mode="by_deal", deal_id=deal.pk, include_checkpoints=True)
    assert result.checkpoint_threads_deleted == 1
    assert result.keys_by_family == RUNS_ONLY
    assert deal_thread_ids(deal.pk) == []
    assert deal_thread_ids(other.pk) == [theirs]
    assert deal_keys_present(deal.pk) == ZERO
    assert not redis_client.exists(keys.index_key(deal.pk))
    assert deal_keys_present(other.pk) == EXPECTED
    assert all(redis_client.exists(key) for key in foreign)


def test_checkpoints_are_refused_while_a_run_is_active_unless_forced(two_deals, checkpoints):
    deal, _, _ = two_deals
    checkpoints(deal.pk)
    run = SynthesisRun.objects.create(deal=deal, status=RunStatus.RUNNING)
    with pytest.raises(ActiveRunConflict) as refused:
        purge(mode="by_deal", deal_id=deal.pk, include_checkpoints=True)
    assert str(run.pk) in refused.value.message
    assert deal_keys_present(deal.pk) == EXPECTED  # nothing went
    assert PurgeAudit.objects.get().status == PurgeStatus.REFUSED
    # without checkpoints the active run is no obstacle: its streams are protected
    assert purge(mode="by_deal", deal_id=deal.pk).keys_total == sum(UNPROTECTED.values())
    forced = purge(mode="by_deal", deal_id=deal.pk, include_checkpoints=True, force=True)
    assert forced.checkpoint_threads_deleted == 1 and forced.keys_by_family["runs"] == 3


def test_org_must_be_the_deals_org(two_deals):
    deal, other, _ = two_deals
    with pytest.raises(DealOrgMismatch) as mismatch:
        purge(mode="by_deal", deal_id=deal.pk, org_id=other.org_id)
    assert mismatch.value.loc == ["body", "org_id"]
    assert deal_keys_present(deal.pk) == EXPECTED
    assert purge(mode="by_deal", deal_id=deal.pk, org_id=deal.org_id).keys_total == 13


def test_a_deal_postgresql_does_not_know_is_still_purged(cast, redis_client):
    ghost = new_deal_id()
    write_deal_state(ghost)
    # the org check needs the deal's row: for a ghost any org is accepted
    result = purge(mode="by_deal", deal_id=ghost, org_id=cast.org.pk)
    assert result.keys_by_family == UNPROTECTED
    assert deal_keys_present(ghost) == RUNS_ONLY


def test_by_deal_can_skip_a_recently_active_deal(cast):
    write_deal_state(cast.deal.pk, events_age_ms=1000)
    result = purge(mode="by_deal", deal_id=cast.deal.pk, exclude_active_within_secs=60)
    assert result.deals_skipped == [{"deal_id": str(cast.deal.pk), "reason": "recent_activity"}]
    assert result.keys_total == 0 and result.deals_purged == 0
    assert deal_keys_present(cast.deal.pk) == EXPECTED
    assert purge(mode="by_deal", deal_id=cast.deal.pk, exclude_active_within_secs=0).keys_total == 13


def test_index_entries_of_other_deals_are_never_followed(cast, redis_client):
    deal, victim = str(cast.deal.pk), new_deal_id()
    write_deal_state(victim)
    stranger = keys.lock_key(victim, "risks")
    redis_client.sadd(keys.index_key(deal), stranger, "celery")
    result = purge(mode="by_deal", deal_id=deal)
    assert result.keys_total == 0
    assert redis_client.exists(stranger) and redis_client.exists(keys.index_key(victim))
    assert not redis_client.exists(keys.index_key(deal))  # its bogus entries were dropped


def test_all_mode_removes_every_deal_and_nothing_else(two_deals, redis_client):
    deal, other, foreign = two_deals
    ghost = new_deal_id()
    write_deal_state(ghost)
    dry = purge(mode="all", dry_run=True)
    assert deal_keys_present(deal.pk) == EXPECTED
    result = purge(mode="all")
    assert dry.keys_by_family == result.keys_by_family == {f: 3 * n for f, n in UNPROTECTED.items()}
    assert (result.deals_considered, result.deals_purged) == (3, 3)
    for deal_id in (deal.pk, other.pk, ghost):
        assert deal_keys_present(deal_id) == RUNS_ONLY
        members = redis_client.smembers(keys.index_key(deal_id))
        assert {m.decode() for m in members} == {keys.run_key(deal_id, "r1", p) for p in keys.RUN_PARTS}
    assert all(redis_client.exists(key) for key in foreign)


def test_all_mode_with_checkpoints_leaves_only_non_deal_keys(two_deals, checkpoints, redis_client):
    deal, other, foreign = two_deals
    checkpoints(deal.pk)
    thread_only = new_deal_id()
    checkpoints(thread_only)
    result = purge(mode="all", include_checkpoints=True)
    assert result.keys_by_family == {f: 2 * n for f, n in EXPECTED.items()}
    assert result.checkpoint_threads_deleted == 2
    assert result.deals_considered == 3
    assert sorted(k.decode() for k in redis_client.scan_iter(count=1000)) == sorted(foreign)  # every node
    assert deal_thread_ids(deal.pk) == deal_thread_ids(thread_only) == []


def test_all_mode_skips_exactly_the_recently_active_deals(cast, redis_client):
    active = [str(factories.make_deal(cast.org, name=f"active {i}").pk) for i in range(3)]
    idle = [str(factories.make_deal(cast.org, name=f"idle {i}").pk) for i in range(4)]
    for deal in active:
        write_deal_state(deal, events_age_ms=2000)
    for deal in idle:
        write_deal_state(deal, events_age_ms=600_000)
    result = purge(mode="all", exclude_active_within_secs=300)
    assert sorted(s["deal_id"] for s in result.deals_skipped) == sorted(active)
    assert {s["reason"] for s in result.deals_skipped} == {"recent_activity"}
    assert result.deals_considered == 7 and result.deals_purged == 4
    for deal in active:
        assert deal_keys_present(deal) == EXPECTED
        assert len(redis_client.smembers(keys.index_key(deal))) == 8
    for deal in idle:
        assert deal_keys_present(deal) == RUNS_ONLY


def test_all_mode_skips_deals_with_an_active_run_when_checkpoints_are_included(cast, checkpoints):
    busy, calm = cast.deal, factories.make_deal(cast.org, name="calm")
    for deal in (busy, calm):
        write_deal_state(deal.pk)
        checkpoints(deal.pk)
    SynthesisRun.objects.create(deal=busy, status=RunStatus.QUEUED)
    result = purge(mode="all", include_checkpoints=True)
    assert result.deals_skipped == [{"deal_id": str(busy.pk), "reason": "active_run"}]
    assert deal_keys_present(busy.pk) == EXPECTED and len(deal_thread_ids(busy.pk)) == 1
    assert deal_keys_present(calm.pk) == ZERO and deal_thread_ids(calm.pk) == []
    forced = purge(mode="all", include_checkpoints=True, force=True)
    assert forced.deals_skipped == [] and deal_keys_present(busy.pk) == ZERO


def test_all_mode_keeps_to_one_org(two_deals):
    deal, other, _ = two_deals
    result = purge(mode="all", org_id=other.org_id)
    assert result.deals_considered == 1
    assert deal_keys_present(deal.pk) == EXPECTED
    assert deal_keys_present(other.pk) == RUNS_ONLY
    with pytest.raises(OrgUnknown):
        purge(mode="all", org_id=new_deal_id())


def test_small_scan_batches_give_the_same_counts(cast, redis_client):
    deals = [new_deal_id() for _ in range(6)]
    for i, deal in enumerate(deals):
        write_deal_state(deal, events_age_ms=1000 if i % 2 else 600_000)
    for dry_run in (True, False):
        outcome = keyspace.purge_all_keys(
            client=redis_client, include_protected=False, dry_run=dry_run, active_within_secs=60, batch=3
        )
        assert outcome.counts == {f: 3 * n for f, n in UNPROTECTED.items()}
        assert sorted(outcome.skipped) == sorted(deals[1::2])


@pytest.mark.parametrize(
    "bad",
    [
        {"mode": "everything"},
        {"mode": "by_deal"},
        {"mode": "by_deal", "deal_id": "not-a-uuid"},
        {"mode": "all", "deal_id": "6f1c0d52-3b7e-4d0a-9a51-2f3c4b5d6e7f"},
        {"mode": "all", "exclude_active_within_secs": -1},
    ],
)
def test_bad_input_is_refused_before_anything_happens(db, bad):
    with pytest.raises(PurgeInputInvalid):
        purge(**bad)
    assert not PurgeAudit.objects.exists()


def test_postgresql_rows_are_never_touched(two_deals):
    def census():
        return [m.objects.count() for m in (Org, OrgMembership, Deal, DealAccess, SynthesisRun)]

    SynthesisRun.objects.create(deal=two_deals[0], status=RunStatus.SUCCEEDED)
    before = census()
    purge(mode="all", include_checkpoints=True, force=True)
    purge(mode="by_deal", deal_id=two_deals[1].pk, include_checkpoints=True, force=True)
    assert census() == before


def test_every_purge_leaves_one_audit_row(two_deals, cast):
    deal, _, _ = two_deals
    result = services.deals_purge(mode="by_deal", deal_id=deal.pk, source="api", actor=cast.users["superadmin"])
    audit = PurgeAudit.objects.get()
    assert str(audit.pk) == result.audit_id
    assert (audit.source, audit.actor, audit.actor_label) == ("api", cast.users["superadmin"], "superadmin")
    assert audit.dry_run is True and audit.status == PurgeStatus.SUCCEEDED
    assert audit.result["keys_by_family"] == UNPROTECTED and audit.keys_total == 13
    assert audit.parameters["deal_id"] == str(deal.pk)
    assert audit.finished_at >= audit.started_at and audit.duration_ms is not None


def test_a_redis_failure_is_audited_as_failed(two_deals, monkeypatch):
    import redis

    def down(**kwargs):
        raise redis.exceptions.ConnectionError("Connection refused")

    monkeypatch.setattr(keyspace, "purge_deal_keys", down)
    with pytest.raises(redis.exceptions.ConnectionError):
        purge(mode="by_deal", deal_id=two_deals[0].pk)
    audit = PurgeAudit.objects.get()
    assert audit.status == PurgeStatus.FAILED and "Connection refused" in audit.error


def test_the_index_rewrite_keeps_entries_of_keys_written_during_the_walk(redis_client):
    deal = new_deal_id()
    written_meanwhile = keys.lock_key(deal, "risks")
    purged = keys.brush_key(deal, "numbers")
    run = keys.run_key(deal, "r1", "events")
    redis_client.sadd(keys.index_key(deal), written_meanwhile, purged, run)
    redis_client.set(written_meanwhile, "token")
    redis_client.xadd(run, {"event": "x"})
    keyspace._rewrite_indexes(client=redis_client, deals=[deal], kept={deal: [run.encode()]})
    assert {m.decode() for m in redis_client.smembers(keys.index_key(deal))} == {written_meanwhile, run}


def test_purges_are_counted_in_the_metrics(two_deals):
    from canvas_project.observability import metrics

    def sample(name: str, **labels) -> float:
        return metrics.registry.get_sample_value(name, labels) or 0.0

    purges = {"source": "command", "mode": "by_deal", "dry_run": "false", "status": "succeeded"}
    before = sample("dealcanvas_purges_total", **purges), sample("dealcanvas_purged_keys_total", family="events")
    purge(mode="by_deal", deal_id=two_deals[0].pk)
    purge(mode="by_deal", deal_id=two_deals[0].pk, dry_run=True)
    assert sample("dealcanvas_purges_total", **purges) == before[0] + 1
    assert sample("dealcanvas_purged_keys_total", family="events") == before[1] + 3
