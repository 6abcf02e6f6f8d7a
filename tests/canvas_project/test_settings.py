"""Production start-up refuses to run without its secrets."""

from __future__ import annotations

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
