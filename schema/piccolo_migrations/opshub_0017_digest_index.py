"""What went out in a digest: an index on delivery.digest, of the rows that have one (most never do, and
an index of them all would cost every ledger insert). Its own migration: raw SQL runs before the columns
of the same migration are added."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.finder import engine_finder

ID = "2026-12-06T17:00:01:000000"
VERSION = "1.38.0"
DESCRIPTION = "delivery: index on digest"

NAME = "ix_delivery_digest"


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="opshub", description=DESCRIPTION)

    async def create_index() -> None:
        engine = engine_finder()
        assert engine is not None
        await engine.run_ddl(f'CREATE INDEX IF NOT EXISTS "{NAME}" ON "delivery" ("digest") WHERE digest IS NOT NULL')

    async def drop_index() -> None:
        engine = engine_finder()
        assert engine is not None
        await engine.run_ddl(f'DROP INDEX IF EXISTS "{NAME}"')

    manager.add_raw(create_index)
    manager.add_raw_backwards(drop_index)
    return manager
