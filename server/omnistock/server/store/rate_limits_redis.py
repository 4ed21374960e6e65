"""Keys' token buckets in Redis (``--redis-url``), shared by every process that uses it.

One hash per key (``omnistock:rate:<key id>``: tokens, and when they were counted in
microseconds of the Redis server's clock), refilled and taken from by one Lua script, which
Redis runs atomically; the client sends it by its SHA (EVALSHA) and loads it once. A bucket
left alone long enough to be full again expires, so idle keys cost no memory.
"""

from __future__ import annotations

import math

from omnistock.server.domain.rate_limits import Grant

PREFIX = "omnistock:rate:"

# KEYS[1] the bucket; ARGV rate, burst, tokens wanted. Answers {granted, tokens left}.
_SCRIPT = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local saved = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(saved[1]) or burst
local at = tonumber(saved[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000000)
local granted = math.min(want, math.floor(tokens))
tokens = tokens - granted
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens),
    'at', string.format('%.17g', math.max(now, at)))
local full_in_ms = math.ceil((burst - tokens) / rate * 1000) + 1000
redis.call('PEXPIRE', KEYS[1], string.format('%.17g', full_in_ms))
return {granted, string.format('%.17g', tokens)}
"""


class RedisBuckets:
    """``take`` is a coroutine on redis.asyncio: it never holds the event loop."""

    def __init__(self, url: str, *, timeout: float = 0.25) -> None:
        from redis.asyncio import Redis

        self._redis = Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self._script = self._redis.register_script(_SCRIPT)

    async def take(self, key_id: str, rate: float, burst: int, want: int) -> Grant:
        """Refill the key's bucket and take up to ``want`` tokens from it, atomically."""
        granted, left = await self._script(
            keys=[PREFIX + key_id], args=[repr(float(rate)), str(int(burst)), str(int(want))]
        )
        granted = int(granted)
        if granted > 0:
            return Grant(granted)
        return Grant(0, max(0.0, 1.0 - float(left)) / rate if math.isfinite(rate) else 0.0)

    async def close(self) -> None:
        await self._redis.aclose()
