"""Who should do the work: the least-loaded technician with the skill, on shift, at the site.

Load is the number of complaints a technician holds in ``assigned``, ``in_progress``,
``on_hold`` or ``reopened``. Shifts are in the site's timezone; a shift whose end is before
its start runs past midnight. Ties are broken by name, then id, so the choice is repeatable.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from app.auth.roles import Role
from app.complaints.lifecycle import LOAD
from schema.complaints import Complaint, TechnicianShift
from schema.tables import Person, PersonRole, Site, TechnicianSkill


@dataclass(frozen=True, slots=True)
class Candidate:
    person_id: UUID
    name: str
    load: int


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def on_shift(shifts: list[dict[str, Any]], local: dt.datetime) -> bool:
    """Whether any of these shifts (weekday, start, end) covers the local time ``local``."""
    weekday = local.weekday()
    minute = local.hour * 60 + local.minute
    for shift in shifts:
        start, end = _minutes(shift["start"]), _minutes(shift["end"])
        if start < end:
            if shift["weekday"] == weekday and start <= minute < end:
                return True
        else:  # overnight: the evening part on its weekday, the morning part on the next day
            evening = shift["weekday"] == weekday and minute >= start
            morning = shift["weekday"] == (weekday - 1) % 7 and minute < end
            if evening or morning:
                return True
    return False


async def site_timezone(site_id: UUID) -> ZoneInfo:
    row = await Site.select(Site.timezone).where(Site.id == site_id).first()
    return ZoneInfo(row["timezone"] if row else "UTC")


async def technicians(site_id: UUID) -> set[UUID]:
    """Active people of the site with the technician role."""
    rows = await PersonRole.select(PersonRole.person).where(
        (PersonRole.site == site_id) & (PersonRole.role == str(Role.TECHNICIAN))
    )
    ids = [row["person"] for row in rows]
    if not ids:
        return set()
    active = await Person.select(Person.id).where(
        (Person.site == site_id) & Person.id.is_in(ids) & (Person.is_active.eq(True))
    )
    return {row["id"] for row in active}


async def open_loads(site_id: UUID, people: list[UUID]) -> Counter[UUID]:
    if not people:
        return Counter()
    rows = await Complaint.select(Complaint.assignee).where(
        (Complaint.site == site_id) & Complaint.assignee.is_in(people) & Complaint.status.is_in([str(s) for s in LOAD])
    )
    return Counter(row["assignee"] for row in rows)


async def candidates(site_id: UUID, skill: str, now: dt.datetime) -> list[Candidate]:
    """Skilled technicians on shift at ``now``, best first."""
    skilled = {
        row["person"]
        for row in await TechnicianSkill.select(TechnicianSkill.person).where(
            (TechnicianSkill.site == site_id) & (TechnicianSkill.skill == skill)
        )
    } & await technicians(site_id)
    if not skilled:
        return []
    local = now.astimezone(await site_timezone(site_id))
    shifts = await TechnicianShift.select().where(
        (TechnicianShift.site == site_id) & TechnicianShift.technician.is_in(list(skilled))
    )
    by_person: dict[UUID, list[dict[str, Any]]] = {}
    for shift in shifts:
        by_person.setdefault(shift["technician"], []).append(shift)
    available = [person for person, own in by_person.items() if on_shift(own, local)]
    if not available:
        return []
    loads = await open_loads(site_id, available)
    names = {
        row["id"]: row["full_name"]
        for row in await Person.select(Person.id, Person.full_name).where(Person.id.is_in(available))
    }
    ranked = [Candidate(person, names.get(person, ""), loads[person]) for person in available]
    return sorted(ranked, key=lambda c: (c.load, c.name, str(c.person_id)))


async def choose_technician(site_id: UUID, skill: str | None, now: dt.datetime) -> UUID | None:
    if not skill:
        return None
    ranked = await candidates(site_id, skill, now)
    return ranked[0].person_id if ranked else None


async def is_technician_of_site(site_id: UUID, person_id: UUID) -> bool:
    return person_id in await technicians(site_id)
