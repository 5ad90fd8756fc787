"""Reports (issue 20): export jobs and scheduled-report subscriptions.

Frozen copies of the tables (a migration never imports today's table classes)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns import JSON, UUID, Date, ForeignKey, Integer, OnDelete, Timestamptz, Varchar
from piccolo.engine.finder import engine_finder
from piccolo.table import Table

ID = "2026-12-06T20:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "reports: export jobs, subscriptions"


class Site(Table, tablename="site"):
    id = UUID(primary_key=True)


class Person(Table, tablename="person"):
    id = UUID(primary_key=True)


class ReportExport(Table, tablename="report_export"):
    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    person = ForeignKey(references=Person, on_delete=OnDelete.cascade, null=False, index=True)
    report = Varchar(length=64)
    format = Varchar(length=8)
    params = JSON(default="{}")
    status = Varchar(length=16, default="pending")
    rows = Integer(default=0)
    size_bytes = Integer(default=0)
    file_key = Varchar(length=255, null=True, default=None)
    error = Varchar(length=200, null=True, default=None)
    created_at = Timestamptz()
    completed_at = Timestamptz(null=True, default=None)
    expires_at = Timestamptz(null=True, default=None, index=True)


class ReportSubscription(Table, tablename="report_subscription"):
    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    person = ForeignKey(references=Person, on_delete=OnDelete.cascade, null=False, index=True)
    report = Varchar(length=64)
    frequency = Varchar(length=8)
    format = Varchar(length=8, default="xlsx")
    by = Varchar(length=64, null=True, default=None)
    last_period_end = Date(null=True, default=None)
    created_at = Timestamptz()


TABLES = (ReportExport, ReportSubscription)


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="opshub", description=DESCRIPTION)

    async def create() -> None:
        engine = engine_finder()
        assert engine is not None
        for table in TABLES:
            await table.create_table(if_not_exists=True)
        # One subscription per person, report and frequency.
        await engine.run_ddl(
            'CREATE UNIQUE INDEX IF NOT EXISTS "uq_report_subscription_person_report_frequency" '
            'ON "report_subscription" ("person", "report", "frequency")'
        )

    async def drop() -> None:
        for table in reversed(TABLES):
            await table.alter().drop_table(if_exists=True)

    manager.add_raw(create)
    manager.add_raw_backwards(drop)
    return manager
