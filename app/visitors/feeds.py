"""The guard's and control room's lists: expected today, inside now, pending approvals.

Each list is the REST snapshot; the live deltas are the events on ``site:{id}:gate`` and
``site:{id}:control`` (docs/visitors.md): apply them to the snapshot, refetch on ``resync``.
"""

from __future__ import annotations

import datetime as dt
from uuid import UUID

import msgspec

from app.pagination import MAX_LIMIT, Page, page_of, window
from app.visitors.approvals import ApprovalView, pending, view
from app.visitors.common import now_utc, unit_labels
from app.visitors.gate import VisitView, visit_view
from app.visitors.passes import site_zone_of
from schema.jsonvalue import as_list
from schema.visitors import Visit, VisitorApproval, VisitorPass

# How long an answered walk-in stays on the gate's list while the visitor has not been let in.
ANSWERED_WINDOW = dt.timedelta(hours=2)


class ExpectedVisitor(msgspec.Struct, frozen=True, kw_only=True):
    pass_id: UUID
    unit_id: UUID
    unit_label: str
    name: str
    kind: str
    schedule: str
    valid_from: dt.datetime
    valid_until: dt.datetime
    day_start: str | None
    day_end: str | None
    has_vehicle: bool


class InsideVisitor(msgspec.Struct, frozen=True, kw_only=True):
    visit: VisitView
    unit_label: str
    minutes_inside: int
    # An overstay alert was raised for this visit (the console keeps showing it after a reload).
    overstay: bool = False


async def expected_today(
    site_id: UUID, now: dt.datetime | None = None, *, limit: int = MAX_LIMIT, offset: int = 0
) -> Page[ExpectedVisitor]:
    """Passes valid some time today (site time), recurring ones only on their weekdays (0 = Monday).
    The weekday filter runs here, so the page is cut from the whole day's list."""
    now = now or now_utc()
    zone = await site_zone_of(site_id)
    local = now.astimezone(zone)
    day_start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    day_end = day_start + dt.timedelta(days=1)
    rows = await VisitorPass.select().where(
        (VisitorPass.site == site_id)
        & (VisitorPass.status == "active")
        & (VisitorPass.valid_from < day_end)
        & (VisitorPass.valid_until > max(now, day_start))
    )
    today = local.weekday()
    rows = [r for r in rows if r["schedule"] == "one_time" or today in {int(d) for d in as_list(r["days"])}]
    labels = await unit_labels(site_id, [r["unit"] for r in rows])
    result = [
        ExpectedVisitor(
            pass_id=r["id"],
            unit_id=r["unit"],
            unit_label=labels.get(r["unit"], ""),
            name=r["visitor_name"],
            kind=r["kind"],
            schedule=r["schedule"],
            valid_from=r["valid_from"],
            valid_until=r["valid_until"],
            day_start=r["day_start"],
            day_end=r["day_end"],
            has_vehicle=r["plate_index"] is not None,
        )
        for r in rows
    ]
    ordered = sorted(result, key=lambda e: (e.day_start or "", e.valid_from, str(e.pass_id)))
    return window(ordered, limit=limit, offset=offset)


async def inside_now(
    site_id: UUID, now: dt.datetime | None = None, *, limit: int = MAX_LIMIT, offset: int = 0
) -> Page[InsideVisitor]:
    now = now or now_utc()
    where = (Visit.site == site_id) & (Visit.status == "inside")
    total = await Visit.count().where(where)
    rows = (
        await Visit.select().where(where).order_by(Visit.checked_in_at).order_by(Visit.id).limit(limit).offset(offset)
    )
    labels = await unit_labels(site_id, [r["unit"] for r in rows])
    items = [
        InsideVisitor(
            visit=visit_view(r),
            unit_label=labels.get(r["unit"], ""),
            minutes_inside=int((now - (r["checked_in_at"] or now)).total_seconds() // 60),
            overstay=r["overstay_alerted_at"] is not None,
        )
        for r in rows
    ]
    return page_of(items, total=total, limit=limit, offset=offset)


async def pending_approvals(site_id: UUID, *, limit: int = MAX_LIMIT, offset: int = 0) -> Page[ApprovalView]:
    return await pending(site_id, limit=limit, offset=offset)


async def answered_recently(
    site_id: UUID, now: dt.datetime | None = None, *, limit: int = 100, offset: int = 0
) -> Page[ApprovalView]:
    """Walk-ins answered in the last two hours whose visitor is still at the gate (approved and not yet
    let in, denied, or leave at gate): what a console that (re)loads must show besides the pending ones."""
    now = now or now_utc()
    where = (
        (VisitorApproval.site == site_id)
        & (VisitorApproval.status != "pending")
        & (VisitorApproval.decided_at >= now - ANSWERED_WINDOW)
        # "pending": the answer is in, the visit row has not followed it yet (approvals.answer).
        & VisitorApproval.visit._.status.is_in(["pending", "approved", "denied", "leave_at_gate"])
    )
    total = await VisitorApproval.count().where(where)
    rows = (
        await VisitorApproval.select(VisitorApproval.id)
        .where(where)
        .order_by(VisitorApproval.decided_at)
        .order_by(VisitorApproval.id)
        .limit(limit)
        .offset(offset)
    )
    return page_of([await view(site_id, r["id"]) for r in rows], total=total, limit=limit, offset=offset)
