"""Utilisation per resource and per type over a period, as CSV for staff.

Utilisation = booked hours that were used (checked in or completed) / open hours in the period.
No-shows and cancellations are counted separately; they are what frees capacity.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import defaultdict
from uuid import UUID
from zoneinfo import ZoneInfo

from app.errors import InvalidInput
from app.slots import resources
from app.slots.rules import opening_intervals
from schema.slots import SlotBooking, SlotResource

HEADER = [
    "scope",
    "category",
    "code",
    "name",
    "open_hours",
    "booked_hours",
    "used_hours",
    "bookings",
    "checked_in",
    "no_shows",
    "cancelled",
    "utilisation_pct",
]


def _hours(delta: dt.timedelta) -> float:
    return delta.total_seconds() / 3600


async def utilisation_csv(site_id: UUID, first: dt.date, last: dt.date) -> str:
    if last < first:
        raise InvalidInput.for_query("to", "must not be before from")
    if (last - first).days > 366:
        raise InvalidInput.for_query("to", "a report covers at most one year")
    tz_name, _ = await resources.site_settings(site_id)
    tz = ZoneInfo(tz_name)
    begin = dt.datetime.combine(first, dt.time(), tzinfo=tz).astimezone(dt.UTC)
    end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), tzinfo=tz).astimezone(dt.UTC)
    rows = await SlotResource.select(*resources.SLOT_COLUMNS).where(SlotResource.site == site_id)
    bookings = await SlotBooking.select(
        SlotBooking.resource, SlotBooking.starts_at, SlotBooking.ends_at, SlotBooking.status
    ).where((SlotBooking.site == site_id) & (SlotBooking.starts_at < end) & (SlotBooking.ends_at > begin))
    per: dict[UUID, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for b in bookings:
        length = _hours(min(b["ends_at"], end) - max(b["starts_at"], begin))
        stats = per[b["resource"]]
        stats["bookings"] += 1
        if b["status"] in ("confirmed", "checked_in", "completed", "pending", "no_show"):
            stats["booked"] += length
        if b["status"] in ("checked_in", "completed"):
            stats["used"] += length
            stats["checked_in"] += 1
        elif b["status"] == "no_show":
            stats["no_shows"] += 1
        elif b["status"] in ("cancelled", "rejected"):
            stats["cancelled"] += 1
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(HEADER)
    totals: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for row in sorted(rows, key=lambda r: (r["category"], r["code"])):
        hours = row["opening_hours"]
        rules = resources.rules_of(row)
        open_hours = (
            sum(
                _hours(min(b, end) - max(a, begin))
                for a, b in opening_intervals(rules.opening_hours or {}, tz, first, last)
                if b > begin and a < end
            )
            if hours
            else 0.0
        )
        stats = per.get(row["resource"], defaultdict(float))
        total = totals[row["category"]]
        total["open"] += open_hours
        for key in ("booked", "used", "bookings", "checked_in", "no_shows", "cancelled"):
            total[key] += stats[key]
        writer.writerow(_line("resource", row["category"], row["code"], row["name"], open_hours, stats))
    for category in sorted(totals):
        writer.writerow(_line("type", category, "", "", totals[category]["open"], totals[category]))
    return out.getvalue()


def _line(scope: str, category: str, code: str, name: str, open_hours: float, stats: dict[str, float]) -> list[str]:
    pct = 100 * stats["used"] / open_hours if open_hours else 0.0
    return [
        scope,
        category,
        code,
        name,
        f"{open_hours:.2f}",
        f"{stats['booked']:.2f}",
        f"{stats['used']:.2f}",
        str(int(stats["bookings"])),
        str(int(stats["checked_in"])),
        str(int(stats["no_shows"])),
        str(int(stats["cancelled"])),
        f"{pct:.1f}",
    ]
