"""Parking passes per vehicle: monthly or recurring (weekdays and hours), with expiry and renewal.

The plate is stored only encrypted with a keyed blind index (``app.security.crypto``), so a
guard can check a plate at the gate without the database ever holding it in clear.
"""

from __future__ import annotations

import calendar
import datetime as dt
from typing import Annotated, Any, Literal
from uuid import UUID
from zoneinfo import ZoneInfo

import msgspec
from piccolo.columns.combination import Combinable

from app.auth.principal import Principal
from app.auth.roles import STAFF, Role
from app.config import Settings
from app.errors import Conflict, InvalidInput, NotFound
from app.pagination import Page, page_of
from app.people.directory import cipher_for
from app.people.normalise import normalise_plate
from app.privacy import audit
from app.slots import resources
from app.slots.booking import is_staff
from app.slots.resources import now_utc
from notifications.audience import Audience
from notifications.categories import Category, Channel
from notifications.service import NotificationRequest, create_notification
from schema.slots import ParkingPass
from schema.tables import Occupancy, Resource, Unit

PassKind = Literal["monthly", "recurring"]
Plate = Annotated[str, msgspec.Meta(min_length=1, max_length=20)]
HHMM = Annotated[str, msgspec.Meta(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]
Months = Annotated[int, msgspec.Meta(ge=1, le=12)]


class NewPass(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    plate: Plate
    kind: PassKind = "monthly"
    unit_id: UUID | None = None
    resource_id: UUID | None = None  # a parking slot the pass is for (optional)
    valid_from: dt.date | None = None  # default: today (site time)
    months: Months = 1
    weekdays: Annotated[list[Annotated[int, msgspec.Meta(ge=0, le=6)]], msgspec.Meta(max_length=7)] = []
    daily_from: HHMM | None = None
    daily_until: HHMM | None = None


class Renewal(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    months: Months = 1


class PassView(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    plate: str
    kind: str
    unit_id: UUID | None
    person_id: UUID | None
    resource_id: UUID | None
    weekdays: list[int]
    daily_from: str | None
    daily_until: str | None
    valid_from: dt.date
    valid_until: dt.date
    status: str  # active | expired | cancelled | scheduled
    renewals: int


class PlateCheck(msgspec.Struct, frozen=True, kw_only=True):
    plate: str
    valid_now: bool
    passes: list[PassView]


def add_months(day: dt.date, months: int) -> dt.date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


async def _today(site_id: UUID, now: dt.datetime) -> dt.date:
    tz, _ = await resources.site_settings(site_id)
    return now.astimezone(ZoneInfo(tz)).date()


def _status(row: dict[str, Any], today: dt.date) -> str:
    if row["status"] == "cancelled":
        return "cancelled"
    if row["valid_until"] < today:
        return "expired"
    if row["valid_from"] > today:
        return "scheduled"
    return "active"


async def audit_plate_reads(site_id: UUID, rows: list[dict[str, Any]]) -> None:
    """Plates are personal data: every read of them is in the audit log, under their holders."""
    await audit.record(site_id, [row["person"] for row in rows if row["person"] is not None], "read", "vehicles")


def _view(settings: Settings, row: dict[str, Any], today: dt.date) -> PassView:
    from schema.jsonvalue import as_list

    return PassView(
        id=row["id"],
        plate=cipher_for(settings).decrypt(row["plate_encrypted"]),
        kind=row["kind"],
        unit_id=row["unit"],
        person_id=row["person"],
        resource_id=row["resource"],
        weekdays=[int(d) for d in as_list(row["weekdays"])],
        daily_from=row["daily_from"],
        daily_until=row["daily_until"],
        valid_from=row["valid_from"],
        valid_until=row["valid_until"],
        status=_status(row, today),
        renewals=row["renewals"],
    )


async def _unit_of(principal: Principal, unit_id: UUID | None) -> UUID:
    if unit_id is None:
        row = (
            await Occupancy.select(Occupancy.unit)
            .where(
                (Occupancy.person == principal.person_id)
                & (Occupancy.site == principal.site_id)
                & (Occupancy.is_active.eq(True))
            )
            .first()
        )
        if row is None:
            raise InvalidInput.for_field("unit_id", "choose the unit the pass is for")
        return row["unit"]
    if not await Unit.exists().where((Unit.id == unit_id) & (Unit.site == principal.site_id)):
        raise InvalidInput.for_field("unit_id", "no such unit on this site")
    if not is_staff(principal) and not await Occupancy.exists().where(
        (Occupancy.person == principal.person_id) & (Occupancy.unit == unit_id) & (Occupancy.is_active.eq(True))
    ):
        raise InvalidInput.for_field("unit_id", "you are not an occupant of this unit")
    return unit_id


async def create_pass(
    settings: Settings, principal: Principal, data: NewPass, now: dt.datetime | None = None
) -> PassView:
    now = now or now_utc()
    try:
        plate = normalise_plate(data.plate)
    except ValueError as exc:
        raise InvalidInput.for_field("plate", str(exc)) from None
    unit_id = await _unit_of(principal, data.unit_id)
    if data.resource_id is not None and not await Resource.exists().where(
        (Resource.id == data.resource_id) & (Resource.site == principal.site_id) & (Resource.kind == "parking_slot")
    ):
        raise InvalidInput.for_field("resource_id", "no such parking slot on this site")
    if data.kind == "recurring":
        if not data.weekdays:
            raise InvalidInput.for_field("weekdays", "a recurring pass needs at least one weekday")
        if (data.daily_from is None) != (data.daily_until is None) or (
            data.daily_from and data.daily_until and data.daily_from >= data.daily_until
        ):
            raise InvalidInput.for_field("daily_until", "give both daily_from and daily_until, with from < until")
    today = await _today(principal.site_id, now)
    valid_from = data.valid_from or today
    if valid_from < today:
        raise InvalidInput.for_field("valid_from", "must not be in the past")
    cipher = cipher_for(settings)
    row = ParkingPass(
        site=principal.site_id,
        person=principal.person_id,
        unit=unit_id,
        resource=data.resource_id,
        plate_encrypted=cipher.encrypt(plate),
        plate_index=cipher.blind_index("plate", plate),
        kind=data.kind,
        weekdays=sorted(set(data.weekdays)),
        daily_from=data.daily_from,
        daily_until=data.daily_until,
        valid_from=valid_from,
        valid_until=add_months(valid_from, data.months) - dt.timedelta(days=1),
        status="active",
        created_at=now,
        updated_at=now,
    )
    await row.save()
    return await get_pass(settings, principal, row.id, now)


async def _row(principal: Principal, pass_id: UUID) -> dict[str, Any]:
    row = (
        await ParkingPass.select().where((ParkingPass.site == principal.site_id) & (ParkingPass.id == pass_id)).first()
    )
    if row is None or (not is_staff(principal) and row["person"] != principal.person_id):
        raise NotFound("parking pass not found")
    return row


async def get_pass(settings: Settings, principal: Principal, pass_id: UUID, now: dt.datetime | None = None) -> PassView:
    row = await _row(principal, pass_id)
    await audit_plate_reads(principal.site_id, [row])
    return _view(settings, row, await _today(principal.site_id, now or now_utc()))


async def list_passes(
    settings: Settings, principal: Principal, now: dt.datetime | None = None, *, limit: int = 50, offset: int = 0
) -> Page[PassView]:
    where: list[Combinable] = [ParkingPass.site == principal.site_id]
    if not is_staff(principal):
        where.append(ParkingPass.person == principal.person_id)
    today = await _today(principal.site_id, now or now_utc())
    total = await ParkingPass.count().where(*where)
    rows = (
        await ParkingPass.select()
        .where(*where)
        .order_by(ParkingPass.valid_until, ascending=False)
        .order_by(ParkingPass.id)
        .limit(limit)
        .offset(offset)
    )
    await audit_plate_reads(principal.site_id, rows)
    return page_of([_view(settings, r, today) for r in rows], total=total, limit=limit, offset=offset)


async def renew_pass(
    settings: Settings, principal: Principal, pass_id: UUID, data: Renewal, now: dt.datetime | None = None
) -> PassView:
    """Extend by whole months from the later of its expiry and today (a lapsed pass restarts today)."""
    now = now or now_utc()
    row = await _row(principal, pass_id)
    if row["status"] == "cancelled":
        raise Conflict("status: a cancelled pass cannot be renewed; create a new one")
    today = await _today(principal.site_id, now)
    base = row["valid_until"] + dt.timedelta(days=1) if row["valid_until"] >= today else today
    await ParkingPass.update(
        {
            ParkingPass.valid_from: row["valid_from"] if row["valid_until"] >= today else today,
            ParkingPass.valid_until: add_months(base, data.months) - dt.timedelta(days=1),
            ParkingPass.renewals: row["renewals"] + 1,
            ParkingPass.updated_at: now,
        }
    ).where(ParkingPass.id == pass_id)
    return await get_pass(settings, principal, pass_id, now)


async def cancel_pass(
    settings: Settings, principal: Principal, pass_id: UUID, now: dt.datetime | None = None
) -> PassView:
    now = now or now_utc()
    await _row(principal, pass_id)
    await ParkingPass.update({ParkingPass.status: "cancelled", ParkingPass.updated_at: now}).where(
        ParkingPass.id == pass_id
    )
    return await get_pass(settings, principal, pass_id, now)


def _valid_at(view: PassView, local: dt.datetime) -> bool:
    if view.status != "active":
        return False
    if view.kind == "recurring":
        if local.weekday() not in view.weekdays:
            return False
        if view.daily_from and view.daily_until:
            return view.daily_from <= f"{local:%H:%M}" < view.daily_until
    return True


async def check_plate(
    settings: Settings, principal: Principal, raw_plate: str, now: dt.datetime | None = None
) -> PlateCheck:
    """For guards: the passes of a plate and whether one is valid right now."""
    now = now or now_utc()
    try:
        plate = normalise_plate(raw_plate)
    except ValueError as exc:
        raise InvalidInput.for_query("plate", str(exc)) from None
    cipher = cipher_for(settings)
    rows = await ParkingPass.select().where(
        (ParkingPass.site == principal.site_id) & (ParkingPass.plate_index == cipher.blind_index("plate", plate))
    )
    tz, _ = await resources.site_settings(principal.site_id)
    local = now.astimezone(ZoneInfo(tz))
    await audit_plate_reads(principal.site_id, rows)
    views = [_view(settings, r, local.date()) for r in rows]
    return PlateCheck(plate=plate, valid_now=any(_valid_at(v, local) for v in views), passes=views)


async def remind_expiring(now: dt.datetime | None = None, days_before: int = 3) -> int:
    """Tell pass holders a few days before expiry (once per pass and expiry date)."""
    now = now or now_utc()
    horizon = (now + dt.timedelta(days=days_before)).date()
    rows = await ParkingPass.select(
        ParkingPass.id, ParkingPass.site, ParkingPass.person, ParkingPass.valid_until
    ).where(
        (ParkingPass.status == "active")
        & (ParkingPass.valid_until <= horizon)
        & (ParkingPass.valid_until >= now.date())
        & ParkingPass.person.is_not_null()
    )
    for row in rows:
        await create_notification(
            site_id=row["site"],
            request=NotificationRequest(
                title="Parking pass expiring",
                body=f"Your parking pass expires on {row['valid_until']:%d %b %Y}. Renew it in the app.",
                category=Category.BOOKING,
                audience=Audience(person_ids=[row["person"]]),
                channels=[Channel.PUSH, Channel.IN_APP],
                idempotency_key=f"slot-pass-expiry:{row['id']}:{row['valid_until'].isoformat()}",
            ),
            kind="slot.pass_expiry",
            data={"pass_id": str(row["id"])},
            now=now,
        )
    return len(rows)


GATE_ROLES = frozenset({Role.GUARD, *STAFF})
