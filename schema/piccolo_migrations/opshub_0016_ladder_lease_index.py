"""The ladder's recovery looks every few seconds for started rungs whose lease ran out: an index on
(state, lease_until) answers that without reading the finished rows. Not a partial index: the
query binds 'started' as a parameter, which SQLite (and a generic PostgreSQL plan) cannot match
to a partial index's WHERE. Its own migration: raw SQL runs before the columns of the same
migration are added."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.finder import engine_finder

ID = "2026-12-03T16:16:02:000000"
VERSION = "1.38.0"
DESCRIPTION = "visitor_approval_step: index on state and lease_until"

NAME = "ix_visitor_approval_step_state_lease_until"


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="opshub", description=DESCRIPTION)

    async def create_index() -> None:
        engine = engine_finder()
        assert engine is not None
        await engine.run_ddl(f'CREATE INDEX IF NOT EXISTS "{NAME}" ON "visitor_approval_step" ("state", "lease_until")')

    async def drop_index() -> None:
        engine = engine_finder()
        assert engine is not None
        await engine.run_ddl(f'DROP INDEX IF EXISTS "{NAME}"')

    manager.add_raw(create_index)
    manager.add_raw_backwards(drop_index)
    return manager
