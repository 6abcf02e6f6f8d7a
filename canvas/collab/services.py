"""Live collaboration state in Redis: edit authority (ordered steps), presence, and section locks.

Every operation that must be atomic is one Lua script, so it holds across processes without locks:
- steps: a push is accepted only at the current version; accepted steps get the next versions as
  stream ids `0-<version>` of `canvas:steps:{D}`, so the stream itself is the ordered log and its
  last id is the version. The server orders steps and never reads them.
- presence: a sorted set of user -> last heartbeat (ms) plus a hash of where each user is; entries
  older than the window are dropped on every heartbeat and read, with presence_left events.
- locks: `canvas:lock:{D}:<section>` holds JSON {user_id, user_name, token, expires_at} with a TTL;
  acquire/renew and release are compare-and-set on the token. Expired locks free themselves.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
from django.conf import settings

from canvas.collab.errors import CollabModeMismatch, LockTokenMismatch, StaleStepsVersion
from canvas.memo.locks import SectionLock, locked_error, section_lock_key
from canvas.memo.selectors import require_memo_section
from canvas_project import events, keys
from canvas_project.errors import RedisUnavailable
from canvas_project.redis_client import LuaScript, get_redis
from deals.errors import RoleTooLow
from deals.models import Deal, DealRole, User, role_rank

REDIS_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


def _redis():
    return get_redis()


def _call(script: LuaScript, keys_: list[str], args: list) -> list:
    try:
        return script(keys_, args, client=_redis())
    except REDIS_ERRORS as exc:
        raise RedisUnavailable("Redis is unavailable, so live collaboration is paused; try again shortly.") from exc


# --- edit authority -----------------------------------------------------------------------------------


_PUSH_STEPS = LuaScript("""
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local version = 0
if #last > 0 then version = tonumber(string.match(last[1][1], '%-(%d+)$')) end
if tonumber(ARGV[1]) ~= version then return {0, version} end
for i = 5, #ARGV do
  version = version + 1
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '0-' .. version, 'c', ARGV[2], 's', ARGV[i])
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
return {1, version}
""")


def _require_collab(deal: Deal, enabled: bool) -> None:
    if deal.collab_enabled != enabled:
        raise CollabModeMismatch(
            "Collaboration is off for this deal: edit sections under their locks."
            if enabled
            else "Collaboration is on for this deal: section locks are not used."
        )


def steps_push(*, deal: Deal, user: User, version: int, client_id: str, steps: list) -> int:
    """Append steps when `version` is current; returns the new version.

    Raises StaleStepsVersion (409, with current_version), CollabModeMismatch, RedisUnavailable.
    """
    _require_collab(deal, True)
    encoded = [json.dumps(step, separators=(",", ":")) for step in steps]
    accepted, current = _call(
        _PUSH_STEPS,
        [keys.steps_key(deal.pk)],
        [version, client_id, settings.COLLAB_STEPS_WINDOW, keys.EVENTS_TTL, *encoded],
    )
    if not accepted:
        raise StaleStepsVersion(
            f"Version {version} is not current; the document is at version {current}. Fetch the steps since "
            f"{version}, rebase, and push again.",
            current_version=int(current),
        )
    events.emit(
        deal.pk,
        "collab_steps",
        {"from_version": version, "to_version": int(current), "client_id": client_id, "steps": steps},
        actor_id=user.pk,
    )
    return int(current)


# --- presence -----------------------------------------------------------------------------------------
_HEARTBEAT = LuaScript("""
local now = tonumber(ARGV[1])
local cutoff = now - tonumber(ARGV[2])
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. cutoff)
for _, member in ipairs(gone) do
  redis.call('ZREM', KEYS[1], member)
  redis.call('HDEL', KEYS[2], member)
end
local joined = 0
if ARGV[3] ~= '' then
  joined = redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
end
local present = redis.call('ZRANGEBYSCORE', KEYS[1], cutoff, '+inf', 'WITHSCORES')
local metas = {}
for i = 1, #present, 2 do
  metas[#metas + 1] = redis.call('HGET', KEYS[2], present[i]) or ''
end
return {joined, gone, present, metas}
""")


def _presence(deal: Deal, member: str = "", meta: str = "") -> tuple[bool, list[str], list[dict]]:
    window_ms = int(settings.PRESENCE_WINDOW_SECONDS * 1000)
    joined, gone, present, metas = _call(
        _HEARTBEAT,
        [keys.presence_key(deal.pk), keys.presence_meta_key(deal.pk)],
        [int(time.time() * 1000), window_ms, member, meta, keys.PRESENCE_TTL * 1000],
    )
    rows = []
    for index in range(0, len(present), 2):
        user_id = present[index].decode()
        last_seen = int(float(present[index + 1]))
        raw = metas[index // 2]
        info = json.loads(raw) if raw else {}
        rows.append(
            {
                "user_id": user_id,
                "display_name": info.get("display_name"),
                "role": info.get("role"),
                "section_key": info.get("section_key"),
                "cursor": info.get("cursor"),
                "last_seen": datetime.fromtimestamp(last_seen / 1000, tz=UTC).isoformat(),
            }
        )
    left = [m.decode() for m in gone]
    for user_id in left:
        events.emit(deal.pk, "presence_left", {"user_id": user_id})
    return bool(joined), left, rows


def presence_heartbeat(*, deal: Deal, user: User, role: str, section_key: str | None, cursor) -> list[dict]:
    """Record that the user is on the canvas (and where); returns who is present. Raises RedisUnavailable."""
    meta = json.dumps({"display_name": user.display_name, "role": role, "section_key": section_key, "cursor": cursor})
    joined, _left, rows = _presence(deal, str(user.pk), meta)
    if joined:
        events.emit(
            deal.pk,
            "presence_joined",
            {"user_id": str(user.pk), "display_name": user.display_name, "section_key": section_key},
            actor_id=user.pk,
        )
    return rows


def presence_list(*, deal: Deal) -> list[dict]:
    """Who is present (heartbeat within the window). Raises RedisUnavailable."""
    return _presence(deal)[2]


# --- section locks ------------------------------------------------------------------------------------
_ACQUIRE = LuaScript("""
local current = redis.call('GET', KEYS[1])
if current then
  local holder = cjson.decode(current)
  if holder['user_id'] ~= ARGV[1] then return {0, current} end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('SADD', KEYS[2], KEYS[1])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return {1, ARGV[2]}
""")

_RELEASE = LuaScript("""
local current = redis.call('GET', KEYS[1])
if not current then return {1, ''} end
local holder = cjson.decode(current)
if ARGV[2] == '1' or (holder['user_id'] == ARGV[1] and holder['token'] == ARGV[3]) then
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[2], KEYS[1])
  return {1, current}
end
return {0, current}
""")


@dataclass(frozen=True)
class Lock:
    section_key: str
    user_id: str
    user_name: str
    token: str
    expires_at: str
    ttl_seconds: int


def _held_elsewhere(raw: bytes | str, section_key: str):
    lock = SectionLock.parse(raw, section_key)
    return locked_error([lock]) if lock is not None else RedisUnavailable()


def lock_acquire(*, deal: Deal, user: User, section_key: str, ttl_seconds: int) -> Lock:
    """Take or renew the section's lock. Raises SectionLocked (423), CollabModeMismatch, SectionNotFound,
    RedisUnavailable, StoreUnavailable."""
    _require_collab(deal, False)
    require_memo_section(deal, section_key)
    expires = datetime.fromtimestamp(time.time() + ttl_seconds, tz=UTC).isoformat()
    lock = SectionLock(section_key, str(user.pk), user.display_name, secrets.token_urlsafe(16), expires)
    ok, stored = _call(
        _ACQUIRE,
        [section_lock_key(deal.pk, section_key), keys.index_key(deal.pk)],
        [str(user.pk), lock.encode(), ttl_seconds * 1000, keys.INDEX_TTL * 1000],
    )
    if not ok:
        raise _held_elsewhere(stored, section_key)
    events.emit(
        deal.pk,
        "lock_acquired",
        {"section_key": section_key, "user_id": str(user.pk), "expires_at": expires},
        actor_id=user.pk,
    )
    return Lock(section_key, str(user.pk), user.display_name, lock.token, expires, ttl_seconds)


def lock_release(*, deal: Deal, user: User, role: str, section_key: str, token: str, force: bool) -> bool:
    """Release the lock (the holder, with its token) or force-release it (owner). Returns whether a lock
    was removed. Raises RoleTooLow (force by a non-owner), SectionNotFound (a key no section can have),
    SectionLocked (someone else's lock), LockTokenMismatch, RedisUnavailable."""
    if force and role_rank(role) < role_rank(DealRole.OWNER):
        raise RoleTooLow("Only an owner can force-release another user's lock.")
    ok, previous = _call(
        _RELEASE,
        [section_lock_key(deal.pk, section_key), keys.index_key(deal.pk)],
        [str(user.pk), "1" if force else "0", token or ""],
    )
    if not ok:
        holder = json.loads(previous)
        if holder.get("user_id") == str(user.pk):
            raise LockTokenMismatch("This lock was taken with another token (another tab?); release it there.")
        raise _held_elsewhere(previous, section_key)
    if not previous:
        return False
    holder = json.loads(previous)
    events.emit(
        deal.pk,
        "lock_force_released" if force and holder.get("user_id") != str(user.pk) else "lock_released",
        {"section_key": section_key, "user_id": holder.get("user_id")},
        actor_id=user.pk,
    )
    return True


# --- collaboration mode -------------------------------------------------------------------------------
def collab_set(*, deal: Deal, user: User, enabled: bool) -> dict:
    """Switch the deal's collaboration mode, clearing the other mode's state. Raises RedisUnavailable."""
    cleared = {"locks": 0, "steps": 0}
    if deal.collab_enabled != enabled:
        try:
            client = _redis()
            if enabled:  # locks belong to the collaboration-off mode
                index = keys.index_key(deal.pk)
                lock_names = [k for k in client.smembers(index) if (keys.classify(k) or ("",))[0] == "locks"]
                if lock_names:
                    cleared["locks"] = client.unlink(*lock_names)
                    client.srem(index, *lock_names)
            else:  # the steps log belongs to the collaboration-on mode
                cleared["steps"] = client.xlen(keys.steps_key(deal.pk))
                client.unlink(keys.steps_key(deal.pk))
        except REDIS_ERRORS as exc:
            raise RedisUnavailable() from exc
        Deal.objects.filter(pk=deal.pk).update(collab_enabled=enabled)
        deal.collab_enabled = enabled
        events.emit(deal.pk, "collab_mode_changed", {"enabled": enabled, "cleared": cleared}, actor_id=user.pk)
    return {"collab_enabled": deal.collab_enabled, "cleared": cleared}
