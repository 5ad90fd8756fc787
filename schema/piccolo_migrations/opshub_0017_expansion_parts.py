"""An audience is expanded in parts that several workers take at once: ``notification.parts`` is how many,
``notification_part`` records each part done (once, by a unique index) with how many people it held.
Frozen copies of the tables as created here."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns import UUID, ForeignKey, Integer, OnDelete, Timestamptz
from piccolo.columns.indexes import IndexMethod
from piccolo.table import Table

ID = "2026-12-06T17:01:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "notification.parts and notification_part: audiences expanded in parts"


class Notification(Table, tablename="notification"):
    id = UUID(primary_key=True)


class NotificationPart(Table, tablename="notification_part"):
    id = UUID(primary_key=True)
    notification = ForeignKey(references=Notification, on_delete=OnDelete.cascade, null=False, index=True)
    part = Integer()
    people = Integer(default=0)
    finished_at = Timestamptz()


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="opshub", description=DESCRIPTION)
    manager.add_column(
        table_class_name="Notification",
        tablename="notification",
        column_name="parts",
        db_column_name="parts",
        column_class_name="Integer",
        column_class=Integer,
        params={
            "default": 0,
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
    )
    manager.add_table(class_name="NotificationPart", tablename="notification_part")
    for column in NotificationPart._meta.columns:
        manager.add_column(
            table_class_name="NotificationPart",
            tablename="notification_part",
            column_name=column._meta.name,
            db_column_name=column._meta.db_column_name,
            column_class_name=type(column).__name__,
            column_class=type(column),
            params=dict(column._meta.params),
        )
    return manager
