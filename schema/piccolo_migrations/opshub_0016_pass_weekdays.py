"""Visitor passes number weekdays 0-6 (0 = Monday) like the rest of the hub.

Recurring passes stored ISO weekdays (1 = Monday ... 7 = Sunday) in ``visitor_pass.days`` while
technician shifts, quiet hours and opening hours used Python's ``weekday()`` (0 = Monday). Every
stored list moves down by one. A list holding a 0 cannot be ISO numbering and is left alone."""

import json

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns import JSON, UUID
from piccolo.table import Table

ID = "2026-12-03T16:05:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "visitor pass weekdays 0 (Monday) to 6, not ISO 1-7"


# A frozen copy of the column as this migration found it.
class _VisitorPass(Table, tablename="visitor_pass"):
    id = UUID(primary_key=True)
    days = JSON(default="[]")


def _as_list(value: object) -> list[int]:
    loaded = json.loads(value) if isinstance(value, str) else value
    return [int(d) for d in loaded] if isinstance(loaded, list) else []


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="opshub", description=DESCRIPTION)

    async def renumber() -> None:
        for row in await _VisitorPass.select(_VisitorPass.id, _VisitorPass.days):
            days = _as_list(row["days"])
            if days and 0 not in days:
                renumbered = sorted({d - 1 for d in days if 1 <= d <= 7})
                await _VisitorPass.update({_VisitorPass.days: json.dumps(renumbered)}).where(
                    _VisitorPass.id == row["id"]
                )

    manager.add_raw(renumber)
    return manager
