"""Section locks as the memo's write path reads them.

With collaboration off, a section is edited under its lock: `canvas:lock:{D}:<section>`, a JSON
{user_id, user_name, token, expires_at, section_key} with a TTL, taken and released through
canvas.collab (POST/DELETE /sections/{key}/lock). With collaboration on, edits are ordered by the steps
authority instead and locks do not apply. This module is the one reader of those records: the memo's
write core (canvas.memo.writes) asks it who holds the sections a write would change.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import redis

from canvas.memo.errors import SectionLocked, SectionNotFound
from canvas_project import keys
from canvas_project.errors import RedisUnavailable
from canvas_project.redis_client import get_redis

REDIS_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


@dataclass(frozen=True)
class SectionLock:
    section_key: str
    user_id: str
    user_name: str | None
    token: str
    expires_at: str

    @classmethod
    def parse(cls, raw: bytes | str | None, section_key: str) -> SectionLock | None:
        if raw is None:
            return None
        try:
            value = json.loads(raw)
            return cls(
                section_key,
                str(value["user_id"]),
                value.get("user_name"),
                value.get("token") or "",
                value.get("expires_at") or "",
            )
        except (ValueError, KeyError, TypeError):
            return None  # not a lock this service wrote: nobody holds the section

    def encode(self) -> str:
        return json.dumps(
            {
                "user_id": self.user_id,
                "user_name": self.user_name,
                "token": self.token,
                "expires_at": self.expires_at,
                "section_key": self.section_key,
            }
        )

    def held_by(self, user_id) -> bool:
        return user_id is not None and self.user_id == str(user_id)

    def as_body(self) -> dict:
        """How a 423 names the lock: whose it is and until when."""
        return {
            "section_key": self.section_key,
            "holder": self.user_name,
            "holder_id": self.user_id,
            "expires_at": self.expires_at,
        }


def section_lock_key(deal_id, section_key: str) -> str:
    """The section's lock key. Raises SectionNotFound for a key no section can have (the registry refuses
    empty keys and braces, colons, spaces or glob characters, none of which a memo's keys contain)."""
    try:
        return keys.lock_key(deal_id, section_key)
    except ValueError:
        raise SectionNotFound(f"This memo has no section {section_key!r}.") from None


def section_locks(deal_id, section_keys) -> dict[str, SectionLock]:
    """The current locks of these sections (one MGET; all keys share the deal's slot).

    Raises RedisUnavailable.
    """
    wanted = [key for key in dict.fromkeys(section_keys)]
    if not wanted:
        return {}
    names = [section_lock_key(deal_id, key) for key in wanted]
    try:
        values = get_redis().mget(names)
    except REDIS_ERRORS as exc:
        raise RedisUnavailable("Redis is unavailable, so section locks cannot be checked; try again shortly.") from exc
    found = {}
    for key, raw in zip(wanted, values, strict=True):
        lock = SectionLock.parse(raw, key)
        if lock is not None:
            found[key] = lock
    return found


def lock_holder(deal_id, section_key: str) -> SectionLock | None:
    """The section's current lock, or None. Raises SectionNotFound (an impossible key), RedisUnavailable."""
    return section_locks(deal_id, [section_key]).get(section_key)


def locked_error(locks: list[SectionLock]) -> SectionLocked:
    """The 423 for a write that would change sections locked by someone else: names the first holder and
    its expiry, and lists every locked section."""
    first = locks[0]
    who = first.user_name or "Another user"
    if len(locks) == 1:
        message = (
            f"{who} holds the lock on section {first.section_key!r} until {first.expires_at}; nothing was "
            "written. Try again after the lock is released or expires."
        )
    else:
        titles = ", ".join(repr(lock.section_key) for lock in locks)
        message = (
            f"Sections {titles} are locked by other users ({who} until {first.expires_at} first); nothing "
            "was written. Leave those sections as they are, or try again after their locks are released."
        )
    return SectionLocked(message, **first.as_body(), locked_sections=[lock.as_body() for lock in locks])


def lock_needed_error(section_key: str) -> SectionLocked:
    """The 423 for a section edit without its lock while collaboration is off."""
    return SectionLocked(
        f"Collaboration is off for this deal: take the lock of section {section_key!r} "
        "(POST .../sections/{key}/lock) before editing it.",
        section_key=section_key,
        holder=None,
        holder_id=None,
        expires_at=None,
        locked_sections=[],
    )
