"""The address a request came from, seen through the proxies the operator declared (TRUSTED_PROXY_COUNT)."""

from __future__ import annotations

import ipaddress

from django.conf import settings


def client_address(request) -> str:
    """The client's IP address: the connection's, or with TRUSTED_PROXY_COUNT = N the entry N from the
    right of X-Forwarded-For (each trusted proxy appends the address it saw; entries further left are
    whatever the client sent, so they are never read). Falls back to the connection's address when the
    header has fewer entries or the entry is not an IP address; "unknown" when there is none."""
    remote = request.META.get("REMOTE_ADDR") or "unknown"
    hops = settings.TRUSTED_PROXY_COUNT
    if hops <= 0:
        return remote
    entries = [entry.strip() for entry in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if entry.strip()]
    if len(entries) < hops:
        return remote
    try:
        return str(ipaddress.ip_address(entries[-hops]))
    except ValueError:
        return remote
