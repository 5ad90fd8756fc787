"""Tables of QR mapping (migrations: see schema/piccolo_migrations/README.md).

A ``Place`` is something on a site a person can stand in front of: an amenity, a shop, a facility
or an asset. Its printed QR codes are ``PlaceCode`` rows: each code is an opaque random string
(never the name, so renaming a place keeps every printed sticker working), unique across all sites
because the public URL ``/q/{code}`` names no site. A code can be revoked (a stolen or moved
sticker) and a new one issued; a revoked code keeps its row, so scanning it says "no longer in
use" rather than "not found". Scans are counted per code and per day, with nothing about who scanned.
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

from schema.amc import Asset
from schema.tables import Building, Resource, Site


class Place(Table, tablename="place"):
    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    kind = Varchar(length=16)  # amenity | shop | facility | asset
    name = Varchar(length=200)
    building = ForeignKey(references=Building, on_delete=OnDelete.set_null, null=True, default=None)
    floor = Varchar(length=16, null=True, default=None)
    directions = Varchar(length=300, default="")
    # {"0": [["06:00", "22:00"]], ...} by weekday (0 = Monday), site time; null: not stated.
    opening_hours = JSON(null=True, default=None)
    description = Text(default="")
    resource = ForeignKey(references=Resource, on_delete=OnDelete.set_null, null=True, default=None)  # bookable
    asset = ForeignKey(references=Asset, on_delete=OnDelete.cascade, null=True, default=None, unique=True)
    is_active = Boolean(default=True)  # false: retired (its codes are revoked)
    created_at = Timestamptz()
    updated_at = Timestamptz()


class PlaceCode(Table, tablename="place_code"):
    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    place = ForeignKey(references=Place, on_delete=OnDelete.cascade, null=False, index=True)
    code = Varchar(length=24, unique=True)
    status = Varchar(length=16, default="active")  # active | revoked
    revoked_at = Timestamptz(null=True, default=None)
    revoked_reason = Varchar(length=200, null=True, default=None)
    scans = Integer(default=0)
    created_at = Timestamptz()


class PlaceScanDay(Table, tablename="place_scan_day"):
    """Scans of a place's codes on one day of the site's calendar (no address, agent or person)."""

    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    place = ForeignKey(references=Place, on_delete=OnDelete.cascade, null=False, index=True)
    day = Date()
    scans = Integer(default=0)


PLACE_UNIQUE_INDEXES: dict[str, tuple[str, ...]] = {"place_scan_day": ("place", "day")}

PLACE_TABLES: list[type[Table]] = [Place, PlaceCode, PlaceScanDay]
