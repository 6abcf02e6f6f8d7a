"""The LangGraph Store in a database of its own (LANGGRAPH_DATABASE_URL): `migrate` creates its tables
there, not in Django's database, and the service reads and writes the memo there.

Throwaway databases on the same local PostgreSQL, named after the test database and dropped afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from django.db import connection
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from canvas_project.redis_client import get_redis
from canvas_project.store import close_pool, conninfo_from_settings
from tests.canvas.conftest import canvas_url, full_memo, save
from tests.servers import database_url_of

REPO = Path(__file__).resolve().parents[2]
LANGGRAPH_TABLES = {
    "store",
    "store_migrations",
    "checkpoints",
    "checkpoint_blobs",
    "checkpoint_writes",
    "checkpoint_migrations",
}


def _admin_conninfo() -> str:
    params = conninfo_to_dict(conninfo_from_settings(connection.settings_dict))
    return make_conninfo(**{**params, "dbname": "postgres"})


def _url_of(name: str) -> str:
    return database_url_of({**connection.settings_dict, "NAME": name})


def _tables(name: str) -> set[str]:
    conninfo = make_conninfo(**{**conninfo_to_dict(_admin_conninfo()), "dbname": name})
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {row[0] for row in rows}


@pytest.fixture
def scratch_databases():
    """make(suffix) creates an empty database `<test database>_<suffix>`; all are dropped afterwards."""
    made: list[str] = []

    def make(suffix: str) -> str:
        name = f"{connection.settings_dict['NAME']}_{suffix}"
        with psycopg.connect(_admin_conninfo(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        made.append(name)
        return name

    yield make
    close_pool()  # the Store's pool may hold connections to them
    with psycopg.connect(_admin_conninfo(), autocommit=True) as conn:
        for name in made:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _migrate(*, django_db: str, store_db: str) -> None:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "canvas_project.settings",
        "DATABASE_URL": _url_of(django_db),
        "LANGGRAPH_DATABASE_URL": _url_of(store_db),
    }
    done = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]


def test_migrate_creates_the_langgraph_tables_in_the_stores_own_database(db, scratch_databases):
    django_db, store_db = scratch_databases("django"), scratch_databases("lg")
    _migrate(django_db=django_db, store_db=store_db)
    assert LANGGRAPH_TABLES <= _tables(store_db)
    assert not LANGGRAPH_TABLES & _tables(django_db)
    assert "deals_deal" in _tables(django_db) and "deals_deal" not in _tables(store_db)

    # a Store moved to another (empty) database gets its tables from the next migrate, with nothing to apply
    moved = scratch_databases("lg2")
    _migrate(django_db=django_db, store_db=moved)
    assert LANGGRAPH_TABLES <= _tables(moved)


def test_the_memo_is_read_and_written_in_the_stores_own_database(cast, settings, scratch_databases):
    store_db = scratch_databases("lg")
    from canvas_project.store import setup_langgraph_tables

    settings.LANGGRAPH_DATABASE_URL = _url_of(store_db)
    setup_langgraph_tables(connection.settings_dict)  # what migrate runs: the tables go to the Store's database
    assert LANGGRAPH_TABLES <= _tables(store_db)

    owner = cast.client("owner")
    assert save(owner, cast.deal, full_memo()).status_code == 200
    prefix = f"deals.{cast.deal.pk}.canvas"
    conninfo = make_conninfo(**{**conninfo_to_dict(_admin_conninfo()), "dbname": store_db})
    with psycopg.connect(conninfo) as conn:
        stored = conn.execute("SELECT count(*) FROM store WHERE prefix = %s", [prefix]).fetchone()[0]
    assert stored > 1  # the head and the sections
    with connection.cursor() as cursor:  # Django's (test) database has Store tables of its own: untouched
        cursor.execute("SELECT count(*) FROM store WHERE prefix = %s", [prefix])
        assert cursor.fetchone()[0] == 0
    get_redis().flushdb()  # no cached session: the GET must read the memo back from the Store's database
    session = owner.get(canvas_url(cast.deal))
    assert session.status_code == 200
    assert session.json()["markdown_content"].strip() and not session.json()["is_blank"]
