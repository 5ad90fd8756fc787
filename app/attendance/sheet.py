"""Today's board and the monthly sheet: both computed from the raw punches, never stored.

Pairing: a staff member's valid (not voided) punches, in time order, pair each check-in with the next
check-out; the pair's minutes count on the site-time day of its check-in (an overnight shift's hours
stay on the day it began). A check-in with no check-out after it, or a check-out with none before it,
is shown as such and counts no minutes. Every valid punch of the month is on exactly one day of the
sheet (its pair's check-in day, or its own day when unpaired), so the sheet reconciles with
``GET /api/attendance/staff/{id}/punches`` by construction, and the totals are the sums of the days.
"""

from __future__ import annotations

import calendar
import csv
import datetime as dt
import io
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID
from zoneinfo import ZoneInfo

import msgspec

from app.attendance import config as cfg
from app.attendance.duties import Duty, arrival, duties_on, minutes_between, state_of
from app.attendance.punches import PunchView, punch_view
from app.config import Settings
from app.errors import InvalidInput
from app.visitors.passes import site_zone_of
from schema.attendance import AttendanceAlert, Correction, Punch

DayStatus = Literal["present", "late", "absent", "upcoming", "off", "extra"]


site_zone = site_zone_of  # the site's wall clock, as the visitors module reads it


@dataclass(frozen=True, slots=True)
class Pair:
    check_in: dict[str, Any] | None
    check_out: dict[str, Any] | None

    @property
    def start(self) -> dt.datetime:
        first = self.check_in or self.check_out
        assert first is not None
        return _aware(first["at"])

    @property
    def minutes(self) -> int:
        if self.check_in is None or self.check_out is None:
            return 0
        return minutes_between(_aware(self.check_in["at"]), _aware(self.check_out["at"]))


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def pair_up(punches: Iterable[dict[str, Any]]) -> list[Pair]:
    """Valid punches in time order -> in/out pairs (a lone in or out is a pair with one side)."""
    pairs: list[Pair] = []
    open_in: dict[str, Any] | None = None
    for punch in sorted(punches, key=lambda p: (_aware(p["at"]), str(p["id"]))):
        if punch["voided_at"] is not None:
            continue
        if punch["kind"] == "in":
            if open_in is not None:
                pairs.append(Pair(open_in, None))
            open_in = punch
        elif open_in is not None:
            pairs.append(Pair(open_in, punch))
            open_in = None
        else:
            pairs.append(Pair(None, punch))
    if open_in is not None:
        pairs.append(Pair(open_in, None))
    return pairs


# ------------------------------------------------------------------------------ the monthly sheet


class SheetDay(msgspec.Struct, frozen=True, kw_only=True):
    date: dt.date
    duties: list[str]  # "Morning 06:00-14:00"
    status: DayStatus
    first_in: dt.datetime | None
    last_out: dt.datetime | None
    worked_minutes: int
    late_minutes: int
    punch_ids: list[UUID]  # the valid punches counted on this day
    unmatched: list[str]  # "check-in without check-out", "check-out without check-in"
    corrections: int


class SheetTotals(msgspec.Struct, frozen=True, kw_only=True):
    duties: int
    present: int
    late: int
    absent: int
    worked_minutes: int
    late_minutes: int
    punches: int  # valid punches counted
    voided: int
    corrections: int


class Sheet(msgspec.Struct, frozen=True, kw_only=True):
    staff: cfg.StaffView
    month: str
    timezone: str
    days: list[SheetDay]
    totals: SheetTotals


def month_bounds(month: str, zone: ZoneInfo) -> tuple[dt.date, dt.date, dt.datetime, dt.datetime]:
    try:
        year, number = (int(part) for part in month.split("-"))
        first = dt.date(year, number, 1)
    except ValueError:
        raise InvalidInput.for_query("month", "must be a month, YYYY-MM") from None
    last = first.replace(day=calendar.monthrange(first.year, first.month)[1])
    start = dt.datetime.combine(first, dt.time(), tzinfo=zone).astimezone(dt.UTC)
    end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), tzinfo=zone).astimezone(dt.UTC)
    return first, last, start, end


async def month_punches(staff_id: UUID, start: dt.datetime, end: dt.datetime) -> list[dict[str, Any]]:
    rows = await Punch.select().where((Punch.staff == staff_id) & (Punch.at >= start) & (Punch.at < end))
    return sorted(rows, key=lambda p: (_aware(p["at"]), str(p["id"])))


def _duty_label(duty: Duty) -> str:
    return f"{duty.name} {duty.start}-{duty.end}"


async def build_sheet(
    settings: Settings, site_id: UUID, staff_id: UUID, month: str, now: dt.datetime | None = None
) -> Sheet:
    now = now or dt.datetime.now(dt.UTC)
    staff = await cfg.staff_row(site_id, staff_id)
    zone = await site_zone(site_id)
    config = await cfg.load(site_id)
    first, last, start, end = month_bounds(month, zone)
    slots = (await cfg.weekly_slots([staff]))[staff_id]
    # Two days either side: a pair that began in the month may end after it, and one that ended in it
    # may have begun before.
    around = await month_punches(staff_id, start - dt.timedelta(days=2), end + dt.timedelta(days=2))
    pairs = pair_up(around)
    valid_ins = [_aware(p["at"]) for p in around if p["kind"] == "in" and p["voided_at"] is None]
    corrections = await Correction.select(Correction.punch, Correction.at).where(
        (Correction.staff == staff_id) & (Correction.at >= start) & (Correction.at < end)
    )
    corrected_punches = {c["punch"] for c in corrections}
    punch_day = {p["id"]: _aware(p["at"]).astimezone(zone).date() for p in around}
    days: list[SheetDay] = []
    totals = dict.fromkeys(("duties", "present", "late", "absent", "worked", "late_minutes"), 0)
    day = first
    while day <= last:
        duties = duties_on(staff_id, slots, day, zone)
        own_pairs = [pair for pair in pairs if pair.start.astimezone(zone).date() == day]
        worked = sum(pair.minutes for pair in own_pairs)
        states = [state_of(duty, arrival(duty, valid_ins), now, config) for duty in duties]
        late_minutes = sum(minutes for state, minutes in states if state == "late")
        names = [state for state, _ in states]
        status: DayStatus
        if "absent" in names:
            status = "absent"
        elif "late" in names:
            status = "late"
        elif "present" in names:
            status = "present"
        elif names:
            status = "upcoming"
        else:
            status = "extra" if own_pairs else "off"
        ins = [_aware(p.check_in["at"]) for p in own_pairs if p.check_in]
        outs = [_aware(p.check_out["at"]) for p in own_pairs if p.check_out]
        punch_ids = [side["id"] for pair in own_pairs for side in (pair.check_in, pair.check_out) if side]
        days.append(
            SheetDay(
                date=day,
                duties=[_duty_label(d) for d in duties],
                status=status,
                first_in=min(ins) if ins else None,
                last_out=max(outs) if outs else None,
                worked_minutes=worked,
                late_minutes=late_minutes,
                punch_ids=punch_ids,
                unmatched=[
                    "check-in without check-out" if pair.check_out is None else "check-out without check-in"
                    for pair in own_pairs
                    if pair.check_in is None or pair.check_out is None
                ],
                corrections=sum(1 for p in around if p["id"] in corrected_punches and punch_day[p["id"]] == day),
            )
        )
        totals["duties"] += len(duties)
        totals["present"] += names.count("present")
        totals["late"] += names.count("late")
        totals["absent"] += names.count("absent")
        totals["worked"] += worked
        totals["late_minutes"] += late_minutes
        day += dt.timedelta(days=1)
    in_month = [p for p in around if start <= _aware(p["at"]) < end]
    return Sheet(
        staff=cfg.staff_view(settings, staff),
        month=f"{first:%Y-%m}",
        timezone=str(zone.key),
        days=days,
        totals=SheetTotals(
            duties=totals["duties"],
            present=totals["present"],
            late=totals["late"],
            absent=totals["absent"],
            worked_minutes=totals["worked"],
            late_minutes=totals["late_minutes"],
            punches=sum(len(d.punch_ids) for d in days),
            voided=sum(1 for p in in_month if p["voided_at"] is not None),
            corrections=len(corrections),
        ),
    )


def _hours(minutes: int) -> str:
    return f"{minutes // 60}:{minutes % 60:02d}"


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(text: str) -> str:
    """A cell a spreadsheet will not run as a formula (CSV injection)."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def sheet_csv(sheet: Sheet, zone: ZoneInfo) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(
        [
            "name",
            "date",
            "weekday",
            "duties",
            "status",
            "first_in",
            "last_out",
            "worked_hours",
            "worked_minutes",
            "late_minutes",
            "punches",
            "unmatched",
            "corrections",
        ]
    )
    name = _cell(sheet.staff.name)
    for day in sheet.days:
        writer.writerow(
            [
                name,
                day.date.isoformat(),
                calendar.day_abbr[day.date.weekday()],
                "; ".join(day.duties),
                day.status,
                day.first_in.astimezone(zone).strftime("%H:%M") if day.first_in else "",
                day.last_out.astimezone(zone).strftime("%Y-%m-%d %H:%M") if day.last_out else "",
                _hours(day.worked_minutes),
                day.worked_minutes,
                day.late_minutes,
                len(day.punch_ids),
                "; ".join(day.unmatched),
                day.corrections,
            ]
        )
    t = sheet.totals
    writer.writerow(
        [
            name,
            "TOTAL",
            "",
            f"{t.duties} duties",
            f"{t.present} present, {t.late} late, {t.absent} absent",
            "",
            "",
            _hours(t.worked_minutes),
            t.worked_minutes,
            t.late_minutes,
            t.punches,
            f"{t.voided} voided",
            t.corrections,
        ]
    )
    return buffer.getvalue()


async def punches_of_month(site_id: UUID, staff_id: UUID, month: str) -> list[PunchView]:
    """Every punch of the month, voided ones too, with the reason of any correction: the raw record."""
    await cfg.staff_row(site_id, staff_id)
    zone = await site_zone(site_id)
    _, _, start, end = month_bounds(month, zone)
    rows = await month_punches(staff_id, start, end)
    reasons: dict[UUID, str] = {}
    if rows:
        for correction in (
            await Correction.select(Correction.punch, Correction.reason, Correction.at)
            .where(Correction.punch.is_in([r["id"] for r in rows]))
            .order_by(Correction.at)
        ):
            reasons[correction["punch"]] = correction["reason"]
    return [punch_view(row, reasons.get(row["id"])) for row in rows]


# ------------------------------------------------------------------------------ today's board


class BoardRow(msgspec.Struct, frozen=True, kw_only=True):
    staff_id: UUID
    name: str
    category: str
    duty: str | None  # "Morning 06:00-14:00"; None: no duty today
    start_at: dt.datetime | None
    end_at: dt.datetime | None
    state: Literal["upcoming", "due", "present", "late", "not_arrived", "absent", "off"]
    minutes_late: int
    inside: bool  # checked in and not out
    last_punch_at: dt.datetime | None
    alerts: list[str]  # late / absent alerts sent for this duty


async def board(site_id: UUID, now: dt.datetime | None = None) -> list[BoardRow]:
    """Every active staff member: one row per duty touching today (site time), or one ``off`` row."""
    now = now or dt.datetime.now(dt.UTC)
    zone = await site_zone(site_id)
    config = await cfg.load(site_id)
    staff = await cfg.list_staff(site_id)
    slots = await cfg.weekly_slots(staff)
    today = now.astimezone(zone).date()
    ids = [row["id"] for row in staff]
    recent = (
        await Punch.select().where(
            Punch.staff.is_in(ids) & (Punch.at >= now - dt.timedelta(days=2)) & Punch.voided_at.is_null()
        )
        if ids
        else []
    )
    alerts = (
        await AttendanceAlert.select().where(
            AttendanceAlert.staff.is_in(ids) & AttendanceAlert.day.is_in([today - dt.timedelta(days=1), today])
        )
        if ids
        else []
    )
    rows: list[BoardRow] = []
    for member in staff:
        own = sorted((p for p in recent if p["staff"] == member["id"]), key=lambda p: _aware(p["at"]))
        ins = [_aware(p["at"]) for p in own if p["kind"] == "in"]
        last = own[-1] if own else None
        inside = last is not None and last["kind"] == "in"
        duties = [
            duty
            for day in (today - dt.timedelta(days=1), today)
            for duty in duties_on(member["id"], slots[member["id"]], day, zone)
            if duty.day == today or duty.end_at > now  # yesterday's overnight duty, while it lasts
        ]
        for duty in duties:
            state, minutes = state_of(duty, arrival(duty, ins), now, config)
            sent = [
                a["kind"]
                for a in alerts
                if a["staff"] == member["id"] and a["day"] == duty.day and a["shift_start"] == duty.start
            ]
            rows.append(
                BoardRow(
                    staff_id=member["id"],
                    name=member["name"],
                    category=member["category"],
                    duty=_duty_label(duty),
                    start_at=duty.start_at,
                    end_at=duty.end_at,
                    state=state,
                    minutes_late=minutes,
                    inside=inside,
                    last_punch_at=_aware(last["at"]) if last else None,
                    alerts=sorted(sent),
                )
            )
        if not duties:
            rows.append(
                BoardRow(
                    staff_id=member["id"],
                    name=member["name"],
                    category=member["category"],
                    duty=None,
                    start_at=None,
                    end_at=None,
                    state="off",
                    minutes_late=0,
                    inside=inside,
                    last_punch_at=_aware(last["at"]) if last else None,
                    alerts=[],
                )
            )
    order = {"absent": 0, "not_arrived": 1, "late": 2, "due": 3, "present": 4, "upcoming": 5, "off": 6}
    rows.sort(key=lambda r: (order[r.state], r.start_at or now, r.name, str(r.staff_id)))
    return rows
