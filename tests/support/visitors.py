"""Helpers for the visitors tests: passes, walk-ins and test images, made through the services."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any
from uuid import UUID

from PIL import Image

from app.auth.principal import Principal
from app.auth.roles import Role
from app.people.directory import directory_for
from app.visitors.common import VisitorDeps
from app.visitors.passes import NewPass, OneTime, PassCreated, create_pass
from tests.support.world import World


def principal_of(world: World, name: str) -> Principal:
    return Principal(
        person_id=world.people[name], site_id=world.site_id, roles=world.roles[name], token_id="test", expires_at=0
    )


def deps_for(world: World, redis: Any, settings: Any = None) -> VisitorDeps:
    settings = settings or world.settings
    return VisitorDeps(settings=settings, redis=redis, directory=directory_for(settings))


def jpeg(size: tuple[int, int] = (16, 16)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (30, 120, 200)).save(buffer, format="JPEG")
    return buffer.getvalue()


async def one_time_pass(
    world: World,
    redis: Any,
    *,
    start: dt.datetime,
    hours: float = 4,
    unit: UUID | None = None,
    by: str = "occupant",
    **fields: Any,
) -> PassCreated:
    data = NewPass(
        unit_id=unit or world.unit_ids[0],
        kind=fields.pop("kind", "guest"),
        visitor_name=fields.pop("visitor_name", "Asha Guest"),
        one_time=OneTime(valid_from=start, valid_until=start + dt.timedelta(hours=hours)),
        **fields,
    )
    return await create_pass(deps_for(world, redis), principal_of(world, by), data, now=start)


async def add_occupant(world: World, name: str, unit: UUID, mobile: str | None = None) -> UUID:
    return await world.add_person(name, frozenset({Role.OCCUPANT}), units=[(unit, "tenant")], mobile=mobile)
