"""Production start-up refuses to run without its secrets."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = "import django; django.setup(); from django.conf import settings; print(settings.SIMPLE_JWT['SIGNING_KEY'])"


def _start(env_extra: dict) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SECRET_KEY", "JWT_SIGNING_KEY")}
    env.update({"DJANGO_SETTINGS_MODULE": "canvas_project.settings", **env_extra})
    return subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("missing", ["DJANGO_SECRET_KEY", "JWT_SIGNING_KEY"])
def test_production_fails_at_start_up_without_a_secret(missing):
    env = {"DJANGO_ENV": "production", "DJANGO_SECRET_KEY": "s" * 50, "JWT_SIGNING_KEY": "j" * 50,
           "DJANGO_ALLOWED_HOSTS": "api.example.com"}
    del env[missing]
    result = _start(env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and missing in result.stderr


def test_production_starts_with_its_secrets():
    result = _start({"DJANGO_ENV": "production", "DJANGO_SECRET_KEY": "s" * 50, "JWT_SIGNING_KEY": "j" * 50,
                     "DJANGO_ALLOWED_HOSTS": "api.example.com"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "j" * 50


def test_a_malformed_boolean_is_refused():
    result = _start({"DJANGO_DEBUG": "maybe"})
    assert result.returncode != 0 and "DJANGO_DEBUG" in result.stderr


@pytest.mark.parametrize(("redis_url", "broker"), [
    ("unix:///run/redis.sock?db=3", "redis+socket:///run/redis.sock?virtual_host=3"),
    ("unix:///run/redis.sock", "redis+socket:///run/redis.sock"),
    ("redis://127.0.0.1:6379/2", "redis://127.0.0.1:6379/2"),
])
def test_the_celery_broker_uses_the_same_redis_database(redis_url, broker):
    from canvas_project.settings import _celery_broker_url

    assert _celery_broker_url(redis_url) == broker
