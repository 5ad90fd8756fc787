"""Personal data this module holds: registered with `app.privacy.registry`.

The core tables: the person, their roles and skills, unit links, contact points, vehicles,
app devices (push tokens) and login sessions (refresh tokens). ``profile`` is registered first,
so the erasure engine (which erases sections in reverse order of registration) deletes the
person row last, after every other module has removed what refers to it.
"""

from __future__ import annotations

import contextlib
from typing import Any

from app.privacy.registry import ErasureOutcome, PersonalDataSection, PersonScope, register_section
from schema.tables import ContactPoint, Device, Occupancy, Person, PersonRole, RefreshToken, TechnicianSkill, Vehicle

ERASED_NAME = "Erased person"


def _mine(table: Any, scope: PersonScope) -> Any:
    return (table.site == scope.site_id) & (table.person == scope.person_id)


async def _export_profile(scope: PersonScope) -> list[dict[str, Any]]:
    rows = await Person.select(
        Person.id,
        Person.full_name,
        Person.is_active,
        Person.timezone,
        Person.locale,
        Person.created_at,
        Person.updated_at,
        Person.deactivated_at,
    ).where((Person.site == scope.site_id) & (Person.id == scope.person_id))
    return list(rows)


async def _erase_profile(scope: PersonScope) -> ErasureOutcome:
    condition = (Person.site == scope.site_id) & (Person.id == scope.person_id)
    if not await Person.exists().where(condition):
        return ErasureOutcome(erased=0)
    # First make the row say nothing, so that if a legal hold elsewhere keeps a reference to it
    # (a restrict foreign key), what remains is anonymous; then delete it.
    await Person.update(
        {Person.full_name: ERASED_NAME, Person.password_hash: None, Person.is_active: False, Person.timezone: None}
    ).where(condition)
    with contextlib.suppress(Exception):
        await Person.delete().where(condition)
        return ErasureOutcome(erased=1)
    return ErasureOutcome(erased=1, held=["the person row is kept, anonymised, because another record refers to it"])


async def _export_roles(scope: PersonScope) -> list[dict[str, Any]]:
    roles = await PersonRole.select(PersonRole.role).where(_mine(PersonRole, scope))
    skills = await TechnicianSkill.select(TechnicianSkill.skill).where(_mine(TechnicianSkill, scope))
    return [{"kind": "role", "value": r["role"]} for r in roles] + [
        {"kind": "skill", "value": s["skill"]} for s in skills
    ]


async def _erase_roles(scope: PersonScope) -> ErasureOutcome:
    roles = await PersonRole.delete().where(_mine(PersonRole, scope)).returning(PersonRole.id)
    skills = await TechnicianSkill.delete().where(_mine(TechnicianSkill, scope)).returning(TechnicianSkill.id)
    return ErasureOutcome(erased=len(roles) + len(skills))


async def _export_units(scope: PersonScope) -> list[dict[str, Any]]:
    rows = await Occupancy.select(
        Occupancy.unit.as_alias("unit_id"),
        Occupancy.unit.label.as_alias("unit_label"),
        Occupancy.relation,
        Occupancy.is_active,
        Occupancy.started_on,
        Occupancy.ended_on,
    ).where(_mine(Occupancy, scope))
    return list(rows)


async def _erase_units(scope: PersonScope) -> ErasureOutcome:
    deleted = await Occupancy.delete().where(_mine(Occupancy, scope)).returning(Occupancy.id)
    return ErasureOutcome(erased=len(deleted))


async def _export_contacts(scope: PersonScope) -> list[dict[str, Any]]:
    rows = await scope.directory.contact_point_rows(scope.site_id, scope.person_id)
    return [{k: v for k, v in row.items() if k != "value_index"} for row in rows]


async def _erase_contacts(scope: PersonScope) -> ErasureOutcome:
    deleted = await ContactPoint.delete().where(_mine(ContactPoint, scope)).returning(ContactPoint.id)
    return ErasureOutcome(erased=len(deleted))


async def _export_vehicles(scope: PersonScope) -> list[dict[str, Any]]:
    rows = await scope.directory.vehicle_rows(scope.site_id, scope.person_id)
    return [{k: v for k, v in row.items() if k != "plate_index"} for row in rows]


async def _erase_vehicles(scope: PersonScope) -> ErasureOutcome:
    deleted = await Vehicle.delete().where(_mine(Vehicle, scope)).returning(Vehicle.id)
    return ErasureOutcome(erased=len(deleted))


async def _export_devices(scope: PersonScope) -> list[dict[str, Any]]:
    rows = await Device.select(
        Device.id, Device.platform, Device.push_token, Device.last_seen_at, Device.created_at
    ).where(_mine(Device, scope))
    return list(rows)


async def _erase_devices(scope: PersonScope) -> ErasureOutcome:
    # The push token is the provider-side handle: once deleted here nothing can reach the device,
    # and FCM expires registrations that are never used.
    deleted = await Device.delete().where(_mine(Device, scope)).returning(Device.id)
    return ErasureOutcome(erased=len(deleted))


async def _export_sessions(scope: PersonScope) -> list[dict[str, Any]]:
    rows = await RefreshToken.select(
        RefreshToken.id,
        RefreshToken.family_id,
        RefreshToken.created_at,
        RefreshToken.expires_at,
        RefreshToken.used_at,
        RefreshToken.revoked_at,
    ).where(_mine(RefreshToken, scope))
    return list(rows)


async def _erase_sessions(scope: PersonScope) -> ErasureOutcome:
    deleted = await RefreshToken.delete().where(_mine(RefreshToken, scope)).returning(RefreshToken.id)
    return ErasureOutcome(erased=len(deleted))


PROFILE = register_section(
    PersonalDataSection(
        name="profile",
        description="Your name, language, timezone, and when your account was created, changed or deactivated.",
        export=_export_profile,
        erase=_erase_profile,
    )
)
ROLES = register_section(
    PersonalDataSection(
        name="roles",
        description="Your roles on the site (occupant, guard, ...) and, for technicians, your skills.",
        export=_export_roles,
        erase=_erase_roles,
    )
)
UNITS = register_section(
    PersonalDataSection(
        name="units",
        description="The units you are linked to, as owner, tenant, allottee or family, with dates.",
        export=_export_units,
        erase=_erase_units,
    )
)
CONTACT_POINTS = register_section(
    PersonalDataSection(
        name="contact_points",
        description="Your mobile numbers and email address (stored encrypted), and whether providers accept them.",
        export=_export_contacts,
        erase=_erase_contacts,
    )
)
VEHICLES = register_section(
    PersonalDataSection(
        name="vehicles",
        description="Your vehicles' registration plates (stored encrypted) and their kind.",
        export=_export_vehicles,
        erase=_erase_vehicles,
    )
)
DEVICES = register_section(
    PersonalDataSection(
        name="devices",
        description="The app installations that receive push notifications for you, with their push tokens.",
        export=_export_devices,
        erase=_erase_devices,
    )
)
SESSIONS = register_section(
    PersonalDataSection(
        name="sessions",
        description="Your login sessions (refresh tokens are stored only as hashes, which are not exported).",
        export=_export_sessions,
        erase=_erase_sessions,
    )
)
