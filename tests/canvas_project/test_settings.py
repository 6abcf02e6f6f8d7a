"""Production start-up refuses to run without its secrets."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = "import django; django.setup(); from django.conf import settings; print(settings.SIMPLE_JWT['SIGNING_KEY'])"


def _start(env_extra: dict) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SECRET_KEY", "JWT_SIGNING_KEY")}
    env.update({"DJANGO_SETTINGS_MODULE": "canvas_project.settings", **env_extra})
    return subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("missing", ["DJANGO_SECRET_KEY", "JWT_SIGNING_KEY"])
def test_production_fails_at_start_up_without_a_secret(missing):
    env = {
        "DJANGO_ENV": "production",
        "DJANGO_SECRET_KEY": "s" * 50,
        "JWT_SIGNING_KEY": "j" * 50,
        "DJANGO_ALLOWED_HOSTS": "api.example.com",
    }
    del env[missing]
    result = _start(env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and missing in result.stderr


def test_production_starts_with_its_secrets():
    result = _start(
        {
            "DJANGO_ENV": "production",
            "DJANGO_SECRET_KEY": "s" * 50,
            "JWT_SIGNING_KEY": "j" * 50,
            "DJANGO_ALLOWED_HOSTS": "api.example.com",
        }
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "j" * 50


def test_a_malformed_boolean_is_refused():
    result = _start({"DJANGO_DEBUG": "maybe"})
    assert result.returncode != 0 and "DJANGO_DEBUG" in result.stderr


@pytest.mark.parametrize(
    ("redis_url", "broker"),
    [
        ("unix:///run/redis.sock?db=3", "redis+socket:///run/redis.sock?virtual_host=3"),
        ("unix:///run/redis.sock", "redis+socket:///run/redis.sock"),
        ("redis://127.0.0.1:6379/2", "redis://127.0.0.1:6379/2"),
    ],
)
def test_the_celery_broker_uses_the_same_redis_database(redis_url, broker):
    from canvas_project.settings import _celery_broker_url

    assert _celery_broker_url(redis_url) == broker


def test_a_separate_frontend_may_call_the_api_cross_origin(cast, client, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example.com"]
    preflight = client.options(
        f"/api/canvas/{cast.deal.pk}",
        HTTP_ORIGIN="https://app.example.com",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, last-event-id",
    )
    assert preflight["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "last-event-id" in preflight["Access-Control-Allow-Headers"]
    stranger = client.options(
        f"/api/canvas/{cast.deal.pk}", HTTP_ORIGIN="https://evil.example.com", HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET"
    )
    assert "Access-Control-Allow-Origin" not in stranger


def test_check_deploy_is_clean_under_production_settings():
    import secrets

    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SECRET_KEY", "JWT_SIGNING_KEY")}
    env.update(
        {
            "DJANGO_ENV": "production",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(60),
            "JWT_SIGNING_KEY": secrets.token_urlsafe(60),
            "DJANGO_ALLOWED_HOSTS": "api.example.com",
            "DJANGO_SETTINGS_MODULE": "canvas_project.settings",
        }
    )
    manage = str(Path(__file__).resolve().parents[2] / "manage.py")
    result = subprocess.run(
        [sys.executable, manage, "check", "--deploy", "--fail-level", "WARNING"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


# --- settings are declared once --------------------------------------------------------------------------
REPO = Path(__file__).resolve().parents[2]
SOURCE_PACKAGES = ("canvas", "canvas_project", "deals", "superadmin", "internal_api")
# where settings are declared (and read from the environment); nowhere else may give one a default
DECLARING = {"canvas_project/settings.py", "canvas_project/env.py", "canvas_project/test_settings.py"}


def _source_files():
    for package in SOURCE_PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            relative = path.relative_to(REPO).as_posix()
            if relative not in DECLARING:
                yield relative, path


def _is_settings(node) -> bool:
    # django.conf.settings as the modules name it: `settings`, `django_settings`, `conf.settings`
    name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
    return name in ("settings", "django_settings")


def _settings_defaults(tree) -> list[tuple[int, str]]:
    """getattr(settings, <name>, <default>) calls: a second default next to the declared one."""
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "getattr"
            and len(node.args) == 3
            and _is_settings(node.args[0])
        ):
            found.append((node.lineno, ast.unparse(node)))
    return found


def test_no_module_gives_a_setting_a_second_default():
    offenders = [
        f"{relative}:{line}: {call}"
        for relative, path in _source_files()
        for line, call in _settings_defaults(ast.parse(path.read_text(), filename=str(path)))
    ]
    assert offenders == [], "read settings.X (declared once in canvas_project/settings.py):\n" + "\n".join(offenders)


def test_the_guard_sees_getattr_defaults():
    sample = 'getattr(settings, "SSE_COALESCE_MS", 0)\ngetattr(django_settings, "X",\n    1)\ngetattr(settings, "Y")\n'
    assert [line for line, _ in _settings_defaults(ast.parse(sample))] == [1, 2]


def test_every_setting_the_code_reads_is_declared(settings):
    from django.conf import settings as django_settings

    read = {
        (relative, node.attr)
        for relative, path in _source_files()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path)))
        if isinstance(node, ast.Attribute) and node.attr.isupper() and _is_settings(node.value)
    }
    assert read, "the scan found no settings.X reads"
    missing = sorted(f"{relative}: {name}" for relative, name in read if not hasattr(django_settings, name))
    assert missing == []
