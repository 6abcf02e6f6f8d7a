"""Section locks: the one place a section edit checks who may write a section right now.

With collaboration off, a section may be edited only by whoever holds its lock
(`canvas:lock:{D}:<section>`, a JSON {user_id, user_name, token, expires_at} with a TTL, taken with
POST /sections/{key}/lock; see canvas.collab). With collaboration on, edits are ordered by the steps
authority instead and locks do not apply.
"""

from __future__ import annotations

import json

import redis

from canvas.memo.errors import RedisUnavailable, SectionLocked, SectionNotFound
from canvas_project import keys
from canvas_project.redis_client import get_redis
from deals.models import Deal, User


def section_lock_key(deal_id, section_key: str) -> str:
    """The section's lock key. Raises SectionNotFound for a key no section can have (the registry refuses
    empty keys and braces, colons, spaces or glob characters, none of which a template's keys contain)."""
    try:
        return keys.lock_key(deal_id, section_key)
    except ValueError:
        raise SectionNotFound(f"This memo has no section {section_key!r}.") from None


def lock_holder(deal_id, section_key: str) -> dict | None:
    """The current lock of the section, or None. Raises SectionNotFound (an impossible key), RedisUnavailable."""
    lock_key = section_lock_key(deal_id, section_key)
    try:
        raw = get_redis().get(lock_key)
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        raise RedisUnavailable("Redis is unavailable, so section locks cannot be checked; try again shortly.") from exc
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def require_section_writable(*, deal: Deal, section_key: str, user: User) -> None:
    """With collaboration off, the caller must hold the section's lock.

    Raises SectionLocked (423): another user holds it, or nobody does; RedisUnavailable.
    """
    if deal.collab_enabled:
        return
    holder = lock_holder(deal.pk, section_key)
    if holder is None:
        raise SectionLocked(
            "Collaboration is off for this deal: take the section's lock "
            "(POST .../sections/{key}/lock) before editing it.",
            holder=None,
            holder_id=None,
            expires_at=None,
        )
    if holder.get("user_id") != str(user.pk):
        raise SectionLocked(
            f"{holder.get('user_name') or 'Another user'} is editing this section; try again after "
            f"{holder.get('expires_at', 'the lock expires')}.",
            holder=holder.get("user_name"),
            holder_id=holder.get("user_id"),
            expires_at=holder.get("expires_at"),
        )
