"""ANPR: plate cameras post reads, authenticated per camera; confident matches are shown to the guard.

A camera authenticates with ``X-Camera-Key: <camera id>.<secret>``; only the secret's SHA-256 is
stored. A read at or above the site's confidence threshold is matched against resident vehicles
(``schema.tables.Vehicle.plate_index``) and then against active passes with that plate, logged and
published as ``visitor.anpr_read`` on the gate topic; below the threshold it becomes
``visitor.anpr_review`` for the guard to read the plate by eye (about 5% of reads fail).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from typing import Annotated, Literal
from uuid import UUID

import msgspec

from app.errors import InvalidInput, Unauthenticated
from app.people.directory import cipher_for
from app.people.normalise import normalise_plate
from app.security.compare import safe_equals
from app.text import ONE_LINE
from app.visitors import sitecfg
from app.visitors.common import VisitorDeps, now_utc, publish_all
from app.visitors.passes import site_zone_of, validity
from realtime.topics import site_topic
from schema import visitors_events as ev
from schema.tables import Vehicle
from schema.visitors import AnprCamera, AnprRead, VisitorPass

HEADER = "X-Camera-Key"


class NewCamera(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100), ONE_LINE]
    gate: Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")]


class CameraCreated(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    name: str
    gate: str
    key: str  # "<id>.<secret>", shown once: configure the camera's X-Camera-Key header with it


class PlateRead(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    plate: Annotated[str, msgspec.Meta(min_length=1, max_length=20)]
    confidence: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
    direction: Literal["in", "out"]
    lane: Annotated[str, msgspec.Meta(max_length=32)] | None = None
    image_ref: Annotated[str, msgspec.Meta(max_length=500)] | None = None


class ReadResult(msgspec.Struct, frozen=True, kw_only=True):
    read_id: UUID
    outcome: Literal["resident", "visitor", "unknown", "manual_review"]
    unit_id: UUID | None = None
    pass_id: UUID | None = None


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def create_camera(site_id: UUID, data: NewCamera, now: dt.datetime | None = None) -> CameraCreated:
    secret = secrets.token_urlsafe(32)
    camera = AnprCamera(
        site=site_id, name=data.name, gate=data.gate, token_hash=_hash(secret), created_at=now or now_utc()
    )
    await camera.save()
    return CameraCreated(id=camera.id, name=data.name, gate=data.gate, key=f"{camera.id}.{secret}")


async def authenticate(header: str | None) -> dict[str, object]:
    """The camera row for a valid key; anything else is a 401."""
    if not header or "." not in header:
        raise Unauthenticated(f"missing or malformed {HEADER}")
    camera_id, _, secret = header.partition(".")
    try:
        parsed = UUID(camera_id)
    except ValueError:
        raise Unauthenticated(f"invalid {HEADER}") from None
    row = await AnprCamera.select().where((AnprCamera.id == parsed) & (AnprCamera.is_active.eq(True))).first()
    if row is None or not safe_equals(str(row["token_hash"]), _hash(secret)):
        raise Unauthenticated(f"invalid {HEADER}")
    return row


async def record_read(
    deps: VisitorDeps, camera: dict[str, object], data: PlateRead, now: dt.datetime | None = None
) -> ReadResult:
    now = now or now_utc()
    site_id: UUID = camera["site"]  # type: ignore[assignment]
    try:
        plate = normalise_plate(data.plate)
    except ValueError as exc:
        raise InvalidInput.for_field("plate", str(exc)) from None
    cipher = cipher_for(deps.settings)
    index = cipher.blind_index("plate", plate)
    config = await sitecfg.load(site_id)
    outcome: Literal["resident", "visitor", "unknown", "manual_review"] = "manual_review"
    unit_id = vehicle_id = pass_id = None
    if data.confidence >= config.anpr_min_confidence:
        outcome = "unknown"
        vehicle = (
            await Vehicle.select(Vehicle.id, Vehicle.unit)
            .where((Vehicle.site == site_id) & (Vehicle.plate_index == index))
            .first()
        )
        if vehicle is not None:
            outcome, unit_id, vehicle_id = "resident", vehicle["unit"], vehicle["id"]
        else:
            zone = await site_zone_of(site_id)
            passes = await VisitorPass.select().where(
                (VisitorPass.site == site_id) & (VisitorPass.plate_index == index) & (VisitorPass.status == "active")
            )
            valid = [p for p in passes if validity(p, now, zone) is None]
            if valid:
                outcome, unit_id, pass_id = "visitor", valid[0]["unit"], valid[0]["id"]
    read = AnprRead(
        site=site_id,
        camera=camera["id"],
        plate_encrypted=cipher.encrypt(plate),
        plate_index=index,
        confidence=data.confidence,
        lane=data.lane,
        direction=data.direction,
        image_ref=data.image_ref,
        outcome=outcome,
        unit=unit_id,
        vehicle_id=vehicle_id,
        pass_id=pass_id,
        created_at=now,
    )
    await read.save()
    event = ev.AnprSeen(
        read_id=read.id,
        camera=str(camera["name"]),
        gate=str(camera["gate"]),
        plate=plate,
        confidence=data.confidence,
        lane=data.lane,
        direction=data.direction,
        image_ref=data.image_ref,
        outcome=outcome,
        unit_id=unit_id,
        pass_id=pass_id,
        at=now,
    )
    event_type = ev.ANPR_REVIEW if outcome == "manual_review" else ev.ANPR_READ
    await publish_all(deps, [site_topic(site_id, "gate")], event_type, event)
    return ReadResult(read_id=read.id, outcome=outcome, unit_id=unit_id, pass_id=pass_id)
