"""`python3 dev.py run` against servers named by DATABASE_URL / REDIS_URL (the CI and shared-machine case).

The launcher runs for real (migrate, seed_demo, uvicorn, a Celery worker with beat) on the test
database and this worker's Redis database; only its data folder is a fresh temporary one, as on a
machine where the embedded servers never ran.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from tests.servers import database_url_of, free_port

pytestmark = pytest.mark.django_db(transaction=True)
REPO = Path(__file__).resolve().parent.parent

# dev.py's own command, without its venv bootstrap (the tests already run inside the venv)
LAUNCH = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import dev
dev.DEVDATA = Path(sys.argv[2])
dev.VENV = Path(sys.executable).parent.parent
dev.Signals.install()
servers = dev.Servers()
try:
    code = dev.COMMANDS[sys.argv[3]](servers, sys.argv[4:])
finally:
    dev.Signals.deferring += 1
    servers.stop()
sys.exit(code)
"""


def _stop(launcher: subprocess.Popen) -> int:
    launcher.send_signal(signal.SIGTERM)  # dev.py stops the API and the worker itself
    try:
        return launcher.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(launcher.pid, signal.SIGKILL)
        return launcher.wait()


def test_with_server_urls_set_beat_gets_its_schedule_file_and_starts(tmp_path):
    devdata = tmp_path / ".devdata"  # does not exist: no embedded server ever ran here
    env = {
        **os.environ,
        "DATABASE_URL": database_url_of(connection.settings_dict),
        "REDIS_URL": settings.REDIS_URL,
        "PORT": str(free_port()),
        "DJANGO_SETTINGS_MODULE": "canvas_project.settings",
    }
    log_path = tmp_path / "dev-run.log"
    with log_path.open("wb") as log:
        launcher = subprocess.Popen(
            [sys.executable, "-c", LAUNCH, str(REPO), str(devdata), "run"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and launcher.poll() is None:
            text = log_path.read_text(errors="replace")
            if "beat: Starting" in text and list(devdata.glob("celerybeat-schedule*")):
                break
            time.sleep(0.5)
        time.sleep(2)  # beat opens its schedule right after announcing itself; a failure shows up here
        text = log_path.read_text(errors="replace")
        assert launcher.poll() is None, text[-3000:]
        assert list(devdata.glob("celerybeat-schedule*")), text[-3000:]
        assert "Traceback" not in text and "No such file or directory" not in text, text[-3000:]
    finally:
        code = _stop(launcher)
    assert code == 0, log_path.read_text(errors="replace")[-3000:]


def test_manage_runs_a_management_command_on_the_launchers_servers(tmp_path, cast):
    env = {
        **os.environ,
        "DATABASE_URL": database_url_of(connection.settings_dict),
        "REDIS_URL": settings.REDIS_URL,
        "DJANGO_SETTINGS_MODULE": "canvas_project.settings",
    }
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            LAUNCH,
            str(REPO),
            str(tmp_path / ".devdata"),
            "manage",
            "purge_deals",
            "--deal",
            str(cast.deal.pk),
            "--dry-run",
            "--json",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["mode"] == "by_deal" and result["dry_run"] is True and result["deals_considered"] == 1
    from superadmin.models import PurgeAudit

    audit = PurgeAudit.objects.get()  # the command wrote its audit row to the test database
    assert audit.source == "command" and audit.dry_run


def test_manage_without_a_command_says_how_to_use_it(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", LAUNCH, str(REPO), str(tmp_path / ".devdata"), "manage"],
        cwd=REPO,
        env={**os.environ, "DATABASE_URL": database_url_of(connection.settings_dict), "REDIS_URL": settings.REDIS_URL},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0 and "usage: python3 dev.py manage" in (done.stdout + done.stderr)
