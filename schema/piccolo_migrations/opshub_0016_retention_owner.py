"""Visitor retention has one owner: the privacy retention settings (class ``visitor_records``).

A site's override in ``visitor_site_settings.retention_days`` is copied into ``retention_setting``
when that site has none there yet; the old column is no longer read (docs/privacy.md)."""

import datetime as dt
import uuid

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns import UUID, ForeignKey, Integer, Timestamptz, Varchar
from piccolo.table import Table

ID = "2026-12-03T16:00:01:000000"
VERSION = "1.38.0"
DESCRIPTION = "visitor retention owned by the privacy retention settings"


# Frozen copies of the two tables as this migration found them.
class _Site(Table, tablename="site"):
    id = UUID(primary_key=True)


class _VisitorSiteSettings(Table, tablename="visitor_site_settings"):
    id = UUID(primary_key=True)
    site = ForeignKey(references=_Site)
    retention_days = Integer(null=True, default=None)


class _RetentionSetting(Table, tablename="retention_setting"):
    id = UUID(primary_key=True)
    site = ForeignKey(references=_Site)
    class_name = Varchar(length=64)
    days = Integer()
    updated_at = Timestamptz()
    updated_by = UUID(null=True, default=None)


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="opshub", description=DESCRIPTION)

    async def copy_overrides() -> None:
        rows = await _VisitorSiteSettings.select(_VisitorSiteSettings.site, _VisitorSiteSettings.retention_days).where(
            _VisitorSiteSettings.retention_days.is_not_null()
        )
        for row in rows:
            exists = await _RetentionSetting.exists().where(
                (_RetentionSetting.site == row["site"]) & (_RetentionSetting.class_name == "visitor_records")
            )
            if not exists:
                await _RetentionSetting.insert(
                    _RetentionSetting(
                        id=uuid.uuid4(),
                        site=row["site"],
                        class_name="visitor_records",
                        days=int(row["retention_days"]),
                        updated_at=dt.datetime.now(dt.UTC),
                        updated_by=None,
                    )
                )

    manager.add_raw(copy_overrides)
    return manager
