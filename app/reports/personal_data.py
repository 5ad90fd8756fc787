"""Personal data the report framework holds: registered with `app.privacy.registry`.

What it holds of a person is what they asked for: their scheduled reports (subscriptions) and their
export jobs, whose files are copies of reports they ran (kept until the link expires). Erasure ends the
subscriptions and deletes the jobs and their files at once; nothing is held.
"""

from __future__ import annotations

import asyncio
from typing import Any

from app.privacy.exports import delete_archive
from app.privacy.registry import ErasureOutcome, PersonalDataSection, PersonScope, register_section
from schema.reports import ReportExport, ReportSubscription


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


async def export(scope: PersonScope) -> list[dict[str, Any]]:
    site, person = scope.site_id, scope.person_id
    rows: list[dict[str, Any]] = []
    for row in await ReportSubscription.select(
        ReportSubscription.id,
        ReportSubscription.report,
        ReportSubscription.frequency,
        ReportSubscription.format,
        ReportSubscription.by,
        ReportSubscription.last_period_end,
        ReportSubscription.created_at,
    ).where((ReportSubscription.site == site) & (ReportSubscription.person == person)):
        rows.append({"record": "scheduled_report", **{k: _iso(v) for k, v in row.items()}})
    for row in await ReportExport.select(
        ReportExport.id,
        ReportExport.report,
        ReportExport.format,
        ReportExport.status,
        ReportExport.rows,
        ReportExport.created_at,
    ).where((ReportExport.site == site) & (ReportExport.person == person)):
        rows.append({"record": "report_export", **{k: _iso(v) for k, v in row.items()}})
    return rows


async def erase(scope: PersonScope) -> ErasureOutcome:
    site, person = scope.site_id, scope.person_id
    mine_exports = (ReportExport.site == site) & (ReportExport.person == person)
    files = await ReportExport.select(ReportExport.file_key).where(mine_exports & ReportExport.file_key.is_not_null())
    for row in files:
        await asyncio.to_thread(delete_archive, scope.settings, row["file_key"])
    jobs = await ReportExport.delete().where(mine_exports).returning(ReportExport.id)
    subscriptions = (
        await ReportSubscription.delete()
        .where((ReportSubscription.site == site) & (ReportSubscription.person == person))
        .returning(ReportSubscription.id)
    )
    return ErasureOutcome(erased=len(jobs) + len(subscriptions), held=[])


SECTION = register_section(
    PersonalDataSection(
        name="reports",
        description=(
            "Reports you receive by e-mail (which, how often, the last period sent) and the report files you "
            "exported (which report, when; the files themselves are deleted when their link expires)."
        ),
        export=export,
        erase=erase,
        legal_hold=None,
    )
)
