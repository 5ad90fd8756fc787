"""Helpers for permit tests: principals, files, a complete fit-out application, topic histories."""

from __future__ import annotations

import datetime as dt
import io
import zlib
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
from PIL import Image

from app.auth.principal import Principal
from app.permits import service
from realtime.history import read_since
from tests.support.world import World

IST = ZoneInfo("Asia/Kolkata")
# A Wednesday, 11:00 in Asia/Kolkata: the moment the tests apply.
T0 = dt.datetime(2026, 12, 9, 11, 0, tzinfo=IST).astimezone(dt.UTC)
# The fit-out's window: Thursday 00:00 to Saturday 23:00 (site time); its daily hours 09:00-18:00.
FROM = dt.datetime(2026, 12, 10, 0, 0, tzinfo=IST)
UNTIL = dt.datetime(2026, 12, 12, 23, 0, tzinfo=IST)
VENDOR_PHONE = "+919812345678"
VENDOR_PLATE = "KA01AB1234"

FIT_OUT_VALUES: dict[str, Any] = {
    "scope_of_work": "Kitchen remodel: new counter, tiles and wiring",
    "contractor": "Sharma Interiors",
    "debris": "contractor removes daily",
}
FIT_OUT_DECLARATIONS = ["hours", "structure", "damage"]


def principal(world: World, name: str) -> Principal:
    return Principal(
        person_id=world.people[name],
        site_id=world.site_id,
        roles=world.roles[name],
        token_id=f"test-{name}",
        expires_at=2**31,
    )


def jpeg(color: tuple[int, int, int] = (10, 120, 200)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), color).save(buffer, format="JPEG")
    return buffer.getvalue()


PLAIN_PDF = (
    b"%PDF-1.4\n"
    b"1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
    b"2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n"
    b"3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >> endobj\n"
    b"trailer << /Root 1 0 R >>\n%%EOF\n"
)


def pdf_with(body: bytes) -> bytes:
    return PLAIN_PDF.replace(b"trailer", body + b"\ntrailer")


def pdf_with_compressed_objects(hidden: bytes) -> bytes:
    """A PDF whose object stream (Flate-compressed, with a nested DecodeParms) holds ``hidden``."""
    packed = zlib.compress(hidden)
    stream = (
        b"4 0 obj << /Type /ObjStm /N 1 /First 4 /Filter /FlateDecode /DecodeParms << /Columns 1 >> /Length "
        + str(len(packed)).encode()
        + b" >>\nstream\n"
        + packed
        + b"\nendstream\nendobj"
    )
    return pdf_with(stream)


def fit_out_input(world: World, **overrides: Any) -> service.PermitInput:
    fields: dict[str, Any] = {
        "type": "fit_out",
        "title": "Kitchen remodel",
        "unit_id": world.unit_ids[0],
        "valid_from": FROM,
        "valid_until": UNTIL,
        "values": dict(FIT_OUT_VALUES),
        "declarations": list(FIT_OUT_DECLARATIONS),
        "people": [service.PersonInput(name="Ravi Kumar", phone=VENDOR_PHONE)],
        "vehicles": [service.VehicleInput(plate=VENDOR_PLATE, description="Tempo")],
    }
    fields.update(overrides)
    return service.PermitInput(**fields)


async def submitted_fit_out(world: World, settings: Any, redis: Any, *, by: str = "occupant") -> service.PermitView:
    """A fit-out applied for by ``by`` for world.unit_ids[0], its drawing attached, submitted at T0."""
    who = principal(world, by)
    draft = await service.apply(settings, redis, who, fit_out_input(world), now=T0)
    await service.add_attachment(settings, who, draft.id, "drawing", jpeg(), now=T0)
    return await service.submit(settings, redis, who, draft.id, service.VersionInput(), now=T0)


async def topic_events(redis: Any, settings: Any, topic: str) -> list[dict[str, Any]]:
    """Every event still in the topic's history, oldest first, as the wire frames carry them."""
    since = await read_since(redis, settings, topic, 0)
    return [msgspec.json.decode(frame) for _, frame in since.entries]
