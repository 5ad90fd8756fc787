"""The ledger's ``site`` is a copy of its notification's: not a foreign key of its own, and indexed with the
row's creation time instead of alone.

Every ledger row is written three times in a fan-out (inserted, claimed, recorded), and each status change
writes a new entry into every index of the table. The row's ``site`` had a foreign key of its own, though each
row's notification already belongs to that site and deleting a site deletes its notifications and, with them,
their ledger rows (``delivery.notification`` cascades): every inserted row looked the site up again.

Its readers by site all ask for a period: the notifications report and the control room's delivery funnel
(created in these days), and retention (created before the cutoff). ``(site, created_at)`` reads just that
period, where ``(site)`` read every row the site ever had. A fan-out's rows share both values, so their
entries go to one place in the index.

SQLite keeps the foreign key: it cannot drop a constraint without rebuilding the table, and its check is a
lookup of one row. (Measured on PostgreSQL, docs/performance.md.)"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.finder import engine_finder
from piccolo.engine.postgres import PostgresEngine

ID = "2026-12-07T19:15:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "delivery: site indexed with created_at, no foreign key of its own (it comes with the notification)"

OLD_INDEX = "delivery_site"
INDEX = "ix_delivery_site_created"
FOREIGN_KEY = "delivery_site_fkey"


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="opshub", description=DESCRIPTION)

    async def lean() -> None:
        engine = engine_finder()
        assert engine is not None
        await engine.run_ddl(f'CREATE INDEX IF NOT EXISTS "{INDEX}" ON "delivery" ("site", "created_at")')
        await engine.run_ddl(f'DROP INDEX IF EXISTS "{OLD_INDEX}"')
        if isinstance(engine, PostgresEngine):
            await engine.run_ddl(f'ALTER TABLE "delivery" DROP CONSTRAINT IF EXISTS "{FOREIGN_KEY}"')

    async def restore() -> None:
        engine = engine_finder()
        assert engine is not None
        if isinstance(engine, PostgresEngine):
            await engine.run_ddl(
                f'ALTER TABLE "delivery" ADD CONSTRAINT "{FOREIGN_KEY}" FOREIGN KEY ("site") REFERENCES "site" ("id") '
                "ON UPDATE CASCADE ON DELETE CASCADE"
            )
        await engine.run_ddl(f'CREATE INDEX IF NOT EXISTS "{OLD_INDEX}" ON "delivery" ("site")')
        await engine.run_ddl(f'DROP INDEX IF EXISTS "{INDEX}"')

    manager.add_raw(lean)
    manager.add_raw_backwards(restore)
    return manager
