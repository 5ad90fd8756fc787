"""Personal data this module holds: registered with `app.privacy.registry`.

Sections: the person's data-rights requests, their export archives, and the audit trail of who
accessed their data. Retention classes: export archives, the audit log, and data-rights request
records (at least 3 years: a site cannot set less).
"""

from __future__ import annotations

import json
from typing import Any

from app.privacy.exports import delete_archive
from app.privacy.registry import (
    ErasureOutcome,
    PersonalDataSection,
    PersonScope,
    RetentionClass,
    RetentionRun,
    register_retention,
    register_section,
)
from schema.privacy import AuditEvent, DataExport, DataRightsRequest

REQUEST_RECORD_DAYS = 3 * 366  # at least 3 years, leap years included


async def _export_requests(scope: PersonScope) -> list[dict[str, Any]]:
    rows = (
        await DataRightsRequest.select(
            DataRightsRequest.id,
            DataRightsRequest.kind,
            DataRightsRequest.status,
            DataRightsRequest.details,
            DataRightsRequest.created_at,
            DataRightsRequest.ack_due_at,
            DataRightsRequest.due_at,
            DataRightsRequest.acknowledged_at,
            DataRightsRequest.completed_at,
            DataRightsRequest.resolution,
            DataRightsRequest.outcome,
        )
        .where((DataRightsRequest.site == scope.site_id) & (DataRightsRequest.person_id == scope.person_id))
        .order_by(DataRightsRequest.created_at)
    )
    return [{**row, "outcome": json.loads(o) if isinstance(o := row["outcome"], str) else o} for row in rows]


async def _erase_requests(scope: PersonScope) -> ErasureOutcome:
    # Kept (legal hold) with ids, dates and outcomes only: the erasure job blanks their free text.
    updated = (
        await DataRightsRequest.update({DataRightsRequest.details: ""})
        .where((DataRightsRequest.site == scope.site_id) & (DataRightsRequest.person_id == scope.person_id))
        .returning(DataRightsRequest.id)
    )
    return ErasureOutcome(erased=len(updated), held=[f"{len(updated)} request records kept without personal details"])


async def _export_exports(scope: PersonScope) -> list[dict[str, Any]]:
    rows = await DataExport.select(
        DataExport.id, DataExport.status, DataExport.created_at, DataExport.completed_at, DataExport.expires_at
    ).where((DataExport.site == scope.site_id) & (DataExport.person_id == scope.person_id))
    return list(rows)


async def _erase_exports(scope: PersonScope) -> ErasureOutcome:
    rows = await DataExport.select(DataExport.id, DataExport.file_key).where(
        (DataExport.site == scope.site_id) & (DataExport.person_id == scope.person_id)
    )
    files = sum(1 for row in rows if delete_archive(scope.settings, row["file_key"]))
    await DataExport.delete().where((DataExport.site == scope.site_id) & (DataExport.person_id == scope.person_id))
    return ErasureOutcome(erased=len(rows), files_deleted=files)


async def _export_audit(scope: PersonScope) -> list[dict[str, Any]]:
    rows = (
        await AuditEvent.select(
            AuditEvent.at,
            AuditEvent.actor_id,
            AuditEvent.actor_roles,
            AuditEvent.action,
            AuditEvent.data,
            AuditEvent.method,
            AuditEvent.route,
        )
        .where((AuditEvent.site == scope.site_id) & (AuditEvent.subject_id == scope.person_id))
        .order_by(AuditEvent.at)
    )
    return list(rows)


async def _erase_audit(scope: PersonScope) -> ErasureOutcome:
    count = await AuditEvent.count().where(
        (AuditEvent.site == scope.site_id) & (AuditEvent.subject_id == scope.person_id)
    )
    return ErasureOutcome(erased=0, held=[f"{count} audit entries kept (ids, times and endpoints only)"])


async def _apply_export_retention(run: RetentionRun) -> int:
    rows = await DataExport.select(DataExport.id, DataExport.file_key).where(
        (DataExport.site == run.site_id) & (DataExport.created_at < run.cutoff)
    )
    for row in rows:
        delete_archive(run.settings, row["file_key"])
    ids = [row["id"] for row in rows]
    for start in range(0, len(ids), 500):
        await DataExport.delete().where(DataExport.id.is_in(ids[start : start + 500]))
    return len(ids)


async def _apply_audit_retention(run: RetentionRun) -> int:
    deleted = (
        await AuditEvent.delete()
        .where((AuditEvent.site == run.site_id) & (AuditEvent.at < run.cutoff))
        .returning(AuditEvent.id)
    )
    return len(deleted)


async def _apply_request_retention(run: RetentionRun) -> int:
    # Only closed requests, and only once they are older than the period.
    deleted = (
        await DataRightsRequest.delete()
        .where(
            (DataRightsRequest.site == run.site_id)
            & (DataRightsRequest.created_at < run.cutoff)
            & DataRightsRequest.completed_at.is_not_null()
            & (DataRightsRequest.completed_at < run.cutoff)
        )
        .returning(DataRightsRequest.id)
    )
    return len(deleted)


async def _count_export_retention(run: RetentionRun) -> int:
    return int(await DataExport.count().where((DataExport.site == run.site_id) & (DataExport.created_at < run.cutoff)))


async def _count_audit_retention(run: RetentionRun) -> int:
    return int(await AuditEvent.count().where((AuditEvent.site == run.site_id) & (AuditEvent.at < run.cutoff)))


async def _count_request_retention(run: RetentionRun) -> int:
    return int(
        await DataRightsRequest.count().where(
            (DataRightsRequest.site == run.site_id)
            & (DataRightsRequest.created_at < run.cutoff)
            & DataRightsRequest.completed_at.is_not_null()
            & (DataRightsRequest.completed_at < run.cutoff)
        )
    )


REQUESTS = register_section(
    PersonalDataSection(
        name="data_rights_requests",
        description="Your requests to access, correct, export or erase your data, or to object, "
        "with their deadlines and outcome.",
        export=_export_requests,
        erase=_erase_requests,
        legal_hold="Request records are kept for 3 years (ids, dates and outcome; your own words are removed) "
        "to show each request was answered in time.",
    )
)
EXPORTS = register_section(
    PersonalDataSection(
        name="data_exports",
        description="The data export archives you requested, and when their links expire.",
        export=_export_exports,
        erase=_erase_exports,
    )
)
AUDIT = register_section(
    PersonalDataSection(
        name="access_log",
        description="Who read or changed your personal data, when, and through which endpoint.",
        export=_export_audit,
        erase=_erase_audit,
        legal_hold="The audit log of access to your data is kept for its retention period "
        "(ids, times and endpoints only: it holds no names or contact details).",
    )
)
EXPORT_ARCHIVES = register_retention(
    RetentionClass(
        name="export_archives",
        description="Data export archives (files and records) are deleted after this period.",
        default_days=7,
        apply=_apply_export_retention,
        count=_count_export_retention,
    )
)
AUDIT_LOG = register_retention(
    RetentionClass(
        name="audit_log",
        description="Entries of the personal-data audit log are deleted after this period.",
        default_days=730,
        apply=_apply_audit_retention,
        count=_count_audit_retention,
        min_days=365,
    )
)
REQUEST_RECORDS = register_retention(
    RetentionClass(
        name="data_rights_requests",
        description="Closed data-rights request records are deleted after this period (at least 3 years).",
        default_days=REQUEST_RECORD_DAYS,
        apply=_apply_request_retention,
        count=_count_request_retention,
        min_days=REQUEST_RECORD_DAYS,
    )
)
