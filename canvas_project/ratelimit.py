"""Rate limits held in Redis, atomic across processes (GCRA in one Lua script).

One shared "generate" bucket per user covers everything that starts AI work or rewrites shared
caches: refresh, generate, regenerate, debug, brush, chat. Login attempts (POST /api/auth/token) have
two buckets, one per username and one per client address, spent together. DRF's cache throttles
over-admit under concurrency (read-modify-write); this script reads and writes in one step on the
Redis server, using the server's clock, so every process sees the same bucket.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
from dataclasses import dataclass

import redis
from django.conf import settings

from canvas_project import keys
from canvas_project.errors import DependencyUnavailableError, RateLimitedError
from canvas_project.redis_client import LuaScript, get_redis

# KEYS[i] a bucket; ARGV[2i-1] its emission interval in ms, ARGV[2i] its burst (requests allowed at once).
# A request is allowed only when every bucket allows it, and then it is taken from all of them; a refused
# request takes nothing. Returns {allowed (1/0), milliseconds until allowed, index of the bucket that
# refused longest (1-based, 0 when allowed)}.
_GCRA = LuaScript("""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local wait, refused_by = 0, 0
local new_tats = {}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  new_tats[i] = tat + interval
  local allow_at = new_tats[i] - burst * interval
  if allow_at - now > wait then
    wait, refused_by = allow_at - now, i
  end
end
if refused_by > 0 then
  return {0, wait, refused_by}
end
for i, key in ipairs(KEYS) do
  redis.call('SET', key, new_tats[i], 'PX', new_tats[i] - now)
end
return {1, 0, 0}
""")


@dataclass(frozen=True)
class Bucket:
    name: str
    per_minute: int
    burst: int
    what: str = "AI requests"  # what the bucket meters, for the 429 sentence
    # Buckets spent together in one script share this hash tag (one cluster slot); None: tagged by subject.
    slot_group: str | None = None

    def key(self, subject: object) -> str:
        return keys.rate_limit_key(self.name, subject, slot_group=self.slot_group)

    @property
    def interval_ms(self) -> int:
        return max(1, round(60_000 / self.per_minute))


def generate_bucket() -> Bucket:
    return Bucket("generate", settings.GENERATE_RATE_PER_MINUTE, settings.GENERATE_RATE_BURST)


# A login spends the username's and the address's bucket in one script, so on a Redis Cluster every login
# bucket lives in this one slot (one shard carries all login metering: one short script per attempt).
LOGIN_SLOT_GROUP = "login"


def login_username_bucket() -> Bucket:
    return Bucket(
        "login_username",
        settings.LOGIN_USERNAME_RATE_PER_MINUTE,
        settings.LOGIN_USERNAME_BURST,
        what="login attempts for this username",
        slot_group=LOGIN_SLOT_GROUP,
    )


def login_address_bucket() -> Bucket:
    return Bucket(
        "login_address",
        settings.LOGIN_ADDRESS_RATE_PER_MINUTE,
        settings.LOGIN_ADDRESS_BURST,
        what="login attempts from this address",
        slot_group=LOGIN_SLOT_GROUP,
    )


def username_subject(username: str) -> str:
    """A username as a bucket subject: hashed (any text, any length, and no usernames in Redis), case-folded
    so that case variants of one name share a bucket."""
    return hashlib.sha256(username.casefold().encode("utf-8", "surrogatepass")).hexdigest()[:32]


def address_subject(address: str) -> str:
    """A client address as a bucket subject. An IPv6 client usually holds a whole /64, so the /64 is the
    subject; colons (not allowed in a key segment) become dashes."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return "unknown"
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        parsed = ipaddress.IPv6Network((parsed.packed, 64), strict=False).network_address
    return str(parsed).replace(":", "-")


def consume(bucket: Bucket, subject: object) -> None:
    """Take one request from the subject's bucket.

    Raises RateLimitedError (with retry_after seconds) when empty, DependencyUnavailableError when
    Redis is down: AI work is refused rather than let through unmetered.
    """
    try:
        consume_together([(bucket, subject)])
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        raise DependencyUnavailableError(
            "Redis", "Redis is unavailable, so AI work cannot be metered; try again shortly."
        ) from exc


def consume_together(spends: list[tuple[Bucket, object]]) -> None:
    """Take one request from each (bucket, subject), all or none, in one atomic step.

    Raises RateLimitedError (naming the bucket that refused longest, with retry_after seconds) when any
    bucket is empty; nothing is taken then. Raises redis ConnectionError / TimeoutError when Redis is
    down: the caller decides whether that fails open or closed.
    """
    args: list[object] = []
    for bucket, _subject in spends:
        args += [bucket.interval_ms, bucket.burst]
    allowed, wait_ms, refused_by = _GCRA([bucket.key(subject) for bucket, subject in spends], args, client=get_redis())
    if not allowed:
        bucket = spends[int(refused_by) - 1][0]
        retry_after = max(1, math.ceil(int(wait_ms) / 1000))
        raise RateLimitedError(
            f"Too many {bucket.what}: the '{bucket.name}' limit is {bucket.per_minute}/min with bursts of "
            f"{bucket.burst}. Retry in {retry_after} s.",
            retry_after=retry_after,
        )


def forget(bucket: Bucket, subject: object) -> None:
    """Drop the subject's bucket (it starts full again). Raises redis ConnectionError / TimeoutError."""
    get_redis().delete(bucket.key(subject))
