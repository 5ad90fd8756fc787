"""A daily help's attendance from the gate's own path: their daily-help pass checked in is their
check-in, their visit checked out is their check-out (registered with ``app.visitors.hooks``)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from app.attendance.punches import from_daily_help_visit
from app.visitors import hooks
from app.visitors.common import VisitorDeps


async def daily_help_arrived(deps: VisitorDeps, visit: dict[str, Any], now: dt.datetime) -> object:
    return await from_daily_help_visit(deps.settings, deps.redis, visit, "in", now)


async def daily_help_left(deps: VisitorDeps, visit: dict[str, Any], now: dt.datetime) -> object:
    return await from_daily_help_visit(deps.settings, deps.redis, visit, "out", now)


hooks.on_arrival(daily_help_arrived)
hooks.on_departure(daily_help_left)
