"""CSV reports for staff: SLA compliance and volume, grouped by category, tower or technician.

Both are views of the ``complaints`` report of the report framework (``app.reports.catalogue``): the
rows are its detail rows, so these CSVs, ``GET /api/reports/complaints`` and its exports agree.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from enum import StrEnum
from typing import Any
from uuid import UUID

from app.complaints.lifecycle import Status
from app.complaints.sla import now_utc
from app.errors import InvalidInput
from app.reports.catalogue import COMPLAINTS
from app.reports.export import csv_text
from app.reports.framework import Column, ColumnType, Query, Scope, ScopeKind


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
_INDEX = {c.name: i for i, c in enumerate(COMPLAINTS.columns)}


async def _rows(
    site_id: UUID, since: dt.datetime | None, until: dt.datetime | None, now: dt.datetime
) -> list[tuple[Any, ...]]:
    """The framework's complaint rows of the site in [since, until) (times, not whole days)."""
    if since is not None and until is not None and until <= since:
        raise InvalidInput.for_query("until", "must be after since")
    query = Query(
        scope=Scope(kind=ScopeKind.SITE, site_id=site_id, person_id=site_id),
        date_from=since.astimezone(dt.UTC).date() if since is not None else None,
        date_to=until.astimezone(dt.UTC).date() if until is not None else None,
        now=now,
    )
    rows: list[tuple[Any, ...]] = []
    at = _INDEX["created_at"]
    async for batch in COMPLAINTS.batches(query):
        rows.extend(r for r in batch if (since is None or r[at] >= since) and (until is None or r[at] < until))
    return rows


def _table(columns: list[str], table: list[list[Any]]) -> str:
    return csv_text([Column(name, ColumnType.TEXT) for name in columns], [tuple(row) for row in table])


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
    rows = [r for r in await _rows(site_id, since, until, now or now_utc()) if r[_INDEX["status"]] != "cancelled"]
    totals: dict[str, list[int]] = defaultdict(lambda: [0] * 6)
    for row in rows:
        counts = totals[row[_INDEX[str(by)]]]
        counts[0] += 1
        for slot, name in enumerate(
            ("resolved", "response_met", "response_breached", "resolution_met", "resolution_breached"), start=1
        ):
            counts[slot] += 1 if row[_INDEX[name]] else 0
    table = []
    for group in sorted(totals):
        c = totals[group]
        judged = c[4] + c[5]
        compliance = f"{100 * c[4] / judged:.1f}" if judged else ""
        table.append([group, *c, compliance])
    return _table(SLA_COLUMNS, table)


async def volume_report(
    site_id: UUID, by: GroupBy, *, since: dt.datetime | None = None, until: dt.datetime | None = None
) -> str:
    rows = await _rows(site_id, since, until, now_utc())
    statuses = [str(s) for s in Status]
    counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(statuses, 0))
    ratings: dict[str, list[int]] = defaultdict(list)
    for row in rows:
        group = row[_INDEX[str(by)]]
        counts[group][row[_INDEX["status"]]] += 1
        if row[_INDEX["rating"]] is not None:
            ratings[group].append(row[_INDEX["rating"]])
    table = []
    for group in sorted(counts):
        per_status = counts[group]
        rated = ratings[group]
        average = f"{sum(rated) / len(rated):.2f}" if rated else ""
        table.append([group, sum(per_status.values()), *[per_status[s] for s in statuses], average, len(rated)])
    return _table(VOLUME_COLUMNS, table)
