"""What the pipeline's functions need, passed explicitly (tests build it; workers build it once)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from uuid import UUID

from redis.asyncio import Redis

from app.config import Settings
from app.people.directory import Directory
from notifications.ledger import Counters, now_utc
from notifications.providers import Providers

# Called with (site_id, notification_id, counters) whenever progress may have changed.
ProgressSink = Callable[[UUID, UUID, Counters], Awaitable[None]]
# Schedules sending of (notification_id, channel); the worker enqueues an arq job.
SendScheduler = Callable[[UUID, str], Awaitable[None]]


@dataclass
class NotifyContext:
    settings: Settings
    redis: Redis
    directory: Directory
    providers: Providers
    progress: ProgressSink | None = None
    schedule_send: SendScheduler | None = None
    clock: Callable[[], dt.datetime] = field(default=now_utc)
