"""The ledger's two scans by status read only the rows in that status: each gets a partial index of just
those rows, in place of one index of (status, defer_until) over every row.

The digest cron reads rows ``deferred`` and due (by ``defer_until``); the in-doubt recovery reads rows
``sending`` whose claim is old (by ``claimed_at``). Most rows are in neither state for long, so most
ledger inserts (an audience's ``pending`` rows) and most status changes no longer touch an index for
these scans; the recovery's scan no longer sorts."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.finder import engine_finder

ID = "2026-12-06T21:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "delivery: partial indexes for the deferred and the in-doubt scans"

DEFERRED = "ix_delivery_deferred_due"
SENDING = "ix_delivery_sending_claimed"
REPLACED = "ix_delivery_status_defer_until"


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="opshub", description=DESCRIPTION)

    async def partial() -> None:
        engine = engine_finder()
        assert engine is not None
        await engine.run_ddl(
            f'CREATE INDEX IF NOT EXISTS "{DEFERRED}" ON "delivery" ("defer_until") WHERE status = \'deferred\''
        )
        await engine.run_ddl(
            f'CREATE INDEX IF NOT EXISTS "{SENDING}" ON "delivery" ("claimed_at") WHERE status = \'sending\''
        )
        await engine.run_ddl(f'DROP INDEX IF EXISTS "{REPLACED}"')

    async def restore() -> None:
        engine = engine_finder()
        assert engine is not None
        await engine.run_ddl(f'CREATE INDEX IF NOT EXISTS "{REPLACED}" ON "delivery" ("status", "defer_until")')
        await engine.run_ddl(f'DROP INDEX IF EXISTS "{SENDING}"')
        await engine.run_ddl(f'DROP INDEX IF EXISTS "{DEFERRED}"')

    manager.add_raw(partial)
    manager.add_raw_backwards(restore)
    return manager
