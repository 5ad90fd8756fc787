"""Live provider rates: the platform operator changes a channel's sends per second without a restart.

A provider raises (or lowers) what an account may send: a long code becomes a short code, Twilio
grants more throughput, FCM a larger quota. The configured rate (``OPSHUB_NOTIFY_RATE_*``) is the
default; a live rate kept in Redis replaces it for every worker within a second
(``RateLimiter.refresh``), and removing it restores the configured one.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from redis.asyncio import Redis

from app.config import Settings
from notifications.categories import Channel
from notifications.providers import configured_rates
from notifications.ratelimit import channel_key, rate_override_key

PerSecond = Annotated[float, msgspec.Meta(ge=0, le=100_000)]


class ChannelRate(msgspec.Struct, frozen=True, kw_only=True):
    channel: Channel
    configured: float  # from the environment; 0 means no rate of our own
    live: float | None  # set by the platform operator; None: the configured one is in force
    in_force: float


class RateChanges(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Per channel: a new live rate (0: no rate of our own), or null to go back to the configured one."""

    sms: PerSecond | None = None
    whatsapp: PerSecond | None = None
    push: PerSecond | None = None
    email: PerSecond | None = None
    reset: Annotated[list[Channel], msgspec.Meta(max_length=4)] = msgspec.field(default_factory=list)


def _key(settings: Settings, channel: Channel) -> str:
    return rate_override_key(channel_key(settings.redis_prefix, str(channel)))


async def current(redis: Redis, settings: Settings) -> list[ChannelRate]:
    rates = []
    for channel, configured in configured_rates(settings).items():
        raw = await redis.get(_key(settings, channel))
        live = float(raw) if raw is not None else None
        rates.append(
            ChannelRate(
                channel=channel, configured=configured, live=live, in_force=configured if live is None else live
            )
        )
    return rates


async def change(redis: Redis, settings: Settings, changes: RateChanges) -> list[ChannelRate]:
    configured = configured_rates(settings)
    for channel in changes.reset:
        if channel in configured:
            await redis.delete(_key(settings, channel))
    for channel in configured:
        value = getattr(changes, str(channel))
        if value is not None:
            await redis.set(_key(settings, channel), repr(float(value)))
    return await current(redis, settings)
