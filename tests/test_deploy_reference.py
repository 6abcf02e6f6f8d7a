"""The reference deployment (deploy/Procfile, deploy/node.env; docs/scaling.md) stays true to the code: every
variable it sets is one the service reads, the settings load under it with `check --deploy` clean, and every
process it starts names code that exists."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
READS = re.compile(r"""env_(?:str|bool|int|list|required)\(\s*["']([A-Z0-9_]+)["']""")


def _node_env() -> dict[str, str]:
    env = {}
    for line in (DEPLOY / "node.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            env[name] = value
    return env


def _filled(env: dict[str, str]) -> dict[str, str]:
    """The file's placeholders (<...>) replaced by distinct values of the right length."""
    return {name: re.sub(r"<[^>]*>", f"{name.lower()}-{'x' * 60}", value) for name, value in env.items()}


def _procfile() -> dict[str, str]:
    processes = {}
    for line in (DEPLOY / "Procfile").read_text().splitlines():
        if line and not line.startswith("#"):
            kind, _, command = line.partition(":")
            processes[kind.strip()] = command.strip()
    return processes


def test_it_sets_only_variables_the_service_reads():
    read = set()
    for path in (REPO / "canvas_project").rglob("*.py"):
        read |= set(READS.findall(path.read_text()))
    unknown = sorted(set(_node_env()) - read)
    assert unknown == [], f"deploy/node.env sets variables no setting reads: {unknown}"


def test_the_settings_load_under_it_and_check_deploy_is_clean():
    env = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "canvas_project.settings", **_filled(_node_env())}
    shown = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings as s; "
            "print(s.PRODUCTION, s.REDIS_CLUSTER, s.CELERY_BROKER_URL.split(':')[0], sorted(s.DATABASES), "
            "s.CANVAS_EVENTS_MAXLEN)",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.split() == ["True", "True", "amqp", "['default',", "'replica_1']", "1000"], shown.stdout
    checked = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "no issues" in checked.stdout


def test_every_process_names_code_that_exists():
    processes = _procfile()
    assert set(processes) == {"release", "web", "sse", "worker", "beat"}
    targets = []
    for kind, command in processes.items():
        words = shlex.split(command)
        if "gunicorn" in words:
            at = words.index("gunicorn")
            targets.append(words[at + 1])  # module:attribute of the application
            config = words[words.index("-c") + 1].removeprefix("python:")
            targets.append(f"{config}:on_starting")
            worker_class = words[words.index("-k") + 1]
            if "." in worker_class:
                targets.append(":".join(worker_class.rsplit(".", 1)))
        if "celery" in words:
            targets.append(f"{words[words.index('-A') + 1]}.celery:app")
        if kind == "release":
            assert "migrate" in words and "collectstatic" in words
    script = (
        "import importlib, sys\n"
        "for target in sys.argv[1:]:\n"
        "    module, attribute = target.split(':')\n"
        "    assert hasattr(importlib.import_module(module), attribute), target\n"
        "print('ok', len(sys.argv) - 1)\n"
    )
    env = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "canvas_project.settings", **_filled(_node_env())}
    result = subprocess.run(
        [sys.executable, "-c", script, *targets], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ok", str(len(targets))]
    assert "beat" not in processes["worker"], "beat must be its own process, run exactly once"
