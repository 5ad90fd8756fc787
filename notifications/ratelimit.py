"""Per-provider send rate shared by every worker: a token bucket kept in Redis.

Twilio long codes send about one message per second; a worker that ignores that gets
queued or refused by the provider. The bucket is one Lua script, so workers on any
machine draw from the same budget.
"""

from __future__ import annotations

import asyncio
import time

from redis.asyncio import Redis

# KEYS[1] bucket; ARGV: rate/s, burst, now (s), tokens wanted. Returns seconds to wait (0 = go).
_TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local wanted = tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= wanted then
  tokens = tokens - wanted
else
  wait = (wanted - tokens) / rate
  tokens = tokens - wanted
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', now)
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 60)
return tostring(wait)
"""


class RateLimiter:
    def __init__(self, redis: Redis, key: str, per_second: float, burst: float | None = None) -> None:
        self._redis = redis
        self._key = key
        self._rate = per_second
        self._burst = burst if burst is not None else max(1.0, per_second)
        self._script = redis.register_script(_TAKE)

    @property
    def per_second(self) -> float:
        return self._rate

    @property
    def unlimited(self) -> bool:
        return self._rate <= 0

    async def acquire(self, count: int = 1) -> float:
        """Wait until `count` sends are allowed; returns how long it waited."""
        if self.unlimited or count <= 0:
            return 0.0
        wait = float(await self._script(keys=[self._key], args=[self._rate, self._burst, time.time(), count]))
        if wait > 0:
            await asyncio.sleep(wait)
        return wait
