"""Helpers for staff attendance tests: a geofenced site, staff on a roster, principals."""

from __future__ import annotations

import datetime as dt
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from app.attendance import config as cfg
from tests.support.permits import principal
from tests.support.world import World

IST = ZoneInfo("Asia/Kolkata")
# The site's centre (MG Road, Bengaluru) and points at known distances from it.
CENTRE = (12.9756, 77.6050)
NEAR = (12.9760, 77.6052)  # about 50 m north-north-east
FAR = (12.9864, 77.6050)  # 0.0108 degrees north: about 1201 m

__all__ = ["CENTRE", "FAR", "IST", "NEAR", "at", "geofenced", "principal", "rostered"]


def at(day: int, hour: int, minute: int = 0, month: int = 12) -> dt.datetime:
    """A moment of December 2026, site time, in UTC."""
    return dt.datetime(2026, month, day, hour, minute, tzinfo=IST).astimezone(dt.UTC)


async def geofenced(world: World, **overrides: Any) -> cfg.SettingsView:
    data = {
        "geofence": cfg.Geofence(latitude=CENTRE[0], longitude=CENTRE[1], radius_m=200),
        "late_after_minutes": 10,
        "absent_after_minutes": 60,
        **overrides,
    }
    return await cfg.save_settings(world.site_id, cfg.SettingsInput(**data))


async def rostered(
    world: World,
    settings: Any,
    name: str,
    *,
    category: str = "housekeeping",
    person: str | None = None,
    phone: str | None = None,
    weekdays: tuple[int, ...] = (0, 1, 2, 3, 4),
    start: str = "06:00",
    end: str = "14:00",
    code: str | None = None,
) -> UUID:
    """A staff member on a shift ``start``-``end`` on ``weekdays``; returns the staff id."""
    member = await cfg.add_staff(
        settings,
        world.site_id,
        cfg.StaffInput(
            name=name,
            category=category,  # type: ignore[arg-type]
            person_id=world.people[person] if person else None,
            phone=phone,
        ),
    )
    shift_code = code or f"s{start.replace(':', '')}{end.replace(':', '')}"
    existing = {s.code: s for s in await cfg.list_shifts(world.site_id)}
    shift = existing.get(shift_code) or await cfg.add_shift(
        world.site_id, cfg.ShiftInput(code=shift_code, name=f"Shift {start}", start=start, end=end)
    )
    await cfg.put_roster(
        world.site_id,
        member.id,
        cfg.RosterInput(entries=[cfg.RosterItem(weekday=w, shift_id=shift.id) for w in weekdays]),
    )
    return member.id
