"""The ledger's ``site`` is a copy of its notification's, checked and cascaded through the notification.

Every ledger row is written three times in a fan-out (inserted, claimed, recorded), and each status change
writes a new entry into every index of the table. The row's ``site`` had an index and a foreign key of its
own, though each row's notification already belongs to that site and deleting a site deletes its
notifications and, with them, their ledger rows (``delivery.notification`` cascades). The foreign key made
every inserted row look the site up again; the index took three writes per row. Retention, the only reader
by site, now finds a site's old rows through its old notifications (``notifications.personal_data``), and a
person's feed and data through ``ix_delivery_person_channel_created``.

SQLite keeps the foreign key: it cannot drop a constraint without rebuilding the table, and its check is a
lookup of one row. (Measured on PostgreSQL, docs/performance.md.)"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.finder import engine_finder
from piccolo.engine.postgres import PostgresEngine

ID = "2026-12-07T18:30:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "delivery: no index or foreign key of its own on site (it comes with the notification)"

INDEX = "delivery_site"
FOREIGN_KEY = "delivery_site_fkey"


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="opshub", description=DESCRIPTION)

    async def lean() -> None:
        engine = engine_finder()
        assert engine is not None
        await engine.run_ddl(f'DROP INDEX IF EXISTS "{INDEX}"')
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
        await engine.run_ddl(f'CREATE INDEX IF NOT EXISTS "{INDEX}" ON "delivery" ("site")')

    manager.add_raw(lean)
    manager.add_raw_backwards(restore)
    return manager
