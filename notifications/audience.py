"""Who an announcement is for: the whole site, towers, units, roles or a list of people."""

from __future__ import annotations

from uuid import UUID

import msgspec

from app.auth.roles import Role
from schema.tables import Occupancy, Person, PersonRole, Unit


class Audience(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """The union of every selector given; `everyone` means every active person of the site."""

    everyone: bool = False
    building_ids: list[UUID] = msgspec.field(default_factory=list)
    unit_ids: list[UUID] = msgspec.field(default_factory=list)
    roles: list[Role] = msgspec.field(default_factory=list)
    person_ids: list[UUID] = msgspec.field(default_factory=list)

    def is_empty(self) -> bool:
        return not (self.everyone or self.building_ids or self.unit_ids or self.roles or self.person_ids)


async def resolve_audience(site_id: UUID, audience: Audience) -> list[UUID]:
    """Active people of the site in the audience, sorted, so expansion can resume by position."""
    active = {
        row["id"]
        for row in await Person.select(Person.id).where((Person.site == site_id) & (Person.is_active.eq(True)))
    }
    if audience.everyone:
        return sorted(active, key=str)
    chosen: set[UUID] = set(audience.person_ids)
    unit_ids = set(audience.unit_ids)
    if audience.building_ids:
        rows = await Unit.select(Unit.id).where((Unit.site == site_id) & Unit.building.is_in(audience.building_ids))
        unit_ids |= {row["id"] for row in rows}
    if unit_ids:
        rows = await Occupancy.select(Occupancy.person).where(
            (Occupancy.site == site_id) & Occupancy.unit.is_in(list(unit_ids)) & (Occupancy.is_active.eq(True))
        )
        chosen |= {row["person"] for row in rows}
    if audience.roles:
        rows = await PersonRole.select(PersonRole.person).where(
            (PersonRole.site == site_id) & PersonRole.role.is_in([str(r) for r in audience.roles])
        )
        chosen |= {row["person"] for row in rows}
    return sorted(chosen & active, key=str)
