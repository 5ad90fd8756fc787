"""arq jobs and crons of the slots module; `workers.main` collects FUNCTIONS and CRON_JOBS.

Each cron re-derives its work from the database (bookings past their grace period, bookings
due a reminder, passes about to expire) with conditional updates and idempotency keys, so a
re-run or a second worker repeats nothing. Notifications they create are sent by NOTIFY's
``notify_tick``, which picks up every due notification.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from arq import cron

from app.slots import booking, passes
from app.slots.availability import AvailabilityFeed


async def slots_release_no_shows(ctx: dict[str, Any], now: dt.datetime | None = None) -> int:
    """Release no-shows after the grace period and publish the freed slots at once."""
    return await booking.release_no_shows(ctx["redis"], ctx["settings"], now=now)


async def slots_send_reminders(ctx: dict[str, Any], now: dt.datetime | None = None) -> int:
    return await booking.send_reminders(now=now)


async def slots_flush_stale(ctx: dict[str, Any]) -> int:
    """Publish availability a web process marked changed but died before flushing."""
    return await AvailabilityFeed(ctx["redis"], ctx["settings"]).flush_stale()


async def slots_pass_expiry(ctx: dict[str, Any], now: dt.datetime | None = None) -> int:
    return await passes.remind_expiring(now=now)


FUNCTIONS: list[Any] = []
CRON_JOBS: list[Any] = [
    cron(slots_release_no_shows, second={0, 30}, run_at_startup=True, unique=True, timeout=120),
    cron(slots_send_reminders, second={15, 45}, run_at_startup=True, unique=True, timeout=120),
    cron(slots_flush_stale, second=set(range(0, 60, 10)), unique=True, timeout=60),
    cron(slots_pass_expiry, hour={9}, minute={5}, unique=True, timeout=600),
]
