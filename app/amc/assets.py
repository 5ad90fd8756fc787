"""Assets under maintenance: lifts, DG sets, pumps, fire systems, EV chargers (from SLOTS), CCTV...

Each asset gets a place of kind ``asset`` with a QR code (``app.places``) when it is created, so a
sticker on the lift door opens its public page and "report a problem" raises a complaint that names
the asset. Renaming or moving the asset renames its place; the printed code stays valid.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal
from uuid import UUID

import msgspec

from app.amc.common import Code, Floor, Name, Notes, Short, Where, building_names, check_building, now_utc
from app.config import Settings
from app.db import is_unique_violation, write_transaction
from app.errors import Conflict, InvalidInput, NotFound
from app.pagination import Page, page_of
from app.places import service as places
from schema.amc import Asset
from schema.places import Place, PlaceCode
from schema.tables import Resource

AssetKind = Literal["lift", "dg_set", "pump", "fire_system", "ev_charger", "cctv", "hvac", "other"]
AssetStatus = Literal["active", "retired"]


class NewAsset(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    code: Code
    name: Name
    kind: AssetKind
    building_id: UUID | None = None
    floor: Floor | None = None
    location: Where = ""
    charger_id: UUID | None = None  # an EV charger of the slots module (kind ev_charger only)
    make: Short = ""
    model: Short = ""
    serial_no: Short = ""
    installed_on: dt.date | None = None
    notes: Notes = ""


class AssetChange(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Name | None = None
    building_id: UUID | None = None
    floor: Floor | None = None
    location: Where | None = None
    make: Short | None = None
    model: Short | None = None
    serial_no: Short | None = None
    installed_on: dt.date | None = None
    notes: Notes | None = None
    status: AssetStatus | None = None


class AssetView(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    code: str
    name: str
    kind: str
    building_id: UUID | None
    building_name: str | None
    floor: str | None
    location: str
    charger_id: UUID | None
    charger_name: str | None
    make: str
    model: str
    serial_no: str
    installed_on: dt.date | None
    status: str
    notes: str
    place_id: UUID | None
    qr_code: str | None  # the active code of the asset's place
    qr_url: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


async def views(settings: Settings, site_id: UUID, rows: list[dict[str, Any]]) -> list[AssetView]:
    if not rows:
        return []
    towers = await building_names(site_id)
    ids = [r["id"] for r in rows]
    place_rows = await Place.select(Place.id, Place.asset).where((Place.site == site_id) & Place.asset.is_in(ids))
    place_of = {p["asset"]: p["id"] for p in place_rows}
    code_rows = (
        await PlaceCode.select(PlaceCode.place, PlaceCode.code).where(
            PlaceCode.place.is_in(list(place_of.values())) & (PlaceCode.status == "active")
        )
        if place_of
        else []
    )
    code_of = {c["place"]: c["code"] for c in code_rows}
    chargers = [r["resource"] for r in rows if r["resource"] is not None]
    charger_names = (
        {
            r["id"]: r["name"]
            for r in await Resource.select(Resource.id, Resource.name).where(Resource.id.is_in(chargers))
        }
        if chargers
        else {}
    )
    result = []
    for row in rows:
        place_id = place_of.get(row["id"])
        code = code_of.get(place_id) if place_id else None
        result.append(
            AssetView(
                id=row["id"],
                code=row["code"],
                name=row["name"],
                kind=row["kind"],
                building_id=row["building"],
                building_name=towers.get(row["building"]) if row["building"] else None,
                floor=row["floor"],
                location=row["location"],
                charger_id=row["resource"],
                charger_name=charger_names.get(row["resource"]) if row["resource"] else None,
                make=row["make"],
                model=row["model"],
                serial_no=row["serial_no"],
                installed_on=row["installed_on"],
                status=row["status"],
                notes=row["notes"],
                place_id=place_id,
                qr_code=code,
                qr_url=places.code_url(settings, code) if code else None,
                created_at=row["created_at"],
                updated_at=row["updated_at"],
            )
        )
    return result


async def load(site_id: UUID, asset_id: UUID) -> dict[str, Any]:
    row = await Asset.select().where((Asset.site == site_id) & (Asset.id == asset_id)).first()
    if row is None:
        raise NotFound("asset not found")
    return row


async def get_asset(settings: Settings, site_id: UUID, asset_id: UUID) -> AssetView:
    return (await views(settings, site_id, [await load(site_id, asset_id)]))[0]


async def list_assets(
    settings: Settings,
    site_id: UUID,
    *,
    kind: AssetKind | None = None,
    status: AssetStatus | None = None,
    limit: int,
    offset: int,
) -> Page[AssetView]:
    where: Any = Asset.site == site_id
    if kind is not None:
        where = where & (Asset.kind == kind)
    if status is not None:
        where = where & (Asset.status == status)
    total = await Asset.count().where(where)
    rows = await Asset.select().where(where).order_by(Asset.code).order_by(Asset.id).limit(limit).offset(offset)
    return page_of(await views(settings, site_id, rows), total=total, limit=limit, offset=offset)


async def _check_charger(site_id: UUID, kind: str, charger_id: UUID | None) -> None:
    if charger_id is None:
        return
    if kind != "ev_charger":
        raise InvalidInput.for_field("charger_id", "only an asset of kind ev_charger names a charger")
    if not await Resource.exists().where(
        (Resource.id == charger_id) & (Resource.site == site_id) & (Resource.kind == "ev_charger")
    ):
        raise InvalidInput.for_field("charger_id", "no EV charger with that id on this site")
    if await Asset.exists().where((Asset.site == site_id) & (Asset.resource == charger_id)):
        raise Conflict("charger_id: that charger is already an asset")


async def create_asset(settings: Settings, site_id: UUID, data: NewAsset, now: dt.datetime | None = None) -> AssetView:
    now = now or now_utc()
    await check_building(site_id, data.building_id)
    await _check_charger(site_id, data.kind, data.charger_id)
    if await Asset.exists().where((Asset.site == site_id) & (Asset.code == data.code)):
        raise Conflict(f"code: an asset with code {data.code!r} already exists on this site")
    asset = Asset(
        site=site_id,
        code=data.code,
        name=data.name,
        kind=data.kind,
        building=data.building_id,
        floor=data.floor,
        location=data.location,
        resource=data.charger_id,
        make=data.make,
        model=data.model,
        serial_no=data.serial_no,
        installed_on=data.installed_on,
        status="active",
        notes=data.notes,
        created_at=now,
        updated_at=now,
    )
    try:
        async with write_transaction():
            await asset.save()
            await places.insert_place(
                site_id,
                kind="asset",
                name=data.name,
                building_id=data.building_id,
                floor=data.floor,
                directions=data.location,
                asset_id=asset.id,
                now=now,
            )
    except Exception as error:
        if is_unique_violation(error):  # two requests with one code at once
            raise Conflict(f"code: an asset with code {data.code!r} already exists on this site") from None
        raise
    return await get_asset(settings, site_id, asset.id)


async def update_asset(
    settings: Settings, site_id: UUID, asset_id: UUID, data: AssetChange, now: dt.datetime | None = None
) -> AssetView:
    now = now or now_utc()
    await load(site_id, asset_id)
    await check_building(site_id, data.building_id)
    values: dict[Any, Any] = {Asset.updated_at: now}
    for field, column in (
        ("name", Asset.name),
        ("building_id", Asset.building),
        ("floor", Asset.floor),
        ("location", Asset.location),
        ("make", Asset.make),
        ("model", Asset.model),
        ("serial_no", Asset.serial_no),
        ("installed_on", Asset.installed_on),
        ("notes", Asset.notes),
        ("status", Asset.status),
    ):
        value = getattr(data, field)
        if value is not None:
            values[column] = value
    async with write_transaction():
        await Asset.update(values).where((Asset.site == site_id) & (Asset.id == asset_id))
        await places.sync_asset_place(site_id, asset_id, now)
        if data.status == "retired":
            await places.retire_asset_codes(site_id, asset_id, now)
        elif data.status == "active":
            place = await Place.select(Place.id).where(Place.asset == asset_id).first()
            if place is not None and not await PlaceCode.exists().where(
                (PlaceCode.place == place["id"]) & (PlaceCode.status == "active")
            ):
                await places.issue_code(site_id, place["id"], now)
    return await get_asset(settings, site_id, asset_id)
