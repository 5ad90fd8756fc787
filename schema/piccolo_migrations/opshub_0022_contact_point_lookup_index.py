"""A batch's contact points are found by person: an index on contact_point (site, person, kind).

The notification pipeline reads the contact points of a batch of people at once (``site = ? AND person IN
(...) AND kind IN (...)``). Until ANALYZE has run, SQLite has no statistics and took the single-column
index on ``site`` for it: every contact point of the site, read for every batch (7 ms a batch at 10,000
people, growing with the site). An index that serves all three conditions is the one it takes, with or
without statistics; on PostgreSQL it serves the same read."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.finder import engine_finder

ID = "2026-12-07T01:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "contact_point: index on (site, person, kind)"

NAME = "ix_contact_point_site_person_kind"


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="opshub", description=DESCRIPTION)

    async def create_index() -> None:
        engine = engine_finder()
        assert engine is not None
        await engine.run_ddl(f'CREATE INDEX IF NOT EXISTS "{NAME}" ON "contact_point" ("site", "person", "kind")')

    async def drop_index() -> None:
        engine = engine_finder()
        assert engine is not None
        await engine.run_ddl(f'DROP INDEX IF EXISTS "{NAME}"')

    manager.add_raw(create_index)
    manager.add_raw_backwards(drop_index)
    return manager
