"""Retention of visitor personal data: ``visitor_records``, 180 days by default, per-site override.

``apply(run)`` deletes, for one site, everything older than ``run.cutoff`` that names a visitor:
visits (name, phone, plate, photo, with their approval and its steps), passes whose validity ended
before the cutoff, their messages, and ANPR reads (plates). Before the rows go, their visits are
added to ``visitor_daily_count`` (site, day, kind, source) in the same transaction, so the counts
survive and a re-run counts nothing twice (what it counted is gone). Photo files are deleted
first and ``delete_upload`` is idempotent, so a crash anywhere leaves nothing that a re-run misses.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from uuid import UUID

from app.db import write_transaction
from app.privacy.registry import RetentionClass, RetentionRun
from app.uploads import delete_upload
from app.visitors import sitecfg
from schema.visitors import AnprRead, Visit, VisitorDailyCount, VisitorPass

NAME = "visitor_records"
BATCH = 500


async def site_cutoff(site_id: UUID, now: dt.datetime) -> dt.datetime:
    """The cutoff under the site's own period (the override in visitor_site_settings, else 180 days)."""
    return now - dt.timedelta(days=await sitecfg.retention_days(site_id))


async def _count_and_delete_visits(site_id: UUID, rows: list[dict[str, object]]) -> None:
    counts: Counter[tuple[dt.date, str, str]] = Counter()
    for row in rows:
        created: dt.datetime = row["created_at"]  # type: ignore[assignment]
        counts[(created.astimezone(dt.UTC).date(), str(row["kind"]), str(row["source"]))] += 1
    async with write_transaction():
        for (day, kind, source), visits in counts.items():
            existing = (
                await VisitorDailyCount.select(VisitorDailyCount.id)
                .where(
                    (VisitorDailyCount.site == site_id)
                    & (VisitorDailyCount.day == day)
                    & (VisitorDailyCount.kind == kind)
                    & (VisitorDailyCount.source == source)
                )
                .first()
            )
            if existing is None:
                await VisitorDailyCount(site=site_id, day=day, kind=kind, source=source, visits=visits).save()
            else:
                await VisitorDailyCount.update({VisitorDailyCount.visits: VisitorDailyCount.visits + visits}).where(
                    VisitorDailyCount.id == existing["id"]
                )
        await Visit.delete().where(Visit.id.is_in([row["id"] for row in rows]))


async def apply(run: RetentionRun) -> int:
    """Delete the site's visitor records older than ``run.cutoff``; returns how many rows went."""
    site_id, cutoff = run.site_id, run.cutoff
    removed = 0
    while True:
        rows = (
            await Visit.select(Visit.id, Visit.kind, Visit.source, Visit.created_at, Visit.photo_key)
            .where((Visit.site == site_id) & (Visit.created_at < cutoff))
            .limit(BATCH)
        )
        if not rows:
            break
        for row in rows:
            if row["photo_key"]:
                delete_upload(str(row["photo_key"]), run.settings)
        await _count_and_delete_visits(site_id, rows)
        removed += len(rows)
    passes = (
        await VisitorPass.delete()
        .where((VisitorPass.site == site_id) & (VisitorPass.valid_until < cutoff))
        .returning(VisitorPass.id)
    )
    reads = (
        await AnprRead.delete()
        .where((AnprRead.site == site_id) & (AnprRead.created_at < cutoff))
        .returning(AnprRead.id)
    )
    return removed + len(passes) + len(reads)


async def count(run: RetentionRun) -> int:
    """What ``apply`` would delete now: the same conditions, counted."""
    site_id, cutoff = run.site_id, run.cutoff
    visits = await Visit.count().where((Visit.site == site_id) & (Visit.created_at < cutoff))
    passes = await VisitorPass.count().where((VisitorPass.site == site_id) & (VisitorPass.valid_until < cutoff))
    reads = await AnprRead.count().where((AnprRead.site == site_id) & (AnprRead.created_at < cutoff))
    return int(visits) + int(passes) + int(reads)


VISITOR_RECORDS = RetentionClass(
    name=NAME,
    description="Visitor names, phone numbers, photos and plates (visits, passes, ANPR reads); daily counts remain.",
    default_days=sitecfg.DEFAULT_RETENTION_DAYS,
    apply=apply,
    count=count,
)
