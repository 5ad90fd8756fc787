"""A ledger row that went out inside a digest names the digest (a notification of kind ``digest``)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns import UUID
from piccolo.columns.indexes import IndexMethod

ID = "2026-12-06T17:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "delivery.digest: the digest notification a row was sent in"


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="opshub", description=DESCRIPTION)
    manager.add_column(
        table_class_name="Delivery",
        tablename="delivery",
        column_name="digest",
        db_column_name="digest",
        column_class_name="UUID",
        column_class=UUID,
        params={
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
    )
    return manager
