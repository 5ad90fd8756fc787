"""A small, fresh site per test: every test gets its own, so no test sees another's rows."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from uuid import UUID

from app.auth.passwords import hash_password
from app.auth.roles import Role
from app.auth.tokens import issue_access_token
from app.config import Settings
from app.people.directory import directory_for
from app.people.service import NewPerson, UnitLink, create_person
from schema.tables import Building, Site, Unit

PASSWORD = "correct horse battery staple"
_PASSWORD_HASH: list[str] = []


def password_hash() -> str:
    if not _PASSWORD_HASH:
        _PASSWORD_HASH.append(hash_password(PASSWORD))
    return _PASSWORD_HASH[0]


@dataclass
class World:
    settings: Settings
    site_id: UUID
    slug: str
    building_ids: list[UUID]
    unit_ids: list[UUID]
    people: dict[str, UUID] = field(default_factory=dict)
    roles: dict[str, frozenset[Role]] = field(default_factory=dict)
    emails: dict[str, str] = field(default_factory=dict)

    def token(self, name: str) -> str:
        token, _ = issue_access_token(
            self.settings, person_id=self.people[name], site_id=self.site_id, roles=self.roles[name]
        )
        return token

    def headers(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(name)}"}

    async def add_person(
        self,
        name: str,
        roles: frozenset[Role],
        *,
        units: list[tuple[UUID, str]] | None = None,
        skills: tuple[str, ...] = (),
        mobile: str | None = None,
    ) -> UUID:
        email = f"{name}.{self.slug}@example.test"
        person_id = await create_person(
            directory_for(self.settings),
            self.site_id,
            NewPerson(
                full_name=name.replace("_", " ").title(),
                roles=roles,
                email=email,
                primary_mobile=mobile,
                password_hash=password_hash(),
                unit_links=[UnitLink(unit_id=u, relation=r) for u, r in (units or [])],
                skills=skills,
            ),
        )
        self.people[name] = person_id
        self.roles[name] = roles
        self.emails[name] = email
        return person_id


async def build_world(settings: Settings, units_per_building: int = 4) -> World:
    slug = f"site-{secrets.token_hex(4)}"
    site = Site(name=f"Test {slug}", slug=slug)
    await site.save()
    building_ids, unit_ids = [], []
    for code in ("A", "B"):
        building = Building(site=site.id, code=code, name=f"Tower {code}")
        await building.save()
        building_ids.append(building.id)
        for number in range(1, units_per_building + 1):
            unit = Unit(site=site.id, building=building.id, label=f"{code}-{100 + number}", floor=1)
            await unit.save()
            unit_ids.append(unit.id)
    world = World(settings=settings, site_id=site.id, slug=slug, building_ids=building_ids, unit_ids=unit_ids)
    await world.add_person("occupant", frozenset({Role.OCCUPANT}), units=[(unit_ids[0], "owner")])
    await world.add_person("guard", frozenset({Role.GUARD}))
    await world.add_person("technician", frozenset({Role.TECHNICIAN}), skills=("plumbing",))
    await world.add_person("fm_admin", frozenset({Role.FM_ADMIN}))
    await world.add_person("site_admin", frozenset({Role.SITE_ADMIN}))
    await world.add_person("platform_admin", frozenset({Role.PLATFORM_ADMIN}))
    return world
