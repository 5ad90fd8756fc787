"""Who is due when, and what a duty's state is given the check-ins: the one rule the board, the alerts
and the monthly sheet share.

A duty is one shift of one staff member on one day (site time); a shift whose end is before its start
ends the next day. A check-in counts for a duty when it falls from ``EARLY`` before the start to the end.
A duty's state, at a moment:

- ``upcoming``: before the start; ``due``: started, within the grace (``late_after_minutes``);
- ``present``: checked in by the end of the grace; ``late``: checked in after it (with the minutes late);
- ``not_arrived``: past the grace, not in yet, up to ``absent_after_minutes`` after the start (or the end);
- ``absent``: no check-in once ``absent_after_minutes`` have passed since the start (or the end, if sooner).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal
from uuid import UUID
from zoneinfo import ZoneInfo

from app.attendance.config import SiteAttendance, WeeklySlot

EARLY = dt.timedelta(hours=2)
DutyState = Literal["upcoming", "due", "present", "late", "not_arrived", "absent"]


@dataclass(frozen=True, slots=True)
class Duty:
    staff_id: UUID
    day: dt.date  # site time
    name: str
    start: str  # "HH:MM", site time
    end: str
    start_at: dt.datetime  # UTC
    end_at: dt.datetime

    def counts(self, at: dt.datetime) -> bool:
        """Whether a check-in at ``at`` is this duty's."""
        return self.start_at - EARLY <= at < self.end_at


def _at(day: dt.date, hhmm: str, zone: ZoneInfo) -> dt.datetime:
    hours, minutes = hhmm.split(":")
    return dt.datetime.combine(day, dt.time(int(hours), int(minutes)), tzinfo=zone).astimezone(dt.UTC)


def duties_on(staff_id: UUID, slots: Iterable[WeeklySlot], day: dt.date, zone: ZoneInfo) -> list[Duty]:
    result = []
    seen: set[tuple[str, str]] = set()
    for slot in slots:
        if slot.weekday != day.weekday() or (slot.start, slot.end) in seen:
            continue
        seen.add((slot.start, slot.end))
        end_day = day if slot.end > slot.start else day + dt.timedelta(days=1)
        result.append(
            Duty(
                staff_id=staff_id,
                day=day,
                name=slot.name,
                start=slot.start,
                end=slot.end,
                start_at=_at(day, slot.start, zone),
                end_at=_at(end_day, slot.end, zone),
            )
        )
    return sorted(result, key=lambda d: d.start_at)


def arrival(duty: Duty, check_ins: Iterable[dt.datetime]) -> dt.datetime | None:
    """The first check-in that counts for the duty."""
    counted = [at for at in check_ins if duty.counts(at)]
    return min(counted) if counted else None


def minutes_between(start: dt.datetime, end: dt.datetime) -> int:
    return max(0, int((end - start).total_seconds() // 60))


def state_of(
    duty: Duty, arrived: dt.datetime | None, now: dt.datetime, config: SiteAttendance
) -> tuple[DutyState, int]:
    """The duty's state at ``now`` and the minutes late (of the arrival, or so far)."""
    grace_ends = duty.start_at + dt.timedelta(minutes=config.late_after_minutes)
    absent_at = min(duty.start_at + dt.timedelta(minutes=config.absent_after_minutes), duty.end_at)
    if arrived is not None:
        late = minutes_between(duty.start_at, arrived)
        return ("late", late) if arrived > grace_ends else ("present", 0)
    if now < duty.start_at:
        return "upcoming", 0
    if now <= grace_ends:  # arriving at the very end of the grace is on time
        return "due", 0
    if now <= absent_at:
        return "not_arrived", minutes_between(duty.start_at, now)
    return "absent", minutes_between(duty.start_at, min(now, duty.end_at))
