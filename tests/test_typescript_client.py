"""A TypeScript client generated from the served schema, type-checked and run against the running service.

clients/typescript holds a small frontend flow (src/flow.ts: login, canvas GET, save, a stale save that
reads `current_version`, a stream ticket) written against the types openapi-typescript generates from
`/api/schema/?format=json`. This test serves the schema, generates the types, compiles the flow with tsc
(no cast anywhere: a field the schema loses, renames or retypes fails here) and runs it with node against
the service over ASGI (uvicorn), checking what it read against the server's own state.

It needs node and npm (.ci/run installs them with apt-get when missing); `npm ci` installs the pinned
packages of clients/typescript/package-lock.json into its node_modules once per lock file.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from canvas.memo.store import read_memo
from canvas_project.hashers import Argon2idHasher
from tests import factories
from tests.servers import ServiceProcess, database_url_of

CLIENT = Path(__file__).resolve().parent.parent / "clients" / "typescript"
NPM = shutil.which("npm")
NODE = shutil.which("node")

pytestmark = [
    pytest.mark.skipif(NPM is None or NODE is None, reason="node and npm not found (.ci/run installs them)"),
    pytest.mark.django_db(transaction=True),
]


def _npm(*args: str, timeout: float = 300) -> str:
    done = subprocess.run([NPM, *args], cwd=CLIENT, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"npm {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _installed() -> None:
    """`npm ci` once per package-lock.json (a stamp in node_modules records which one)."""
    lock = hashlib.sha256((CLIENT / "package-lock.json").read_bytes()).hexdigest()
    stamp = CLIENT / "node_modules" / ".lock-sha256"
    if not stamp.exists() or stamp.read_text() != lock:
        _npm("ci", "--no-audit", "--no-fund")
        stamp.write_text(lock)


@pytest.fixture
def service(cast):
    """The service over ASGI (uvicorn, as `dev.py run` serves it): REST and the event streams."""
    server = ServiceProcess(
        {
            "DJANGO_SETTINGS_MODULE": "canvas_project.settings",
            "DATABASE_URL": database_url_of(connection.settings_dict),
            "REDIS_URL": settings.REDIS_URL,
        }
    ).start()
    yield server
    server.stop()


def test_the_generated_client_type_checks_and_runs_the_first_flow(client, service, cast):
    _installed()
    schema = client.get("/api/schema/?format=json")
    assert schema.status_code == 200 and schema["Content-Type"].startswith("application/vnd.oai.openapi+json")
    (CLIENT / "schema.json").write_bytes(schema.content)
    _npm("run", "generate")
    _npm("run", "build")  # tsc: strict, every response read through the generated types

    deal = str(cast.deal.pk)
    # the service runs the production settings, whose hashers do not read the test settings' MD5 hashes
    hasher = Argon2idHasher()
    editor = cast.users["editor"]
    type(editor).objects.filter(pk=editor.pk).update(password=hasher.encode(factories.PASSWORD, hasher.salt()))
    assert read_memo(deal) is None  # the client's canvas GET creates the memo
    done = subprocess.run(
        [NODE, "dist/main.js", service.url, "editor", factories.PASSWORD, deal],
        cwd=CLIENT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    after = read_memo(deal)
    assert result["username"] == "editor"
    assert result["versionSaved"] == after.version == result["versionRead"] + 1
    assert "executive_summary" in result["changedSections"]
    assert "Saved by the typed client" in after.sections["executive_summary"].markdown
    # the stale save: 409, and the client read the memo's current version from the typed body
    assert result["staleStatus"] == 409 and result["staleCurrentVersion"] == after.version
    assert result["staleDetail"]
    assert "A second edit." not in after.sections["executive_summary"].markdown
    # a stream ticket, typed by the schema, opens the deal's event stream (its events are read by a native
    # EventSource in real Chromium: tests/canvas/test_stream_ticket_browser.py)
    assert result["ticketExpiresAt"] and result["eventsStatus"] == 200
    assert result["eventsContentType"].startswith("text/event-stream")
