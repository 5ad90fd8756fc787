"""Device ingest: OCPP-style StatusNotification from EV chargers, occupancy events from parking sensors.

Each device authenticates with its own id and secret token (headers ``X-Device-Id`` and
``X-Device-Token``; only the token's SHA-256 is stored). An event older than the last one
applied to that connector or slot (by the device's own timestamp) is ignored, so a late
retry cannot undo a newer status. A connector turning Faulted or Unavailable moves or cancels
its upcoming bookings (``booking.handle_connector_down``).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal
from uuid import UUID

import msgspec
from redis.asyncio import Redis

from app.config import Settings
from app.errors import InvalidInput, NotFound, Unauthenticated
from app.security.compare import safe_equals
from app.slots import booking
from app.slots.availability import DOWN_STATUSES, AvailabilityFeed
from app.slots.resources import hash_token, now_utc
from schema.slots import SlotDevice, SlotResource
from schema.tables import Resource

ChargePointStatus = Literal[
    "Available",
    "Preparing",
    "Charging",
    "SuspendedEVSE",
    "SuspendedEV",
    "Finishing",
    "Reserved",
    "Unavailable",
    "Faulted",
]


class StatusNotification(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """OCPP 1.6 StatusNotification.req, in snake case; connector_id 0 means the whole charger."""

    connector_id: Annotated[int, msgspec.Meta(ge=0, le=16)]
    status: ChargePointStatus
    timestamp: dt.datetime
    error_code: Annotated[str, msgspec.Meta(max_length=50)] = "NoError"
    info: Annotated[str, msgspec.Meta(max_length=50)] | None = None


class SensorEvent(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    slot_code: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    occupied: bool
    timestamp: dt.datetime


class IngestResult(msgspec.Struct, frozen=True, kw_only=True):
    applied: list[str]  # codes of connectors/slots whose state changed
    ignored: list[str]  # codes whose newer state was already recorded
    moved_bookings: int = 0
    cancelled_bookings: int = 0


async def authenticate(device_id: str, token: str, kind: str) -> tuple[UUID, UUID]:
    """(device id, site id) for a valid device credential; 401 otherwise."""
    try:
        parsed = UUID(device_id)
    except ValueError:
        raise Unauthenticated("X-Device-Id: not a device id") from None
    row = (
        await SlotDevice.select(SlotDevice.site, SlotDevice.token_hash, SlotDevice.kind)
        .where(SlotDevice.id == parsed)
        .first()
    )
    expected = row["token_hash"] if row is not None else hash_token("no such device")
    if row is None or row["kind"] != kind or not safe_equals(expected, hash_token(token)):
        raise Unauthenticated("X-Device-Token: unknown device or wrong token")
    return parsed, row["site"]


async def status_notification(
    redis: Redis,
    settings: Settings,
    device_id: UUID,
    site_id: UUID,
    event: StatusNotification,
    now: dt.datetime | None = None,
) -> IngestResult:
    now = now or now_utc()
    if event.timestamp.tzinfo is None:
        raise InvalidInput.for_field("timestamp", "must include a timezone offset")
    stamp = event.timestamp.astimezone(dt.UTC)
    await SlotDevice.update({SlotDevice.last_seen_at: now}).where(SlotDevice.id == device_id)
    query = SlotResource.select(
        SlotResource.resource,
        SlotResource.live_status,
        SlotResource.live_status_at,
        SlotResource.resource.code.as_alias("code"),
    ).where((SlotResource.charger == device_id) & (SlotResource.site == site_id))
    if event.connector_id:
        query = query.where(SlotResource.connector_no == event.connector_id)
    connectors = await query
    if not connectors:
        raise InvalidInput.for_field("connector_id", f"this charger has no connector {event.connector_id}")
    applied, ignored, changed = [], [], []
    moved = cancelled = 0
    for connector in connectors:
        # Conditional on the stored timestamp: two racing events cannot both win.
        done = (
            await SlotResource.update({SlotResource.live_status: event.status, SlotResource.live_status_at: stamp})
            .where(
                (SlotResource.resource == connector["resource"])
                & (SlotResource.live_status_at.is_null() | (SlotResource.live_status_at < stamp))
            )
            .returning(SlotResource.resource)
        )
        if not done:
            ignored.append(connector["code"])
            continue
        applied.append(connector["code"])
        changed.append(connector["resource"])
        if event.status in DOWN_STATUSES and connector["live_status"] not in DOWN_STATUSES:
            outcome = await booking.handle_connector_down(
                redis, settings, site_id, connector["resource"], event.status, now=now
            )
            moved += len(outcome.moved)
            cancelled += len(outcome.cancelled)
    await AvailabilityFeed(redis, settings).changed(site_id, changed)
    return IngestResult(applied=applied, ignored=ignored, moved_bookings=moved, cancelled_bookings=cancelled)


async def sensor_event(
    redis: Redis, settings: Settings, device_id: UUID, site_id: UUID, event: SensorEvent, now: dt.datetime | None = None
) -> IngestResult:
    now = now or now_utc()
    if event.timestamp.tzinfo is None:
        raise InvalidInput.for_field("timestamp", "must include a timezone offset")
    stamp = event.timestamp.astimezone(dt.UTC)
    await SlotDevice.update({SlotDevice.last_seen_at: now}).where(SlotDevice.id == device_id)
    resource = (
        await Resource.select(Resource.id)
        .where((Resource.site == site_id) & (Resource.code == event.slot_code) & (Resource.kind == "parking_slot"))
        .first()
    )
    if resource is None:
        raise NotFound("slot_code: no parking slot with this code on the sensor's site")
    done = (
        await SlotResource.update(
            {SlotResource.live_status: "occupied" if event.occupied else "vacant", SlotResource.live_status_at: stamp}
        )
        .where(
            (SlotResource.resource == resource["id"])
            & (SlotResource.live_status_at.is_null() | (SlotResource.live_status_at < stamp))
        )
        .returning(SlotResource.resource)
    )
    if not done:
        return IngestResult(applied=[], ignored=[event.slot_code])
    await AvailabilityFeed(redis, settings).changed(site_id, [resource["id"]])
    return IngestResult(applied=[event.slot_code], ignored=[])
