"""Per-provider send rate shared by every worker, with capacity kept for the urgent lane.

Twilio long codes send about one message per second and a provider refuses what goes above its rate,
so the limit is a sliding one-second window kept in Redis (one Lua script, so workers on any machine
draw from the same budget): no second ever holds more sends than the rate, which is how providers
count. Within it the two lanes are not equal:

- urgent sends may use the whole window;
- bulk sends may use it only up to the rate less a reserve, and at most a quarter of that in any
  quarter of a second, so an urgent send finds room within a quarter of a second at worst;
- while an urgent send is waiting for room, bulk sends get none, so the urgent lane takes every
  slot that frees up, and bulk resumes with what is left a moment after.

A waiter is not charged while it waits (no debt that would queue an urgent send behind bulk ones).

Providers count requests when they arrive, in their own windows, and a request granted at the end of
one of our windows may arrive in the provider's next one. The window is therefore counted over
``WINDOW_SECONDS + ARRIVAL_MARGIN_SECONDS``: as long as requests take about the same time to arrive
(within the margin of each other), no provider window sees more than the rate.

When a provider refuses for its rate anyway (HTTP 429 with Retry-After: another sender shares the
account, or its limit is lower than configured), :meth:`RateLimiter.pause` stops every worker's sends
on that channel until the time it named, whatever the lane: the provider would refuse them all.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import time

from redis.asyncio import Redis

from notifications.lanes import Lane

WINDOW_SECONDS = 1.0
# Slack for the time a granted request takes to reach the provider (see the module's docstring).
ARRIVAL_MARGIN_SECONDS = 0.05
# The share of each window bulk sends leave free (at least one send).
URGENT_RESERVE = 0.1
# How long an urgent waiter keeps bulk sends paused after it last asked.
URGENT_WAIT_MARK_MS = 1000
# A waiter asks again at least this often: room can appear sooner than computed when urgent waiting ends.
MAX_POLL_SECONDS = 0.1

# KEYS[1] window (sorted set of send times), KEYS[2] urgent-waiting mark, KEYS[3] paused-until (epoch s).
# ARGV: limit per window (0: no rate), window seconds, now, wanted, reserve, is_urgent (1/0), mark ms, nonce.
# Returns seconds to wait ("0" = granted and recorded).
_TAKE = """
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local wanted = tonumber(ARGV[4])
local reserve = tonumber(ARGV[5])
local urgent = ARGV[6] == '1'
local paused_until = tonumber(redis.call('GET', KEYS[3]) or '0')
if paused_until > now then
  return tostring(paused_until - now)
end
if limit == 0 then
  return '0'
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local used = redis.call('ZCARD', KEYS[1])
local allowed = limit
if not urgent then
  if redis.call('EXISTS', KEYS[2]) == 1 then
    return tostring(window / 10)
  end
  allowed = limit - reserve
  -- Paced: at most a quarter of its share in any quarter window, so bulk sends are spread out and
  -- some room frees up every quarter window for an urgent send that arrives.
  local quarter = window / 4
  local pace = math.max(1, math.ceil(allowed / 4))
  local recent = redis.call('ZRANGEBYSCORE', KEYS[1], now - quarter, '+inf', 'WITHSCORES')
  local recent_count = #recent / 2
  if recent_count + wanted > pace and recent_count > 0 then
    local oldest = tonumber(recent[2])
    return tostring(math.max(0.001, oldest + quarter - now))
  end
end
if used + wanted <= allowed then
  for i = 1, wanted do
    redis.call('ZADD', KEYS[1], now, ARGV[8] .. ':' .. i)
  end
  redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000) + 1000)
  return '0'
end
if urgent then
  redis.call('SET', KEYS[2], '1', 'PX', tonumber(ARGV[7]))
end
local need = used + wanted - allowed
local entry = redis.call('ZRANGE', KEYS[1], need - 1, need - 1, 'WITHSCORES')
local free_at = tonumber(entry[2] or now) + window
return tostring(math.max(0.001, free_at - now))
"""


# KEYS[1] paused-until; ARGV: until (epoch seconds), ttl ms. Keeps the later of the two times.
_PAUSE = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local wanted = tonumber(ARGV[1])
if wanted > current then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]))
end
return tostring(math.max(current, wanted))
"""
# A provider's Retry-After above this is not believed for the whole channel (a row still waits for it).
MAX_PAUSE_SECONDS = 300.0


# A live rate set by the platform operator is read again at most this often by each limiter.
RATE_REFRESH_SECONDS = 1.0


def channel_key(redis_prefix: str, channel: str) -> str:
    """The window of one channel's sends, shared by every worker of the deployment."""
    return f"{redis_prefix}notify:rate:{channel}"


def rate_override_key(key: str) -> str:
    """Where a channel's live rate is kept (``notifications.rates``); it replaces the configured one."""
    return f"{key}:per-second"


class RateLimiter:
    def __init__(self, redis: Redis, key: str, per_second: float) -> None:
        self._redis = redis
        self._key = key
        self._configured = per_second
        self._set_rate(per_second)
        self._script = redis.register_script(_TAKE)
        self._pause_script = redis.register_script(_PAUSE)
        self._paused_key = f"{key}:paused-until"
        self._override_key = rate_override_key(key)
        self._refreshed_at = -math.inf

    def _set_rate(self, per_second: float) -> None:
        self._rate = per_second
        # Sends per window, and the bulk lane's share of it: at least one send each.
        self._limit = max(1, math.floor(per_second * WINDOW_SECONDS)) if per_second > 0 else 0
        self._reserve = min(self._limit - 1, max(1, math.ceil(self._limit * URGENT_RESERVE))) if self._limit else 0

    async def refresh(self) -> float:
        """Take up a live rate the platform operator set (or its removal); returns the rate in force."""
        if time.monotonic() - self._refreshed_at >= RATE_REFRESH_SECONDS:
            self._refreshed_at = time.monotonic()
            raw = await self._redis.get(self._override_key)
            try:
                live = float(raw) if raw is not None else self._configured
            except ValueError:
                live = self._configured
            if live != self._rate:
                self._set_rate(live)
        return self._rate

    @property
    def per_second(self) -> float:
        return self._rate

    @property
    def unlimited(self) -> bool:
        return self._rate <= 0

    def chunk(self, lane: Lane) -> int:
        """How many sends to ask for at once: a quarter of the lane's share, so sends spread over the window."""
        share = self._limit if lane is Lane.URGENT else self._limit - self._reserve
        return max(1, math.ceil(share / 4))  # the script's pace for bulk: one grant fills a quarter

    async def pause(self, seconds: float) -> None:
        """The provider asked every sender to wait (429 with Retry-After): no send on this channel, from
        any worker, until then. A pause never shortens one already in place."""
        seconds = min(max(0.0, seconds), MAX_PAUSE_SECONDS)
        if seconds <= 0:
            return
        until = time.time() + seconds
        await self._pause_script(keys=[self._paused_key], args=[repr(until), math.ceil(seconds * 1000) + 1000])

    async def acquire(self, count: int = 1, lane: Lane = Lane.BULK) -> float:
        """Wait until `count` sends fit in the window for this lane (and any provider pause is over);
        returns how long it waited. Without a rate only a pause is waited for."""
        if count <= 0:
            return 0.0
        await self.refresh()
        share = self._limit if lane is Lane.URGENT else self._limit - self._reserve
        count = min(count, share) if self._limit else count  # more than the lane's window is never granted
        started = time.monotonic()
        while True:
            wait = float(
                await self._script(
                    keys=[self._key, f"{self._key}:urgent-waiting", self._paused_key],
                    args=[
                        self._limit,
                        WINDOW_SECONDS + ARRIVAL_MARGIN_SECONDS,
                        time.time(),
                        count,
                        self._reserve,
                        1 if lane is Lane.URGENT else 0,
                        URGENT_WAIT_MARK_MS,
                        secrets.token_hex(6),
                    ],
                )
            )
            if wait <= 0:
                return time.monotonic() - started
            await asyncio.sleep(min(wait, MAX_POLL_SECONDS))
