"""OWASP API8 (security misconfiguration): CORS, CSRF, error bodies and production transport settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from django.test import Client

from tests.canvas.conftest import canvas_url

FRONTEND = "https://app.example.com"


def test_cors_answers_listed_origins_without_credentials_and_only_under_api(cast, client, settings):
    settings.CORS_ALLOWED_ORIGINS = [FRONTEND]
    preflight = client.options(
        canvas_url(cast.deal, "save"),
        HTTP_ORIGIN=FRONTEND,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type",
    )
    assert preflight["Access-Control-Allow-Origin"] == FRONTEND
    assert "Access-Control-Allow-Credentials" not in preflight  # bearer tokens, never cookies
    assert {"authorization", "content-type"} <= set(preflight["Access-Control-Allow-Headers"].split(", "))
    # the frontend can read the headers it needs (rate limits, request ids, export file names)
    real = cast.client("viewer").get(canvas_url(cast.deal), HTTP_ORIGIN=FRONTEND)
    assert real["Access-Control-Allow-Origin"] == FRONTEND
    assert {"retry-after", "x-request-id", "content-disposition"} <= {
        name.strip().lower() for name in real["Access-Control-Expose-Headers"].split(",")
    }
    # the admin and /metrics are not cross-origin resources
    for path in ("/admin/login/", "/metrics"):
        other = client.options(path, HTTP_ORIGIN=FRONTEND, HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET")
        assert "Access-Control-Allow-Origin" not in other, path


def test_the_api_needs_no_csrf_token_because_it_ignores_cookies_and_the_admin_does(cast):
    strict = Client(enforce_csrf_checks=True)
    # a logged-in admin session gives no access to the API, so a forged cross-site request has nothing to ride on
    strict.force_login(cast.users["superadmin"])
    assert strict.post("/api/superadmin/purge_deals", "{}", content_type="application/json").status_code == 401
    # the bearer token is the credential, and a POST carrying it needs no CSRF token
    from deals.tokens import token_pair_for_user

    token = token_pair_for_user(user=cast.users["commenter"])["access"]
    posted = strict.post(
        canvas_url(cast.deal, "comments"),
        json.dumps({"section_key": "executive_summary", "body": "Looks right."}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert posted.status_code == 201
    # the admin's own forms keep Django's CSRF protection
    anonymous = Client(enforce_csrf_checks=True)
    assert anonymous.post("/admin/login/", {"username": "x", "password": "y"}).status_code == 403


def test_an_unexpected_error_is_a_bare_500_without_internals(cast, monkeypatch):
    def explode(**kwargs):
        raise RuntimeError("boom at /srv/app/canvas/selectors.py with dsn postgresql://user:pw@db/prod")

    monkeypatch.setattr("canvas.memo.selectors.progress_get", explode)
    response = cast.client("viewer").get(canvas_url(cast.deal, "progress"))
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal server error."}
    assert b"boom" not in response.content and b"Traceback" not in response.content


PROBE = """
import django, json
django.setup()
from django.conf import settings
print(json.dumps({
    "DEBUG": settings.DEBUG,
    "ALLOWED_HOSTS": settings.ALLOWED_HOSTS,
    "SECURE_SSL_REDIRECT": settings.SECURE_SSL_REDIRECT,
    "SECURE_HSTS_SECONDS": settings.SECURE_HSTS_SECONDS,
    "SESSION_COOKIE_SECURE": settings.SESSION_COOKIE_SECURE,
    "CSRF_COOKIE_SECURE": settings.CSRF_COOKIE_SECURE,
    "SECURE_PROXY_SSL_HEADER": settings.SECURE_PROXY_SSL_HEADER,
    "renderers": settings.REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"],
    "CORS_ALLOW_CREDENTIALS": settings.CORS_ALLOW_CREDENTIALS,
    "CORS_ALLOWED_ORIGINS": settings.CORS_ALLOWED_ORIGINS,
    "LOG_FORMAT": settings.LOG_FORMAT,
}))
"""


def test_production_settings_turn_debug_off_and_harden_transport():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CORS_", "JWT_", "LOG_"))}
    env.update(
        {
            "DJANGO_ENV": "production",
            "DJANGO_SECRET_KEY": "s" * 60,
            "JWT_SIGNING_KEY": "j" * 60,
            "DJANGO_ALLOWED_HOSTS": "api.example.com",
            "DJANGO_SETTINGS_MODULE": "canvas_project.settings",
        }
    )
    result = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen == {
        "DEBUG": False,
        "ALLOWED_HOSTS": ["api.example.com"],
        "SECURE_SSL_REDIRECT": True,
        "SECURE_HSTS_SECONDS": 31536000,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
        "renderers": ["rest_framework.renderers.JSONRenderer"],
        "CORS_ALLOW_CREDENTIALS": False,
        "CORS_ALLOWED_ORIGINS": [],
        "LOG_FORMAT": "json",
    }
