"""Erasure requests record their review (who opened ``erasure-review``, when): approval needs it."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns import UUID, Timestamptz
from piccolo.columns.indexes import IndexMethod

ID = "2026-12-03T16:00:02:000000"
VERSION = "1.38.0"
DESCRIPTION = "data_rights_request.reviewed_at and reviewed_by"


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
    for name, column_class in (("reviewed_at", Timestamptz), ("reviewed_by", UUID)):
        manager.add_column(
            table_class_name="DataRightsRequest",
            tablename="data_rights_request",
            column_name=name,
            db_column_name=name,
            column_class_name=column_class.__name__,
            column_class=column_class,
            params=_params(),
        )
    return manager
