"""A part of an audience is recorded done once: a unique index on (notification, part). Its own
migration: raw SQL runs before the tables of the same migration are created."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.finder import engine_finder

ID = "2026-12-06T17:01:01:000000"
VERSION = "1.38.0"
DESCRIPTION = "notification_part: unique (notification, part)"

NAME = "uq_notification_part_notification_part"


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="opshub", description=DESCRIPTION)

    async def create_index() -> None:
        engine = engine_finder()
        assert engine is not None
        await engine.run_ddl(f'CREATE UNIQUE INDEX IF NOT EXISTS "{NAME}" ON "notification_part" ("notification", "part")')

    async def drop_index() -> None:
        engine = engine_finder()
        assert engine is not None
        await engine.run_ddl(f'DROP INDEX IF EXISTS "{NAME}"')

    manager.add_raw(create_index)
    manager.add_raw_backwards(drop_index)
    return manager
