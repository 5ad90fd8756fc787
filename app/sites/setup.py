"""Setting up a site through the API (platform admins): its buildings, units, staff and first admin.

A platform admin works at platform scope: the site is named in the path, and every row written
here belongs to that site. Occupants come through the occupant listing and its import
(``app/occupants``); this module writes only the frame of a site and the people who run it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Final, Literal
from uuid import UUID

import msgspec

from app.auth.passwords import hash_password
from app.auth.roles import Role
from app.errors import Conflict, FieldError, InvalidInput, NotFound
from app.people.directory import Directory
from app.people.normalise import normalise_email, normalise_phone
from app.people.service import NewPerson, create_person
from app.sites.service import BuildingView, UnitView
from app.text import ONE_LINE
from schema.tables import Building, Site, Unit

StaffRole = Literal["guard", "technician", "fm_admin", "site_admin"]
UnitKind = Literal["residential", "commercial", "common"]
MAX_UNITS_PER_CALL: Final = 2000
_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,15}$")
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ./-]{0,31}$")
_SKILL = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


class NewBuilding(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    code: Annotated[str, msgspec.Meta(min_length=1, max_length=16), ONE_LINE]
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100), ONE_LINE]


class NewUnit(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    building_id: UUID
    label: Annotated[str, msgspec.Meta(min_length=1, max_length=32), ONE_LINE]
    floor: Annotated[int, msgspec.Meta(ge=-10, le=300)] = 0
    kind: UnitKind = "residential"


class NewUnits(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    units: Annotated[list[NewUnit], msgspec.Meta(min_length=1, max_length=MAX_UNITS_PER_CALL)]


class NewStaff(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    full_name: Annotated[str, msgspec.Meta(min_length=1, max_length=200), ONE_LINE]
    # The login name. Unique within the site.
    email: Annotated[str, msgspec.Meta(min_length=3, max_length=254)]
    roles: Annotated[list[StaffRole], msgspec.Meta(min_length=1, max_length=4)]
    # The first password; the person changes it after signing in.
    password: Annotated[str, msgspec.Meta(min_length=12, max_length=200)]
    mobile: Annotated[str, msgspec.Meta(max_length=32)] | None = None
    # Technicians only: what complaints they can be assigned (e.g. "plumbing").
    skills: Annotated[list[str], msgspec.Meta(max_length=32)] = msgspec.field(default_factory=list)


class StaffView(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    site_id: UUID
    full_name: str
    roles: list[str]
    skills: list[str]


class UnitsCreated(msgspec.Struct, frozen=True, kw_only=True):
    items: list[UnitView]
    total: int


async def _site(site_id: UUID) -> dict[str, object]:
    row = await Site.select(Site.id, Site.country_code).where(Site.id == site_id).first()
    if row is None:
        raise NotFound("site not found")
    return row


async def add_building(site_id: UUID, data: NewBuilding) -> BuildingView:
    await _site(site_id)
    if not _CODE.match(data.code):
        raise InvalidInput.for_field("code", "use letters, digits and hyphens (up to 16)")
    if await Building.exists().where((Building.site == site_id) & (Building.code == data.code)):
        raise Conflict(
            f"code: this site already has a building '{data.code}'",
            errors=[FieldError(field="code", message="already used on this site", source="body")],
        )
    building = Building(site=site_id, code=data.code, name=data.name.strip())
    await building.save()
    return BuildingView(id=building.id, code=building.code, name=building.name)


def _unit_problem(index: int, field: str, message: str) -> InvalidInput:
    name = f"units[{index}].{field}"
    return InvalidInput(f"{name}: {message}", errors=[FieldError(field=name, message=message, source="body")])


async def add_units(site_id: UUID, data: NewUnits) -> UnitsCreated:
    """All or nothing: one bad unit refuses the call, naming it (``units[i].field``)."""
    await _site(site_id)
    buildings = {row["id"] for row in await Building.select(Building.id).where(Building.site == site_id)}
    seen: dict[str, int] = {}
    for index, unit in enumerate(data.units):
        if unit.building_id not in buildings:
            raise _unit_problem(index, "building_id", "is not a building of this site")
        if not _LABEL.match(unit.label):
            raise _unit_problem(index, "label", "use letters, digits, spaces, '.', '/' and '-'")
        key = unit.label.strip().upper()
        if key in seen:
            raise _unit_problem(index, "label", f"repeats units[{seen[key]}].label")
        seen[key] = index
    labels = [unit.label.strip() for unit in data.units]
    taken = {
        str(row["label"]).upper()
        for start in range(0, len(labels), 500)
        for row in await Unit.select(Unit.label).where(
            (Unit.site == site_id) & Unit.label.is_in(labels[start : start + 500])
        )
    }
    for index, label in enumerate(labels):
        if label.upper() in taken:
            name = f"units[{index}].label"
            raise Conflict(
                f"{name}: this site already has a unit '{label}'",
                errors=[FieldError(field=name, message="already used on this site", source="body")],
            )
    rows = [
        Unit(site=site_id, building=unit.building_id, label=label, floor=unit.floor, kind=unit.kind)
        for unit, label in zip(data.units, labels, strict=True)
    ]
    for start in range(0, len(rows), 500):
        await Unit.insert(*rows[start : start + 500])
    items = [
        UnitView(id=row.id, label=row.label, building_id=row.building, floor=row.floor, kind=row.kind) for row in rows
    ]
    return UnitsCreated(items=items, total=len(items))


def _skills(data: NewStaff) -> Sequence[str]:
    skills = sorted({s.strip().lower() for s in data.skills})
    if skills and "technician" not in data.roles:
        raise InvalidInput.for_field("skills", "only technicians have skills")
    for skill in skills:
        if not _SKILL.match(skill):
            raise InvalidInput.for_field("skills", f"'{skill}': use lower-case letters, digits, '_' and '-'")
    return skills


async def add_staff(directory: Directory, site_id: UUID, data: NewStaff) -> StaffView:
    """A guard, technician, FM admin or site admin (the site's first admin is one of these)."""
    site = await _site(site_id)
    try:
        email = normalise_email(data.email)
    except ValueError as exc:
        raise InvalidInput.for_field("email", str(exc)) from None
    mobile = None
    if data.mobile:
        try:
            mobile = normalise_phone(data.mobile, str(site["country_code"]))
        except ValueError as exc:
            raise InvalidInput.for_field("mobile", str(exc)) from None
    skills = _skills(data)
    if not data.full_name.strip():
        raise InvalidInput.for_field("full_name", "must not be blank")
    if await directory.find_by_contact("email", email, site_id):
        raise Conflict(
            "email: someone on this site already signs in with this email",
            errors=[FieldError(field="email", message="already used on this site", source="body")],
        )
    roles = frozenset(Role(r) for r in data.roles)
    person_id = await create_person(
        directory,
        site_id,
        NewPerson(
            full_name=data.full_name.strip(),
            roles=roles,
            email=email,
            primary_mobile=mobile,
            password_hash=hash_password(data.password),
            skills=skills,
        ),
    )
    return StaffView(
        id=person_id, site_id=site_id, full_name=data.full_name.strip(), roles=sorted(roles), skills=list(skills)
    )
