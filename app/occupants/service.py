"""Occupants of one site: create, read, update, search, unit links, deactivation.

An occupant is a person of the site with the occupant role. Staff accounts are not
occupants: asking for one here is "not found", exactly like a person of another site, so
the FM screens can never edit a guard's phone or leak that an id exists elsewhere.

Functions take their dependencies as arguments so tests call them without HTTP. Changes
are computed as a ``Change`` (``diff`` of the stored ``OccupantState`` against what the
caller wants) and written by ``apply_changes`` in bulk; the API and the importer share it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypeVar, cast
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from piccolo.columns.combination import Combinable
from piccolo.query.methods.select import Select
from redis.asyncio import Redis

from app.auth.roles import Role
from app.auth.service import logout_everywhere
from app.config import Settings
from app.db import is_sqlite, write_transaction
from app.errors import Conflict, FieldError, InvalidInput, NotFound
from app.people.directory import ContactKind, ContactLabel, ContactPointView, Directory, VehicleView
from app.people.normalise import normalise_email, normalise_phone, normalise_plate
from app.people.service import NewPerson, UnitLink, create_people
from app.text import contains, text_error
from schema.tables import Occupancy, Person, PersonRole, Site, Unit

T = TypeVar("T")
Relation = Literal["owner", "tenant", "allottee", "family"]
RELATIONS: tuple[str, ...] = ("owner", "tenant", "allottee", "family")
MAX_PLATES = 10
MAX_UNITS = 20
CHUNK = 500  # ids per IN (...) list: well under SQLite's and asyncpg's bound-parameter limits

Slot = tuple[ContactKind, ContactLabel]
PRIMARY_MOBILE: Slot = ("mobile", "primary")
SECONDARY_MOBILE: Slot = ("mobile", "secondary")
EMAIL: Slot = ("email", "primary")
SLOT_FIELDS: dict[Slot, str] = {PRIMARY_MOBILE: "primary_mobile", SECONDARY_MOBILE: "secondary_mobile", EMAIL: "email"}
# The identifiers that say who a person is: re-import matches on them, and no two people share one.
IDENTIFYING_SLOTS: tuple[Slot, ...] = (PRIMARY_MOBILE, EMAIL)

# Any constant: keeps this advisory lock apart from other modules' locks on the same site.
_PEOPLE_LOCK_NAMESPACE = 0x6F63


# ---------------------------------------------------------------- views and inputs


class UnitLinkView(msgspec.Struct, frozen=True):
    unit_id: UUID
    unit_label: str
    building_id: UUID
    building_code: str
    relation: str
    is_active: bool
    started_on: dt.date | None
    ended_on: dt.date | None


class OccupantView(msgspec.Struct, frozen=True):
    id: UUID
    full_name: str
    is_active: bool
    primary_mobile: str | None
    secondary_mobile: str | None
    email: str | None
    vehicle_plates: list[str]
    units: list[UnitLinkView]
    created_at: dt.datetime
    updated_at: dt.datetime
    deactivated_at: dt.datetime | None


class OccupantPage(msgspec.Struct, frozen=True):
    items: list[OccupantView]
    total: int
    limit: int
    offset: int


FullName = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]  # and clean_name
PhoneText = Annotated[str, msgspec.Meta(max_length=32)]
EmailText = Annotated[str, msgspec.Meta(max_length=254)]
PlateText = Annotated[str, msgspec.Meta(max_length=20)]
Plates = Annotated[list[PlateText], msgspec.Meta(max_length=MAX_PLATES)]


class UnitLinkInput(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    unit_id: UUID
    relation: Relation


class NewOccupant(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    full_name: FullName
    primary_mobile: PhoneText | None = None
    secondary_mobile: PhoneText | None = None
    email: EmailText | None = None
    vehicle_plates: Plates = []
    units: Annotated[list[UnitLinkInput], msgspec.Meta(max_length=MAX_UNITS)] = []


class OccupantChanges(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A partial update: absent fields stay as they are; null removes an optional contact."""

    full_name: FullName | msgspec.UnsetType = msgspec.UNSET
    primary_mobile: PhoneText | msgspec.UnsetType | None = msgspec.UNSET
    secondary_mobile: PhoneText | msgspec.UnsetType | None = msgspec.UNSET
    email: EmailText | msgspec.UnsetType | None = msgspec.UNSET
    vehicle_plates: Plates | msgspec.UnsetType = msgspec.UNSET


class LinkInput(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    # Optional so that re-linking an existing (or ended) link can keep its relation.
    relation: Relation | None = None


class OccupantFilter(msgspec.Struct, frozen=True, kw_only=True):
    q: str | None = None  # part of the name
    unit: str | None = None  # exact unit label
    building_id: UUID | None = None
    relation: Relation | None = None
    active: bool | None = None
    phone: str | None = None  # exact, any of the person's mobiles
    email: str | None = None  # exact


# ---------------------------------------------------------------- value rules (shared with the importer)


def clean_name(raw: str) -> str:
    name = raw.strip()
    if not name:
        raise ValueError("is required")
    if len(name) > 200:
        raise ValueError("is longer than 200 characters")
    # Control characters would break CSV exports, SMS templates and the guard's screen.
    if text_error(name) is not None:
        raise ValueError("must be a single line of text")
    return name


def clean_plates(raws: Iterable[str]) -> frozenset[str]:
    plates = frozenset(normalise_plate(raw) for raw in raws if raw.strip())
    if len(plates) > MAX_PLATES:
        raise ValueError(f"at most {MAX_PLATES} vehicles per occupant")
    return plates


def contact_rule_error(contacts: Mapping[Slot, str | None]) -> tuple[str, str] | None:
    """(field, message) when a person's resulting contact points break a rule, else None."""
    if not (contacts.get(PRIMARY_MOBILE) or contacts.get(EMAIL)):
        # Without either, nobody can reach them and a re-import could not recognise them.
        return "primary_mobile", "give a primary mobile or an email"
    secondary = contacts.get(SECONDARY_MOBILE)
    if secondary and secondary == contacts.get(PRIMARY_MOBILE):
        return "secondary_mobile", "is the same as primary_mobile"
    return None


def _checked(field_name: str, fn: Callable[..., T], *args: object) -> T:
    try:
        return fn(*args)
    except ValueError as exc:
        raise InvalidInput.for_field(field_name, str(exc)) from None


def _optional(field_name: str, fn: Callable[[str], str], raw: str | None) -> str | None:
    if raw is None or not raw.strip():
        return None
    return _checked(field_name, fn, raw)


def _query_error(field_name: str, message: str) -> InvalidInput:
    return InvalidInput(
        f"{field_name}: {message}", errors=[FieldError(field=field_name, message=message, source="query")]
    )


# ---------------------------------------------------------------- site context and locking


class SiteContext(msgspec.Struct, frozen=True):
    site_id: UUID
    region: str  # default region for local phone numbers
    timezone: str

    def today(self) -> dt.date:
        """The site's local date: a link ended at 01:00 IST ends 'today' in India, not yesterday in UTC."""
        try:
            zone: dt.tzinfo = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            zone = dt.UTC
        return dt.datetime.now(zone).date()


async def site_context(site_id: UUID) -> SiteContext:
    row = await Site.select(Site.country_code, Site.timezone).where(Site.id == site_id).first()
    if row is None:
        raise NotFound("site not found")
    return SiteContext(site_id=site_id, region=row["country_code"] or "IN", timezone=row["timezone"])


@contextlib.asynccontextmanager
async def people_write_lock(site_id: UUID) -> AsyncIterator[None]:
    """A write transaction during which no other writer changes this site's occupants.

    Matching by phone/email is read-then-write with no unique constraint behind it (the
    blind index column is not unique), so two imports or creates must not interleave.
    SQLite's BEGIN IMMEDIATE already serialises writers; PostgreSQL takes a
    transaction-scoped advisory lock per site.
    """
    async with write_transaction():
        if not is_sqlite():
            key = int.from_bytes(site_id.bytes[:4], "big", signed=True)
            await Person.raw("SELECT pg_advisory_xact_lock({}, {})", _PEOPLE_LOCK_NAMESPACE, key)
        yield


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _chunks(ids: Sequence[T]) -> Iterable[list[T]]:
    for start in range(0, len(ids), CHUNK):
        yield list(ids[start : start + CHUNK])


def _occupant_ids(site_id: UUID) -> Select:
    return PersonRole.select(PersonRole.person).where(
        (PersonRole.site == site_id) & (PersonRole.role == Role.OCCUPANT.value)
    )


def _occupant_scope(site_id: UUID) -> Combinable:
    return (Person.site == site_id) & Person.id.is_in(_occupant_ids(site_id))


# ---------------------------------------------------------------- reading


async def get_occupant(directory: Directory, site_id: UUID, occupant_id: UUID) -> OccupantView:
    found = await Person.select(Person.id).where(_occupant_scope(site_id) & (Person.id == occupant_id)).first()
    if found is None:
        raise NotFound("occupant not found")
    return (await load_views(directory, site_id, [occupant_id]))[0]


async def list_occupants(
    directory: Directory, site_id: UUID, filters: OccupantFilter, *, limit: int, offset: int
) -> OccupantPage:
    site = await site_context(site_id)
    condition = await _search_condition(directory, site, filters)
    if condition is None:
        return OccupantPage(items=[], total=0, limit=limit, offset=offset)
    rows = (
        await Person.select(Person.id)
        .where(condition)
        .order_by(Person.full_name, Person.id)
        .limit(limit)
        .offset(offset)
    )
    total = await Person.count().where(condition)
    items = await load_views(directory, site_id, [row["id"] for row in rows])
    return OccupantPage(items=items, total=total, limit=limit, offset=offset)


async def matching_ids(directory: Directory, site_id: UUID, filters: OccupantFilter) -> list[UUID]:
    """Every matching occupant id in listing order (the export's snapshot of who to write)."""
    site = await site_context(site_id)
    condition = await _search_condition(directory, site, filters)
    if condition is None:
        return []
    rows = await Person.select(Person.id).where(condition).order_by(Person.full_name, Person.id)
    return [row["id"] for row in rows]


async def _search_condition(directory: Directory, site: SiteContext, filters: OccupantFilter) -> Combinable | None:
    """The WHERE clause for a search; None when an exact phone/email matches nobody."""
    condition = _occupant_scope(site.site_id)
    if filters.q and filters.q.strip():
        condition &= contains(Person.full_name, filters.q.strip())
    if filters.active is not None:
        condition &= Person.is_active.eq(filters.active)
    links = _link_condition(site.site_id, filters)
    if links is not None:
        condition &= Person.id.is_in(Occupancy.select(Occupancy.person).where(links))
    for people in await _contact_matches(directory, site, filters):
        if not people:
            return None
        condition &= Person.id.is_in(sorted(people, key=str))
    return condition


def _link_condition(site_id: UUID, filters: OccupantFilter) -> Combinable | None:
    if not (filters.unit or filters.building_id or filters.relation):
        return None
    condition: Combinable = Occupancy.site == site_id
    # Ended links count only when asking for former occupants (active=false).
    if filters.active is not False:
        condition &= Occupancy.is_active.eq(True)
    if filters.unit and filters.unit.strip():
        label = filters.unit.strip()
        units = Unit.select(Unit.id).where((Unit.site == site_id) & Unit.label.is_in(sorted({label, label.upper()})))
        condition &= Occupancy.unit.is_in(units)
    if filters.building_id is not None:
        units = Unit.select(Unit.id).where((Unit.site == site_id) & (Unit.building == filters.building_id))
        condition &= Occupancy.unit.is_in(units)
    if filters.relation:
        condition &= Occupancy.relation == filters.relation
    return condition


async def _contact_matches(directory: Directory, site: SiteContext, filters: OccupantFilter) -> list[set[UUID]]:
    found: list[set[UUID]] = []
    if filters.phone is not None:
        try:
            phone = normalise_phone(filters.phone, site.region)
        except ValueError as exc:
            raise _query_error("phone", str(exc)) from None
        found.append({m.person_id for m in await directory.find_by_contact("mobile", phone, site.site_id)})
    if filters.email is not None:
        try:
            email = normalise_email(filters.email)
        except ValueError as exc:
            raise _query_error("email", str(exc)) from None
        found.append({m.person_id for m in await directory.find_by_contact("email", email, site.site_id)})
    return found


async def load_views(directory: Directory, site_id: UUID, person_ids: Sequence[UUID]) -> list[OccupantView]:
    """Full views of these people, in the given order, with a few queries per 500 people."""
    views: list[OccupantView] = []
    for chunk in _chunks(person_ids):
        people = await Person.select(
            Person.id,
            Person.full_name,
            Person.is_active,
            Person.created_at,
            Person.updated_at,
            Person.deactivated_at,
        ).where((Person.site == site_id) & Person.id.is_in(chunk))
        by_id = {row["id"]: row for row in people}
        contacts = await directory.contact_points_for(site_id, chunk)
        vehicles = await directory.vehicles_for(site_id, chunk)
        links = await _link_views(site_id, chunk)
        views += [
            _view(by_id[pid], contacts.get(pid, []), vehicles.get(pid, []), links.get(pid, []))
            for pid in chunk
            if pid in by_id
        ]
    return views


async def _link_views(site_id: UUID, person_ids: list[UUID]) -> dict[UUID, list[UnitLinkView]]:
    rows = await Occupancy.select(
        Occupancy.person,
        Occupancy.unit,
        Occupancy.relation,
        Occupancy.is_active,
        Occupancy.started_on,
        Occupancy.ended_on,
        Occupancy.unit.label.as_alias("unit_label"),
        Occupancy.unit.building.as_alias("building_id"),
        # Piccolo types a two-hop join as a plain Column; the attribute exists at run time.
        cast(Any, Occupancy.unit.building).code.as_alias("building_code"),
    ).where((Occupancy.site == site_id) & Occupancy.person.is_in(person_ids))
    result: dict[UUID, list[UnitLinkView]] = defaultdict(list)
    for row in rows:
        result[row["person"]].append(
            UnitLinkView(
                unit_id=row["unit"],
                unit_label=row["unit_label"],
                building_id=row["building_id"],
                building_code=row["building_code"],
                relation=row["relation"],
                is_active=row["is_active"],
                started_on=row["started_on"],
                ended_on=row["ended_on"],
            )
        )
    for links in result.values():
        links.sort(key=lambda link: (not link.is_active, link.unit_label))
    return result


def _view(
    person: dict[str, Any],
    contacts: list[ContactPointView],
    vehicles: list[VehicleView],
    links: list[UnitLinkView],
) -> OccupantView:
    values = {(c.kind, c.label): c.value for c in contacts}
    return OccupantView(
        id=person["id"],
        full_name=person["full_name"],
        is_active=person["is_active"],
        primary_mobile=values.get(PRIMARY_MOBILE),
        secondary_mobile=values.get(SECONDARY_MOBILE),
        email=values.get(EMAIL),
        vehicle_plates=sorted(v.plate for v in vehicles),
        units=links,
        created_at=person["created_at"],
        updated_at=person["updated_at"],
        deactivated_at=person["deactivated_at"],
    )


# ---------------------------------------------------------------- stored state, wanted state, and the change between


@dataclass(frozen=True)
class LinkState:
    id: UUID
    relation: str
    is_active: bool


@dataclass
class OccupantState:
    person_id: UUID
    full_name: str
    is_active: bool
    is_occupant: bool
    contacts: dict[Slot, str]
    plates: dict[str, UUID]  # normalised plate -> vehicle id
    links: dict[UUID, LinkState]  # unit id -> link, current or ended

    @property
    def current_links(self) -> dict[UUID, str]:
        return {unit_id: link.relation for unit_id, link in self.links.items() if link.is_active}


@dataclass(frozen=True)
class Desired:
    """What the caller wants; None (or a slot left out of ``contacts``) leaves that part as it is."""

    full_name: str | None = None
    contacts: Mapping[Slot, str | None] = field(default_factory=dict)
    plates: frozenset[str] | None = None
    links: Mapping[UUID, str] | None = None  # the complete set of current links: unit id -> relation


@dataclass
class Change:
    person_id: UUID
    full_name: str | None = None
    contacts: list[tuple[Slot, str | None]] = field(default_factory=list)
    plates_add: list[str] = field(default_factory=list)
    vehicles_remove: list[UUID] = field(default_factory=list)
    links_new: list[tuple[UUID, str]] = field(default_factory=list)  # unit id, relation
    links_reopen: list[tuple[UUID, str]] = field(default_factory=list)  # link id, relation
    links_relation: list[tuple[UUID, str]] = field(default_factory=list)  # link id, relation
    links_end: list[UUID] = field(default_factory=list)  # link ids

    def is_empty(self) -> bool:
        parts = (
            self.contacts,
            self.plates_add,
            self.vehicles_remove,
            self.links_new,
            self.links_reopen,
            self.links_relation,
            self.links_end,
        )
        return self.full_name is None and not any(parts)


def diff(state: OccupantState, desired: Desired) -> Change:
    change = Change(person_id=state.person_id)
    if desired.full_name is not None and desired.full_name != state.full_name:
        change.full_name = desired.full_name
    change.contacts = [(slot, value) for slot, value in desired.contacts.items() if state.contacts.get(slot) != value]
    if desired.plates is not None:
        change.plates_add = sorted(desired.plates - state.plates.keys())
        change.vehicles_remove = [vid for plate, vid in state.plates.items() if plate not in desired.plates]
    if desired.links is not None:
        _diff_links(state, desired.links, change)
    return change


def _diff_links(state: OccupantState, wanted: Mapping[UUID, str], change: Change) -> None:
    for unit_id, relation in wanted.items():
        link = state.links.get(unit_id)
        if link is None:
            change.links_new.append((unit_id, relation))
        elif not link.is_active:
            change.links_reopen.append((link.id, relation))
        elif link.relation != relation:
            change.links_relation.append((link.id, relation))
    change.links_end = [link.id for unit_id, link in state.links.items() if link.is_active and unit_id not in wanted]


async def load_states(directory: Directory, site_id: UUID, person_ids: Iterable[UUID]) -> dict[UUID, OccupantState]:
    """Stored state of these people of the site (others are simply absent), a few queries per 500."""
    states: dict[UUID, OccupantState] = {}
    for chunk in _chunks(list(dict.fromkeys(person_ids))):
        people = await Person.select(Person.id, Person.full_name, Person.is_active).where(
            (Person.site == site_id) & Person.id.is_in(chunk)
        )
        occupants = {
            row["person"]
            for row in await PersonRole.select(PersonRole.person).where(
                (PersonRole.site == site_id) & (PersonRole.role == Role.OCCUPANT.value) & PersonRole.person.is_in(chunk)
            )
        }
        contacts = await directory.contact_points_for(site_id, chunk)
        vehicles = await directory.vehicles_for(site_id, chunk)
        links: dict[UUID, dict[UUID, LinkState]] = defaultdict(dict)
        for row in await Occupancy.select(
            Occupancy.id, Occupancy.person, Occupancy.unit, Occupancy.relation, Occupancy.is_active
        ).where((Occupancy.site == site_id) & Occupancy.person.is_in(chunk)):
            links[row["person"]][row["unit"]] = LinkState(row["id"], row["relation"], row["is_active"])
        for row in people:
            pid = row["id"]
            states[pid] = OccupantState(
                person_id=pid,
                full_name=row["full_name"],
                is_active=row["is_active"],
                is_occupant=pid in occupants,
                contacts={(c.kind, c.label): c.value for c in contacts.get(pid, [])},
                plates={v.plate: v.id for v in vehicles.get(pid, [])},
                links=links.get(pid, {}),
            )
    return states


async def require_occupant(directory: Directory, site_id: UUID, occupant_id: UUID) -> OccupantState:
    state = (await load_states(directory, site_id, [occupant_id])).get(occupant_id)
    if state is None or not state.is_occupant:
        raise NotFound("occupant not found")
    return state


# ---------------------------------------------------------------- writing (bulk)


async def create_occupants(directory: Directory, site: SiteContext, people: Sequence[NewPerson]) -> list[UUID]:
    ids = await create_people(directory, site.site_id, people)
    # create_people leaves started_on empty; a link made now starts today.
    today = site.today()
    for chunk in _chunks(ids):
        await Occupancy.update({Occupancy.started_on: today}).where(
            (Occupancy.site == site.site_id) & Occupancy.person.is_in(chunk)
        )
    return ids


async def apply_changes(directory: Directory, site: SiteContext, changes: Iterable[Change]) -> None:
    """Write many changes with a handful of statements per kind of change, not per person."""
    pending = [c for c in changes if not c.is_empty()]
    if not pending:
        return
    site_id = site.site_id
    for change in pending:
        if change.full_name is not None:
            # Names differ per person, so one statement each; renames are the rare case.
            await Person.update({Person.full_name: change.full_name}).where(
                (Person.site == site_id) & (Person.id == change.person_id)
            )
    for chunk in _chunks([c.person_id for c in pending]):
        await Person.update({Person.updated_at: _now()}).where((Person.site == site_id) & Person.id.is_in(chunk))
    await directory.replace_contact_points(
        site_id, [(c.person_id, slot[0], slot[1], value) for c in pending for slot, value in c.contacts]
    )
    await directory.replace_vehicles(
        site_id,
        remove_ids=[vid for c in pending for vid in c.vehicles_remove],
        add=[(c.person_id, plate) for c in pending for plate in c.plates_add],
    )
    await _apply_link_changes(site, pending)


async def _apply_link_changes(site: SiteContext, changes: list[Change]) -> None:
    today = site.today()
    new_links = [
        Occupancy(site=site.site_id, person=c.person_id, unit=unit_id, relation=relation, started_on=today)
        for c in changes
        for unit_id, relation in c.links_new
    ]
    for start in range(0, len(new_links), CHUNK):
        await Occupancy.insert(*new_links[start : start + CHUNK])
    reopen = {Occupancy.is_active: True, Occupancy.started_on: today, Occupancy.ended_on: None}
    await _update_links_by_relation(site.site_id, [item for c in changes for item in c.links_reopen], reopen)
    await _update_links_by_relation(site.site_id, [item for c in changes for item in c.links_relation], {})
    for chunk in _chunks([link_id for c in changes for link_id in c.links_end]):
        await Occupancy.update({Occupancy.is_active: False, Occupancy.ended_on: today}).where(
            (Occupancy.site == site.site_id) & Occupancy.id.is_in(chunk)
        )


async def _update_links_by_relation(site_id: UUID, items: list[tuple[UUID, str]], values: Mapping[Any, Any]) -> None:
    by_relation: dict[str, list[UUID]] = defaultdict(list)
    for link_id, relation in items:
        by_relation[relation].append(link_id)
    for relation, link_ids in by_relation.items():
        for chunk in _chunks(link_ids):
            await Occupancy.update({**values, Occupancy.relation: relation}).where(
                (Occupancy.site == site_id) & Occupancy.id.is_in(chunk)
            )


# ---------------------------------------------------------------- the API's operations


async def create_occupant(directory: Directory, site_id: UUID, data: NewOccupant) -> OccupantView:
    site = await site_context(site_id)
    person = _new_person(data, site)
    async with people_write_lock(site_id):
        await _check_units(site_id, [link.unit_id for link in data.units])
        identifiers = {PRIMARY_MOBILE: person.primary_mobile, EMAIL: person.email}
        await _ensure_identifiers_free(directory, site_id, None, identifiers)
        [person_id] = await create_occupants(directory, site, [person])
    return await get_occupant(directory, site_id, person_id)


def _new_person(data: NewOccupant, site: SiteContext) -> NewPerson:
    contacts: dict[Slot, str | None] = {
        PRIMARY_MOBILE: _optional("primary_mobile", lambda v: normalise_phone(v, site.region), data.primary_mobile),
        SECONDARY_MOBILE: _optional(
            "secondary_mobile", lambda v: normalise_phone(v, site.region), data.secondary_mobile
        ),
        EMAIL: _optional("email", normalise_email, data.email),
    }
    _raise_contact_rule(contacts)
    seen: set[UUID] = set()
    for position, link in enumerate(data.units):
        if link.unit_id in seen:
            raise InvalidInput.for_field(f"units[{position}].unit_id", "lists the same unit twice")
        seen.add(link.unit_id)
    return NewPerson(
        full_name=_checked("full_name", clean_name, data.full_name),
        roles=frozenset({Role.OCCUPANT}),
        primary_mobile=contacts[PRIMARY_MOBILE],
        secondary_mobile=contacts[SECONDARY_MOBILE],
        email=contacts[EMAIL],
        unit_links=[UnitLink(unit_id=link.unit_id, relation=link.relation) for link in data.units],
        plates=sorted(_checked("vehicle_plates", clean_plates, data.vehicle_plates)),
    )


def _raise_contact_rule(contacts: Mapping[Slot, str | None]) -> None:
    problem = contact_rule_error(contacts)
    if problem is not None:
        raise InvalidInput.for_field(*problem)


async def _check_units(site_id: UUID, unit_ids: list[UUID]) -> None:
    if not unit_ids:
        return
    rows = await Unit.select(Unit.id).where((Unit.site == site_id) & Unit.id.is_in(unit_ids))
    known = {row["id"] for row in rows}
    for position, unit_id in enumerate(unit_ids):
        if unit_id not in known:
            raise InvalidInput.for_field(f"units[{position}].unit_id", "no such unit on this site")


async def _ensure_identifiers_free(
    directory: Directory, site_id: UUID, person_id: UUID | None, values: Mapping[Slot, str | None]
) -> None:
    """Refuse a primary mobile or email that already identifies someone else on the site (login, matching)."""
    for slot in IDENTIFYING_SLOTS:
        value = values.get(slot)
        if not value:
            continue
        holders = (await directory.people_by_contacts(site_id, slot[0], [value], label=slot[1])).get(value, set())
        if holders - {person_id}:
            name = SLOT_FIELDS[slot]
            message = "already identifies another person on this site"
            raise Conflict(f"{name}: {message}", errors=[FieldError(field=name, message=message, source="body")])


async def update_occupant(
    directory: Directory, site_id: UUID, occupant_id: UUID, data: OccupantChanges
) -> OccupantView:
    site = await site_context(site_id)
    desired = _desired_from_changes(data, site)
    async with people_write_lock(site_id):
        state = await require_occupant(directory, site_id, occupant_id)
        _raise_contact_rule({**state.contacts, **desired.contacts})
        await _ensure_identifiers_free(directory, site_id, occupant_id, desired.contacts)
        await apply_changes(directory, site, [diff(state, desired)])
    return await get_occupant(directory, site_id, occupant_id)


def _desired_from_changes(data: OccupantChanges, site: SiteContext) -> Desired:
    contacts: dict[Slot, str | None] = {}
    phone_fields = ((PRIMARY_MOBILE, data.primary_mobile), (SECONDARY_MOBILE, data.secondary_mobile))
    for slot, phone in phone_fields:
        if phone is not msgspec.UNSET:
            contacts[slot] = _optional(SLOT_FIELDS[slot], lambda v: normalise_phone(v, site.region), phone)
    if data.email is not msgspec.UNSET:
        contacts[EMAIL] = _optional("email", normalise_email, data.email)
    return Desired(
        full_name=None if data.full_name is msgspec.UNSET else _checked("full_name", clean_name, data.full_name),
        contacts=contacts,
        plates=None
        if data.vehicle_plates is msgspec.UNSET
        else _checked("vehicle_plates", clean_plates, data.vehicle_plates),
    )


async def link_unit(
    directory: Directory, site_id: UUID, occupant_id: UUID, unit_id: UUID, relation: str | None
) -> OccupantView:
    """Link the occupant to a unit, change the relation, or reopen an ended link (PUT semantics)."""
    site = await site_context(site_id)
    async with people_write_lock(site_id):
        state = await require_occupant(directory, site_id, occupant_id)
        if not await Unit.exists().where((Unit.site == site_id) & (Unit.id == unit_id)):
            raise NotFound("unit not found")
        if not state.is_active:
            raise Conflict("the occupant is deactivated; reactivate them before linking a unit")
        existing = state.links.get(unit_id)
        chosen = relation or (existing.relation if existing else None)
        if chosen is None:
            raise InvalidInput.for_field("relation", "is required to link a new unit (owner, tenant, allottee, family)")
        await apply_changes(directory, site, [diff(state, Desired(links={**state.current_links, unit_id: chosen}))])
    return await get_occupant(directory, site_id, occupant_id)


async def unlink_unit(directory: Directory, site_id: UUID, occupant_id: UUID, unit_id: UUID) -> None:
    """End a current link (kept, with ended_on, as history)."""
    site = await site_context(site_id)
    async with people_write_lock(site_id):
        state = await require_occupant(directory, site_id, occupant_id)
        if unit_id not in state.current_links:
            raise NotFound("the occupant has no current link to that unit")
        wanted = {u: r for u, r in state.current_links.items() if u != unit_id}
        await apply_changes(directory, site, [diff(state, Desired(links=wanted))])


async def deactivate_occupant(
    directory: Directory, settings: Settings, redis: Redis, site_id: UUID, occupant_id: UUID
) -> OccupantView:
    """Mark inactive, end every current unit link, and end every session. Idempotent."""
    site = await site_context(site_id)
    async with people_write_lock(site_id):
        state = await require_occupant(directory, site_id, occupant_id)
        if state.is_active:
            now = _now()
            await Person.update({Person.is_active: False, Person.deactivated_at: now, Person.updated_at: now}).where(
                (Person.site == site_id) & (Person.id == occupant_id)
            )
            await apply_changes(directory, site, [diff(state, Desired(links={}))])
            # Inside the transaction: if revocation fails, the person stays active rather than
            # ending up deactivated with live tokens.
            await logout_everywhere(settings=settings, redis=redis, person_id=occupant_id)
    return await get_occupant(directory, site_id, occupant_id)


async def reactivate_occupant(directory: Directory, site_id: UUID, occupant_id: UUID) -> OccupantView:
    """Active again; unit links stay ended (they may have moved): link units explicitly."""
    async with people_write_lock(site_id):
        state = await require_occupant(directory, site_id, occupant_id)
        if not state.is_active:
            await Person.update({Person.is_active: True, Person.deactivated_at: None, Person.updated_at: _now()}).where(
                (Person.site == site_id) & (Person.id == occupant_id)
            )
    return await get_occupant(directory, site_id, occupant_id)
