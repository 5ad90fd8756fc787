"""Piccolo tables for the core data model: sites, buildings, units, people and their contact points.

Every row that belongs to a site carries a ``site`` foreign key, and every query made on
behalf of a caller filters on it. Personal values (phone, email, plate) are stored only
encrypted (``*_encrypted``) with a keyed blind index (``*_index``) for equality lookups;
reads and writes of them go through ``app.people.directory``.

Composite uniqueness (e.g. one unit label per site) is declared as unique indexes in
the migrations (``CREATE UNIQUE INDEX``), because SQLite cannot add table constraints
after creation; ``COMPOSITE_UNIQUE_INDEXES`` lists them for reference and tests.
"""

from __future__ import annotations

from piccolo.columns import (
    JSON,
    UUID,
    Boolean,
    Date,
    ForeignKey,
    Integer,
    OnDelete,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.table import Table


class Site(Table, tablename="site"):
    id = UUID(primary_key=True)
    name = Varchar(length=200)
    slug = Varchar(length=64, unique=True)
    timezone = Varchar(length=64, default="Asia/Kolkata")
    # Default region for parsing local phone numbers (ISO 3166 alpha-2).
    country_code = Varchar(length=2, default="IN")
    settings = JSON(default="{}")
    created_at = Timestamptz()


class Building(Table, tablename="building"):
    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    code = Varchar(length=16)
    name = Varchar(length=100)


class Unit(Table, tablename="unit"):
    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    building = ForeignKey(references=Building, on_delete=OnDelete.restrict, null=False, index=True)
    # Human label unique within the site, e.g. "A-1204".
    label = Varchar(length=32)
    floor = Integer(default=0)
    kind = Varchar(length=16, default="residential")


class Person(Table, tablename="person"):
    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    full_name = Varchar(length=200)
    is_active = Boolean(default=True)
    password_hash = Varchar(length=255, null=True, default=None, secret=True)
    timezone = Varchar(length=64, null=True, default=None)
    locale = Varchar(length=16, default="en-IN")
    created_at = Timestamptz()
    updated_at = Timestamptz()
    deactivated_at = Timestamptz(null=True, default=None)


class PersonRole(Table, tablename="person_role"):
    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    person = ForeignKey(references=Person, on_delete=OnDelete.cascade, null=False, index=True)
    role = Varchar(length=32)


class TechnicianSkill(Table, tablename="technician_skill"):
    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    person = ForeignKey(references=Person, on_delete=OnDelete.cascade, null=False, index=True)
    skill = Varchar(length=64)


class Occupancy(Table, tablename="occupancy"):
    """Links an occupant to a unit as owner, tenant, allottee or family member."""

    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    person = ForeignKey(references=Person, on_delete=OnDelete.cascade, null=False, index=True)
    unit = ForeignKey(references=Unit, on_delete=OnDelete.cascade, null=False, index=True)
    relation = Varchar(length=16)
    is_active = Boolean(default=True)
    started_on = Date(null=True, default=None)
    ended_on = Date(null=True, default=None)


class ContactPoint(Table, tablename="contact_point"):
    """A mobile number or email address of a person (primary or secondary)."""

    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    person = ForeignKey(references=Person, on_delete=OnDelete.cascade, null=False, index=True)
    kind = Varchar(length=16)  # mobile | email
    label = Varchar(length=16)  # primary | secondary
    value_encrypted = Text()
    value_index = Varchar(length=64, index=True)
    # ok | invalid (provider said so) | opted_out (provider-level STOP)
    status = Varchar(length=16, default="ok")
    created_at = Timestamptz()


class Vehicle(Table, tablename="vehicle"):
    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    person = ForeignKey(references=Person, on_delete=OnDelete.cascade, null=False, index=True)
    unit = ForeignKey(references=Unit, on_delete=OnDelete.set_null, null=True, default=None)
    plate_encrypted = Text()
    plate_index = Varchar(length=64, index=True)
    kind = Varchar(length=16, default="car")
    created_at = Timestamptz()


class Device(Table, tablename="device"):
    """An app installation with its push token (FCM)."""

    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    person = ForeignKey(references=Person, on_delete=OnDelete.cascade, null=False, index=True)
    platform = Varchar(length=16)  # android | ios | web
    push_token = Varchar(length=512, unique=True)
    last_seen_at = Timestamptz()
    created_at = Timestamptz()


class RefreshToken(Table, tablename="refresh_token"):
    """Opaque refresh tokens, stored as SHA-256 hashes; one family per login for reuse detection."""

    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    person = ForeignKey(references=Person, on_delete=OnDelete.cascade, null=False, index=True)
    token_hash = Varchar(length=64, unique=True)
    family_id = UUID(index=True)
    expires_at = Timestamptz()
    used_at = Timestamptz(null=True, default=None)
    revoked_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz()


class Resource(Table, tablename="resource"):
    """A bookable or observable thing on a site: amenity, EV charger, parking slot."""

    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    kind = Varchar(length=32)  # amenity | ev_charger | parking_slot
    code = Varchar(length=32)
    name = Varchar(length=200)
    details = JSON(default="{}")
    is_active = Boolean(default=True)


COMPOSITE_UNIQUE_INDEXES: dict[str, tuple[str, ...]] = {
    "building": ("site", "code"),
    "unit": ("site", "label"),
    "person_role": ("person", "role"),
    "technician_skill": ("person", "skill"),
    "occupancy": ("person", "unit"),
    "contact_point": ("person", "kind", "label"),
    "vehicle": ("person", "plate_index"),
    "resource": ("site", "code"),
}

CORE_TABLES: list[type[Table]] = [
    Site,
    Building,
    Unit,
    Person,
    PersonRole,
    TechnicianSkill,
    Occupancy,
    ContactPoint,
    Vehicle,
    Device,
    RefreshToken,
    Resource,
]
