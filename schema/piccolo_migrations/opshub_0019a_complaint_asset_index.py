"""An asset's page lists the complaints raised against it: an index on complaint.asset. Its own
migration: raw SQL runs before the columns of the same migration are added."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.finder import engine_finder

ID = "2026-12-06T19:52:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "complaint: index on asset"

NAME = "ix_complaint_asset"


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="opshub", description=DESCRIPTION)

    async def create_index() -> None:
        engine = engine_finder()
        assert engine is not None
        await engine.run_ddl(f'CREATE INDEX IF NOT EXISTS "{NAME}" ON "complaint" ("asset")')

    async def drop_index() -> None:
        engine = engine_finder()
        assert engine is not None
        await engine.run_ddl(f'DROP INDEX IF EXISTS "{NAME}"')

    manager.add_raw(create_index)
    manager.add_raw_backwards(drop_index)
    return manager
