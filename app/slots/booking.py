"""Booking service: book, change, cancel, approve, check in, no-show release, reminders, fault moves.

No double-booking: every write that puts a booking on a resource runs its overlap and quota checks
and its write one writer at a time per resource (PostgreSQL: an advisory transaction lock on the
resource; SQLite: ``write_transaction`` takes the database's write lock, BEGIN IMMEDIATE). On
PostgreSQL the exclusion constraint ``ex_slot_booking_no_overlap`` over (resource, [starts_at,
blocks_until)) still refuses an overlap from any writer that skipped this service. The lock is not
only for the friendly 409: concurrent inserts that the constraint must arbitrate can wait on each
other, and PostgreSQL then aborts every loser with "deadlock detected" instead of an exclusion
violation (seen in CI: 49 of 50 racing requests). Either way the loser gets a 409 naming the next
free times.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from typing import Annotated, Any, Final
from uuid import UUID
from zoneinfo import ZoneInfo

import msgspec
from piccolo.columns.combination import Combinable
from redis.asyncio import Redis

from app.auth.principal import Principal
from app.auth.roles import STAFF, Role
from app.config import Settings
from app.db import is_sqlite, write_transaction
from app.errors import Conflict, FieldError, InvalidInput, NotFound
from app.pagination import Page, page_of
from app.security.compare import safe_equals
from app.slots import resources
from app.slots.availability import AvailabilityFeed, held_ranges, next_free_times
from app.slots.resources import Rules, now_utc
from app.slots.rules import blocking_conflict, check_quota, check_request, refuse
from app.text import MULTI_LINE
from notifications.audience import Audience
from notifications.categories import Category, Channel, Urgency
from notifications.service import NotificationRequest, create_notification
from realtime.publish import publish
from realtime.topics import user_topic
from schema.slots import ACTIVE_BOOKING_STATES, SlotBooking, SlotCharge, SlotResource
from schema.slots_events import BOOKING_CHANGED, BookingChanged
from schema.tables import Occupancy, Unit

logger = logging.getLogger("opshub.slots.booking")
QR_PREFIX: Final = "opshub:checkin:"
EARLY_CHECKIN: Final = dt.timedelta(minutes=15)
Note = Annotated[str, msgspec.Meta(max_length=200), MULTI_LINE]


class NewBooking(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # Required; typed optional only so that a missing resource is a 404 before the body is judged.
    starts_at: dt.datetime | None = None
    ends_at: dt.datetime | None = None
    unit_id: UUID | None = None
    note: Note = ""


class BookingChange(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """New times; a field left out keeps its current value (moving the start keeps the length)."""

    starts_at: dt.datetime | None = None
    ends_at: dt.datetime | None = None


class CheckIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    code: Annotated[str, msgspec.Meta(max_length=16)] = ""


class QrCheckIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    qr: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class Decision(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(max_length=200), MULTI_LINE] = ""


class BookingView(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    resource_id: UUID
    resource_code: str
    category: str
    unit_id: UUID | None
    person_id: UUID | None
    starts_at: dt.datetime
    ends_at: dt.datetime
    status: str
    note: str
    checked_in_at: dt.datetime | None
    cancel_reason: str | None
    moved_from: UUID | None
    fee_minor: int
    charge_status: str | None
    checkin_qr: str | None = None  # the owner's QR payload (render: GET .../qr.svg)


class _Collision(Exception):
    def __init__(self, rule: str, other_start: dt.datetime | None = None, other_end: dt.datetime | None = None) -> None:
        super().__init__(rule)
        self.rule = rule
        self.other_start = other_start
        self.other_end = other_end


def _is_exclusion_violation(exc: BaseException) -> bool:
    try:
        from asyncpg.exceptions import ExclusionViolationError
    except ImportError:  # pragma: no cover - asyncpg is a dependency
        return False
    return isinstance(exc, ExclusionViolationError)


def is_staff(principal: Principal) -> bool:
    return principal.has_any(STAFF)


# ------------------------------------------------------------------------------ reading


_VIEW_COLUMNS = (
    *SlotBooking.all_columns(),
    SlotBooking.resource.code.as_alias("resource_code"),
    SlotBooking.resource.kind.as_alias("category"),
)


async def _charges(booking_ids: list[UUID]) -> dict[UUID, dict[str, Any]]:
    if not booking_ids:
        return {}
    rows = await SlotCharge.select(SlotCharge.booking, SlotCharge.amount_minor, SlotCharge.status).where(
        SlotCharge.booking.is_in(booking_ids)
    )
    return {r["booking"]: r for r in rows}


def _view(row: dict[str, Any], charge: dict[str, Any] | None, *, owner: bool) -> BookingView:
    return BookingView(
        id=row["id"],
        resource_id=row["resource"],
        resource_code=row["resource_code"],
        category=row["category"],
        unit_id=row["unit"],
        person_id=row["person"],
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        status=row["status"],
        note=row["note"],
        checked_in_at=row["checked_in_at"],
        cancel_reason=row["cancel_reason"],
        moved_from=row["moved_from"],
        fee_minor=charge["amount_minor"] if charge else 0,
        charge_status=charge["status"] if charge else None,
        checkin_qr=f"{QR_PREFIX}{row['id']}:{row['checkin_token']}" if owner else None,
    )


async def _row(site_id: UUID, booking_id: UUID) -> dict[str, Any]:
    row = (
        await SlotBooking.select(*_VIEW_COLUMNS)
        .where((SlotBooking.site == site_id) & (SlotBooking.id == booking_id))
        .first()
    )
    if row is None:
        raise NotFound("booking not found")
    return row


async def _visible_row(principal: Principal, booking_id: UUID) -> dict[str, Any]:
    row = await _row(principal.site_id, booking_id)
    if row["person"] != principal.person_id and not is_staff(principal):
        raise NotFound("booking not found")
    return row


async def get_booking(principal: Principal, booking_id: UUID) -> BookingView:
    row = await _visible_row(principal, booking_id)
    charges = await _charges([booking_id])
    return _view(row, charges.get(booking_id), owner=row["person"] == principal.person_id)


async def list_bookings(
    principal: Principal,
    *,
    resource_id: UUID | None = None,
    status: str | None = None,
    mine: bool = False,
    limit: int = 50,
    offset: int = 0,
) -> Page[BookingView]:
    where: list[Combinable] = [SlotBooking.site == principal.site_id]
    if mine or not is_staff(principal):
        where.append(SlotBooking.person == principal.person_id)
    if resource_id is not None:
        where.append(SlotBooking.resource == resource_id)
    if status is not None:
        where.append(SlotBooking.status == status)
    total = await SlotBooking.count().where(*where)
    rows = (
        await SlotBooking.select(*_VIEW_COLUMNS)
        .where(*where)
        .order_by(SlotBooking.starts_at, ascending=False)
        .order_by(SlotBooking.id)
        .limit(limit)
        .offset(offset)
    )
    charges = await _charges([r["id"] for r in rows])
    items = [_view(r, charges.get(r["id"]), owner=r["person"] == principal.person_id) for r in rows]
    return page_of(items, total=total, limit=limit, offset=offset)


# ------------------------------------------------------------------------------ booking


async def _unit_for(principal: Principal, unit_id: UUID | None) -> tuple[UUID | None, str]:
    if unit_id is None:
        if is_staff(principal):
            return None, "-"
        row = (
            await Occupancy.select(Occupancy.unit, Occupancy.unit.label.as_alias("label"))
            .where(
                (Occupancy.person == principal.person_id)
                & (Occupancy.site == principal.site_id)
                & (Occupancy.is_active.eq(True))
            )
            .order_by(Occupancy.unit.label)
            .first()
        )
        if row is None:
            raise InvalidInput.for_field("unit_id", "you have no unit on this site to book for")
        return row["unit"], row["label"]
    unit = await Unit.select(Unit.label).where((Unit.id == unit_id) & (Unit.site == principal.site_id)).first()
    if unit is None:
        raise InvalidInput.for_field("unit_id", "no such unit on this site")
    if not is_staff(principal) and not await Occupancy.exists().where(
        (Occupancy.person == principal.person_id) & (Occupancy.unit == unit_id) & (Occupancy.is_active.eq(True))
    ):
        raise InvalidInput.for_field("unit_id", "you are not an occupant of this unit")
    return unit_id, unit["label"]


async def lock_resource(resource_id: UUID) -> None:
    """Inside a write transaction: make this the only writer placing bookings on the resource until it ends.

    Quotas and buffers are checked before the write, and only one writer at a time makes those
    checks true at commit. SQLite's write transaction already holds the whole database.
    """
    if is_sqlite():
        return
    await SlotBooking.raw("SELECT pg_advisory_xact_lock(hashtextextended({}, 0))", f"slots:resource:{resource_id}")


async def _diagnose(
    resource_id: UUID, starts_at: dt.datetime, ends_at: dt.datetime, buffer: dt.timedelta, exclude: UUID | None = None
) -> _Collision:
    """After the exclusion constraint refused a write: which booking it collided with, and how."""
    try:
        await _check_free(resource_id, starts_at, ends_at, buffer, exclude)
    except _Collision as collision:
        return collision
    return _Collision("overlap")  # the other booking has gone meanwhile; still a conflict for this request


async def _check_free(
    resource_id: UUID, starts_at: dt.datetime, ends_at: dt.datetime, buffer: dt.timedelta, exclude: UUID | None = None
) -> None:
    held_rows = await SlotBooking.select(
        SlotBooking.id, SlotBooking.starts_at, SlotBooking.ends_at, SlotBooking.blocks_until
    ).where(
        (SlotBooking.resource == resource_id)
        & SlotBooking.status.is_in(list(ACTIVE_BOOKING_STATES))
        & (SlotBooking.starts_at < ends_at + buffer)
        & (SlotBooking.blocks_until > starts_at)
    )
    held = sorted((r["starts_at"], r["ends_at"], r["blocks_until"]) for r in held_rows if r["id"] != exclude)
    collision = blocking_conflict(starts_at, ends_at, buffer, held)
    if collision is not None:
        raise _Collision(*collision)


async def _conflict(
    site_id: UUID,
    resource_id: UUID,
    rules: Rules,
    collision: _Collision,
    starts_at: dt.datetime,
    ends_at: dt.datetime,
    now: dt.datetime,
) -> Conflict:
    free = await next_free_times(site_id, resource_id, starts_at, ends_at - starts_at, limit=3, now=now, rules=rules)
    free_text = ", ".join(t.isoformat(timespec="minutes") for t in free) or "none in the booking window"
    if collision.rule == "buffer_minutes" and collision.other_end is not None:
        message = (
            f"too close to the booking {collision.other_start:%H:%M}-{collision.other_end:%H:%M} UTC: this resource "
            f"keeps a {rules.buffer_minutes}-minute buffer between bookings; next free: {free_text}"
        )
    else:
        message = f"this time is already booked; next free: {free_text}"
    return Conflict(
        f"starts_at: {message}",
        errors=[FieldError(field="starts_at", message=message, source="body")],
        extra={"rule": collision.rule, "next_free": [t.isoformat() for t in free]},
    )


async def _publish_booking(redis: Redis, settings: Settings, row: dict[str, Any], reason: str | None = None) -> None:
    if row.get("person") is None:
        return
    await publish(
        redis,
        settings,
        user_topic(row["person"]),
        BOOKING_CHANGED,
        BookingChanged(
            booking_id=row["id"],
            resource_id=row["resource"],
            status=row["status"],
            starts_at=row["starts_at"],
            ends_at=row["ends_at"],
            reason=reason,
        ),
    )


async def book(
    feed: AvailabilityFeed, principal: Principal, resource_id: UUID, data: NewBooking, now: dt.datetime | None = None
) -> BookingView:
    now = now or now_utc()
    site_id = principal.site_id
    resource = await resources.load(site_id, resource_id)
    if resource["category"] == "valet":
        raise InvalidInput.for_field("resource_id", "valet is requested, not booked (POST /api/slots/valet)")
    if not resource["is_active"]:
        raise refuse(Conflict, "resource_id", "out_of_service", "this resource is out of service")
    rules = resources.rules_of(resource)
    tz_name, _ = await resources.site_settings(site_id)
    tz = ZoneInfo(tz_name)
    if data.starts_at is None:
        raise InvalidInput.for_field("starts_at", "is required")
    if data.ends_at is None:
        raise InvalidInput.for_field("ends_at", "is required")
    starts_at, ends_at = data.starts_at, data.ends_at
    check_request(rules, tz, starts_at, ends_at, now)
    if resource["live_status"] in ("Faulted", "Unavailable"):
        raise refuse(Conflict, "resource_id", "out_of_service", f"this connector is {resource['live_status']}")
    unit_id, unit_label = await _unit_for(principal, data.unit_id)
    buffer = dt.timedelta(minutes=rules.buffer_minutes)
    status = "pending" if rules.needs_approval else "confirmed"
    booking = SlotBooking(
        site=site_id,
        resource=resource_id,
        unit=unit_id,
        person=principal.person_id,
        starts_at=starts_at.astimezone(dt.UTC),
        ends_at=ends_at.astimezone(dt.UTC),
        blocks_until=(ends_at + buffer).astimezone(dt.UTC),
        status=status,
        note=data.note,
        checkin_token=secrets.token_urlsafe(16),
        created_at=now,
        updated_at=now,
    )
    try:
        async with write_transaction():
            await lock_resource(resource_id)
            await _check_free(resource_id, starts_at, ends_at, buffer)
            await check_quota(
                rules,
                tz,
                site_id=site_id,
                resource_id=resource_id,
                unit_id=unit_id,
                unit_label=unit_label,
                starts_at=starts_at,
            )
            await booking.save()
            if rules.fee_minor and status == "confirmed":
                await _add_charge(booking, rules, resource["name"], now)
    except _Collision as collision:
        raise await _conflict(site_id, resource_id, rules, collision, starts_at, ends_at, now) from None
    except Exception as exc:
        if _is_exclusion_violation(exc):
            logger.debug("exclusion constraint refused an overlapping booking of %s", resource_id)
            diagnosed = await _diagnose(resource_id, starts_at, ends_at, buffer)
            raise await _conflict(site_id, resource_id, rules, diagnosed, starts_at, ends_at, now) from None
        raise
    await feed.changed(site_id, [resource_id])
    row = {
        **booking.to_dict(),
        "resource_code": resource["code"],
        "category": resource["category"],
    }
    await _publish_booking(feed.redis, feed.settings, row)
    if status == "pending":
        await _notify_staff_approval(site_id, row)
    charge = (
        {"amount_minor": rules.fee_minor, "status": "pending"} if rules.fee_minor and status == "confirmed" else None
    )
    return _view(row, charge, owner=True)


async def _add_charge(
    booking: SlotBooking | dict[str, Any], rules: Rules, resource_name: str, now: dt.datetime
) -> None:
    get = (lambda k: booking[k]) if isinstance(booking, dict) else (lambda k: getattr(booking, k))
    await SlotCharge(
        site=get("site"),
        booking=get("id"),
        unit=get("unit"),
        person=get("person"),
        amount_minor=rules.fee_minor,
        currency=rules.currency,
        description=f"Booking of {resource_name} on {get('starts_at'):%Y-%m-%d %H:%M} UTC",
        status="pending",
        created_at=now,
        updated_at=now,
    ).save()


async def change_booking(
    feed: AvailabilityFeed, principal: Principal, booking_id: UUID, data: BookingChange, now: dt.datetime | None = None
) -> BookingView:
    now = now or now_utc()
    site_id = principal.site_id
    row = await _visible_row(principal, booking_id)
    if row["status"] not in ("pending", "confirmed"):
        raise Conflict(f"status: a {row['status']} booking cannot be changed")
    if row["starts_at"] <= now:
        raise Conflict("starts_at: a booking that has started cannot be changed")
    if data.starts_at is None and data.ends_at is None:
        raise InvalidInput.for_field("starts_at", "give starts_at, ends_at or both")
    starts_at = data.starts_at or row["starts_at"]
    ends_at = data.ends_at or (starts_at + (row["ends_at"] - row["starts_at"]))
    data = BookingChange(starts_at=starts_at, ends_at=ends_at)
    resource = await resources.load(site_id, row["resource"])
    rules = resources.rules_of(resource)
    tz_name, _ = await resources.site_settings(site_id)
    tz = ZoneInfo(tz_name)
    check_request(rules, tz, starts_at, ends_at, now)
    buffer = dt.timedelta(minutes=rules.buffer_minutes)
    unit_label = "-"
    if row["unit"] is not None:
        unit = await Unit.select(Unit.label).where(Unit.id == row["unit"]).first()
        unit_label = unit["label"] if unit else "-"
    try:
        async with write_transaction():
            await lock_resource(row["resource"])
            await _check_free(row["resource"], starts_at, ends_at, buffer, exclude=booking_id)
            await check_quota(
                rules,
                tz,
                site_id=site_id,
                resource_id=row["resource"],
                unit_id=row["unit"],
                unit_label=unit_label,
                starts_at=starts_at,
                exclude_booking=booking_id,
            )
            await SlotBooking.update(
                {
                    SlotBooking.starts_at: starts_at.astimezone(dt.UTC),
                    SlotBooking.ends_at: ends_at.astimezone(dt.UTC),
                    SlotBooking.blocks_until: (ends_at + buffer).astimezone(dt.UTC),
                    SlotBooking.reminder_sent_at: None,
                    SlotBooking.updated_at: now,
                }
            ).where((SlotBooking.id == booking_id) & SlotBooking.status.is_in(["pending", "confirmed"]))
    except _Collision as collision:
        raise await _conflict(site_id, row["resource"], rules, collision, starts_at, ends_at, now) from None
    except Exception as exc:
        if _is_exclusion_violation(exc):
            diagnosed = await _diagnose(row["resource"], starts_at, ends_at, buffer, exclude=booking_id)
            raise await _conflict(site_id, row["resource"], rules, diagnosed, starts_at, ends_at, now) from None
        raise
    await feed.changed(site_id, [row["resource"]])
    updated = await _row(site_id, booking_id)
    await _publish_booking(feed.redis, feed.settings, updated, "changed")
    return _view(
        updated, (await _charges([booking_id])).get(booking_id), owner=updated["person"] == principal.person_id
    )


class CancelResult(msgspec.Struct, frozen=True, kw_only=True):
    booking: BookingView
    free_cancellation: bool  # within the site's rule: any fee is voided
    cancel_free_until: dt.datetime


async def cancel_booking(
    feed: AvailabilityFeed, principal: Principal, booking_id: UUID, reason: str = "", now: dt.datetime | None = None
) -> CancelResult:
    """Cancel before the start. Free until the site's cutoff (N hours before); after it any fee stays owed."""
    now = now or now_utc()
    site_id = principal.site_id
    row = await _visible_row(principal, booking_id)
    if row["status"] not in ("pending", "confirmed"):
        raise Conflict(f"status: a {row['status']} booking cannot be cancelled")
    if row["starts_at"] <= now:
        raise Conflict("starts_at: the booking has started; an unused slot is released automatically")
    resource = await resources.load(site_id, row["resource"])
    _, site_hours = await resources.site_settings(site_id)
    hours = resource["cancel_free_hours"] if resource["cancel_free_hours"] is not None else site_hours
    free_until = row["starts_at"] - dt.timedelta(hours=hours)
    free = now <= free_until
    async with write_transaction():
        changed = (
            await SlotBooking.update(
                {
                    SlotBooking.status: "cancelled",
                    SlotBooking.cancelled_at: now,
                    SlotBooking.cancel_reason: (reason or "cancelled by owner")[:64]
                    if not is_staff(principal) or row["person"] == principal.person_id
                    else (reason or "cancelled by staff")[:64],
                    SlotBooking.updated_at: now,
                }
            )
            .where((SlotBooking.id == booking_id) & SlotBooking.status.is_in(["pending", "confirmed"]))
            .returning(SlotBooking.id)
        )
        if not changed:
            raise Conflict("status: the booking changed meanwhile; reload it")
        if free:
            await SlotCharge.update({SlotCharge.status: "void", SlotCharge.updated_at: now}).where(
                (SlotCharge.booking == booking_id) & (SlotCharge.status == "pending")
            )
        else:
            await SlotCharge.update(
                {SlotCharge.description: SlotCharge.description + " (late cancellation)", SlotCharge.updated_at: now}
            ).where((SlotCharge.booking == booking_id) & (SlotCharge.status == "pending"))
    await feed.changed(site_id, [row["resource"]])
    updated = await _row(site_id, booking_id)
    await _publish_booking(feed.redis, feed.settings, updated, "cancelled")
    view = _view(
        updated, (await _charges([booking_id])).get(booking_id), owner=updated["person"] == principal.person_id
    )
    return CancelResult(booking=view, free_cancellation=free, cancel_free_until=free_until)


async def decide(
    feed: AvailabilityFeed,
    principal: Principal,
    booking_id: UUID,
    approve: bool,
    reason: str = "",
    now: dt.datetime | None = None,
) -> BookingView:
    """FM approval of a pending booking: confirmed (and charged) or rejected (slot freed)."""
    now = now or now_utc()
    site_id = principal.site_id
    row = await _row(site_id, booking_id)
    if row["status"] != "pending":
        raise Conflict(f"status: only a pending booking can be decided; this one is {row['status']}")
    resource = await resources.load(site_id, row["resource"])
    rules = resources.rules_of(resource)
    async with write_transaction():
        changed = (
            await SlotBooking.update(
                {
                    SlotBooking.status: "confirmed" if approve else "rejected",
                    SlotBooking.decided_by: principal.person_id,
                    SlotBooking.cancel_reason: None if approve else (reason or "rejected")[:64],
                    SlotBooking.updated_at: now,
                }
            )
            .where((SlotBooking.id == booking_id) & (SlotBooking.status == "pending"))
            .returning(SlotBooking.id)
        )
        if not changed:
            raise Conflict("status: the booking changed meanwhile; reload it")
        if approve and rules.fee_minor:
            await _add_charge(row, rules, resource["name"], now)
    await feed.changed(site_id, [row["resource"]])
    updated = await _row(site_id, booking_id)
    await _publish_booking(feed.redis, feed.settings, updated, reason or None)
    if updated["person"] is not None:
        verdict = "approved" if approve else "rejected"
        await create_notification(
            site_id=site_id,
            request=NotificationRequest(
                title=f"Booking {verdict}",
                body=f"Your booking of {resource['name']} on {updated['starts_at']:%d %b %H:%M} UTC was {verdict}."
                + (f" {reason}" if reason else ""),
                category=Category.BOOKING,
                audience=Audience(person_ids=[updated["person"]]),
                channels=[Channel.PUSH, Channel.IN_APP],
                idempotency_key=f"slot-decision:{booking_id}",
            ),
            kind="slot.decision",
            data={"booking_id": str(booking_id), "status": updated["status"]},
        )
    return _view(updated, (await _charges([booking_id])).get(booking_id), owner=False)


async def _notify_staff_approval(site_id: UUID, row: dict[str, Any]) -> None:
    await create_notification(
        site_id=site_id,
        request=NotificationRequest(
            title="Booking awaiting approval",
            body=f"{row['resource_code']} on {row['starts_at']:%d %b %H:%M} UTC needs FM approval.",
            category=Category.BOOKING,
            audience=Audience(roles=[Role.FM_ADMIN]),
            channels=[Channel.IN_APP],
            idempotency_key=f"slot-approval:{row['id']}",
        ),
        kind="slot.approval",
        data={"booking_id": str(row["id"])},
    )


# ------------------------------------------------------------------------------ check-in


async def _check_in(feed: AvailabilityFeed, site_id: UUID, row: dict[str, Any], now: dt.datetime) -> BookingView:
    if row["status"] == "checked_in":
        return _view(row, (await _charges([row["id"]])).get(row["id"]), owner=True)
    if row["status"] != "confirmed":
        raise Conflict(f"status: a {row['status']} booking cannot be checked in")
    resource = await resources.load(site_id, row["resource"])
    grace = dt.timedelta(minutes=resource["checkin_grace_minutes"])
    if now < row["starts_at"] - EARLY_CHECKIN:
        raise refuse(
            Conflict,
            "code",
            "too_early",
            f"check-in opens at {(row['starts_at'] - EARLY_CHECKIN).isoformat(timespec='minutes')}",
        )
    if now > row["starts_at"] + grace:
        raise refuse(Conflict, "code", "checkin_grace_minutes", "the check-in window has passed; the slot was released")
    changed = (
        await SlotBooking.update(
            {SlotBooking.status: "checked_in", SlotBooking.checked_in_at: now, SlotBooking.updated_at: now}
        )
        .where((SlotBooking.id == row["id"]) & (SlotBooking.status == "confirmed"))
        .returning(SlotBooking.id)
    )
    if not changed:
        raise Conflict("status: the booking changed meanwhile; reload it")
    await feed.changed(site_id, [row["resource"]])
    updated = await _row(site_id, row["id"])
    await _publish_booking(feed.redis, feed.settings, updated, "checked_in")
    return _view(updated, (await _charges([row["id"]])).get(row["id"]), owner=True)


async def check_in_with_code(
    feed: AvailabilityFeed, principal: Principal, booking_id: UUID, code: str, now: dt.datetime | None = None
) -> BookingView:
    """The owner types the code shown at the resource."""
    now = now or now_utc()
    row = await _row(principal.site_id, booking_id)
    if row["person"] != principal.person_id:
        raise NotFound("booking not found")
    resource = await resources.load(principal.site_id, row["resource"])
    if not code.strip():
        raise refuse(InvalidInput, "code", "checkin_code", "type the code shown at the resource")
    if not safe_equals(resource["checkin_code"], code.strip()):
        raise refuse(InvalidInput, "code", "checkin_code", "this is not the code shown at the resource")
    return await _check_in(feed, principal.site_id, row, now)


async def check_in_with_qr(
    feed: AvailabilityFeed, principal: Principal, qr: str, now: dt.datetime | None = None
) -> BookingView:
    """A guard or FM scans the owner's QR code at the resource."""
    now = now or now_utc()
    payload = qr.strip()
    if not payload.startswith(QR_PREFIX) or payload.count(":") != 3:
        raise InvalidInput.for_field("qr", "not an opshub check-in code")
    raw_id, token = payload.removeprefix(QR_PREFIX).split(":")
    try:
        booking_id = UUID(raw_id)
    except ValueError:
        raise InvalidInput.for_field("qr", "not an opshub check-in code") from None
    row = await _row(principal.site_id, booking_id)
    if not safe_equals(row["checkin_token"], token):
        raise InvalidInput.for_field("qr", "this code does not match the booking")
    return await _check_in(feed, principal.site_id, row, now)


def qr_svg(payload: str) -> bytes:
    import io

    import segno

    buffer = io.BytesIO()
    segno.make(payload, error="m").save(buffer, kind="svg", scale=4)
    return buffer.getvalue()


async def qr_for(principal: Principal, booking_id: UUID) -> bytes:
    row = await _row(principal.site_id, booking_id)
    if row["person"] != principal.person_id:
        raise NotFound("booking not found")
    if row["status"] not in ("pending", "confirmed", "checked_in"):
        raise Conflict(f"status: a {row['status']} booking has no check-in code")
    return qr_svg(f"{QR_PREFIX}{row['id']}:{row['checkin_token']}")


# ------------------------------------------------------------------------------ crons


async def release_no_shows(redis: Redis, settings: Settings, now: dt.datetime | None = None) -> int:
    """Release confirmed bookings nobody checked in to within the grace period; publish at once.

    Also completes checked-in bookings that have ended and lets unapproved requests lapse at
    their start. Safe to re-run: every update is conditional on the state it expects.
    """
    now = now or now_utc()
    rows = await SlotBooking.select(
        SlotBooking.id,
        SlotBooking.site,
        SlotBooking.resource,
        SlotBooking.person,
        SlotBooking.status,
        SlotBooking.starts_at,
        SlotBooking.ends_at,
        SlotBooking.resource.code.as_alias("resource_code"),
    ).where(SlotBooking.status.is_in(["pending", "confirmed", "checked_in"]) & (SlotBooking.starts_at <= now))
    if not rows:
        return 0
    grace = {
        r["resource"]: dt.timedelta(minutes=r["checkin_grace_minutes"])
        for r in await SlotResource.select(SlotResource.resource, SlotResource.checkin_grace_minutes).where(
            SlotResource.resource.is_in(list({row["resource"] for row in rows}))
        )
    }
    touched: dict[UUID, set[UUID]] = {}
    released = 0
    for row in rows:
        update: dict[Any, Any] | None = None
        if row["status"] == "confirmed" and now >= row["starts_at"] + grace.get(
            row["resource"], dt.timedelta(minutes=15)
        ):
            update = {SlotBooking.status: "no_show", SlotBooking.released_at: now, SlotBooking.cancel_reason: "no_show"}
        elif row["status"] == "pending":
            update = {
                SlotBooking.status: "cancelled",
                SlotBooking.cancelled_at: now,
                SlotBooking.cancel_reason: "approval_lapsed",
            }
        elif row["status"] == "checked_in" and now >= row["ends_at"]:
            update = {SlotBooking.status: "completed"}
        if update is None:
            continue
        update[SlotBooking.updated_at] = now
        done = (
            await SlotBooking.update(update)
            .where((SlotBooking.id == row["id"]) & (SlotBooking.status == row["status"]))
            .returning(SlotBooking.id)
        )
        if not done:
            continue
        touched.setdefault(row["site"], set()).add(row["resource"])
        new_status = update[SlotBooking.status]
        if new_status == "no_show":
            released += 1
            if row["person"] is not None:
                await create_notification(
                    site_id=row["site"],
                    request=NotificationRequest(
                        title="Booking released",
                        body=f"Nobody checked in to {row['resource_code']} at {row['starts_at']:%H:%M} UTC, "
                        "so the slot was released.",
                        category=Category.BOOKING,
                        audience=Audience(person_ids=[row["person"]]),
                        channels=[Channel.IN_APP],
                        idempotency_key=f"slot-noshow:{row['id']}",
                    ),
                    kind="slot.no_show",
                    data={"booking_id": str(row["id"])},
                    now=now,
                )
    feed = AvailabilityFeed(redis, settings)
    for site_id, resource_ids in touched.items():
        await feed.changed(site_id, resource_ids, immediate=True, now=now)
    return released


async def send_reminders(now: dt.datetime | None = None) -> int:
    """Remind owners before the start (the resource's reminder_minutes). Idempotent per booking."""
    now = now or now_utc()
    rows = await SlotBooking.select(
        SlotBooking.id,
        SlotBooking.site,
        SlotBooking.person,
        SlotBooking.resource,
        SlotBooking.starts_at,
        SlotBooking.resource.name.as_alias("resource_name"),
    ).where(
        (SlotBooking.status == "confirmed")
        & SlotBooking.reminder_sent_at.is_null()
        & (SlotBooking.starts_at > now)
        & (SlotBooking.starts_at <= now + dt.timedelta(days=1))
    )
    if not rows:
        return 0
    lead = {
        r["resource"]: dt.timedelta(minutes=r["reminder_minutes"])
        for r in await SlotResource.select(SlotResource.resource, SlotResource.reminder_minutes).where(
            SlotResource.resource.is_in(list({row["resource"] for row in rows}))
        )
    }
    sent = 0
    for row in rows:
        minutes = lead.get(row["resource"], dt.timedelta(minutes=30))
        if not minutes or row["starts_at"] - now > minutes or row["person"] is None:
            continue
        starts = row["starts_at"]
        await create_notification(
            site_id=row["site"],
            request=NotificationRequest(
                title=f"{row['resource_name']} in {int((starts - now).total_seconds() // 60)} min",
                body=f"Your booking of {row['resource_name']} starts at {starts:%H:%M} UTC. Check in at the resource.",
                category=Category.BOOKING,
                audience=Audience(person_ids=[row["person"]]),
                channels=[Channel.PUSH, Channel.IN_APP],
                urgency=Urgency.HIGH,
                idempotency_key=f"slot-reminder:{row['id']}:{starts.isoformat()}",
            ),
            kind="slot.reminder",
            data={"booking_id": str(row["id"])},
            collapse_key=f"slot-reminder:{row['id']}",
            now=now,
        )
        await SlotBooking.update({SlotBooking.reminder_sent_at: now}).where(SlotBooking.id == row["id"])
        sent += 1
    return sent


# ------------------------------------------------------------------------------ connector faults


class FaultOutcome(msgspec.Struct, frozen=True, kw_only=True):
    moved: dict[UUID, UUID]  # booking -> new connector resource
    cancelled: list[UUID]


async def handle_connector_down(
    redis: Redis, settings: Settings, site_id: UUID, connector_id: UUID, status: str, now: dt.datetime | None = None
) -> FaultOutcome:
    """Move each not-yet-started (or not checked-in) booking of a down connector to a free compatible
    connector (same connector type, at least the power), or cancel it; tell each owner."""
    now = now or now_utc()
    source = await resources.load(site_id, connector_id)
    bookings = (
        await SlotBooking.select(
            SlotBooking.id, SlotBooking.person, SlotBooking.starts_at, SlotBooking.ends_at, SlotBooking.blocks_until
        )
        .where(
            (SlotBooking.resource == connector_id)
            & SlotBooking.status.is_in(["pending", "confirmed"])
            & (SlotBooking.ends_at > now)
        )
        .order_by(SlotBooking.starts_at)
    )
    candidates = [
        r
        for r in await SlotResource.select(*resources.SLOT_COLUMNS).where(
            (SlotResource.site == site_id)
            & (SlotResource.category == "ev_connector")
            & (SlotResource.resource != connector_id)
            & (SlotResource.connector_type == source["connector_type"])
        )
        if r["is_active"] and r["live_status"] not in ("Faulted", "Unavailable")
    ]
    candidates.sort(key=lambda r: (r["charger"] != source["charger"], -(r["power_kw"] or 0), r["code"]))
    moved: dict[UUID, UUID] = {}
    cancelled: list[UUID] = []
    touched = {connector_id}
    for booking in bookings:
        target = await _move(booking, candidates, connector_id, now)
        if target is not None:
            moved[booking["id"]] = target["resource"]
            touched.add(target["resource"])
            title, body = (
                "Charger changed",
                f"{source['code']} is {status}. Your booking at {booking['starts_at']:%H:%M} UTC moved to "
                f"{target['code']}"
                f" ({target['power_kw']:g} kW {target['connector_type']}).",
            )
        else:
            done = (
                await SlotBooking.update(
                    {
                        SlotBooking.status: "cancelled",
                        SlotBooking.cancelled_at: now,
                        SlotBooking.cancel_reason: f"charger_{status.lower()}",
                        SlotBooking.updated_at: now,
                    }
                )
                .where((SlotBooking.id == booking["id"]) & SlotBooking.status.is_in(["pending", "confirmed"]))
                .returning(SlotBooking.id)
            )
            if not done:
                continue
            await SlotCharge.update({SlotCharge.status: "void", SlotCharge.updated_at: now}).where(
                (SlotCharge.booking == booking["id"]) & (SlotCharge.status == "pending")
            )
            cancelled.append(booking["id"])
            title, body = (
                "Charging booking cancelled",
                f"{source['code']} is {status} and no other compatible charger is free at "
                f"{booking['starts_at']:%H:%M} UTC, so your booking was cancelled. Any fee is void.",
            )
        if booking["person"] is not None:
            await create_notification(
                site_id=site_id,
                request=NotificationRequest(
                    title=title,
                    body=body,
                    category=Category.BOOKING,
                    audience=Audience(person_ids=[booking["person"]]),
                    channels=[Channel.PUSH, Channel.IN_APP],
                    urgency=Urgency.HIGH,
                    idempotency_key=f"slot-fault:{booking['id']}:{connector_id}:{booking['starts_at'].isoformat()}",
                ),
                kind="slot.fault",
                data={"booking_id": str(booking["id"])},
                now=now,
            )
            updated = await _row(site_id, booking["id"])
            await _publish_booking(redis, settings, updated, f"charger_{status.lower()}")
    await AvailabilityFeed(redis, settings).changed(site_id, touched)
    return FaultOutcome(moved=moved, cancelled=cancelled)


async def _move(
    booking: dict[str, Any], candidates: list[dict[str, Any]], source_id: UUID, now: dt.datetime
) -> dict[str, Any] | None:
    for target in candidates:
        buffer = dt.timedelta(minutes=target["buffer_minutes"])
        try:
            async with write_transaction():
                await lock_resource(target["resource"])
                held = await held_ranges(
                    target["resource"], booking["starts_at"] - dt.timedelta(days=1), booking["ends_at"] + buffer
                )
                if blocking_conflict(booking["starts_at"], booking["ends_at"], buffer, held) is not None:
                    continue
                done = (
                    await SlotBooking.update(
                        {
                            SlotBooking.resource: target["resource"],
                            SlotBooking.blocks_until: booking["ends_at"] + buffer,
                            SlotBooking.moved_from: source_id,
                            SlotBooking.updated_at: now,
                        }
                    )
                    .where(
                        (SlotBooking.id == booking["id"])
                        & (SlotBooking.resource == source_id)
                        & SlotBooking.status.is_in(["pending", "confirmed"])
                    )
                    .returning(SlotBooking.id)
                )
                if not done:
                    return None
                return target
        except Exception as exc:
            if _is_exclusion_violation(exc):
                continue
            raise
    return None
