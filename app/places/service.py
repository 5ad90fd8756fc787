"""Places and their QR codes: create, rename, retire; issue and revoke codes; count scans; the public view.

A code is 12 random characters from an unambiguous lower-case alphabet (no 0/o, 1/l): about 60 bits,
so codes cannot be guessed or enumerated, and it names nothing (a rename keeps every sticker
working). The public URL is ``{OPSHUB_PUBLIC_URL}/q/{code}``.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Annotated, Any, Final, Literal
from uuid import UUID

import msgspec

from app.amc.common import Floor, Name, Notes, Where, building_names, check_building, local_day, now_utc, site_zone
from app.config import Settings
from app.db import is_unique_violation, write_transaction
from app.errors import Conflict, InvalidInput, NotFound
from app.pagination import Page, page_of
from app.slots.resources import validate_hours
from app.text import ONE_LINE
from schema.amc import Asset
from schema.jsonvalue import as_dict
from schema.places import Place, PlaceCode, PlaceScanDay
from schema.tables import Building, Resource

PlaceKind = Literal["amenity", "shop", "facility", "asset"]
Hours = dict[str, list[list[str]]]
Reason = Annotated[str, msgspec.Meta(max_length=200), ONE_LINE]
CODE_ALPHABET: Final = "23456789abcdefghijkmnpqrstuvwxyz"
CODE_LENGTH: Final = 12
CODE_PATH: Final = "/q/"


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def code_url(settings: Settings, code: str) -> str:
    return settings.public_link(CODE_PATH + code)


class NewPlace(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    kind: Literal["amenity", "shop", "facility"]  # an asset's place comes with the asset
    name: Name
    building_id: UUID | None = None
    floor: Floor | None = None
    directions: Where = ""
    opening_hours: Hours | None = None  # {"0": [["06:00", "22:00"]], ...}, 0 = Monday; None: not stated
    description: Notes = ""
    resource_id: UUID | None = None  # a bookable resource of the slots module: "Book it"


class PlaceChange(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Name | None = None
    building_id: UUID | None = None
    floor: Floor | None = None
    directions: Where | None = None
    opening_hours: Hours | None = None
    description: Notes | None = None
    resource_id: UUID | None = None
    clear: list[Literal["building_id", "floor", "opening_hours", "resource_id"]] = []


class Revocation(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    reason: Reason | None = None
    reissue: bool = True  # issue a new code at once (a replacement sticker)


class CodeView(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    url: str
    status: str
    scans: int
    created_at: dt.datetime
    revoked_at: dt.datetime | None
    revoked_reason: str | None


class PlaceView(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    kind: str
    name: str
    building_id: UUID | None
    building_name: str | None
    floor: str | None
    directions: str
    opening_hours: Hours | None
    description: str
    resource_id: UUID | None
    asset_id: UUID | None
    is_active: bool
    code: str | None  # the active code
    url: str | None
    scans: int  # every scan of every code of this place
    codes: list[CodeView]
    updated_at: dt.datetime


# ------------------------------------------------------------------------------ reading


async def _codes_of(place_ids: list[UUID]) -> dict[UUID, list[dict[str, Any]]]:
    if not place_ids:
        return {}
    rows = (
        await PlaceCode.select()
        .where(PlaceCode.place.is_in(place_ids))
        .order_by(PlaceCode.created_at, ascending=False)
        .order_by(PlaceCode.code)
    )
    by_place: dict[UUID, list[dict[str, Any]]] = {}
    for row in rows:
        by_place.setdefault(row["place"], []).append(row)
    return by_place


async def views(settings: Settings, site_id: UUID, rows: list[dict[str, Any]]) -> list[PlaceView]:
    codes = await _codes_of([r["id"] for r in rows])
    towers = await building_names(site_id) if rows else {}
    result = []
    for row in rows:
        mine = codes.get(row["id"], [])
        active = next((c["code"] for c in mine if c["status"] == "active"), None)
        hours = row["opening_hours"]
        result.append(
            PlaceView(
                id=row["id"],
                kind=row["kind"],
                name=row["name"],
                building_id=row["building"],
                building_name=towers.get(row["building"]) if row["building"] else None,
                floor=row["floor"],
                directions=row["directions"],
                opening_hours=as_dict(hours) if hours not in (None, "null") else None,
                description=row["description"],
                resource_id=row["resource"],
                asset_id=row["asset"],
                is_active=row["is_active"],
                code=active,
                url=code_url(settings, active) if active else None,
                scans=sum(c["scans"] for c in mine),
                codes=[
                    CodeView(
                        code=c["code"],
                        url=code_url(settings, c["code"]),
                        status=c["status"],
                        scans=c["scans"],
                        created_at=c["created_at"],
                        revoked_at=c["revoked_at"],
                        revoked_reason=c["revoked_reason"],
                    )
                    for c in mine
                ],
                updated_at=row["updated_at"],
            )
        )
    return result


async def load(site_id: UUID, place_id: UUID) -> dict[str, Any]:
    row = await Place.select().where((Place.site == site_id) & (Place.id == place_id)).first()
    if row is None:
        raise NotFound("place not found")
    return row


async def get_place(settings: Settings, site_id: UUID, place_id: UUID) -> PlaceView:
    return (await views(settings, site_id, [await load(site_id, place_id)]))[0]


async def list_places(
    settings: Settings,
    site_id: UUID,
    *,
    kind: PlaceKind | None = None,
    active: bool | None = None,
    limit: int,
    offset: int,
) -> Page[PlaceView]:
    where: Any = Place.site == site_id
    if kind is not None:
        where = where & (Place.kind == kind)
    if active is not None:
        where = where & (Place.is_active == active)
    total = await Place.count().where(where)
    rows = (
        await Place.select()
        .where(where)
        .order_by(Place.kind)
        .order_by(Place.name)
        .order_by(Place.id)
        .limit(limit)
        .offset(offset)
    )
    return page_of(await views(settings, site_id, rows), total=total, limit=limit, offset=offset)


async def places_by_ids(settings: Settings, site_id: UUID, place_ids: list[UUID]) -> list[PlaceView]:
    """The places named, in the order named; any unknown id is a 422 naming it."""
    rows = await Place.select().where((Place.site == site_id) & Place.id.is_in(place_ids)) if place_ids else []
    by_id = {row["id"]: row for row in rows}
    for index, place_id in enumerate(place_ids):
        if place_id not in by_id:
            raise InvalidInput.for_field(f"place_ids[{index}]", "no such place on this site")
    return await views(settings, site_id, [by_id[p] for p in place_ids])


# ------------------------------------------------------------------------------ changing


async def _check_resource(site_id: UUID, resource_id: UUID | None) -> None:
    if resource_id is not None and not await Resource.exists().where(
        (Resource.id == resource_id) & (Resource.site == site_id) & Resource.kind.is_in(["amenity", "parking_slot"])
    ):
        raise InvalidInput.for_field("resource_id", "no bookable amenity with that id on this site")


def _hours(hours: Hours | None) -> Hours | None:
    if hours is None:
        return None
    try:
        return validate_hours(hours)
    except InvalidInput as exc:
        raise InvalidInput.for_field(
            "opening_hours", (exc.errors or [])[0].message if exc.errors else exc.detail
        ) from None


async def issue_code(site_id: UUID, place_id: UUID, now: dt.datetime) -> str:
    """A fresh active code for the place (the caller has revoked any previous one)."""
    for _ in range(5):
        code = new_code()
        try:
            await PlaceCode.insert(PlaceCode(site=site_id, place=place_id, code=code, status="active", created_at=now))
        except Exception as error:  # a collision in 2**60 is a bug elsewhere, but never a 500
            if is_unique_violation(error):
                continue
            raise
        return code
    raise Conflict("could not issue a unique code; try again")


async def insert_place(
    site_id: UUID,
    *,
    kind: str,
    name: str,
    building_id: UUID | None,
    floor: str | None,
    directions: str,
    opening_hours: Hours | None = None,
    description: str = "",
    resource_id: UUID | None = None,
    asset_id: UUID | None = None,
    now: dt.datetime,
) -> UUID:
    """The place row and its first code; inside the caller's transaction when there is one."""
    place = Place(
        site=site_id,
        kind=kind,
        name=name,
        building=building_id,
        floor=floor,
        directions=directions,
        opening_hours=opening_hours,
        description=description,
        resource=resource_id,
        asset=asset_id,
        is_active=True,
        created_at=now,
        updated_at=now,
    )
    await place.save()
    await issue_code(site_id, place.id, now)
    return place.id


async def create_place(settings: Settings, site_id: UUID, data: NewPlace, now: dt.datetime | None = None) -> PlaceView:
    now = now or now_utc()
    await check_building(site_id, data.building_id)
    await _check_resource(site_id, data.resource_id)
    hours = _hours(data.opening_hours)
    async with write_transaction():
        place_id = await insert_place(
            site_id,
            kind=data.kind,
            name=data.name,
            building_id=data.building_id,
            floor=data.floor,
            directions=data.directions,
            opening_hours=hours,
            description=data.description,
            resource_id=data.resource_id,
            now=now,
        )
    return await get_place(settings, site_id, place_id)


async def update_place(
    settings: Settings, site_id: UUID, place_id: UUID, data: PlaceChange, now: dt.datetime | None = None
) -> PlaceView:
    """Rename or move a place: its codes stay the same (they name the place's id, not its name)."""
    now = now or now_utc()
    row = await load(site_id, place_id)
    if row["kind"] == "asset" and (data.name is not None or data.building_id is not None or data.floor is not None):
        raise InvalidInput.for_field("name", "an asset's place follows the asset: change the asset")
    await check_building(site_id, data.building_id)
    await _check_resource(site_id, data.resource_id)
    values: dict[Any, Any] = {Place.updated_at: now}
    for field, column in (
        ("name", Place.name),
        ("building_id", Place.building),
        ("floor", Place.floor),
        ("directions", Place.directions),
        ("description", Place.description),
        ("resource_id", Place.resource),
    ):
        value = getattr(data, field)
        if value is not None:
            values[column] = value
    if data.opening_hours is not None:
        values[Place.opening_hours] = _hours(data.opening_hours)
    cleared = {"building_id": Place.building, "floor": Place.floor, "opening_hours": Place.opening_hours}
    for field in data.clear:
        values[cleared.get(field, Place.resource)] = None
    await Place.update(values).where((Place.site == site_id) & (Place.id == place_id))
    return await get_place(settings, site_id, place_id)


async def sync_asset_place(site_id: UUID, asset_id: UUID, now: dt.datetime) -> None:
    """An asset's place carries the asset's name and location (codes unchanged)."""
    asset = await Asset.select().where((Asset.site == site_id) & (Asset.id == asset_id)).first()
    if asset is None:
        return
    await Place.update(
        {
            Place.name: asset["name"],
            Place.building: asset["building"],
            Place.floor: asset["floor"],
            Place.directions: asset["location"],
            Place.is_active: asset["status"] == "active",
            Place.updated_at: now,
        }
    ).where((Place.site == site_id) & (Place.asset == asset_id))


async def revoke_code(
    settings: Settings, site_id: UUID, place_id: UUID, data: Revocation, now: dt.datetime | None = None
) -> PlaceView:
    """Revoke the place's active code (scanning it then says "no longer in use"), and issue a new one."""
    now = now or now_utc()
    row = await load(site_id, place_id)
    async with write_transaction():
        revoked = (
            await PlaceCode.update(
                {PlaceCode.status: "revoked", PlaceCode.revoked_at: now, PlaceCode.revoked_reason: data.reason}
            )
            .where((PlaceCode.place == place_id) & (PlaceCode.status == "active"))
            .returning(PlaceCode.id)
        )
        if not revoked and not data.reissue:
            raise Conflict("this place has no active code to revoke")
        if data.reissue and row["is_active"]:
            await issue_code(site_id, place_id, now)
    return await get_place(settings, site_id, place_id)


async def set_active(
    settings: Settings, site_id: UUID, place_id: UUID, active: bool, now: dt.datetime | None = None
) -> PlaceView:
    """Retire a place (every code revoked) or bring it back (with a new code)."""
    now = now or now_utc()
    row = await load(site_id, place_id)
    if row["kind"] == "asset":
        raise Conflict("an asset's place is retired with the asset")
    async with write_transaction():
        await Place.update({Place.is_active: active, Place.updated_at: now}).where(Place.id == place_id)
        if not active:
            await PlaceCode.update(
                {PlaceCode.status: "revoked", PlaceCode.revoked_at: now, PlaceCode.revoked_reason: "place retired"}
            ).where((PlaceCode.place == place_id) & (PlaceCode.status == "active"))
        elif not await PlaceCode.exists().where((PlaceCode.place == place_id) & (PlaceCode.status == "active")):
            await issue_code(site_id, place_id, now)
    return await get_place(settings, site_id, place_id)


async def retire_asset_codes(site_id: UUID, asset_id: UUID, now: dt.datetime) -> None:
    place = await Place.select(Place.id).where((Place.site == site_id) & (Place.asset == asset_id)).first()
    if place is None:
        return
    await PlaceCode.update(
        {PlaceCode.status: "revoked", PlaceCode.revoked_at: now, PlaceCode.revoked_reason: "asset retired"}
    ).where((PlaceCode.place == place["id"]) & (PlaceCode.status == "active"))


# ------------------------------------------------------------------------------ scans and the public view


class ScanDay(msgspec.Struct, frozen=True, kw_only=True):
    day: dt.date
    scans: int


async def count_scan(code_row: dict[str, Any], now: dt.datetime | None = None) -> None:
    """One more scan of this code, and of its place today (site calendar). Nothing about the scanner."""
    now = now or now_utc()
    day = local_day(now, await site_zone(code_row["site"]))
    await PlaceCode.update({PlaceCode.scans: PlaceCode.scans + 1}).where(PlaceCode.id == code_row["id"])
    updated = (
        await PlaceScanDay.update({PlaceScanDay.scans: PlaceScanDay.scans + 1})
        .where((PlaceScanDay.place == code_row["place"]) & (PlaceScanDay.day == day))
        .returning(PlaceScanDay.id)
    )
    if updated:
        return
    try:
        await PlaceScanDay.insert(PlaceScanDay(site=code_row["site"], place=code_row["place"], day=day, scans=1))
    except Exception as error:  # another scan inserted today's row first: add to it
        if not is_unique_violation(error):
            raise
        await PlaceScanDay.update({PlaceScanDay.scans: PlaceScanDay.scans + 1}).where(
            (PlaceScanDay.place == code_row["place"]) & (PlaceScanDay.day == day)
        )


async def scan_days(site_id: UUID, place_id: UUID, *, limit: int, offset: int) -> Page[ScanDay]:
    """Scans per day of the site's calendar, newest first (days without a scan have no row)."""
    await load(site_id, place_id)
    total = await PlaceScanDay.count().where(PlaceScanDay.place == place_id)
    rows = (
        await PlaceScanDay.select(PlaceScanDay.day, PlaceScanDay.scans)
        .where(PlaceScanDay.place == place_id)
        .order_by(PlaceScanDay.day, ascending=False)
        .limit(limit)
        .offset(offset)
    )
    return page_of([ScanDay(day=r["day"], scans=r["scans"]) for r in rows], total=total, limit=limit, offset=offset)


class PublicPlace(msgspec.Struct, frozen=True, kw_only=True):
    """What anyone who scans a code may see: the place, never a person."""

    code: str
    site_id: UUID
    place_id: UUID
    kind: str
    name: str
    site_name: str
    building: str | None
    floor: str | None
    directions: str
    description: str
    opening_hours: Hours | None
    open_now: bool | None
    bookable_resource_id: UUID | None
    asset_id: UUID | None


async def resolve_code(code: str) -> tuple[str, dict[str, Any] | None]:
    """("active" | "revoked" | "unknown", the code's row)."""
    if len(code) != CODE_LENGTH or any(ch not in CODE_ALPHABET for ch in code):
        return "unknown", None
    row = await PlaceCode.select().where(PlaceCode.code == code).first()
    if row is None:
        return "unknown", None
    place = await Place.select(Place.is_active).where(Place.id == row["place"]).first()
    if row["status"] != "active" or place is None or not place["is_active"]:
        return "revoked", row
    return "active", row


def open_at(hours: Hours | None, moment: dt.datetime) -> bool | None:
    if hours is None:
        return None
    hhmm = moment.strftime("%H:%M")
    return any(start <= hhmm < end for start, end in hours.get(str(moment.weekday()), []))


async def public_place(code_row: dict[str, Any], now: dt.datetime | None = None) -> PublicPlace:
    from schema.tables import Site

    now = now or now_utc()
    row = await Place.select().where(Place.id == code_row["place"]).first()
    assert row is not None
    site = await Site.select(Site.name, Site.timezone).where(Site.id == row["site"]).first()
    tower = (
        await Building.select(Building.name).where(Building.id == row["building"]).first() if row["building"] else None
    )
    hours = as_dict(row["opening_hours"]) if row["opening_hours"] not in (None, "null") else None
    zone = await site_zone(row["site"])
    bookable = row["resource"]
    if bookable is not None and not await Resource.exists().where(
        (Resource.id == bookable) & Resource.is_active.eq(True)
    ):
        bookable = None
    return PublicPlace(
        code=code_row["code"],
        site_id=row["site"],
        place_id=row["id"],
        kind=row["kind"],
        name=row["name"],
        site_name=str((site or {}).get("name") or ""),
        building=tower["name"] if tower else None,
        floor=row["floor"],
        directions=row["directions"],
        description=row["description"],
        opening_hours=hours,
        open_now=open_at(hours, now.astimezone(zone)),
        bookable_resource_id=bookable,
        asset_id=row["asset"],
    )
