"""manage.py purge_deals."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from superadmin.models import PurgeAudit
from tests.superadmin.conftest import (
    EXPECTED,
    UNPROTECTED,
    deal_keys_present,
    write_deal_state,
    write_foreign_keys,
)


class _Tty(io.StringIO):
    def __init__(self, answer: str) -> None:
        super().__init__(answer)

    def isatty(self) -> bool:
        return True


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("purge_deals", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_by_deal_prints_one_summary_line_and_audits(cast):
    write_deal_state(cast.deal.pk)
    out, _ = run("--deal", str(cast.deal.pk))
    [line] = out.strip().splitlines()
    assert line.startswith("purged 13 keys of 1 deals in ") and "audit" in line
    assert deal_keys_present(cast.deal.pk)["canvas_sessions"] == 0
    audit = PurgeAudit.objects.get()
    assert (audit.source, audit.dry_run, audit.actor) == ("command", False, None)
    assert audit.actor_label.endswith("(shell)") or audit.actor_label == "shell"


def test_json_dry_run_keeps_stdout_parseable(cast):
    write_deal_state(cast.deal.pk)
    out, err = run("--all", "--dry-run", "--json")
    body = json.loads(out)
    assert body["dry_run"] is True and body["keys_by_family"] == UNPROTECTED
    assert err.strip().splitlines()[-1].startswith("would purge 13 keys of 1 deals in ")
    assert "100% done: would purge 13 keys of 1 deals" in err  # the progress says it the same way
    assert deal_keys_present(cast.deal.pk) == EXPECTED


def test_all_mode_refuses_without_a_terminal_or_yes(cast, monkeypatch):
    write_deal_state(cast.deal.pk)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(CommandError, match="--yes"):
        run("--all")
    assert deal_keys_present(cast.deal.pk) == EXPECTED and not PurgeAudit.objects.exists()


def test_all_mode_asks_first(cast, monkeypatch):
    write_deal_state(cast.deal.pk)
    foreign = write_foreign_keys()
    monkeypatch.setattr("sys.stdin", _Tty("no\n"))
    with pytest.raises(CommandError, match="aborted"):
        run("--all")
    assert deal_keys_present(cast.deal.pk) == EXPECTED
    monkeypatch.setattr("sys.stdin", _Tty("yes\n"))
    out, err = run("--all", "--include-checkpoints")
    assert out.startswith("purged 16 keys of 1 deals, 0 checkpoint threads in ")
    assert "known deals 1 of 1: purged " in err  # progress lines on stderr, the known deals first
    assert err.strip().splitlines()[-1] == "100% done: purged 16 keys of 1 deals, 0 checkpoint threads"
    assert not any(deal_keys_present(cast.deal.pk).values())
    from canvas_project.redis_client import get_redis

    assert all(get_redis().exists(key) for key in foreign)


def test_yes_skips_the_question_and_exclusion_is_passed_through(cast):
    write_deal_state(cast.deal.pk, events_age_ms=100)
    out, _ = run("--all", "--yes", "--exclude-active-within", "60")
    assert out.startswith("purged 0 keys of 0 deals, 1 deals skipped in ")
    assert deal_keys_present(cast.deal.pk) == EXPECTED


def test_failures_exit_non_zero_with_a_sentence(cast):
    with pytest.raises(CommandError, match="--org: The deal belongs to another org"):
        run("--deal", str(cast.deal.pk), "--org", str(cast.other_org.pk))
    with pytest.raises(CommandError, match="--deal: Input should be a valid UUID"):
        run("--deal", "nope")
    with pytest.raises(CommandError):
        run("--deal", str(cast.deal.pk), "--all")


def test_redis_down_is_a_non_zero_exit(cast, monkeypatch):
    import redis

    from canvas_project import keyspace

    def down(**kwargs):
        raise redis.exceptions.ConnectionError("Connection refused")

    monkeypatch.setattr(keyspace, "purge_deal_keys", down)
    with pytest.raises(CommandError, match="purge failed: ConnectionError"):
        run("--deal", str(cast.deal.pk))
    assert PurgeAudit.objects.get().status == "failed"


def test_the_command_exits_with_status_1_from_a_shell(cast):
    import os
    import subprocess
    import sys

    from django.conf import settings

    # stdin is not a terminal and there is no --yes: refused before Redis or PostgreSQL is touched

    completed = subprocess.run(
        [sys.executable, "manage.py", "purge_deals", "--all"],
        input="",
        capture_output=True,
        text=True,
        cwd=settings.BASE_DIR,
        timeout=60,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "canvas_project.test_settings"},
    )
    assert completed.returncode == 1
    assert "--yes" in completed.stderr
