"""Booking rules as plain functions: opening hours, slot grid, duration, window, buffer, quota.

Each refusal is a problem naming the request field at fault (``errors[0].field``) and the
rule that refused it (``extra.rule``), e.g. ``starts_at`` / ``opening_hours``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from uuid import UUID
from zoneinfo import ZoneInfo

from app.errors import AppError, Conflict, FieldError, InvalidInput
from app.slots.resources import Rules
from schema.slots import SlotBooking

Interval = tuple[dt.datetime, dt.datetime]
COUNTED_STATES = ("pending", "confirmed", "checked_in", "completed", "no_show")


def refuse(error: type[AppError], field: str, rule: str, message: str, **extra: object) -> AppError:
    return error(
        f"{field}: {message}",
        errors=[FieldError(field=field, message=message, source="body")],
        extra={"rule": rule, **extra},
    )


def _parse_hhmm(text: str) -> dt.timedelta:
    hours, minutes = text.split(":")
    return dt.timedelta(hours=int(hours), minutes=int(minutes))


def opening_intervals(hours: dict[str, list[list[str]]], tz: ZoneInfo, first: dt.date, last: dt.date) -> list[Interval]:
    """Open intervals (UTC) for local dates first..last, adjacent ones merged (so 22:00-24:00 + 00:00-06:00 is one)."""
    spans: list[Interval] = []
    day = first
    while day <= last:
        midnight = dt.datetime.combine(day, dt.time(), tzinfo=tz)
        for start, end in hours.get(str(day.weekday()), []):
            # Wall-clock times, resolved per date so DST shifts land where local clocks say.
            begin = (midnight.replace(tzinfo=None) + _parse_hhmm(start)).replace(tzinfo=tz)
            finish = (midnight.replace(tzinfo=None) + _parse_hhmm(end)).replace(tzinfo=tz)
            spans.append((begin.astimezone(dt.UTC), finish.astimezone(dt.UTC)))
        day += dt.timedelta(days=1)
    spans.sort()
    merged: list[Interval] = []
    for begin, finish in spans:
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], finish))
        else:
            merged.append((begin, finish))
    return merged


def check_request(rules: Rules, tz: ZoneInfo, starts_at: dt.datetime, ends_at: dt.datetime, now: dt.datetime) -> None:
    """Refuse a booking request that breaks a rule of the resource itself (not other bookings)."""
    for field, value in (("starts_at", starts_at), ("ends_at", ends_at)):
        if value.tzinfo is None:
            raise refuse(InvalidInput, field, "timezone", "must include a timezone offset")
    if ends_at <= starts_at:
        raise refuse(InvalidInput, "ends_at", "order", "must be after starts_at")
    minutes = (ends_at - starts_at) / dt.timedelta(minutes=1)
    if minutes < rules.min_minutes:
        raise refuse(InvalidInput, "ends_at", "min_minutes", f"a booking lasts at least {rules.min_minutes} minutes")
    if minutes > rules.max_minutes:
        raise refuse(InvalidInput, "ends_at", "max_minutes", f"a booking lasts at most {rules.max_minutes} minutes")
    local = starts_at.astimezone(tz)
    if (local.hour * 60 + local.minute) % rules.slot_minutes or local.second or local.microsecond:
        raise refuse(
            InvalidInput, "starts_at", "slot_minutes", f"must start on the {rules.slot_minutes}-minute slot grid"
        )
    if minutes % rules.slot_minutes:
        raise refuse(
            InvalidInput, "ends_at", "slot_minutes", f"must last a whole number of {rules.slot_minutes}-minute slots"
        )
    if starts_at < now:
        raise refuse(InvalidInput, "starts_at", "advance_days", "is in the past")
    horizon = now + dt.timedelta(days=rules.advance_days)
    if starts_at > horizon:
        raise refuse(
            InvalidInput,
            "starts_at",
            "advance_days",
            f"bookings open {rules.advance_days} days ahead (until {horizon.isoformat(timespec='minutes')})",
        )
    intervals = opening_intervals(
        rules.opening_hours or {},
        tz,
        local.date() - dt.timedelta(days=1),
        ends_at.astimezone(tz).date() + dt.timedelta(days=1),
    )
    if not any(begin <= starts_at and ends_at <= finish for begin, finish in intervals):
        raise refuse(
            InvalidInput,
            "starts_at",
            "opening_hours",
            f"{local:%a %H:%M}-{ends_at.astimezone(tz):%H:%M} is outside the opening hours "
            f"({_describe_hours(rules, local.weekday())})",
        )


def _describe_hours(rules: Rules, weekday: int) -> str:
    spans = (rules.opening_hours or {}).get(str(weekday), [])
    return ", ".join(f"{a}-{b}" for a, b in spans) or "closed that day"


def blocking_conflict(
    starts_at: dt.datetime,
    ends_at: dt.datetime,
    buffer: dt.timedelta,
    held: Iterable[tuple[dt.datetime, dt.datetime, dt.datetime]],
) -> tuple[str, dt.datetime, dt.datetime] | None:
    """The first existing booking (start, end, blocks_until) the request collides with, and how.

    Returns ("overlap" | "buffer_minutes", start, end) or None.
    """
    blocks_until = ends_at + buffer
    for other_start, other_end, other_blocks in held:
        if starts_at < other_blocks and other_start < blocks_until:
            kind = "overlap" if starts_at < other_end and other_start < ends_at else "buffer_minutes"
            return kind, other_start, other_end
    return None


def free_starts(
    rules: Rules,
    tz: ZoneInfo,
    duration: dt.timedelta,
    held: Sequence[tuple[dt.datetime, dt.datetime, dt.datetime]],
    *,
    after: dt.datetime,
    until: dt.datetime,
    limit: int,
) -> list[dt.datetime]:
    """Start times on the slot grid in [after, until) where a booking of ``duration`` fits every rule."""
    step = dt.timedelta(minutes=rules.slot_minutes)
    buffer = dt.timedelta(minutes=rules.buffer_minutes)
    intervals = opening_intervals(
        rules.opening_hours or {},
        tz,
        after.astimezone(tz).date() - dt.timedelta(days=1),
        until.astimezone(tz).date() + dt.timedelta(days=1),
    )
    found: list[dt.datetime] = []
    for begin, finish in intervals:
        if finish <= after or begin >= until:
            continue
        local = max(begin, after).astimezone(tz)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        offset = (local - midnight) / dt.timedelta(minutes=1)
        slots = -(-offset // rules.slot_minutes)  # round up to the grid
        candidate = (midnight + dt.timedelta(minutes=slots * rules.slot_minutes)).astimezone(dt.UTC)
        while candidate + duration <= finish and candidate < until:
            if blocking_conflict(candidate, candidate + duration, buffer, held) is None:
                found.append(candidate)
                if len(found) >= limit:
                    return found
            candidate += step
    return found


def local_day_bounds(tz: ZoneInfo, moment: dt.datetime) -> Interval:
    local = moment.astimezone(tz)
    start = dt.datetime.combine(local.date(), dt.time(), tzinfo=tz)
    end = dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(), tzinfo=tz)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def local_week_bounds(tz: ZoneInfo, moment: dt.datetime) -> Interval:
    local = moment.astimezone(tz).date()
    monday = local - dt.timedelta(days=local.weekday())
    start = dt.datetime.combine(monday, dt.time(), tzinfo=tz)
    end = dt.datetime.combine(monday + dt.timedelta(days=7), dt.time(), tzinfo=tz)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


async def check_quota(
    rules: Rules,
    tz: ZoneInfo,
    *,
    site_id: UUID,
    resource_id: UUID,
    unit_id: UUID | None,
    unit_label: str,
    starts_at: dt.datetime,
    exclude_booking: UUID | None = None,
) -> None:
    """Refuse when the unit already used its per-day or per-week quota of this resource."""
    if unit_id is None:
        return
    for rule, limit, (begin, end), period in (
        ("quota_per_day", rules.quota_per_day, local_day_bounds(tz, starts_at), "day"),
        ("quota_per_week", rules.quota_per_week, local_week_bounds(tz, starts_at), "week"),
    ):
        if limit is None:
            continue
        query = SlotBooking.count().where(
            (SlotBooking.site == site_id)
            & (SlotBooking.resource == resource_id)
            & (SlotBooking.unit == unit_id)
            & SlotBooking.status.is_in(list(COUNTED_STATES))
            & (SlotBooking.starts_at >= begin)
            & (SlotBooking.starts_at < end)
        )
        if exclude_booking is not None:
            query = query.where(SlotBooking.id != exclude_booking)
        used = await query
        if used >= limit:
            raise refuse(
                Conflict,
                "starts_at",
                rule,
                f"unit {unit_label} has used its quota of {limit} booking(s) per {period} for this resource",
                used=used,
                limit=limit,
            )
