"""Pre-approval by an occupant: a one-time or recurring pass with a 6-digit code and a QR."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal
from uuid import UUID
from zoneinfo import ZoneInfo

import msgspec
from piccolo.columns.combination import Combinable

from app.auth.principal import Principal
from app.auth.roles import STAFF, Role
from app.errors import Conflict, Forbidden, InvalidInput, NotFound
from app.pagination import Page, page_of
from app.text import ONE_LINE
from app.visitors import codes
from app.visitors.common import (
    VisitorDeps,
    aware,
    gate_topics,
    is_blocked,
    is_occupant,
    now_utc,
    publish_all,
    reveal,
    seal_phone,
    seal_plate,
    site_region,
    unit_labels,
    unit_of_site,
)
from app.visitors.sitecfg import VisitorKind
from schema import visitors_events as ev
from schema.jsonvalue import as_list
from schema.tables import Site
from schema.visitors import VisitorMessage, VisitorPass

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200), ONE_LINE]
Phone = Annotated[str, msgspec.Meta(max_length=32)]
Plate = Annotated[str, msgspec.Meta(max_length=20)]
HHMM = Annotated[str, msgspec.Meta(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]
# 0 = Monday ... 6 = Sunday, as Python's weekday() and every other weekday of the hub (shifts,
# quiet hours, opening hours).
Weekday = Annotated[int, msgspec.Meta(ge=0, le=6)]
MAX_ONE_TIME = dt.timedelta(days=31)
MAX_RECURRING = dt.timedelta(days=366)
CODE_ATTEMPTS = 20
_UNIQUE = re.compile(r"unique|duplicate", re.IGNORECASE)


class OneTime(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    valid_from: dt.datetime
    valid_until: dt.datetime


class Recurring(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Every listed weekday (0 = Monday ... 6 = Sunday) between start and end, site time, until valid_until."""

    days: Annotated[list[Weekday], msgspec.Meta(min_length=1, max_length=7)]
    start: HHMM
    end: HHMM
    valid_until: dt.datetime
    valid_from: dt.datetime | None = None


class NewPass(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    unit_id: UUID
    kind: VisitorKind
    visitor_name: Name
    visitor_phone: Phone | None = None
    plate: Plate | None = None
    one_time: OneTime | None = None
    recurring: Recurring | None = None
    # Send the code and QR link to the visitor's phone on this channel (needs visitor_phone).
    send_via: Literal["sms", "whatsapp"] | None = None


class PassView(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    unit_id: UUID
    unit_label: str
    kind: str
    visitor_name: str
    has_phone: bool
    plate: str | None
    schedule: str
    valid_from: dt.datetime
    valid_until: dt.datetime
    days: list[int]
    day_start: str | None
    day_end: str | None
    status: str
    created_at: dt.datetime


class PassCreated(msgspec.Struct, frozen=True, kw_only=True):
    visitor_pass: PassView
    code: str  # shown once; only its HMAC is stored
    qr_payload: str
    qr_url: str
    message_status: str | None  # pending (queued for the visitor's phone) or None


def qr_url(deps: VisitorDeps, payload: str) -> str:
    return deps.settings.public_link(f"/v/qr/{payload}.svg")


def _view(row: dict[str, object], label: str, deps: VisitorDeps) -> PassView:
    return PassView(
        id=row["id"],  # type: ignore[arg-type]
        unit_id=row["unit"],  # type: ignore[arg-type]
        unit_label=label,
        kind=str(row["kind"]),
        visitor_name=str(row["visitor_name"]),
        has_phone=row["phone_encrypted"] is not None,
        plate=reveal(deps.settings, row["plate_encrypted"]),  # type: ignore[arg-type]
        schedule=str(row["schedule"]),
        valid_from=row["valid_from"],  # type: ignore[arg-type]
        valid_until=row["valid_until"],  # type: ignore[arg-type]
        days=[int(d) for d in as_list(row["days"])],
        day_start=row["day_start"],  # type: ignore[arg-type]
        day_end=row["day_end"],  # type: ignore[arg-type]
        status=str(row["status"]),
        created_at=row["created_at"],  # type: ignore[arg-type]
    )


async def _may_manage_unit(principal: Principal, unit_id: UUID) -> None:
    if principal.has_any(STAFF):
        return
    if Role.OCCUPANT in principal.roles and await is_occupant(principal.site_id, unit_id, principal.person_id):
        return
    raise Forbidden("only occupants of the unit (or site staff) may manage its visitor passes")


def _window(data: NewPass, now: dt.datetime) -> tuple[str, dt.datetime, dt.datetime]:
    if (data.one_time is None) == (data.recurring is None):
        raise InvalidInput.for_field("one_time", "give exactly one of one_time or recurring")
    if data.one_time is not None:
        start = aware(data.one_time.valid_from, "one_time.valid_from")
        end = aware(data.one_time.valid_until, "one_time.valid_until")
        if end - start > MAX_ONE_TIME:
            raise InvalidInput.for_field("one_time.valid_until", "a one-time pass lasts at most 31 days")
        field = "one_time.valid_until"
        schedule = "one_time"
    else:
        assert data.recurring is not None
        start = aware(data.recurring.valid_from, "recurring.valid_from") if data.recurring.valid_from else now
        end = aware(data.recurring.valid_until, "recurring.valid_until")
        if data.recurring.end <= data.recurring.start:
            raise InvalidInput.for_field("recurring.end", "must be after start (same day)")
        if end - start > MAX_RECURRING:
            raise InvalidInput.for_field("recurring.valid_until", "a recurring pass lasts at most a year")
        field = "recurring.valid_until"
        schedule = "recurring"
    if end <= start:
        raise InvalidInput.for_field(field, "must be after the start")
    if end <= now:
        raise InvalidInput.for_field(field, "is already in the past")
    return schedule, start, end


async def create_pass(
    deps: VisitorDeps, principal: Principal, data: NewPass, now: dt.datetime | None = None
) -> PassCreated:
    now = now or now_utc()
    site_id = principal.site_id
    label = await unit_of_site(site_id, data.unit_id)
    await _may_manage_unit(principal, data.unit_id)
    schedule, start, end = _window(data, now)
    if data.send_via and not data.visitor_phone:
        raise InvalidInput.for_field("visitor_phone", "is needed to send the pass")
    region = await site_region(site_id)
    phone = seal_phone(deps.settings, data.visitor_phone, region, "visitor_phone")
    plate = seal_plate(deps.settings, data.plate, "plate")
    if await is_blocked(site_id, phone.index, None):
        raise InvalidInput.for_field("visitor_phone", "is on the site's visitor blocklist")
    if await is_blocked(site_id, None, plate.index):
        raise InvalidInput.for_field("plate", "is on the site's visitor blocklist")
    recurring = data.recurring
    row: VisitorPass | None = None
    code = ""
    for _ in range(CODE_ATTEMPTS):
        code = codes.new_code()
        hashed = codes.code_hash(deps.settings, code)
        if await VisitorPass.exists().where(
            (VisitorPass.site == site_id) & (VisitorPass.code_hash == hashed) & (VisitorPass.status == "active")
        ):
            continue
        row = VisitorPass(
            site=site_id,
            unit=data.unit_id,
            created_by=principal.person_id,
            kind=data.kind,
            visitor_name=data.visitor_name.strip(),
            phone_encrypted=phone.encrypted,
            phone_index=phone.index,
            plate_encrypted=plate.encrypted,
            plate_index=plate.index,
            code_hash=hashed,
            schedule=schedule,
            valid_from=start,
            valid_until=end,
            days=sorted(set(recurring.days)) if recurring else [],
            day_start=recurring.start if recurring else None,
            day_end=recurring.end if recurring else None,
            status="active",
            send_channel=data.send_via,
            created_at=now,
        )
        try:
            await row.save()
        except Exception as exc:  # a concurrent pass took the same code: draw again
            if not _UNIQUE.search(str(exc)):
                raise
            row = None
            continue
        break
    if row is None:
        raise Conflict("could not allocate a unique pass code; try again")
    payload = codes.qr_payload(deps.settings, row.id, row.code_hash)
    message_status = None
    if data.send_via and phone.plain:
        zone = await site_zone_of(site_id)
        text = pass_message_text(label, data.visitor_name, code, qr_url(deps, payload), start, end, zone, recurring)
        from app.people.directory import cipher_for

        await VisitorMessage(
            site=site_id,
            visitor_pass=row.id,
            channel=data.send_via,
            status="pending",
            body_encrypted=cipher_for(deps.settings).encrypt(text),
            created_at=now,
            updated_at=now,
        ).save()
        message_status = "pending"
    stored = await VisitorPass.select().where(VisitorPass.id == row.id).first()
    assert stored is not None
    view = _view(stored, label, deps)
    await publish_all(
        deps,
        gate_topics(site_id, control=False),
        ev.EXPECTED,
        ev.Expected(
            pass_id=view.id,
            unit_id=view.unit_id,
            name=view.visitor_name,
            kind=view.kind,
            valid_from=view.valid_from,
            valid_until=view.valid_until,
            has_vehicle=plate.index is not None,
        ),
    )
    return PassCreated(
        visitor_pass=view, code=code, qr_payload=payload, qr_url=qr_url(deps, payload), message_status=message_status
    )


DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")  # by Weekday, 0 = Monday


def pass_message_text(
    unit_label: str,
    name: str,
    code: str,
    link: str,
    start: dt.datetime,
    end: dt.datetime,
    zone: ZoneInfo,
    recurring: Recurring | None = None,
) -> str:
    """The SMS/WhatsApp text of a pass. Times are the site's wall clock, as the visitor reads them at the
    gate, with the zone's abbreviation (IST), never UTC."""
    first, last = start.astimezone(zone), end.astimezone(zone)
    if recurring is None:
        when = f"{first:%d %b %H:%M}-{last:%d %b %H:%M} {last:%Z}"
    else:
        days = ", ".join(DAY_NAMES[d] for d in sorted(set(recurring.days)))
        when = f"{days} {recurring.start}-{recurring.end} {last:%Z}, until {last:%d %b}"
    return f"{name}, your gate pass for {unit_label}: code {code} ({when}). QR: {link}"


async def list_passes(
    deps: VisitorDeps, principal: Principal, *, unit_id: UUID | None, status: str | None, limit: int, offset: int
) -> Page[PassView]:
    site_id = principal.site_id
    where: list[Combinable] = [VisitorPass.site == site_id]
    if not principal.has_any(STAFF | {Role.GUARD}):
        from schema.tables import Occupancy

        rows = await Occupancy.select(Occupancy.unit).where(
            (Occupancy.site == site_id) & (Occupancy.person == principal.person_id) & (Occupancy.is_active.eq(True))
        )
        units = [r["unit"] for r in rows]
        if not units:
            return page_of([], total=0, limit=limit, offset=offset)
        where.append(VisitorPass.unit.is_in(units))
    if unit_id is not None:
        where.append(VisitorPass.unit == unit_id)
    if status is not None:
        where.append(VisitorPass.status == status)
    total = await VisitorPass.count().where(*where)
    rows = (
        await VisitorPass.select()
        .where(*where)
        .order_by(VisitorPass.created_at, ascending=False)
        .order_by(VisitorPass.id)
        .limit(limit)
        .offset(offset)
    )
    labels = await unit_labels(site_id, [r["unit"] for r in rows])
    return page_of([_view(r, labels.get(r["unit"], ""), deps) for r in rows], total=total, limit=limit, offset=offset)


async def revoke_pass(
    deps: VisitorDeps, principal: Principal, pass_id: UUID, now: dt.datetime | None = None
) -> PassView:
    site_id = principal.site_id
    row = await VisitorPass.select().where((VisitorPass.site == site_id) & (VisitorPass.id == pass_id)).first()
    if row is None:
        raise NotFound("visitor pass not found")
    await _may_manage_unit(principal, row["unit"])
    if row["status"] != "active":
        raise Conflict(f"the pass is already {row['status']}", extra={"status": row["status"]})
    await VisitorPass.update({VisitorPass.status: "revoked"}).where(
        (VisitorPass.id == pass_id) & (VisitorPass.status == "active")
    )
    await publish_all(
        deps, gate_topics(site_id, control=False), ev.PASS_REVOKED, ev.PassRevoked(pass_id=pass_id, unit_id=row["unit"])
    )
    stored = await VisitorPass.select().where(VisitorPass.id == pass_id).first()
    assert stored is not None
    labels = await unit_labels(site_id, [stored["unit"]])
    return _view(stored, labels.get(stored["unit"], ""), deps)


# ------------------------------------------------------------------------------ validity


def site_zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "Asia/Kolkata")
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


async def site_zone_of(site_id: UUID) -> ZoneInfo:
    row = await Site.select(Site.timezone).where(Site.id == site_id).first()
    return site_zone(row["timezone"] if row else None)


def validity(row: dict[str, object], now: dt.datetime, zone: ZoneInfo) -> str | None:
    """None when the pass admits its holder now; otherwise the refusal reason."""
    status = row["status"]
    if status == "used":
        return "used"
    if status == "revoked":
        return "revoked"
    start: dt.datetime = row["valid_from"]  # type: ignore[assignment]
    end: dt.datetime = row["valid_until"]  # type: ignore[assignment]
    if now >= end:
        return "expired"
    if now < start:
        return "not_yet_valid"
    if row["schedule"] == "recurring":
        local = now.astimezone(zone)
        days = {int(d) for d in as_list(row["days"])}
        hhmm = f"{local:%H:%M}"
        if local.weekday() not in days or not (str(row["day_start"]) <= hhmm < str(row["day_end"])):
            return "outside_hours"
    return None
