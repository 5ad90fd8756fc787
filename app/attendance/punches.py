"""Check-in and check-out: at the gate by a guard, from the staff member's own phone inside the site's
geofence, or as a daily help passes the gate on their daily-help pass; and a supervisor's corrections.

A punch is appended, never edited. In and out alternate: a second check-in while in (or a check-out
while out) is refused with when the last one was. A correction adds a punch or voids one, always with
a reason, in ``attendance_correction``; voided punches stay (the sheet shows them struck through).

From a phone, the browser sends its position once, for this check; the hub computes the distance to
the site's centre and keeps only whether it was inside and the accuracy the browser claimed. A position
outside the circle is refused with the distance; one less precise than the site's ``max_accuracy_m``
is refused as too imprecise. Nothing is stored for a refused attempt.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from typing import Annotated, Any, Literal
from uuid import UUID
from zoneinfo import ZoneInfo

import msgspec
from redis.asyncio import Redis

from app.attendance import config as cfg
from app.auth.principal import Principal
from app.config import Settings
from app.db import is_sqlite, write_transaction
from app.errors import Conflict, FieldError, InvalidInput, NotFound
from app.text import MULTI_LINE
from app.visitors.gate import GateName
from app.visitors.passes import site_zone_of
from realtime.publish import Publisher
from realtime.topics import site_topic
from schema.attendance import Correction, Punch, StaffMember
from schema.attendance_events import ATTENDANCE_CORRECTED, ATTENDANCE_PUNCHED, Corrected, Punched

logger = logging.getLogger("opshub.attendance")
EARTH_RADIUS_M = 6_371_008.8
Kind = Literal["in", "out"]
Reason = Annotated[str, msgspec.Meta(min_length=3, max_length=2000), MULTI_LINE]
CORRECTION_REACH = dt.timedelta(days=62)  # how far back a supervisor may add a punch


class GatePunchInput(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    kind: Kind | None = None  # required
    gate: GateName | None = None


class PhonePunchInput(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The browser's position for this check only (never stored): degrees (WGS 84) and the accuracy in metres."""

    kind: Kind | None = None  # required
    latitude: Annotated[float, msgspec.Meta(ge=-90, le=90)] | None = None  # required
    longitude: Annotated[float, msgspec.Meta(ge=-180, le=180)] | None = None  # required
    accuracy_m: Annotated[float, msgspec.Meta(ge=0, le=100_000)] | None = None  # required


class CorrectionInput(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``add`` a punch the record misses (``kind`` and ``at``), or ``void`` a wrong one (``punch_id``);
    a reason always."""

    action: Literal["add", "void"] | None = None  # required
    kind: Kind | None = None
    at: dt.datetime | None = None
    punch_id: UUID | None = None
    reason: Reason | None = None  # required


class PunchView(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    staff_id: UUID
    kind: str
    at: dt.datetime
    source: str
    recorded_by: UUID | None
    gate: str | None
    inside_geofence: bool | None
    accuracy_m: float | None
    voided_at: dt.datetime | None
    correction_reason: str | None = None  # why a supervisor added or voided it


def punch_view(row: dict[str, Any], reason: str | None = None) -> PunchView:
    return PunchView(
        id=row["id"],
        staff_id=row["staff"],
        kind=row["kind"],
        at=row["at"],
        source=row["source"],
        recorded_by=row["recorded_by"],
        gate=row["gate"],
        inside_geofence=row["inside_geofence"],
        accuracy_m=row["accuracy_m"],
        voided_at=row["voided_at"],
        correction_reason=reason,
    )


def distance_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle distance (haversine, mean Earth radius): within 0.5% anywhere, far better at a site's scale."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    d_phi, d_lambda = phi2 - phi1, math.radians(lng2 - lng1)
    a = math.sin(d_phi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(d_lambda / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


async def last_punch(staff_id: UUID) -> dict[str, Any] | None:
    found: dict[str, Any] | None = (
        await Punch.select()
        .where((Punch.staff == staff_id) & Punch.voided_at.is_null())
        .order_by(Punch.at, ascending=False)
        .order_by(Punch.id, ascending=False)
        .first()
    )
    return found


def _out_of_turn(kind: str, last: dict[str, Any] | None, zone: ZoneInfo) -> Conflict | None:
    """In and out alternate; the refusal says when the last one was (site time)."""
    last_kind = last["kind"] if last else "out"
    if kind != last_kind:
        return None
    when = f"{_aware(last['at']).astimezone(zone):%d %b %H:%M}" if last else None
    if kind == "in":
        return Conflict(f"already checked in (at {when}): check out first", extra={"last": last_kind})
    detail = f"not checked in (the last check-out was at {when})" if when else "not checked in"
    return Conflict(f"{detail}: check in first", extra={"last": last_kind})


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


async def _record(
    settings: Settings,
    redis: Redis,
    staff: dict[str, Any],
    *,
    kind: str,
    at: dt.datetime,
    source: str,
    recorded_by: UUID | None,
    gate: str | None = None,
    inside: bool | None = None,
    accuracy: float | None = None,
    visit: UUID | None = None,
) -> dict[str, Any]:
    zone = await site_zone_of(staff["site"])
    punch = Punch(
        site=staff["site"],
        staff=staff["id"],
        kind=kind,
        at=at,
        source=source,
        recorded_by=recorded_by,
        gate=gate,
        inside_geofence=inside,
        accuracy_m=accuracy,
        visit=visit,
    )
    async with write_transaction():
        # One writer per staff member at a time: two guards tapping "in" together record one check-in.
        # (SQLite's write transaction already holds the whole database.)
        if not is_sqlite():
            await Punch.raw("SELECT pg_advisory_xact_lock(hashtextextended({}, 0))", f"attendance:staff:{staff['id']}")
        refusal = _out_of_turn(kind, await last_punch(staff["id"]), zone)
        if refusal is not None:
            raise refusal
        await punch.save()
    row = await Punch.select().where(Punch.id == punch.id).first()
    assert row is not None
    await publish(
        settings,
        redis,
        staff["site"],
        ATTENDANCE_PUNCHED,
        Punched(
            staff_id=staff["id"],
            punch_id=punch.id,
            name=staff["name"],
            category=staff["category"],
            kind=kind,
            source=source,
            gate=gate,
            at=at,
        ),
        gate=True,
    )
    return row


async def publish(
    settings: Settings, redis: Redis, site_id: UUID, event: str, payload: msgspec.Struct, *, gate: bool
) -> None:
    topics = [site_topic(site_id, "control")] + ([site_topic(site_id, "gate")] if gate else [])
    publisher = Publisher(redis, settings)
    for topic in topics:
        try:
            await publisher.publish(topic, event, payload)
        except Exception:
            logger.exception("could not publish %s on %s", event, topic)


async def at_gate(
    settings: Settings,
    redis: Redis,
    principal: Principal,
    staff_id: UUID,
    data: GatePunchInput,
    now: dt.datetime | None = None,
) -> PunchView:
    """A guard checks a staff member in or out at the gate."""
    now = now or dt.datetime.now(dt.UTC)
    staff = await cfg.staff_row(principal.site_id, staff_id)
    if data.kind is None:
        raise InvalidInput.for_field("kind", "is required: in or out")
    if not staff["is_active"]:
        raise Conflict(f"{staff['name']} is no longer on the staff list")
    row = await _record(
        settings, redis, staff, kind=data.kind, at=now, source="gate", recorded_by=principal.person_id, gate=data.gate
    )
    return punch_view(row)


async def from_phone(
    settings: Settings, redis: Redis, principal: Principal, data: PhonePunchInput, now: dt.datetime | None = None
) -> PunchView:
    now = now or dt.datetime.now(dt.UTC)
    staff = await cfg.staff_of_person(principal.site_id, principal.person_id)
    if staff is None:
        raise NotFound("you are not on this site's staff list: ask the FM team to add you")
    if data.kind is None:
        raise InvalidInput.for_field("kind", "is required: in or out")
    if data.latitude is None or data.longitude is None or data.accuracy_m is None:
        missing = next(f for f in ("latitude", "longitude", "accuracy_m") if getattr(data, f) is None)
        raise InvalidInput.for_field(missing, "is required: the browser's position for this check-in")
    site = await cfg.load(principal.site_id)
    if site.geofence is None:
        raise Conflict("this site takes check-ins at the gate only (no geofence is set)")
    accuracy = round(data.accuracy_m, 1)
    if accuracy > site.max_accuracy_m:
        raise InvalidInput(
            f"your phone's position is accurate only to ±{accuracy:.0f} m; the site needs ±{site.max_accuracy_m} m"
            " or better: step outside and try again, or check in at the gate",
            errors=[FieldError(field="accuracy_m", message="is too imprecise", source="body")],
            extra={"reason": "too_imprecise", "accuracy_m": accuracy, "max_accuracy_m": site.max_accuracy_m},
        )
    fence = site.geofence
    distance = distance_m(fence.latitude, fence.longitude, data.latitude, data.longitude)
    if distance > fence.radius_m:
        metres = round(distance)
        raise InvalidInput(
            f"you are {metres} m from the site; check-ins are taken within {fence.radius_m} m: come closer,"
            " or check in at the gate",
            errors=[FieldError(field="latitude", message=f"is {metres} m from the site", source="body")],
            extra={"reason": "outside_geofence", "distance_m": metres, "radius_m": fence.radius_m},
        )
    row = await _record(
        settings,
        redis,
        staff,
        kind=data.kind,
        at=now,
        source="phone",
        recorded_by=principal.person_id,
        inside=True,
        accuracy=accuracy,
    )
    return punch_view(row)


async def from_daily_help_visit(
    settings: Settings, redis: Redis, visit: dict[str, Any], kind: Kind, now: dt.datetime
) -> dict[str, Any] | None:
    """A daily help let in (or out) on their pass: their check-in (or check-out), once per visit.

    Matched by the visit's mobile (blind index) to the site's active daily-help staff. Out of turn (in
    while in) is skipped, not refused: the gate let them through either way."""
    if visit.get("kind") != "daily_help" or not visit.get("phone_index"):
        return None
    staff = (
        await StaffMember.select()
        .where(
            (StaffMember.site == visit["site"])
            & (StaffMember.phone_index == visit["phone_index"])
            & (StaffMember.category == "daily_help")
            & StaffMember.is_active.eq(True)
        )
        .first()
    )
    if staff is None:
        return None
    if await Punch.exists().where((Punch.visit == visit["id"]) & (Punch.kind == kind)):
        return None
    try:
        return await _record(
            settings,
            redis,
            staff,
            kind=kind,
            at=now,
            source="daily_help_pass",
            recorded_by=visit.get("registered_by"),
            gate=visit.get("gate"),
            visit=visit["id"],
        )
    except Conflict:
        logger.info("daily help %s passed the gate out of turn (%s); not recorded", staff["id"], kind)
        return None


async def correct(
    settings: Settings,
    redis: Redis,
    principal: Principal,
    staff_id: UUID,
    data: CorrectionInput,
    now: dt.datetime | None = None,
) -> PunchView:
    now = now or dt.datetime.now(dt.UTC)
    staff = await cfg.staff_row(principal.site_id, staff_id)
    if data.action is None:
        raise InvalidInput.for_field("action", "is required: add or void")
    if data.reason is None:
        raise InvalidInput.for_field("reason", "is required: every correction says why")
    if data.action == "add":
        if data.kind is None:
            raise InvalidInput.for_field("kind", "is required: in or out")
        if data.at is None:
            raise InvalidInput.for_field("at", "is required: when it happened")
        if data.at.tzinfo is None:
            raise InvalidInput.for_field("at", "must include a timezone offset")
        at = data.at.astimezone(dt.UTC)
        if at > now:
            raise InvalidInput.for_field("at", "is in the future")
        if at < now - CORRECTION_REACH:
            raise InvalidInput.for_field("at", "is more than 62 days ago")
        punch = Punch(
            site=staff["site"],
            staff=staff["id"],
            kind=data.kind,
            at=at,
            source="correction",
            recorded_by=principal.person_id,
        )
        async with write_transaction():
            await punch.save()
            await Correction(
                site=staff["site"],
                staff=staff["id"],
                punch=punch.id,
                action="add",
                reason=data.reason,
                by=principal.person_id,
                at=now,
            ).save()
        punch_id = punch.id
    else:
        if data.punch_id is None:
            raise InvalidInput.for_field("punch_id", "is required: the punch to void")
        async with write_transaction():
            voided = (
                await Punch.update({Punch.voided_at: now})
                .where((Punch.id == data.punch_id) & (Punch.staff == staff["id"]) & Punch.voided_at.is_null())
                .returning(Punch.id)
            )
            if not voided:
                exists = await Punch.exists().where((Punch.id == data.punch_id) & (Punch.staff == staff["id"]))
                if not exists:
                    raise InvalidInput.for_field("punch_id", "is not one of this staff member's punches")
                raise Conflict("that punch is voided already")
            await Correction(
                site=staff["site"],
                staff=staff["id"],
                punch=data.punch_id,
                action="void",
                reason=data.reason,
                by=principal.person_id,
                at=now,
            ).save()
        punch_id = data.punch_id
    await publish(
        settings,
        redis,
        staff["site"],
        ATTENDANCE_CORRECTED,
        Corrected(staff_id=staff["id"], punch_id=punch_id, action=data.action, by=principal.person_id, at=now),
        gate=False,
    )
    row = await Punch.select().where(Punch.id == punch_id).first()
    assert row is not None
    return punch_view(row, data.reason)
