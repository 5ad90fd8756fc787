"""A complaint may be about an asset (AMC) or a place (QR mapping): two optional references, no
foreign-key constraint (SQLite cannot add one to an existing table; assets and places are retired,
never deleted)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns import UUID
from piccolo.columns.indexes import IndexMethod

ID = "2026-12-06T19:51:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "complaint.asset and complaint.place"


def _params() -> dict[str, object]:
    return {
        "default": None,
        "null": True,
        "primary_key": False,
        "unique": False,
        "index": False,
        "index_method": IndexMethod.btree,
        "choices": None,
        "db_column_name": None,
        "secret": False,
    }


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="opshub", description=DESCRIPTION)
    for name in ("asset", "place"):
        manager.add_column(
            table_class_name="Complaint",
            tablename="complaint",
            column_name=name,
            db_column_name=name,
            column_class_name="UUID",
            column_class=UUID,
            params=_params(),
        )
    return manager
