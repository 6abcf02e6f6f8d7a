"""Rate limits held in Redis, atomic across processes (GCRA in one Lua script).

One shared "generate" bucket per user covers everything that starts AI work or rewrites shared
caches: refresh, generate, regenerate, debug, brush, chat. DRF's cache throttles over-admit under
concurrency (read-modify-write); this script reads and writes in one step on the Redis server,
using the server's clock, so every process sees the same bucket.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import redis
from django.conf import settings

from canvas import keys
from canvas_project.errors import DependencyUnavailableError, RateLimitedError
from canvas_project.redis_client import get_redis

# KEYS[1] the bucket; ARGV[1] emission interval in ms; ARGV[2] burst (requests allowed at once).
# Returns {allowed (1/0), milliseconds until the next request is allowed}.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - burst * interval
if allow_at > now then
  return {0, allow_at - now}
end
redis.call('SET', KEYS[1], new_tat, 'PX', new_tat - now)
return {1, 0}
"""


@dataclass(frozen=True)
class Bucket:
    name: str
    per_minute: int
    burst: int

    @property
    def interval_ms(self) -> int:
        return max(1, round(60_000 / self.per_minute))


def generate_bucket() -> Bucket:
    return Bucket("generate", settings.GENERATE_RATE_PER_MINUTE, settings.GENERATE_RATE_BURST)


def consume(bucket: Bucket, subject: object) -> None:
    """Take one request from the subject's bucket.

    Raises RateLimitedError (with retry_after seconds) when empty, DependencyUnavailableError when
    Redis is down: AI work is refused rather than let through unmetered.
    """
    client = get_redis()
    try:
        allowed, wait_ms = client.eval(_GCRA, 1, keys.rate_limit_key(bucket.name, subject),
                                       bucket.interval_ms, bucket.burst)
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        raise DependencyUnavailableError("Redis", "Redis is unavailable, so AI work cannot be metered; "
                                         "try again shortly.") from exc
    if not allowed:
        retry_after = max(1, math.ceil(int(wait_ms) / 1000))
        raise RateLimitedError(
            f"Too many AI requests: the '{bucket.name}' limit is {bucket.per_minute}/min with bursts of "
            f"{bucket.burst}. Retry in {retry_after} s.",
            retry_after=retry_after,
        )
