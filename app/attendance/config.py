"""The site's attendance settings, its staff, its named shifts and each staff member's weekly roster.

A staff member may have an account (a guard or technician who checks in from their phone; a
technician's shifts then come from the complaints module, where the FM team already keeps them) or
not (housekeeping, daily help: the guard checks them in at the gate). A daily help is matched to their
daily-help visitor pass by mobile number, so the pass the gate already checks is their check-in.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from piccolo.columns import Column

from app.auth.roles import STAFF, Role
from app.config import Settings
from app.db import is_unique_violation, write_transaction
from app.errors import Conflict, InvalidInput, NotFound
from app.text import ONE_LINE
from app.visitors.common import reveal, seal_phone, site_region
from schema.attendance import AttendanceSiteConfig, RosterEntry, Shift, StaffMember
from schema.complaints import TechnicianShift
from schema.tables import Person, PersonRole

Category = Literal["guard", "technician", "housekeeping", "daily_help", "other"]
CATEGORIES: tuple[str, ...] = ("guard", "technician", "housekeeping", "daily_help", "other")
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200), ONE_LINE]
Code = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
HHMM = Annotated[str, msgspec.Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
Weekday = Annotated[int, msgspec.Meta(ge=0, le=6)]


# ------------------------------------------------------------------------------ site settings


class Geofence(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A circle around the site: its centre (WGS 84 degrees) and radius in metres."""

    latitude: Annotated[float, msgspec.Meta(ge=-90, le=90)]
    longitude: Annotated[float, msgspec.Meta(ge=-180, le=180)]
    radius_m: Annotated[int, msgspec.Meta(ge=20, le=5000)] = 200


class SettingsInput(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    geofence: Geofence | None = None  # None: no check-in from phones, only at the gate
    max_accuracy_m: Annotated[int, msgspec.Meta(ge=5, le=1000)] = 100
    late_after_minutes: Annotated[int, msgspec.Meta(ge=0, le=240)] = 10
    absent_after_minutes: Annotated[int, msgspec.Meta(ge=1, le=720)] = 60
    supervisor_id: UUID | None = None  # None: the site's FM admins and site admins are told


class SettingsView(msgspec.Struct, frozen=True, kw_only=True):
    geofence: Geofence | None
    max_accuracy_m: int
    late_after_minutes: int
    absent_after_minutes: int
    supervisor_id: UUID | None


@dataclass(frozen=True, slots=True)
class SiteAttendance:
    geofence: Geofence | None
    max_accuracy_m: int
    late_after_minutes: int
    absent_after_minutes: int
    supervisor_id: UUID | None


DEFAULTS = SiteAttendance(
    geofence=None, max_accuracy_m=100, late_after_minutes=10, absent_after_minutes=60, supervisor_id=None
)


async def load(site_id: UUID) -> SiteAttendance:
    row = await AttendanceSiteConfig.select().where(AttendanceSiteConfig.site == site_id).first()
    if row is None:
        return DEFAULTS
    fence = (
        Geofence(latitude=row["centre_lat"], longitude=row["centre_lng"], radius_m=row["radius_m"])
        if row["centre_lat"] is not None and row["centre_lng"] is not None
        else None
    )
    return SiteAttendance(
        geofence=fence,
        max_accuracy_m=row["max_accuracy_m"],
        late_after_minutes=row["late_after_minutes"],
        absent_after_minutes=row["absent_after_minutes"],
        supervisor_id=row["supervisor"],
    )


def settings_view(config: SiteAttendance) -> SettingsView:
    return SettingsView(
        geofence=config.geofence,
        max_accuracy_m=config.max_accuracy_m,
        late_after_minutes=config.late_after_minutes,
        absent_after_minutes=config.absent_after_minutes,
        supervisor_id=config.supervisor_id,
    )


async def is_supervisor_candidate(site_id: UUID, person_id: UUID) -> bool:
    """FM admins, site admins and guards (a head guard supervises the guards) of the site, active."""
    roles = [str(Role.FM_ADMIN), str(Role.SITE_ADMIN), str(Role.GUARD)]
    return await PersonRole.exists().where(
        (PersonRole.site == site_id)
        & (PersonRole.person == person_id)
        & PersonRole.role.is_in(roles)
        & (PersonRole.person._.is_active.eq(True))
    )


async def save_settings(site_id: UUID, data: SettingsInput, now: dt.datetime | None = None) -> SettingsView:
    now = now or dt.datetime.now(dt.UTC)
    if data.supervisor_id is not None and not await is_supervisor_candidate(site_id, data.supervisor_id):
        raise InvalidInput.for_field("supervisor_id", "is not an active FM admin, site admin or guard of this site")
    if data.absent_after_minutes <= data.late_after_minutes:
        raise InvalidInput.for_field("absent_after_minutes", "must be more than late_after_minutes")
    fence = data.geofence
    values: dict[Column | str, Any] = {
        AttendanceSiteConfig.centre_lat: fence.latitude if fence else None,
        AttendanceSiteConfig.centre_lng: fence.longitude if fence else None,
        AttendanceSiteConfig.radius_m: fence.radius_m if fence else 200,
        AttendanceSiteConfig.max_accuracy_m: data.max_accuracy_m,
        AttendanceSiteConfig.late_after_minutes: data.late_after_minutes,
        AttendanceSiteConfig.absent_after_minutes: data.absent_after_minutes,
        AttendanceSiteConfig.supervisor: data.supervisor_id,
        AttendanceSiteConfig.updated_at: now,
    }
    async with write_transaction():
        existing = await AttendanceSiteConfig.exists().where(AttendanceSiteConfig.site == site_id)
        if existing:
            await AttendanceSiteConfig.update(values).where(AttendanceSiteConfig.site == site_id)
        else:
            row = AttendanceSiteConfig(site=site_id)
            for column, value in values.items():
                assert isinstance(column, Column)
                setattr(row, column._meta.name, value)
            await row.save()
    return settings_view(await load(site_id))


# ------------------------------------------------------------------------------ staff


class StaffInput(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A staff member: ``person_id`` links their account (phone check-in; a technician's shifts);
    ``phone`` is a daily help's mobile, matched to their daily-help pass at the gate."""

    name: Name | None = None  # required
    category: Category | None = None  # required
    person_id: UUID | None = None
    phone: Annotated[str, msgspec.Meta(min_length=4, max_length=32), ONE_LINE] | None = None
    supervisor_id: UUID | None = None
    is_active: bool = True


class StaffView(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    name: str
    category: str
    person_id: UUID | None
    phone: str | None
    supervisor_id: UUID | None
    is_active: bool
    created_at: dt.datetime


def staff_view(settings: Settings, row: dict[str, Any], *, show_phone: bool = True) -> StaffView:
    return StaffView(
        id=row["id"],
        name=row["name"],
        category=row["category"],
        person_id=row["person"],
        phone=reveal(settings, row["phone_encrypted"]) if show_phone else None,
        supervisor_id=row["supervisor"],
        is_active=row["is_active"],
        created_at=row["created_at"],
    )


async def staff_row(site_id: UUID, staff_id: UUID) -> dict[str, Any]:
    row = await StaffMember.select().where((StaffMember.site == site_id) & (StaffMember.id == staff_id)).first()
    if row is None:
        raise NotFound("staff member not found")
    return row


async def _check_staff(site_id: UUID, data: StaffInput) -> None:
    if data.name is None:
        raise InvalidInput.for_field("name", "is required")
    if data.category is None:
        raise InvalidInput.for_field("category", f"is required: one of {', '.join(CATEGORIES)}")
    if data.person_id is not None and not await Person.exists().where(
        (Person.site == site_id) & (Person.id == data.person_id)
    ):
        raise InvalidInput.for_field("person_id", "no such person on this site")
    if data.supervisor_id is not None and not await is_supervisor_candidate(site_id, data.supervisor_id):
        raise InvalidInput.for_field("supervisor_id", "is not an active FM admin, site admin or guard of this site")
    if data.category == "daily_help" and data.phone is None:
        raise InvalidInput.for_field("phone", "a daily help is recognised at the gate by their mobile: it is required")


async def _staff_values(settings: Settings, site_id: UUID, data: StaffInput) -> dict[str, Any]:
    phone = seal_phone(settings, data.phone, await site_region(site_id), "phone")
    return {
        "name": (data.name or "").strip(),
        "category": data.category,
        "person": data.person_id,
        "phone_encrypted": phone.encrypted,
        "phone_index": phone.index,
        "supervisor": data.supervisor_id,
        "is_active": data.is_active,
    }


def _linked_twice() -> Conflict:
    return Conflict("that person is already on the staff list: change their entry instead")


async def add_staff(settings: Settings, site_id: UUID, data: StaffInput, now: dt.datetime | None = None) -> StaffView:
    now = now or dt.datetime.now(dt.UTC)
    await _check_staff(site_id, data)
    member = StaffMember(site=site_id, created_at=now, **await _staff_values(settings, site_id, data))
    try:
        await member.save()
    except Exception as error:
        if is_unique_violation(error):
            raise _linked_twice() from None
        raise
    return staff_view(settings, await staff_row(site_id, member.id))


async def update_staff(settings: Settings, site_id: UUID, staff_id: UUID, data: StaffInput) -> StaffView:
    await staff_row(site_id, staff_id)
    await _check_staff(site_id, data)
    values = await _staff_values(settings, site_id, data)
    changes: dict[Column | str, Any] = {name: value for name, value in values.items()}
    try:
        await StaffMember.update(changes).where(StaffMember.id == staff_id)
    except Exception as error:
        if is_unique_violation(error):
            raise _linked_twice() from None
        raise
    return staff_view(settings, await staff_row(site_id, staff_id))


async def list_staff(site_id: UUID, *, active_only: bool = True) -> list[dict[str, Any]]:
    where: Any = StaffMember.site == site_id
    if active_only:
        where = where & StaffMember.is_active.eq(True)
    return list(await StaffMember.select().where(where).order_by(StaffMember.name).order_by(StaffMember.id))


async def staff_of_person(site_id: UUID, person_id: UUID) -> dict[str, Any] | None:
    found: dict[str, Any] | None = (
        await StaffMember.select()
        .where((StaffMember.site == site_id) & (StaffMember.person == person_id) & StaffMember.is_active.eq(True))
        .first()
    )
    return found


def may_see_phones(roles: frozenset[Role]) -> bool:
    return not roles.isdisjoint(STAFF)


# ------------------------------------------------------------------------------ shifts


class ShiftInput(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A named shift of the site; ``end`` before ``start`` runs past midnight."""

    code: Code | None = None  # required
    name: Name | None = None  # required
    start: HHMM | None = None  # required
    end: HHMM | None = None  # required


class ShiftView(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    code: str
    name: str
    start: str
    end: str


def shift_view(row: dict[str, Any]) -> ShiftView:
    return ShiftView(id=row["id"], code=row["code"], name=row["name"], start=row["start"], end=row["end"])


def _check_shift(data: ShiftInput) -> tuple[str, str, str, str]:
    if data.code is None:
        raise InvalidInput.for_field("code", "is required")
    if data.name is None:
        raise InvalidInput.for_field("name", "is required")
    if data.start is None:
        raise InvalidInput.for_field("start", "is required: HH:MM in site time")
    if data.end is None:
        raise InvalidInput.for_field("end", "is required: HH:MM in site time")
    if data.start == data.end:
        raise InvalidInput.for_field("end", "must differ from start")
    return data.code, data.name, data.start, data.end


async def add_shift(site_id: UUID, data: ShiftInput) -> ShiftView:
    code, name, start, end = _check_shift(data)
    row = Shift(site=site_id, code=code, name=name, start=start, end=end)
    try:
        await row.save()
    except Exception as error:
        if is_unique_violation(error):
            raise Conflict(f"the site has a shift {code!r} already: change it with PUT") from None
        raise
    return shift_view({"id": row.id, "code": code, "name": name, "start": start, "end": end})


async def update_shift(site_id: UUID, shift_id: UUID, data: ShiftInput) -> ShiftView:
    if not await Shift.exists().where((Shift.site == site_id) & (Shift.id == shift_id)):
        raise NotFound("shift not found")
    code, name, start, end = _check_shift(data)
    try:
        await Shift.update({Shift.code: code, Shift.name: name, Shift.start: start, Shift.end: end}).where(
            Shift.id == shift_id
        )
    except Exception as error:
        if is_unique_violation(error):
            raise Conflict(f"the site has a shift {code!r} already") from None
        raise
    return shift_view({"id": shift_id, "code": code, "name": name, "start": start, "end": end})


async def list_shifts(site_id: UUID) -> list[ShiftView]:
    rows = await Shift.select().where(Shift.site == site_id).order_by(Shift.start).order_by(Shift.code)
    return [shift_view(row) for row in rows]


# ------------------------------------------------------------------------------ roster


class RosterItem(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    weekday: Weekday  # 0 = Monday
    shift_id: UUID


class RosterInput(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # Required (checked after the staff member is found, so another site's id is a 404 whatever the body).
    entries: Annotated[list[RosterItem], msgspec.Meta(max_length=70)] | None = None


class RosterLine(msgspec.Struct, frozen=True, kw_only=True):
    weekday: int
    shift_id: UUID | None  # None for a technician's shift kept in the complaints module
    name: str
    start: str
    end: str
    source: Literal["roster", "technician_shifts"]


class RosterView(msgspec.Struct, frozen=True, kw_only=True):
    staff_id: UUID
    lines: list[RosterLine]


@dataclass(frozen=True, slots=True)
class WeeklySlot:
    weekday: int
    start: str
    end: str
    name: str
    shift_id: UUID | None
    source: Literal["roster", "technician_shifts"]


async def weekly_slots(staff: list[dict[str, Any]]) -> dict[UUID, list[WeeklySlot]]:
    """Every staff member's weekly pattern: their roster, and a technician's shifts from the complaints module."""
    ids = [row["id"] for row in staff]
    result: dict[UUID, list[WeeklySlot]] = {staff_id: [] for staff_id in ids}
    if not ids:
        return result
    entries = await RosterEntry.select(
        RosterEntry.staff,
        RosterEntry.weekday,
        RosterEntry.shift,
        RosterEntry.shift.start.as_alias("start"),
        RosterEntry.shift.end.as_alias("end"),
        RosterEntry.shift.name.as_alias("name"),
    ).where(RosterEntry.staff.is_in(ids))
    for entry in entries:
        result[entry["staff"]].append(
            WeeklySlot(
                weekday=entry["weekday"],
                start=entry["start"],
                end=entry["end"],
                name=entry["name"],
                shift_id=entry["shift"],
                source="roster",
            )
        )
    technicians = {row["person"]: row["id"] for row in staff if row["category"] == "technician" and row["person"]}
    if technicians:
        shifts = await TechnicianShift.select().where(TechnicianShift.technician.is_in(list(technicians)))
        for shift in shifts:
            result[technicians[shift["technician"]]].append(
                WeeklySlot(
                    weekday=shift["weekday"],
                    start=shift["start"],
                    end=shift["end"],
                    name="Technician shift",
                    shift_id=None,
                    source="technician_shifts",
                )
            )
    for slots in result.values():
        slots.sort(key=lambda s: (s.weekday, s.start, s.end))
    return result


async def get_roster(site_id: UUID, staff_id: UUID) -> RosterView:
    row = await staff_row(site_id, staff_id)
    slots = (await weekly_slots([row]))[staff_id]
    return RosterView(
        staff_id=staff_id,
        lines=[
            RosterLine(weekday=s.weekday, shift_id=s.shift_id, name=s.name, start=s.start, end=s.end, source=s.source)
            for s in slots
        ],
    )


async def put_roster(site_id: UUID, staff_id: UUID, data: RosterInput) -> RosterView:
    await staff_row(site_id, staff_id)
    if data.entries is None:
        raise InvalidInput.for_field("entries", "is required (an empty list clears the roster)")
    wanted = list(dict.fromkeys((e.weekday, e.shift_id) for e in data.entries))
    shift_ids = {shift_id for _, shift_id in wanted}
    known = (
        {
            row["id"]
            for row in await Shift.select(Shift.id).where((Shift.site == site_id) & Shift.id.is_in(list(shift_ids)))
        }
        if shift_ids
        else set()
    )
    for index, entry in enumerate(data.entries):
        if entry.shift_id not in known:
            raise InvalidInput.for_field(f"entries[{index}].shift_id", "no such shift on this site")
    async with write_transaction():
        await RosterEntry.delete().where(RosterEntry.staff == staff_id)
        if wanted:
            await RosterEntry.insert(
                *[RosterEntry(site=site_id, staff=staff_id, weekday=w, shift=s) for w, s in wanted]
            )
    return await get_roster(site_id, staff_id)
