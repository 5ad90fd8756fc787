"""Redis connections. Every key opshub writes starts with ``settings.redis_prefix``."""

from __future__ import annotations

from redis.asyncio import Redis

from app.config import Settings


def create_redis(settings: Settings) -> Redis:
    if not settings.redis_url:
        raise RuntimeError("REDIS_URL is not set: start the hub with `make run` or set REDIS_URL")
    return Redis.from_url(settings.redis_url, health_check_interval=30)


async def redis_is_reachable(redis: Redis) -> bool:
    try:
        return bool(await redis.ping())
    except Exception:
        return False
