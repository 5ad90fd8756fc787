"""AMC tracker and QR mapping (issue 19): assets, contracts, service visits, attachments, reminders;
places, their printed codes and daily scan counts.

Frozen copies of the tables (a migration never imports today's table classes), created in the
order their foreign keys need, then their composite unique indexes and lookup indexes.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns import (
    JSON,
    UUID,
    BigInt,
    Boolean,
    Date,
    ForeignKey,
    Integer,
    OnDelete,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.engine.finder import engine_finder
from piccolo.table import Table

ID = "2026-12-06T19:50:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "amc: assets, contracts, visits, attachments, reminders; places: places, codes, scans"


class Site(Table, tablename="site"):
    id = UUID(primary_key=True)


class Building(Table, tablename="building"):
    id = UUID(primary_key=True)


class Person(Table, tablename="person"):
    id = UUID(primary_key=True)


class Resource(Table, tablename="resource"):
    id = UUID(primary_key=True)

class AmcSiteConfig(Table, tablename="amc_site_config"):
    """One row per site; absent means the defaults in ``app.amc.config``."""

    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, unique=True)
    visit_lead_days = JSON(default="[7, 1]")  # remind this many days before each visit
    expiry_lead_days = JSON(default="[60, 30, 7]")  # and before a contract ends
    reminder_hour = Integer(default=9)  # site time at which a day's reminders go out
    updated_at = Timestamptz()


class Asset(Table, tablename="amc_asset"):
    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    code = Varchar(length=32)  # unique per site, e.g. "LIFT-A1"
    name = Varchar(length=200)
    kind = Varchar(length=16)  # lift | dg_set | pump | fire_system | ev_charger | cctv | hvac | other
    building = ForeignKey(references=Building, on_delete=OnDelete.set_null, null=True, default=None)
    floor = Varchar(length=16, null=True, default=None)  # "G", "B2", "12"
    location = Varchar(length=300, default="")  # where exactly: "behind the lobby, left of lift A2"
    # An EV charger of the slots module (a Resource of kind ev_charger).
    resource = ForeignKey(references=Resource, on_delete=OnDelete.set_null, null=True, default=None)
    make = Varchar(length=100, default="")
    model = Varchar(length=100, default="")
    serial_no = Varchar(length=100, default="")
    installed_on = Date(null=True, default=None)
    status = Varchar(length=16, default="active")  # active | retired
    notes = Text(default="")
    created_at = Timestamptz()
    updated_at = Timestamptz()


class MaintenanceContract(Table, tablename="amc_contract"):
    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    asset = ForeignKey(references=Asset, on_delete=OnDelete.cascade, null=False, index=True)
    vendor = Varchar(length=200)  # the company
    reference = Varchar(length=64, default="")  # the vendor's contract number
    starts_on = Date()
    ends_on = Date()  # inclusive
    frequency = Varchar(length=16)  # app.amc.schedule.Frequency
    first_visit_on = Date()
    cost_paise = BigInt(default=0)  # the contract's whole cost, in paise (integer minor units)
    currency = Varchar(length=3, default="INR")
    sla_response_hours = Integer(null=True, default=None)  # breakdown call answered within
    sla_visit_grace_days = Integer(default=3)  # a visit is overdue this many days after its date
    status = Varchar(length=16, default="active")  # active | cancelled (ended is derived from ends_on)
    notes = Text(default="")
    created_by = ForeignKey(references=Person, on_delete=OnDelete.set_null, null=True, default=None)
    created_at = Timestamptz()
    updated_at = Timestamptz()


class ServiceVisit(Table, tablename="amc_visit"):
    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    contract = ForeignKey(references=MaintenanceContract, on_delete=OnDelete.cascade, null=False, index=True)
    asset = ForeignKey(references=Asset, on_delete=OnDelete.cascade, null=False, index=True)
    due_on = Date()
    status = Varchar(length=16, default="scheduled")  # scheduled | done | cancelled
    completed_on = Date(null=True, default=None)  # the day the work was done (site calendar)
    completed_at = Timestamptz(null=True, default=None)  # when it was recorded
    completed_by = ForeignKey(references=Person, on_delete=OnDelete.set_null, null=True, default=None)
    notes = Text(default="")
    checklist = JSON(default="[]")  # [{"item": "Brake test", "ok": true, "remark": ""}]
    # When the control room was told this visit is overdue (once; the board's live event).
    overdue_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz()
    updated_at = Timestamptz()


class VisitAttachment(Table, tablename="amc_visit_attachment"):
    """A photo of the work or of the signed service report (app.uploads: re-encoded, metadata stripped)."""

    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    visit = ForeignKey(references=ServiceVisit, on_delete=OnDelete.cascade, null=False, index=True)
    key = Varchar(length=255)
    media_type = Varchar(length=32)
    size = Integer()
    uploaded_by = ForeignKey(references=Person, on_delete=OnDelete.set_null, null=True, default=None)
    created_at = Timestamptz()


class AmcReminder(Table, tablename="amc_reminder"):
    """One reminder decided: sent (with its notification) or skipped (a later one superseded it)."""

    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    kind = Varchar(length=16)  # visit | expiry | overdue
    subject = UUID()  # the visit (visit, overdue) or the contract (expiry)
    lead_days = Integer()  # 0 for overdue
    status = Varchar(length=16)  # sent | skipped
    notification = UUID(null=True, default=None)
    created_at = Timestamptz()

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

TABLES: list[type[Table]] = [
    AmcSiteConfig,
    Asset,
    MaintenanceContract,
    ServiceVisit,
    VisitAttachment,
    AmcReminder,
    Place,
    PlaceCode,
    PlaceScanDay,
]

INDEXES: list[tuple[str, str, tuple[str, ...], bool]] = [
    ("uq_amc_asset_site_code", "amc_asset", ("site", "code"), True),
    ("uq_amc_visit_contract_due_on", "amc_visit", ("contract", "due_on"), True),
    ("uq_amc_reminder_kind_subject_lead", "amc_reminder", ("kind", "subject", "lead_days"), True),
    ("ix_amc_visit_site_status_due_on", "amc_visit", ("site", "status", "due_on"), False),
    ("ix_amc_contract_site_status_ends_on", "amc_contract", ("site", "status", "ends_on"), False),
    ("uq_place_scan_day_place_day", "place_scan_day", ("place", "day"), True),
]


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

    async def drop() -> None:
        for table in reversed(TABLES):
            await table.alter().drop_table(if_exists=True)

    manager.add_raw(create)
    manager.add_raw_backwards(drop)
    return manager
