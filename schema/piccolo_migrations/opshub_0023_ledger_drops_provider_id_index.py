"""The ledger drops its index on provider_id: no query reads a row by it, and it was the costliest to keep.

A provider's message id (a Twilio SID, an FCM message name) is random, so each batch's outcome wrote its
500 ids to 500 pages spread over the whole index, and more of them the larger the ledger grew. Status
callbacks find their row by the ledger's own id, which each message's signed callback URL carries
(``notifications.webhooks``). Measured on SQLite, a 10,000-person fan-out over three channels into a
ledger of 150,000 rows: the outcome writes took 0.23 s of the database's CPU without the index, 0.90 s
with it (docs/performance.md)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.finder import engine_finder

ID = "2026-12-07T12:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "delivery: drop the index on provider_id, which no query reads"

NAME = "ix_delivery_provider_id"


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="opshub", description=DESCRIPTION)

    async def drop_index() -> None:
        engine = engine_finder()
        assert engine is not None
        await engine.run_ddl(f'DROP INDEX IF EXISTS "{NAME}"')

    async def restore_index() -> None:
        engine = engine_finder()
        assert engine is not None
        await engine.run_ddl(
            f'CREATE INDEX IF NOT EXISTS "{NAME}" ON "delivery" ("provider_id") WHERE provider_id IS NOT NULL'
        )

    manager.add_raw(drop_index)
    manager.add_raw_backwards(restore_index)
    return manager
