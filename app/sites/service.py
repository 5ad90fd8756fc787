"""Sites, buildings and units: reads scoped to the caller's site, and site creation."""

from __future__ import annotations

from uuid import UUID

import msgspec
from piccolo.columns.combination import Combinable

from app.errors import Conflict, NotFound
from app.text import contains
from schema.tables import Building, Site, Unit


class BuildingView(msgspec.Struct, frozen=True):
    id: UUID
    code: str
    name: str


class SiteView(msgspec.Struct, frozen=True):
    id: UUID
    name: str
    slug: str
    timezone: str
    country_code: str
    buildings: list[BuildingView]
    unit_count: int


class UnitView(msgspec.Struct, frozen=True):
    id: UUID
    label: str
    building_id: UUID
    floor: int
    kind: str


class UnitPage(msgspec.Struct, frozen=True):
    items: list[UnitView]
    total: int
    limit: int
    offset: int


async def get_site(site_id: UUID) -> SiteView:
    site = await Site.select().where(Site.id == site_id).first()
    if site is None:
        raise NotFound("site not found")
    buildings = await Building.select(Building.id, Building.code, Building.name).where(Building.site == site_id)
    return SiteView(
        id=site["id"],
        name=site["name"],
        slug=site["slug"],
        timezone=site["timezone"],
        country_code=site["country_code"],
        buildings=[BuildingView(**b) for b in sorted(buildings, key=lambda b: b["code"])],
        unit_count=await Unit.count().where(Unit.site == site_id),
    )


def _unit_view(row: dict[str, object]) -> UnitView:
    return msgspec.convert(
        {
            "id": row["id"],
            "label": row["label"],
            "building_id": row["building"],
            "floor": row["floor"],
            "kind": row["kind"],
        },
        UnitView,
    )


async def list_units(site_id: UUID, *, building_id: UUID | None, q: str | None, limit: int, offset: int) -> UnitPage:
    condition: Combinable = Unit.site == site_id
    if building_id is not None:
        condition &= Unit.building == building_id
    if q:
        condition &= contains(Unit.label, q.strip())
    rows = await Unit.select().where(condition).order_by(Unit.label).limit(limit).offset(offset)
    total = await Unit.count().where(condition)
    return UnitPage(items=[_unit_view(r) for r in rows], total=total, limit=limit, offset=offset)


async def get_unit(site_id: UUID, unit_id: UUID) -> UnitView:
    row = await Unit.select().where((Unit.site == site_id) & (Unit.id == unit_id)).first()
    if row is None:
        raise NotFound("unit not found")
    return _unit_view(row)


async def create_site(*, name: str, slug: str, timezone: str, country_code: str) -> UUID:
    if await Site.exists().where(Site.slug == slug):
        raise Conflict(f"a site with slug '{slug}' exists")
    site = Site(name=name, slug=slug, timezone=timezone, country_code=country_code)
    await site.save()
    return site.id
