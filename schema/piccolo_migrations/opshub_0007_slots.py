"""Slots: resource rules, chargers and sensors, bookings, charges, parking passes, valet.

Tables are frozen copies (a migration never imports today's table classes) created in the
order their foreign keys need. On PostgreSQL the booking table gets the no-double-booking
exclusion constraint over (resource, [starts_at, blocks_until)) for active bookings, which
needs btree_gist for the uuid equality part.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns import (
    JSON,
    UUID,
    Boolean,
    Date,
    ForeignKey,
    Integer,
    OnDelete,
    Real,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.engine.finder import engine_finder
from piccolo.table import Table

ID = "2026-11-22T11:07:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "slots: resources, bookings, chargers, passes, valet"


class Site(Table, tablename="site"):
    id = UUID(primary_key=True)


class Unit(Table, tablename="unit"):
    id = UUID(primary_key=True)


class Person(Table, tablename="person"):
    id = UUID(primary_key=True)


class Resource(Table, tablename="resource"):
    id = UUID(primary_key=True)


class SlotDevice(Table, tablename="slot_device"):
    """A device that reports to us on its own credentials: an EV charger or a parking sensor gateway."""

    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    kind = Varchar(length=16)  # charger | sensor_gateway
    # The charger's Resource row (kind ev_charger); null for a sensor gateway.
    resource = ForeignKey(references=Resource, on_delete=OnDelete.cascade, null=True, default=None)
    name = Varchar(length=200)
    token_hash = Varchar(length=64)  # SHA-256 hex of the secret token; the token itself is shown once
    last_seen_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz()


class SlotResource(Table, tablename="slot_resource"):
    """Rules and live attributes of one bookable resource (1:1 with ``resource``)."""

    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    resource = ForeignKey(references=Resource, on_delete=OnDelete.cascade, null=False, unique=True)
    category = Varchar(length=16)  # amenity | ev_connector | parking_slot | valet
    # Rules. Opening hours: {"0": [["06:00", "22:00"]], ...} by ISO weekday-1 (0 = Monday), site time.
    opening_hours = JSON(default="{}")
    slot_minutes = Integer(default=60)
    min_minutes = Integer(default=30)
    max_minutes = Integer(default=120)
    buffer_minutes = Integer(default=0)
    advance_days = Integer(default=14)
    quota_per_day = Integer(null=True, default=None)  # per unit, this resource
    quota_per_week = Integer(null=True, default=None)
    fee_minor = Integer(default=0)  # in minor units (paise); 0 = free
    currency = Varchar(length=3, default="INR")
    needs_approval = Boolean(default=False)
    cancel_free_hours = Integer(null=True, default=None)  # null: the site's rule
    checkin_grace_minutes = Integer(default=15)
    reminder_minutes = Integer(default=30)
    checkin_code = Varchar(length=16)  # shown at the resource; typed in to check in
    # Attributes.
    covered = Boolean(null=True, default=None)
    ev_capable = Boolean(null=True, default=None)
    allocation = Varchar(length=16, null=True, default=None)  # reserved | visitor (parking)
    power_kw = Real(null=True, default=None)
    connector_type = Varchar(length=32, null=True, default=None)  # CCS2 | Type2 | CHAdeMO | GBT | 15A
    charger = ForeignKey(references=SlotDevice, on_delete=OnDelete.cascade, null=True, default=None)
    connector_no = Integer(null=True, default=None)
    # Live state from the charger (OCPP status) or the occupancy sensor, with its device timestamp.
    live_status = Varchar(length=16, null=True, default=None)
    live_status_at = Timestamptz(null=True, default=None)


class SlotBooking(Table, tablename="slot_booking"):
    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    resource = ForeignKey(references=Resource, on_delete=OnDelete.cascade, null=False, index=True)
    unit = ForeignKey(references=Unit, on_delete=OnDelete.set_null, null=True, default=None, index=True)
    person = ForeignKey(references=Person, on_delete=OnDelete.set_null, null=True, default=None, index=True)
    starts_at = Timestamptz()
    ends_at = Timestamptz()
    blocks_until = Timestamptz()  # ends_at + buffer: the range the resource is held
    # pending (awaiting FM approval) | confirmed | checked_in | completed | cancelled | rejected | no_show
    status = Varchar(length=16)
    note = Varchar(length=200, default="")
    checkin_token = Varchar(length=32)  # in the QR code
    checked_in_at = Timestamptz(null=True, default=None)
    cancelled_at = Timestamptz(null=True, default=None)
    cancel_reason = Varchar(length=64, null=True, default=None)
    released_at = Timestamptz(null=True, default=None)
    reminder_sent_at = Timestamptz(null=True, default=None)
    decided_by = ForeignKey(references=Person, on_delete=OnDelete.set_null, null=True, default=None)
    moved_from = UUID(null=True, default=None)  # the resource a fault moved it from
    created_at = Timestamptz()
    updated_at = Timestamptz()


class SlotCharge(Table, tablename="slot_charge"):
    """A fee owed for a booking, for billing to collect (pending) or drop (void)."""

    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    booking = ForeignKey(references=SlotBooking, on_delete=OnDelete.cascade, null=False, unique=True)
    unit = ForeignKey(references=Unit, on_delete=OnDelete.set_null, null=True, default=None)
    person = ForeignKey(references=Person, on_delete=OnDelete.set_null, null=True, default=None)
    amount_minor = Integer()
    currency = Varchar(length=3)
    description = Varchar(length=200)
    status = Varchar(length=16)  # pending | void | billed
    created_at = Timestamptz()
    updated_at = Timestamptz()


class ParkingPass(Table, tablename="slot_parking_pass"):
    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    person = ForeignKey(references=Person, on_delete=OnDelete.set_null, null=True, default=None, index=True)
    unit = ForeignKey(references=Unit, on_delete=OnDelete.cascade, null=True, default=None, index=True)
    resource = ForeignKey(references=Resource, on_delete=OnDelete.set_null, null=True, default=None)
    plate_encrypted = Text()
    plate_index = Varchar(length=64, index=True)
    kind = Varchar(length=16)  # monthly | recurring
    weekdays = JSON(default="[]")  # recurring: [0..6], 0 = Monday
    daily_from = Varchar(length=5, null=True, default=None)  # recurring: "08:00"
    daily_until = Varchar(length=5, null=True, default=None)
    valid_from = Date()
    valid_until = Date()  # inclusive
    status = Varchar(length=16)  # active | cancelled (expiry is derived from valid_until)
    renewals = Integer(default=0)
    created_at = Timestamptz()
    updated_at = Timestamptz()


class ValetRequest(Table, tablename="slot_valet_request"):
    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    person = ForeignKey(references=Person, on_delete=OnDelete.set_null, null=True, default=None, index=True)
    unit = ForeignKey(references=Unit, on_delete=OnDelete.set_null, null=True, default=None)
    plate_encrypted = Text()
    plate_index = Varchar(length=64, index=True)
    # requested -> parking -> parked -> retrieval_requested -> retrieving -> ready -> delivered; cancelled
    status = Varchar(length=24)
    bay = Varchar(length=32, null=True, default=None)
    eta_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz()
    updated_at = Timestamptz()


TABLES: list[type[Table]] = [SlotDevice, SlotResource, SlotBooking, SlotCharge, ParkingPass, ValetRequest]

INDEXES: list[tuple[str, str, tuple[str, ...], bool]] = [
    ("ix_slot_booking_resource_starts", "slot_booking", ("resource", "starts_at"), False),
    ("ix_slot_booking_status_starts", "slot_booking", ("status", "starts_at"), False),
    ("ix_slot_booking_unit_resource_starts", "slot_booking", ("unit", "resource", "starts_at"), False),
    ("uq_slot_resource_charger_connector", "slot_resource", ("charger", "connector_no"), True),
    ("ix_slot_valet_request_site_status", "slot_valet_request", ("site", "status"), False),
]

EXCLUSION = (
    'ALTER TABLE "slot_booking" ADD CONSTRAINT "ex_slot_booking_no_overlap" '
    'EXCLUDE USING gist ("resource" WITH =, tstzrange("starts_at", "blocks_until", \'[)\') WITH &&) '
    "WHERE (\"status\" IN ('pending', 'confirmed', 'checked_in'))"
)


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="opshub", description=DESCRIPTION)

    async def create() -> None:
        engine = engine_finder()
        assert engine is not None
        for table in TABLES:
            await table.create_table(if_not_exists=True)
        for name, table_name, columns, unique in INDEXES:
            cols = ", ".join(f'"{c}"' for c in columns)
            kind = "UNIQUE INDEX" if unique else "INDEX"
            await engine.run_ddl(f'CREATE {kind} IF NOT EXISTS "{name}" ON "{table_name}" ({cols})')
        if engine.engine_type == "postgres":
            await engine.run_ddl("CREATE EXTENSION IF NOT EXISTS btree_gist")
            await engine.run_ddl(EXCLUSION)

    async def drop() -> None:
        for table in reversed(TABLES):
            await table.alter().drop_table(if_exists=True)

    manager.add_raw(create)
    manager.add_raw_backwards(drop)
    return manager
