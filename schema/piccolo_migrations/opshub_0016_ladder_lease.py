"""A ladder rung is recorded ``started`` under a lease when claimed, ``done`` once its sends are made.

Rows already there are finished rungs: ``done``, no lease, one attempt."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns import Integer, Timestamptz, Varchar
from piccolo.columns.base import Column
from piccolo.columns.indexes import IndexMethod

ID = "2026-12-03T16:16:01:000000"
VERSION = "1.38.0"
DESCRIPTION = "visitor_approval_step.state, lease_until and attempts"


def _params(default: object, null: bool, **extra: object) -> dict[str, object]:
    return {
        "default": default,
        "null": null,
        "primary_key": False,
        "unique": False,
        "index": False,
        "index_method": IndexMethod.btree,
        "choices": None,
        "db_column_name": None,
        "secret": False,
        **extra,
    }


COLUMNS: list[tuple[str, type[Column], dict[str, object]]] = [
    ("state", Varchar, _params("done", False, length=16)),
    ("lease_until", Timestamptz, _params(None, True)),
    ("attempts", Integer, _params(1, False)),
]


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="opshub", description=DESCRIPTION)
    for name, column_class, params in COLUMNS:
        manager.add_column(
            table_class_name="VisitorApprovalStep",
            tablename="visitor_approval_step",
            column_name=name,
            db_column_name=name,
            column_class_name=column_class.__name__,
            column_class=column_class,
            params=params,
        )
    return manager
