"""GET /api/health against the real servers, and against a Redis that is not there."""

from __future__ import annotations

import socket

from django.db import connection
from django.test import override_settings

from tests import factories


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_it_is_200_when_everything_is_up(db):
    response = factories.client_for().get("/api/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert all(body["checks"][name]["ok"] for name in ("postgres", "redis", "store"))


def test_it_is_503_naming_redis_when_redis_is_down(db, settings):
    dead = f"redis://127.0.0.1:{_free_port()}/0"
    caches = {"default": {**settings.CACHES["default"], "LOCATION": dead}}
    with override_settings(CACHES=caches):
        response = factories.client_for().get("/api/health")
    assert response.status_code == 503
    body = response.json()
    assert body["detail"] == "redis is down."
    assert body["checks"]["redis"]["ok"] is False
    assert body["checks"]["postgres"]["ok"] is True


def test_it_is_503_naming_postgres_when_postgres_is_down(db, settings):
    # point the connection at a port where nothing listens, then restore it
    original = dict(connection.settings_dict)
    try:
        connection.close()
        connection.settings_dict.update({"HOST": "127.0.0.1", "PORT": str(_free_port())})
        response = factories.client_for().get("/api/health")
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(original)
    assert response.status_code == 503
    # the Store lives in the same PostgreSQL, so it is down with it
    assert response.json()["detail"] == "postgres, store are down."
    assert response.json()["checks"]["redis"]["ok"] is True
