"""CSV reports for staff: SLA compliance and volume, grouped by category, tower or technician."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import defaultdict
from collections.abc import Callable
from enum import StrEnum
from typing import Any
from uuid import UUID

from app.complaints.lifecycle import Status
from app.complaints.sla import aware, now_utc
from app.errors import InvalidInput
from schema.complaints import Complaint, ComplaintCategory
from schema.tables import Building, Person, Unit


class GroupBy(StrEnum):
    CATEGORY = "category"
    TOWER = "tower"
    TECHNICIAN = "technician"


SLA_COLUMNS = [
    "group",
    "complaints",
    "resolved",
    "response_met",
    "response_breached",
    "resolution_met",
    "resolution_breached",
    "compliance_percent",
]
VOLUME_COLUMNS = ["group", "complaints", *[str(s) for s in Status], "average_rating", "ratings"]


async def _rows(site_id: UUID, since: dt.datetime | None, until: dt.datetime | None) -> list[dict[str, Any]]:
    if since is not None and until is not None and until <= since:
        raise InvalidInput.for_query("until", "must be after since")
    where: Any = Complaint.site == site_id
    if since is not None:
        where = where & (Complaint.created_at >= since)
    if until is not None:
        where = where & (Complaint.created_at < until)
    rows: list[dict[str, Any]] = await Complaint.select().where(where).order_by(Complaint.created_at)
    return rows


async def _grouper(site_id: UUID, by: GroupBy, rows: list[dict[str, Any]]) -> Callable[[dict[str, Any]], str]:
    if by is GroupBy.CATEGORY:
        codes = {
            r["id"]: r["code"]
            for r in await ComplaintCategory.select(ComplaintCategory.id, ComplaintCategory.code).where(
                ComplaintCategory.site == site_id
            )
        }
        return lambda row: codes.get(row["category"], "?")
    if by is GroupBy.TOWER:
        buildings = {
            r["id"]: r["code"]
            for r in await Building.select(Building.id, Building.code).where(Building.site == site_id)
        }
        units = {
            r["id"]: buildings.get(r["building"], "?")
            for r in await Unit.select(Unit.id, Unit.building).where(Unit.site == site_id)
        }
        return lambda row: units.get(row["unit"], "?") if row["unit"] else "common areas"
    ids = list({row["assignee"] for row in rows if row["assignee"] is not None})
    names = (
        {r["id"]: r["full_name"] for r in await Person.select(Person.id, Person.full_name).where(Person.id.is_in(ids))}
        if ids
        else {}
    )
    return lambda row: names.get(row["assignee"], "?") if row["assignee"] else "unassigned"


def _csv(columns: list[str], table: list[list[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    writer.writerows(table)
    return buffer.getvalue()


async def sla_report(
    site_id: UUID,
    by: GroupBy,
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> str:
    """Per group: of the complaints raised in the period (cancelled ones left out), how many met
    and missed their response and resolution deadlines (an active one past a deadline counts as missed)."""
    now = now or now_utc()
    rows = [r for r in await _rows(site_id, since, until) if r["status"] != str(Status.CANCELLED)]
    group_of = await _grouper(site_id, by, rows)
    totals: dict[str, list[int]] = defaultdict(lambda: [0] * 6)
    for row in rows:
        counts = totals[group_of(row)]
        counts[0] += 1
        response_due = aware(row["response_due_at"])
        resolution_due = aware(row["resolution_due_at"])
        responded = row["responded_at"] or row["resolved_at"]
        if responded is not None:
            counts[2 if aware(responded) <= response_due else 3] += 1
        elif now > response_due:
            counts[3] += 1
        resolved = row["resolved_at"] or row["closed_at"]
        if resolved is not None:
            counts[1] += 1
            counts[4 if aware(resolved) <= resolution_due else 5] += 1
        elif now > resolution_due:
            counts[5] += 1
    table = []
    for group in sorted(totals):
        c = totals[group]
        judged = c[4] + c[5]
        compliance = f"{100 * c[4] / judged:.1f}" if judged else ""
        table.append([group, *c, compliance])
    return _csv(SLA_COLUMNS, table)


async def volume_report(
    site_id: UUID, by: GroupBy, *, since: dt.datetime | None = None, until: dt.datetime | None = None
) -> str:
    rows = await _rows(site_id, since, until)
    group_of = await _grouper(site_id, by, rows)
    statuses = [str(s) for s in Status]
    counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(statuses, 0))
    ratings: dict[str, list[int]] = defaultdict(list)
    for row in rows:
        group = group_of(row)
        counts[group][row["status"]] += 1
        if row["rating"] is not None:
            ratings[group].append(row["rating"])
    table = []
    for group in sorted(counts):
        per_status = counts[group]
        rated = ratings[group]
        average = f"{sum(rated) / len(rated):.2f}" if rated else ""
        table.append([group, sum(per_status.values()), *[per_status[s] for s in statuses], average, len(rated)])
    return _csv(VOLUME_COLUMNS, table)
