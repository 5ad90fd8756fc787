"""At the gate: a vendor named on a permit is recognised, and let in only inside its window.

The guard types what the vendor gives: the permit's reference, their mobile number, or their
vehicle's plate (the plate the guard reads off the vehicle, or one from ANPR). A phone or a plate is
matched against the people and vehicles named on the site's permits (by blind index: the values are
never decrypted to search). Of the permits found, one that admits now wins; else the answer explains
the nearest one: ``not_yet_valid`` (and from when), ``expired`` (and since when), ``outside_hours``
(the permit's daily hours), ``not_approved``, ``revoked`` or ``cancelled``. Times in the answer are
the site's wall clock.

A check does not let anyone in; ``check_in`` does, recording a ``permit_entry`` (who, which gate, which
guard) that a check-out closes. Both are published on the gate and control topics, and the applicant
is told their vendor arrived.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal
from uuid import UUID
from zoneinfo import ZoneInfo

import msgspec
from redis.asyncio import Redis

from app.auth.principal import Principal
from app.config import Settings
from app.errors import Conflict, InvalidInput, NotFound
from app.pagination import Page, window
from app.permits import notify
from app.permits.lifecycle import Status
from app.visitors.common import plate_index_of, reveal, seal_phone, site_region
from app.visitors.gate import GateName
from notifications.audience import Audience
from notifications.categories import Urgency
from realtime.publish import Publisher
from realtime.topics import site_topic, unit_topic
from schema.permits import Permit, PermitEntrant, PermitEntry, PermitStep, PermitType
from schema.permits_events import (
    PERMIT_ENTERED,
    PERMIT_GATE_REFUSED,
    PERMIT_LEFT,
    PermitEntered,
    PermitGateRefused,
)
from schema.tables import Person, Unit

RefusalReason = Literal["unknown", "not_approved", "revoked", "cancelled", "not_yet_valid", "expired", "outside_hours"]


class GateCheckInput(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One of ``reference``, ``phone`` or ``plate``; ``check_in`` lets the person or vehicle in when the
    permit admits them now (``entrant_id`` names which of the permit's people, when the reference was given)."""

    reference: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9-]{1,16}$")] | None = None
    phone: Annotated[str, msgspec.Meta(min_length=4, max_length=32)] | None = None
    plate: Annotated[str, msgspec.Meta(min_length=2, max_length=20)] | None = None
    entrant_id: UUID | None = None
    gate: GateName | None = None
    check_in: bool = False


class GateEntrant(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    kind: str
    name: str | None
    phone_hint: str | None
    plate: str | None
    inside: bool  # let in and not yet out


class GateApproval(msgspec.Struct, frozen=True, kw_only=True):
    label: str
    by_name: str | None
    at: dt.datetime


class GatePermit(msgspec.Struct, frozen=True, kw_only=True):
    """What the guard console shows of a permit: no attachments, no reasons, no full phone numbers."""

    id: UUID
    reference: str
    kind: str
    type_name: str
    title: str
    unit_id: UUID | None
    unit_label: str | None
    location: str | None
    applicant_name: str | None
    status: str
    valid_from: dt.datetime
    valid_until: dt.datetime
    daily_start: str | None
    daily_end: str | None
    people: list[GateEntrant]
    vehicles: list[GateEntrant]
    approvals: list[GateApproval]
    inside: int


class GateCheckResult(msgspec.Struct, frozen=True, kw_only=True):
    outcome: Literal["valid", "checked_in", "refused"]
    reason: RefusalReason | None = None
    message: str  # for the guard, in the site's clock
    permit: GatePermit | None = None
    entrant_id: UUID | None = None  # the named person or vehicle recognised (or chosen)
    entry_id: UUID | None = None


class EntryView(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    permit_id: UUID
    entrant_id: UUID | None
    gate: str | None
    checked_in_at: dt.datetime
    checked_out_at: dt.datetime | None


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def within_hours(daily_start: str | None, daily_end: str | None, local: dt.datetime) -> bool:
    """Inside the permit's daily hours (site time); an end before the start runs past midnight."""
    if daily_start is None or daily_end is None:
        return True
    start, end, minute = _minutes(daily_start), _minutes(daily_end), local.hour * 60 + local.minute
    return start <= minute < end if start < end else (minute >= start or minute < end)


def refusal(row: dict[str, Any], now: dt.datetime, zone: ZoneInfo) -> RefusalReason | None:
    """None when the permit admits its people now; else why not."""
    status = row["status"]
    if status == Status.REVOKED:
        return "revoked"
    if status == Status.CANCELLED:
        return "cancelled"
    if status != Status.APPROVED:
        return "not_approved"
    if now < _aware(row["valid_from"]):
        return "not_yet_valid"
    if now >= _aware(row["valid_until"]):
        return "expired"
    if not within_hours(row["daily_start"], row["daily_end"], now.astimezone(zone)):
        return "outside_hours"
    return None


def explain(row: dict[str, Any], reason: RefusalReason | None, now: dt.datetime, zone: ZoneInfo) -> str:
    ref = row["reference"]
    start, end = notify.local_text(row["valid_from"], zone), notify.local_text(row["valid_until"], zone)
    it_is = notify.local_text(now, zone)
    if reason is None:
        return f"Permit {ref} is valid now: {start} to {end}."
    return {
        "not_yet_valid": f"Permit {ref} is not valid yet: it starts {start} (it is {it_is}).",
        "expired": f"Permit {ref} has expired: it ended {end} (it is {it_is}).",
        "outside_hours": (
            f"Permit {ref} allows entry only {row['daily_start']}-{row['daily_end']}"
            f" (it is {now.astimezone(zone):%H:%M})."
        ),
        "not_approved": f"Permit {ref} is not approved (it is {str(row['status']).replace('_', ' ')}).",
        "revoked": f"Permit {ref} was revoked by the FM team.",
        "cancelled": f"Permit {ref} was cancelled by its applicant.",
        "unknown": "No permit found.",
    }[reason]


def _rank(row: dict[str, Any], now: dt.datetime, zone: ZoneInfo) -> tuple[int, float]:
    """Which of several permits explains the answer: one that admits now, then the nearest approved one."""
    reason = refusal(row, now, zone)
    start, end = _aware(row["valid_from"]), _aware(row["valid_until"])
    if reason is None:
        return (0, 0.0)
    if reason == "outside_hours":
        return (1, 0.0)
    if reason == "not_yet_valid":
        return (2, (start - now).total_seconds())
    if reason == "expired":
        return (3, (now - end).total_seconds())
    return (4, -_aware(row["updated_at"]).timestamp())


async def _entrants_matching(settings: Settings, site_id: UUID, data: GateCheckInput) -> list[dict[str, Any]]:
    if data.phone is not None:
        phone = seal_phone(settings, data.phone, await site_region(site_id), "phone")
        return await PermitEntrant.select().where(
            (PermitEntrant.site == site_id) & (PermitEntrant.phone_index == phone.index)
        )
    assert data.plate is not None
    index = plate_index_of(settings, data.plate)
    if index is None:
        raise InvalidInput.for_field("plate", "is not a vehicle number plate")
    return await PermitEntrant.select().where((PermitEntrant.site == site_id) & (PermitEntrant.plate_index == index))


async def gate_views(settings: Settings, rows: list[dict[str, Any]]) -> list[GatePermit]:
    if not rows:
        return []
    ids = [row["id"] for row in rows]
    types = {
        t["id"]: t
        for t in await PermitType.select(PermitType.id, PermitType.kind, PermitType.name).where(
            PermitType.id.is_in(list({row["permit_type"] for row in rows}))
        )
    }
    unit_ids = [row["unit"] for row in rows if row["unit"]]
    labels = (
        {u["id"]: u["label"] for u in await Unit.select(Unit.id, Unit.label).where(Unit.id.is_in(unit_ids))}
        if unit_ids
        else {}
    )
    entrants = await PermitEntrant.select().where(PermitEntrant.permit.is_in(ids)).order_by(PermitEntrant.name)
    open_entries = await PermitEntry.select(PermitEntry.permit, PermitEntry.entrant).where(
        PermitEntry.permit.is_in(ids) & PermitEntry.checked_out_at.is_null()
    )
    inside = {(e["permit"], e["entrant"]) for e in open_entries}
    approvals = (
        await PermitStep.select()
        .where(PermitStep.permit.is_in(ids) & (PermitStep.action == "approved"))
        .order_by(PermitStep.at)
    )
    people = {row["applicant"] for row in rows} | {a["actor"] for a in approvals}
    names = (
        {
            p["id"]: p["full_name"]
            for p in await Person.select(Person.id, Person.full_name).where(Person.id.is_in([i for i in people if i]))
        }
        if any(people)
        else {}
    )
    result = []
    for row in rows:
        own = [
            GateEntrant(
                id=e["id"],
                kind=e["kind"],
                name=e["name"],
                phone_hint=(f"…{phone[-4:]}" if (phone := reveal(settings, e["phone_encrypted"])) else None),
                plate=reveal(settings, e["plate_encrypted"]),
                inside=(row["id"], e["id"]) in inside,
            )
            for e in entrants
            if e["permit"] == row["id"]
        ]
        type_row = types.get(row["permit_type"], {"kind": "", "name": ""})
        result.append(
            GatePermit(
                id=row["id"],
                reference=row["reference"],
                kind=type_row["kind"],
                type_name=type_row["name"],
                title=row["title"],
                unit_id=row["unit"],
                unit_label=labels.get(row["unit"]) if row["unit"] else None,
                location=row["location"],
                applicant_name=names.get(row["applicant"]) if row["applicant"] else None,
                status=row["status"],
                valid_from=row["valid_from"],
                valid_until=row["valid_until"],
                daily_start=row["daily_start"],
                daily_end=row["daily_end"],
                people=[e for e in own if e.kind == "person"],
                vehicles=[e for e in own if e.kind == "vehicle"],
                approvals=[
                    GateApproval(label=a["step_label"] or "", by_name=names.get(a["actor"]), at=a["at"])
                    for a in approvals
                    if a["permit"] == row["id"] and a["round"] == row["round"]
                ],
                inside=sum(1 for permit, _ in inside if permit == row["id"]),
            )
        )
    return result


async def check(
    settings: Settings, redis: Redis, principal: Principal, data: GateCheckInput, now: dt.datetime | None = None
) -> GateCheckResult:
    now = now or dt.datetime.now(dt.UTC)
    site_id = principal.site_id
    given = [name for name in ("reference", "phone", "plate") if getattr(data, name) is not None]
    if len(given) != 1:
        raise InvalidInput.for_field("reference", "give exactly one of reference, phone or plate")
    zone = await notify.site_zone(site_id)
    matched_entrants: dict[UUID, UUID] = {}  # permit -> the entrant recognised
    if data.reference is not None:
        rows = await Permit.select().where(
            (Permit.site == site_id) & (Permit.reference == data.reference.strip().upper())
        )
    else:
        entrants = await _entrants_matching(settings, site_id, data)
        for entrant in entrants:
            matched_entrants.setdefault(entrant["permit"], entrant["id"])
        rows = (
            await Permit.select().where((Permit.site == site_id) & Permit.id.is_in(list(matched_entrants)))
            if matched_entrants
            else []
        )
    rows = [row for row in rows if row["status"] != Status.DRAFT]
    if not rows:
        return GateCheckResult(outcome="refused", reason="unknown", message="No permit names this person or vehicle.")
    row = min(rows, key=lambda r: _rank(r, now, zone))
    reason = refusal(row, now, zone)
    permit = (await gate_views(settings, [row]))[0]
    entrant_id = matched_entrants.get(row["id"]) or data.entrant_id
    named = [*permit.people, *permit.vehicles]
    if data.entrant_id is not None and data.reference is not None and not any(e.id == data.entrant_id for e in named):
        raise InvalidInput.for_field("entrant_id", "is not named on this permit")
    message = explain(row, reason, now, zone)
    if reason is not None:
        await _publish(
            settings,
            redis,
            row,
            PERMIT_GATE_REFUSED,
            PermitGateRefused(permit_id=row["id"], reference=row["reference"], reason=reason, gate=data.gate, at=now),
            unit=False,
        )
        return GateCheckResult(outcome="refused", reason=reason, message=message, permit=permit, entrant_id=entrant_id)
    if not data.check_in:
        return GateCheckResult(outcome="valid", message=message, permit=permit, entrant_id=entrant_id)
    if entrant_id is None and (permit.people or permit.vehicles):
        raise InvalidInput.for_field("entrant_id", "say who is coming in: one of the people or vehicles on the permit")
    entry = PermitEntry(
        site=site_id,
        permit=row["id"],
        entrant=entrant_id,
        gate=data.gate,
        let_in_by=principal.person_id,
        checked_in_at=now,
    )
    await entry.save()
    who = next((e for e in [*permit.people, *permit.vehicles] if e.id == entrant_id), None)
    name = (who.name or who.plate or "") if who else ""
    await _publish(
        settings,
        redis,
        row,
        PERMIT_ENTERED,
        PermitEntered(
            permit_id=row["id"],
            entry_id=entry.id,
            reference=row["reference"],
            unit_id=row["unit"],
            name=name,
            gate=data.gate,
            at=now,
        ),
        unit=True,
    )
    if row["applicant"] is not None:
        await notify.tell(
            row,
            Audience(person_ids=[row["applicant"]]),
            title=f"{name or 'Your vendor'} entered under permit {row['reference']}",
            body=f"Let in at the {data.gate or 'main'} gate at {now.astimezone(zone):%H:%M}.",
            key=f"permit:{row['id']}:entry:{entry.id}",
            now=now,
            urgency=Urgency.NORMAL,
        )
    fresh = (await gate_views(settings, [row]))[0]
    return GateCheckResult(
        outcome="checked_in", message=message, permit=fresh, entrant_id=entrant_id, entry_id=entry.id
    )


async def _publish(
    settings: Settings, redis: Redis, row: dict[str, Any], event_type: str, payload: msgspec.Struct, *, unit: bool
) -> None:
    topics = [site_topic(row["site"], "gate"), site_topic(row["site"], "control")]
    if unit and row["unit"] is not None:
        topics.append(unit_topic(row["unit"]))
    publisher = Publisher(redis, settings)
    for topic in topics:
        try:
            await publisher.publish(topic, event_type, payload)
        except Exception:
            notify.logger.exception("could not publish %s on %s", event_type, topic)


async def check_out(
    settings: Settings, redis: Redis, principal: Principal, entry_id: UUID, now: dt.datetime | None = None
) -> EntryView:
    now = now or dt.datetime.now(dt.UTC)
    entry = (
        await PermitEntry.select().where((PermitEntry.id == entry_id) & (PermitEntry.site == principal.site_id)).first()
    )
    if entry is None:
        raise NotFound("entry not found")
    moved = (
        await PermitEntry.update({PermitEntry.checked_out_at: now})
        .where((PermitEntry.id == entry_id) & PermitEntry.checked_out_at.is_null())
        .returning(PermitEntry.id)
    )
    if not moved:
        raise Conflict(
            "this person or vehicle has already left", extra={"checked_out_at": str(entry["checked_out_at"])}
        )
    row = await Permit.select().where(Permit.id == entry["permit"]).first()
    assert row is not None
    entrant = (
        await PermitEntrant.select().where(PermitEntrant.id == entry["entrant"]).first() if entry["entrant"] else None
    )
    name = (entrant["name"] or reveal(settings, entrant["plate_encrypted"]) or "") if entrant else ""
    await _publish(
        settings,
        redis,
        row,
        PERMIT_LEFT,
        PermitEntered(
            permit_id=row["id"],
            entry_id=entry_id,
            reference=row["reference"],
            unit_id=row["unit"],
            name=name,
            gate=entry["gate"],
            at=now,
        ),
        unit=True,
    )
    return EntryView(
        id=entry_id,
        permit_id=row["id"],
        entrant_id=entry["entrant"],
        gate=entry["gate"],
        checked_in_at=entry["checked_in_at"],
        checked_out_at=now,
    )


async def entries(principal: Principal, permit_id: UUID, *, limit: int, offset: int) -> Page[EntryView]:
    rows = (
        await PermitEntry.select()
        .where((PermitEntry.site == principal.site_id) & (PermitEntry.permit == permit_id))
        .order_by(PermitEntry.checked_in_at, ascending=False)
    )
    views = [
        EntryView(
            id=r["id"],
            permit_id=r["permit"],
            entrant_id=r["entrant"],
            gate=r["gate"],
            checked_in_at=r["checked_in_at"],
            checked_out_at=r["checked_out_at"],
        )
        for r in rows
    ]
    return window(views, limit=limit, offset=offset)


async def today(
    settings: Settings, principal: Principal, *, limit: int, offset: int, now: dt.datetime | None = None
) -> Page[GatePermit]:
    """Approved permits whose window touches today (site time): what the gate should expect."""
    now = now or dt.datetime.now(dt.UTC)
    zone = await notify.site_zone(principal.site_id)
    local = now.astimezone(zone)
    day_start = local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(dt.UTC)
    day_end = day_start + dt.timedelta(days=1)
    where: Any = (
        (Permit.site == principal.site_id)
        & (Permit.status == str(Status.APPROVED))
        & (Permit.valid_from < day_end)
        & (Permit.valid_until > day_start)
    )
    total = await Permit.count().where(where)
    rows = (
        await Permit.select().where(where).order_by(Permit.valid_from).order_by(Permit.id).limit(limit).offset(offset)
    )
    return Page(items=await gate_views(settings, rows), total=total, limit=limit, offset=offset)
