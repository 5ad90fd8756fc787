"""Creating people with their roles, contact points, unit links and skills.

Shared by the occupant listing, the importer, the demo seed and the tests, so that a
person is always written the same way (contact values encrypted via the directory).
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import msgspec
from piccolo.table import Table

from app.auth.roles import Role
from app.db import current_engine, refresh_statistics
from app.people.directory import ContactKind, ContactLabel, Directory
from schema.tables import ContactPoint, Occupancy, Person, PersonRole, TechnicianSkill, Vehicle

OccupancyRelation = str  # owner | tenant | allottee | family
_CHUNK = 500  # rows per INSERT: well under SQLite's bound-parameter limit
RELATIONS = frozenset({"owner", "tenant", "allottee", "family"})
# People created at once from which the planner's statistics are read again (app.db.refresh_statistics):
# an import of a tower or a township, not the one person added at the desk.
REFRESH_STATISTICS_FROM = 1000
PEOPLE_TABLES: tuple[type[Table], ...] = (Person, PersonRole, TechnicianSkill, Occupancy, ContactPoint, Vehicle)


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


def person_rows(directory: Directory, site_id: UUID, new: NewPerson) -> tuple[Person, list[Table], list[Table]]:
    """Unsaved rows for one person: the person, its plain dependants, and its encrypted dependants."""
    person = Person(site=site_id, full_name=new.full_name, password_hash=new.password_hash)
    plain: list[Table] = [PersonRole(site=site_id, person=person.id, role=str(role)) for role in sorted(new.roles)]
    plain += [TechnicianSkill(site=site_id, person=person.id, skill=skill) for skill in new.skills]
    plain += [
        Occupancy(site=site_id, person=person.id, unit=link.unit_id, relation=link.relation) for link in new.unit_links
    ]
    personal: list[Table] = []
    contacts: tuple[tuple[ContactKind, ContactLabel, str | None], ...] = (
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
                    value=value,
                )
            )
    personal += [directory.vehicle_row(site_id=site_id, person_id=person.id, plate=plate) for plate in new.plates]
    return person, plain, personal


async def create_people(directory: Directory, site_id: UUID, people: Sequence[NewPerson]) -> list[UUID]:
    """Insert many people in bulk (a few INSERTs per table, not per person)."""
    persons: list[Person] = []
    dependants: dict[type[Table], list[Table]] = {}
    for new in people:
        person, plain, personal = person_rows(directory, site_id, new)
        persons.append(person)
        for row in [*plain, *personal]:
            dependants.setdefault(type(row), []).append(row)
    for start in range(0, len(persons), _CHUNK):
        await Person.insert(*persons[start : start + _CHUNK])
    for table, rows in dependants.items():
        for start in range(0, len(rows), _CHUNK):
            await table.insert(*rows[start : start + _CHUNK])
    if not current_engine().transaction_exists():
        # Inside a caller's transaction the rows are not committed yet (and on SQLite another connection's
        # ANALYZE would wait for that transaction's write lock): the caller refreshes after its commit, as
        # the occupant import does.
        await refresh_people_statistics(len(persons))
    return [p.id for p in persons]


async def refresh_people_statistics(created: int) -> None:
    """After ``created`` people were committed: from REFRESH_STATISTICS_FROM up, the planner's statistics of
    the people tables are read again, so that the notification pipeline's reads of a batch of them are
    planned by person, not by site."""
    if created >= REFRESH_STATISTICS_FROM:
        await refresh_statistics([table._meta.tablename for table in PEOPLE_TABLES])


async def create_person(directory: Directory, site_id: UUID, new: NewPerson) -> UUID:
    return (await create_people(directory, site_id, [new]))[0]
