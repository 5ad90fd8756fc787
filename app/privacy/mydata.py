"""My data: a person views and corrects what is held about them, and manages consent in one call.

Reading and writing personal values goes through ``app.people.directory`` (which decrypts,
encrypts and audits); corrections reuse the occupant listing's validation and writing path
(normalisation, the contact rule, uniqueness of identifying contacts), for staff as well.
Consent uses ``notifications.preferences`` (the one consent store and its history).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Annotated, Literal
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from app.errors import InvalidInput, NotFound
from app.occupants import service as occupants
from app.people.directory import ContactPointView, Directory, VehicleView
from app.privacy import audit
from notifications.categories import Category, Channel
from notifications.preferences import (
    ConsentChange,
    ConsentRecord,
    PreferenceView,
    change_consent,
    consent_history,
    consent_matrix,
    preferences_of,
)
from schema.tables import Occupancy, Person, PersonRole

HISTORY_SHOWN = 100


class MyUnit(msgspec.Struct, frozen=True):
    unit_id: UUID
    label: str
    relation: str
    is_active: bool


class MyData(msgspec.Struct, frozen=True, kw_only=True):
    person_id: UUID
    full_name: str
    locale: str
    timezone: str | None
    roles: list[str]
    units: list[MyUnit]
    contact_points: list[ContactPointView]
    vehicles: list[VehicleView]
    consents: list[PreferenceView]  # the current state per channel and category
    consent_history: list[ConsentRecord]  # newest first; the full history: /api/me/consent-history
    links: dict[str, str]


class MyDataChanges(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Absent fields stay as they are; null removes an optional contact."""

    full_name: occupants.FullName | msgspec.UnsetType = msgspec.UNSET
    locale: Annotated[str, msgspec.Meta(min_length=2, max_length=16)] | msgspec.UnsetType = msgspec.UNSET
    timezone: Annotated[str, msgspec.Meta(max_length=64)] | msgspec.UnsetType | None = msgspec.UNSET
    primary_mobile: occupants.PhoneText | msgspec.UnsetType | None = msgspec.UNSET
    secondary_mobile: occupants.PhoneText | msgspec.UnsetType | None = msgspec.UNSET
    email: occupants.EmailText | msgspec.UnsetType | None = msgspec.UNSET
    vehicle_plates: occupants.Plates | msgspec.UnsetType = msgspec.UNSET


class ConsentAll(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Grant or withdraw many pairs in one call: every channel x category given (all if omitted)."""

    granted: bool
    channels: Annotated[list[Channel], msgspec.Meta(max_length=len(Channel))] | None = None
    categories: Annotated[list[Category], msgspec.Meta(max_length=len(Category))] | None = None
    source: Literal["app", "web"] = "app"


LINKS = {
    "preferences": "/api/me/notification-preferences",
    "consent_history": "/api/me/consent-history",
    "do_not_disturb": "/api/me/dnd",
    "feed": "/api/me/notifications",
    "data_requests": "/api/me/data-requests",
    "exports": "/api/me/exports",
}


async def my_data(directory: Directory, site_id: UUID, person_id: UUID) -> MyData:
    person = (
        await Person.select(Person.full_name, Person.locale, Person.timezone)
        .where((Person.site == site_id) & (Person.id == person_id))
        .first()
    )
    if person is None:
        raise NotFound("person not found")
    await audit.record(site_id, [person_id], "read", "profile")
    roles = await PersonRole.select(PersonRole.role).where(
        (PersonRole.site == site_id) & (PersonRole.person == person_id)
    )
    units = await Occupancy.select(
        Occupancy.unit, Occupancy.unit.label.as_alias("label"), Occupancy.relation, Occupancy.is_active
    ).where((Occupancy.site == site_id) & (Occupancy.person == person_id))
    contacts = await directory.contact_points_for(site_id, [person_id])
    vehicles = await directory.vehicles_for(site_id, [person_id])
    return MyData(
        person_id=person_id,
        full_name=person["full_name"],
        locale=person["locale"],
        timezone=person["timezone"],
        roles=sorted(r["role"] for r in roles),
        units=[
            MyUnit(unit_id=u["unit"], label=u["label"], relation=u["relation"], is_active=u["is_active"]) for u in units
        ],
        contact_points=contacts.get(person_id, []),
        vehicles=sorted(vehicles.get(person_id, []), key=lambda v: v.plate),
        consents=await preferences_of(person_id),
        consent_history=await consent_history(person_id, limit=HISTORY_SHOWN),
        links=LINKS,
    )


async def correct_my_data(directory: Directory, site_id: UUID, person_id: UUID, data: MyDataChanges) -> MyData:
    values: dict[str, object] = {}
    if data.locale is not msgspec.UNSET:
        values["locale"] = data.locale
    if data.timezone is not msgspec.UNSET:
        if data.timezone is not None:
            try:
                ZoneInfo(data.timezone)
            except (ZoneInfoNotFoundError, ValueError):
                raise InvalidInput.for_field("timezone", f"unknown IANA timezone '{data.timezone}'") from None
        values["timezone"] = data.timezone
    changes = occupants.OccupantChanges(
        full_name=data.full_name,
        primary_mobile=data.primary_mobile,
        secondary_mobile=data.secondary_mobile,
        email=data.email,
        vehicle_plates=data.vehicle_plates,
    )
    site = await occupants.site_context(site_id)
    desired = occupants._desired_from_changes(changes, site)
    async with occupants.people_write_lock(site_id):
        state = (await occupants.load_states(directory, site_id, [person_id])).get(person_id)
        if state is None:
            raise NotFound("person not found")
        occupants._raise_contact_rule({**state.contacts, **desired.contacts})
        await occupants._ensure_identifiers_free(directory, site_id, person_id, desired.contacts)
        await occupants.apply_changes(directory, site, [occupants.diff(state, desired)])
        if values:
            await Person.update(
                {**{getattr(Person, k): v for k, v in values.items()}, Person.updated_at: _now()}
            ).where((Person.site == site_id) & (Person.id == person_id))
    if values or data.full_name is not msgspec.UNSET:
        await audit.record(site_id, [person_id], "write", "profile")
    return await my_data(directory, site_id, person_id)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def set_all_consents(
    *, site_id: UUID, person_id: UUID, data: ConsentAll, policy_version: str
) -> list[PreferenceView]:
    """One call to grant or withdraw a whole block; only real changes enter the history."""
    channels: Sequence[Channel] = data.channels if data.channels is not None else list(Channel)
    categories: Sequence[Category] = data.categories if data.categories is not None else list(Category)
    if not channels:
        raise InvalidInput.for_field("channels", "give at least one channel (or omit it for all)")
    if not categories:
        raise InvalidInput.for_field("categories", "give at least one category (or omit it for all)")
    current = (await consent_matrix([person_id]))[person_id]
    changes = [
        ConsentChange(channel=channel, category=category, granted=data.granted)
        for channel in dict.fromkeys(channels)
        for category in dict.fromkeys(categories)
        if current.get((channel, category)) != data.granted
    ]
    if changes:
        await change_consent(
            site_id=site_id, person_id=person_id, changes=changes, source=data.source, policy_version=policy_version
        )
    return await preferences_of(person_id)
