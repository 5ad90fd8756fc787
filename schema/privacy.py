"""Tables of the privacy module (migrations: see schema/piccolo_migrations/README.md).

- ``DataRightsRequest``: access, correction, export, erasure and objection requests, with their
  7-day acknowledgement and 30-day completion deadlines; kept at least 3 years, ids only.
- ``DataExport``: one export archive (a zip under ``settings.export_path``) and its expiry.
- ``AuditEvent``: append-only record of who read or changed whose personal data, and where.
- ``RetentionSetting`` / ``RetentionRunLog``: per-site retention periods and what each run deleted.

People are referenced by plain UUID columns (no foreign key) where the record must outlive the
person: an erased person's requests and audit trail stay, holding ids and no personal values.
"""

from __future__ import annotations

from piccolo.columns import JSON, UUID, ForeignKey, Integer, OnDelete, Text, Timestamptz, Varchar
from piccolo.table import Table

from schema.tables import Site


class DataRightsRequest(Table, tablename="data_rights_request"):
    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    person_id = UUID(index=True)
    kind = Varchar(length=16)  # access | correction | export | erasure | objection
    # open | acknowledged | approved | erasing | completed | rejected
    status = Varchar(length=16, default="open")
    details = Text(default="")  # the person's own words; blanked when they are erased
    created_by = UUID(null=True, default=None)
    created_at = Timestamptz()
    ack_due_at = Timestamptz()
    due_at = Timestamptz()
    acknowledged_at = Timestamptz(null=True, default=None)
    completed_at = Timestamptz(null=True, default=None)
    handled_by = UUID(null=True, default=None)
    resolution = Text(default="")  # the site admin's note (no personal values)
    legal_holds = JSON(default="[]")  # shown at review, kept with the decision
    outcome = JSON(default="{}")  # per-section counts of what an erasure or export did
    approved_at = Timestamptz(null=True, default=None)
    # When a site admin last opened the erasure review (approval needs it; app.privacy.erasure).
    reviewed_at = Timestamptz(null=True, default=None)
    reviewed_by = UUID(null=True, default=None)
    # While an erasure runs: the person's identifiers, encrypted, so a re-run still finds them.
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
    status = Varchar(length=16, default="pending")  # pending | ready | failed | expired
    file_key = Varchar(length=300, null=True, default=None)  # relative to settings.export_path
    size_bytes = Integer(default=0)
    section_counts = JSON(default="{}")
    error = Varchar(length=300, null=True, default=None)
    created_at = Timestamptz()
    completed_at = Timestamptz(null=True, default=None)
    expires_at = Timestamptz(null=True, default=None)


class AuditEvent(Table, tablename="audit_event"):
    """Never updated, never deleted through the API; only the retention engine purges old rows."""

    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    at = Timestamptz(index=True)
    actor_id = UUID(null=True, default=None, index=True)  # None: the system (a job)
    actor_roles = Varchar(length=120, default="")
    subject_id = UUID(index=True)  # whose personal data
    action = Varchar(length=16)  # read | write | export | erase
    data = Varchar(length=32)  # contact_points | vehicles | profile | archive | ...
    method = Varchar(length=8, default="")
    route = Varchar(length=300, default="")  # the route template or job name, never a query string


class RetentionSetting(Table, tablename="retention_setting"):
    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    class_name = Varchar(length=64)
    days = Integer()
    updated_at = Timestamptz()
    updated_by = UUID(null=True, default=None)


class RetentionRunLog(Table, tablename="retention_run"):
    """What one retention class deleted on one site in one run: counts, never content."""

    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    class_name = Varchar(length=64)
    days = Integer()
    cutoff = Timestamptz()
    deleted = Integer(default=0)
    error = Varchar(length=200, null=True, default=None)
    ran_at = Timestamptz(index=True)


PRIVACY_TABLES: list[type[Table]] = [DataRightsRequest, DataExport, AuditEvent, RetentionSetting, RetentionRunLog]
