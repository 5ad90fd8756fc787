"""Login throttling: failed attempts counted per account identifier and per client address.

Counters live in Redis with a fixed window, shared by every web process.
"""

from __future__ import annotations

from redis.asyncio import Redis

from app.config import Settings

# A shared address (office NAT, a guard cabin) sees many users; allow it more failures.
ADDRESS_ALLOWANCE_FACTOR = 4


class LoginThrottled(Exception):
    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__(f"too many failed logins; retry after {retry_after_seconds}s")
        self.retry_after_seconds = retry_after_seconds


def _keys(settings: Settings, identifier: str, address: str) -> tuple[str, str]:
    prefix = f"{settings.redis_prefix}auth:login-failures"
    return f"{prefix}:id:{identifier}", f"{prefix}:ip:{address}"


async def check_login_allowed(settings: Settings, redis: Redis, identifier: str, address: str) -> None:
    id_key, ip_key = _keys(settings, identifier, address)
    id_count, ip_count = await redis.mget(id_key, ip_key)
    limits = (
        (id_key, id_count, settings.login_max_failures),
        (ip_key, ip_count, settings.login_max_failures * ADDRESS_ALLOWANCE_FACTOR),
    )
    for key, count, limit in limits:
        if count is not None and int(count) >= limit:
            ttl = await redis.ttl(key)
            raise LoginThrottled(max(1, ttl))


async def record_login_failure(settings: Settings, redis: Redis, identifier: str, address: str) -> None:
    async with redis.pipeline(transaction=True) as pipe:
        for key in _keys(settings, identifier, address):
            # SET NX EX starts the window on the first failure (EXPIRE NX needs Redis 7).
            pipe.set(key, 0, ex=settings.login_window_seconds, nx=True)
            pipe.incr(key)
        await pipe.execute()


async def clear_login_failures(settings: Settings, redis: Redis, identifier: str) -> None:
    id_key, _ = _keys(settings, identifier, "")
    await redis.delete(id_key)
