"""Creating people with their roles, contact points, unit links and skills.

Shared by the occupant listing, the importer, the demo seed and the tests, so that a
person is always written the same way (contact values encrypted via the directory).
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import msgspec

from app.auth.roles import Role
from app.people.directory import Directory
from schema.tables import Occupancy, Person, PersonRole, TechnicianSkill

OccupancyRelation = str  # owner | tenant | allottee | family
RELATIONS = frozenset({"owner", "tenant", "allottee", "family"})


class UnitLink(msgspec.Struct, frozen=True):
    unit_id: UUID
    relation: str


class NewPerson(msgspec.Struct, frozen=True, kw_only=True):
    full_name: str
    roles: frozenset[Role]
    primary_mobile: str | None = None  # E.164, already normalised
    secondary_mobile: str | None = None
    email: str | None = None  # already normalised
    password_hash: str | None = None
    unit_links: Sequence[UnitLink] = ()
    skills: Sequence[str] = ()
    plates: Sequence[str] = ()


def person_rows(
    directory: Directory, site_id: UUID, new: NewPerson
) -> tuple[Person, list[PersonRole | TechnicianSkill | Occupancy], list[object]]:
    """Unsaved rows for one person: the person, its plain dependants, and its encrypted dependants."""
    person = Person(site=site_id, full_name=new.full_name, password_hash=new.password_hash)
    plain: list[PersonRole | TechnicianSkill | Occupancy] = [
        PersonRole(site=site_id, person=person.id, role=str(role)) for role in sorted(new.roles)
    ]
    plain += [TechnicianSkill(site=site_id, person=person.id, skill=skill) for skill in new.skills]
    plain += [
        Occupancy(site=site_id, person=person.id, unit=link.unit_id, relation=link.relation) for link in new.unit_links
    ]
    personal: list[object] = []
    contacts = (
        ("mobile", "primary", new.primary_mobile),
        ("mobile", "secondary", new.secondary_mobile),
        ("email", "primary", new.email),
    )
    for kind, label, value in contacts:
        if value:
            personal.append(
                directory.contact_point_row(
                    site_id=site_id,
                    person_id=person.id,
                    kind=kind,
                    label=label,
                    value=value,  # type: ignore[arg-type]
                )
            )
    personal += [directory.vehicle_row(site_id=site_id, person_id=person.id, plate=plate) for plate in new.plates]
    return person, plain, personal


async def create_people(directory: Directory, site_id: UUID, people: Sequence[NewPerson]) -> list[UUID]:
    """Insert many people in bulk (a few INSERTs per table, not per person)."""
    persons: list[Person] = []
    dependants: dict[type, list[object]] = {}
    for new in people:
        person, plain, personal = person_rows(directory, site_id, new)
        persons.append(person)
        for row in [*plain, *personal]:
            dependants.setdefault(type(row), []).append(row)
    for chunk in _chunks(persons):
        await Person.insert(*chunk)
    for table, rows in dependants.items():
        for chunk in _chunks(rows):
            await table.insert(*chunk)  # type: ignore[attr-defined]
    return [p.id for p in persons]


async def create_person(directory: Directory, site_id: UUID, new: NewPerson) -> UUID:
    return (await create_people(directory, site_id, [new]))[0]


def _chunks(rows: Sequence[object], size: int = 500) -> list[Sequence[object]]:
    return [rows[i : i + size] for i in range(0, len(rows), size)]
