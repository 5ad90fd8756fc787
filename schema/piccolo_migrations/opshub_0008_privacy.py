"""Privacy tables. Frozen copies of the tables as created here (a migration never imports today's
table classes); every column is added with its constructor parameters."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns import JSON, UUID, ForeignKey, Integer, OnDelete, Text, Timestamptz, Varchar
from piccolo.table import Table

ID = "2026-11-22T11:08:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "privacy: data-rights requests, exports, audit log, retention"


class Site(Table, tablename="site"):
    id = UUID(primary_key=True)


class DataRightsRequest(Table, tablename="data_rights_request"):
    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    person_id = UUID(index=True)
    kind = Varchar(length=16)
    status = Varchar(length=16, default="open")
    details = Text(default="")
    created_by = UUID(null=True, default=None)
    created_at = Timestamptz()
    ack_due_at = Timestamptz()
    due_at = Timestamptz()
    acknowledged_at = Timestamptz(null=True, default=None)
    completed_at = Timestamptz(null=True, default=None)
    handled_by = UUID(null=True, default=None)
    resolution = Text(default="")
    legal_holds = JSON(default="[]")
    outcome = JSON(default="{}")
    approved_at = Timestamptz(null=True, default=None)
    identifiers_encrypted = Text(null=True, default=None)
    export_id = UUID(null=True, default=None)
    ack_warned_at = Timestamptz(null=True, default=None)
    ack_overdue_at = Timestamptz(null=True, default=None)
    due_warned_at = Timestamptz(null=True, default=None)
    due_overdue_at = Timestamptz(null=True, default=None)


class DataExport(Table, tablename="data_export"):
    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    person_id = UUID(index=True)
    request_id = UUID(null=True, default=None)
    status = Varchar(length=16, default="pending")
    file_key = Varchar(length=300, null=True, default=None)
    size_bytes = Integer(default=0)
    section_counts = JSON(default="{}")
    error = Varchar(length=300, null=True, default=None)
    created_at = Timestamptz()
    completed_at = Timestamptz(null=True, default=None)
    expires_at = Timestamptz(null=True, default=None)


class AuditEvent(Table, tablename="audit_event"):
    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    at = Timestamptz(index=True)
    actor_id = UUID(null=True, default=None, index=True)
    actor_roles = Varchar(length=120, default="")
    subject_id = UUID(index=True)
    action = Varchar(length=16)
    data = Varchar(length=32)
    method = Varchar(length=8, default="")
    route = Varchar(length=300, default="")


class RetentionSetting(Table, tablename="retention_setting"):
    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    class_name = Varchar(length=64)
    days = Integer()
    updated_at = Timestamptz()
    updated_by = UUID(null=True, default=None)


class RetentionRunLog(Table, tablename="retention_run"):
    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    class_name = Varchar(length=64)
    days = Integer()
    cutoff = Timestamptz()
    deleted = Integer(default=0)
    error = Varchar(length=200, null=True, default=None)
    ran_at = Timestamptz(index=True)


TABLES = (DataRightsRequest, DataExport, AuditEvent, RetentionSetting, RetentionRunLog)


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="opshub", description=DESCRIPTION)
    for table in TABLES:
        manager.add_table(class_name=table.__name__, tablename=table._meta.tablename)
        for column in table._meta.columns:
            manager.add_column(
                table_class_name=table.__name__,
                tablename=table._meta.tablename,
                column_name=column._meta.name,
                db_column_name=column._meta.db_column_name,
                column_class_name=type(column).__name__,
                column_class=type(column),
                params=dict(column._meta.params),
            )
    return manager
