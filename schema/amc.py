"""Tables of the AMC tracker (migrations: see schema/piccolo_migrations/README.md).

An ``Asset`` (lift, DG set, pump, fire system, EV charger, CCTV...) has maintenance contracts;
a contract's service visits are generated from its frequency (``app.amc.schedule``) as
``ServiceVisit`` rows, one per due date (unique per contract and date, so regenerating adds
nothing twice). ``AmcReminder`` is the ledger of reminders: one row per (kind, subject, lead
time) under a unique index, so a cron that runs twice reminds once.
"""

from __future__ import annotations

from piccolo.columns import (
    JSON,
    UUID,
    BigInt,
    Date,
    ForeignKey,
    Integer,
    OnDelete,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.table import Table

from schema.tables import Building, Person, Resource, Site


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


AMC_UNIQUE_INDEXES: dict[str, tuple[str, ...]] = {
    "amc_asset": ("site", "code"),
    "amc_visit": ("contract", "due_on"),
    "amc_reminder": ("kind", "subject", "lead_days"),
}

AMC_TABLES: list[type[Table]] = [
    AmcSiteConfig,
    Asset,
    MaintenanceContract,
    ServiceVisit,
    VisitAttachment,
    AmcReminder,
]
