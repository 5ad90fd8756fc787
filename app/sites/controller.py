"""Routes for the caller's site, its units, and platform-level site management.

Platform admins work at platform scope: ``/api/platform/sites/{site_id}/...`` names the site
being set up (its buildings, units, staff and first admin; ``app.sites.setup``)."""

from __future__ import annotations

import re
from typing import Annotated
from uuid import UUID
from zoneinfo import available_timezones

import msgspec
from litestar import Controller, get, post
from litestar.params import FromPath, FromQuery, JSONBody

from app.auth.roles import ALL_ROLES, STAFF, Role, allow
from app.deps import Caller, DirectoryDep
from app.errors import InvalidInput
from app.pagination import DEFAULT_LIMIT, Limit, Offset
from app.sites import service, setup
from app.text import ONE_LINE

UNIT_READERS = allow(*STAFF, Role.GUARD, Role.TECHNICIAN)
PLATFORM = allow(Role.PLATFORM_ADMIN)
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")


class CreateSite(msgspec.Struct, frozen=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200), ONE_LINE]
    slug: Annotated[str, msgspec.Meta(min_length=2, max_length=64)]
    timezone: str = "Asia/Kolkata"
    country_code: Annotated[str, msgspec.Meta(min_length=2, max_length=2)] = "IN"


class Created(msgspec.Struct, frozen=True):
    id: UUID


class SiteController(Controller):
    tags = ["sites"]

    @get("/api/site", opt=allow(*ALL_ROLES))
    async def my_site(self, principal: Caller) -> service.SiteView:
        return await service.get_site(principal.site_id)

    @get("/api/units", opt=UNIT_READERS)
    async def units(
        self,
        principal: Caller,
        building_id: FromQuery[UUID | None] = None,
        q: FromQuery[str | None] = None,
        limit: Limit = DEFAULT_LIMIT,
        offset: Offset = 0,
    ) -> service.UnitPage:
        return await service.list_units(principal.site_id, building_id=building_id, q=q, limit=limit, offset=offset)

    @get("/api/units/{unit_id:uuid}", opt=UNIT_READERS)
    async def unit(self, principal: Caller, unit_id: FromPath[UUID]) -> service.UnitView:
        return await service.get_unit(principal.site_id, unit_id)

    @post("/api/platform/sites", opt=PLATFORM)
    async def create_site(self, data: JSONBody[CreateSite]) -> Created:
        if not _SLUG.match(data.slug):
            raise InvalidInput.for_field("slug", "use lower-case letters, digits and hyphens")
        if data.timezone not in available_timezones():
            raise InvalidInput.for_field("timezone", f"unknown IANA timezone '{data.timezone}'")
        site_id = await service.create_site(
            name=data.name, slug=data.slug, timezone=data.timezone, country_code=data.country_code.upper()
        )
        return Created(id=site_id)

    @get("/api/platform/sites/{site_id:uuid}", opt=PLATFORM)
    async def platform_site(self, site_id: FromPath[UUID]) -> service.SiteView:
        return await service.get_site(site_id)

    @post("/api/platform/sites/{site_id:uuid}/buildings", opt=PLATFORM)
    async def add_building(self, site_id: FromPath[UUID], data: JSONBody[setup.NewBuilding]) -> service.BuildingView:
        return await setup.add_building(site_id, data)

    @post("/api/platform/sites/{site_id:uuid}/units", opt=PLATFORM)
    async def add_units(self, site_id: FromPath[UUID], data: JSONBody[setup.NewUnits]) -> setup.UnitsCreated:
        """Up to 2000 units in one call, all or nothing; a bad one is named as units[i].field."""
        return await setup.add_units(site_id, data)

    @post("/api/platform/sites/{site_id:uuid}/staff", opt=PLATFORM)
    async def add_staff(
        self, site_id: FromPath[UUID], directory: DirectoryDep, data: JSONBody[setup.NewStaff]
    ) -> setup.StaffView:
        """Guards, technicians, FM admins and site admins (the first admin is a site_admin made here)."""
        return await setup.add_staff(directory, site_id, data)
