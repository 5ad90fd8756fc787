"""The service schedule and its visits: list them, record one done (notes, checklist, photos).

A visit's state is derived on the site's calendar: ``scheduled`` until its date, ``due`` on it and
through the contract's grace days, ``overdue`` after them, or ``done`` / ``cancelled``. Recording a
visit is ``UPDATE ... WHERE status = 'scheduled'``: two people recording one visit at once cannot
both succeed, and the second is told it was already recorded.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from redis.asyncio import Redis

from app.amc import board
from app.amc.common import Notes, local_day, now_utc, site_zone
from app.auth.principal import Principal
from app.config import Settings
from app.errors import Conflict, InvalidInput, NotFound
from app.pagination import Page, page_of
from app.text import ONE_LINE
from app.uploads import read_upload, save_image
from schema.amc import Asset, MaintenanceContract, ServiceVisit, VisitAttachment
from schema.jsonvalue import as_list
from schema.tables import Person

VisitState = Literal["scheduled", "due", "overdue", "done", "cancelled"]
VisitFilter = Literal["open", "overdue", "done", "all"]
MAX_ATTACHMENTS = 10


class ChecklistItem(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    item: Annotated[str, msgspec.Meta(min_length=1, max_length=200), ONE_LINE]
    ok: bool
    remark: Annotated[str, msgspec.Meta(max_length=500), ONE_LINE] = ""


class VisitReport(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A visit done: on which day (default today), what was found, the checklist as ticked."""

    completed_on: dt.date | None = None
    notes: Notes = ""
    checklist: Annotated[list[ChecklistItem], msgspec.Meta(max_length=50)] = []


class AttachmentView(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    media_type: str
    size: int
    at: dt.datetime


class VisitView(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    contract_id: UUID
    asset_id: UUID
    asset_code: str
    asset_name: str
    vendor: str
    due_on: dt.date
    overdue_after: dt.date  # the last day of its grace: overdue from the next day
    state: VisitState
    days_late: int  # > 0 when overdue, or done late
    completed_on: dt.date | None
    completed_at: dt.datetime | None
    completed_by: UUID | None
    completed_by_name: str | None
    notes: str
    checklist: list[ChecklistItem]
    attachments: list[AttachmentView]


def visit_state(row: dict[str, Any], grace_days: int, today: dt.date) -> VisitState:
    if row["status"] in ("done", "cancelled"):
        return "done" if row["status"] == "done" else "cancelled"
    if today < row["due_on"]:
        return "scheduled"
    return "overdue" if today > row["due_on"] + dt.timedelta(days=grace_days) else "due"


async def views(site_id: UUID, rows: list[dict[str, Any]], now: dt.datetime) -> list[VisitView]:
    if not rows:
        return []
    today = local_day(now, await site_zone(site_id))
    contract_rows = await MaintenanceContract.select(
        MaintenanceContract.id, MaintenanceContract.vendor, MaintenanceContract.sla_visit_grace_days
    ).where(MaintenanceContract.id.is_in(list({r["contract"] for r in rows})))
    contracts = {c["id"]: c for c in contract_rows}
    asset_rows = await Asset.select(Asset.id, Asset.code, Asset.name).where(
        Asset.id.is_in(list({r["asset"] for r in rows}))
    )
    names = {a["id"]: a for a in asset_rows}
    people_ids = [r["completed_by"] for r in rows if r["completed_by"]]
    people = (
        {
            p["id"]: p["full_name"]
            for p in await Person.select(Person.id, Person.full_name).where(Person.id.is_in(people_ids))
        }
        if people_ids
        else {}
    )
    files = (
        await VisitAttachment.select()
        .where(VisitAttachment.visit.is_in([r["id"] for r in rows]))
        .order_by(VisitAttachment.created_at)
    )
    by_visit: dict[UUID, list[AttachmentView]] = {}
    for f in files:
        by_visit.setdefault(f["visit"], []).append(
            AttachmentView(id=f["id"], media_type=f["media_type"], size=f["size"], at=f["created_at"])
        )
    result = []
    for row in rows:
        grace = contracts.get(row["contract"], {}).get("sla_visit_grace_days", 0)
        state = visit_state(row, grace, today)
        last_day = row["due_on"] + dt.timedelta(days=grace)
        late_against = row["completed_on"] if row["status"] == "done" and row["completed_on"] else today
        result.append(
            VisitView(
                id=row["id"],
                contract_id=row["contract"],
                asset_id=row["asset"],
                asset_code=names.get(row["asset"], {}).get("code", ""),
                asset_name=names.get(row["asset"], {}).get("name", ""),
                vendor=contracts.get(row["contract"], {}).get("vendor", ""),
                due_on=row["due_on"],
                overdue_after=last_day,
                state=state,
                days_late=max(0, (late_against - last_day).days) if state in ("overdue", "done") else 0,
                completed_on=row["completed_on"],
                completed_at=row["completed_at"],
                completed_by=row["completed_by"],
                completed_by_name=people.get(row["completed_by"]) if row["completed_by"] else None,
                notes=row["notes"],
                checklist=msgspec.convert(as_list(row["checklist"]), list[ChecklistItem]),
                attachments=by_visit.get(row["id"], []),
            )
        )
    return result


async def load(site_id: UUID, visit_id: UUID) -> dict[str, Any]:
    row = await ServiceVisit.select().where((ServiceVisit.site == site_id) & (ServiceVisit.id == visit_id)).first()
    if row is None:
        raise NotFound("visit not found")
    return row


async def get_visit(site_id: UUID, visit_id: UUID, now: dt.datetime | None = None) -> VisitView:
    return (await views(site_id, [await load(site_id, visit_id)], now or now_utc()))[0]


async def list_visits(
    site_id: UUID,
    *,
    asset_id: UUID | None = None,
    contract_id: UUID | None = None,
    which: VisitFilter = "open",
    due_from: dt.date | None = None,
    due_until: dt.date | None = None,
    limit: int,
    offset: int,
    now: dt.datetime | None = None,
) -> Page[VisitView]:
    """The schedule: open visits (scheduled, due, overdue) by date by default; or overdue, done, all."""
    now = now or now_utc()
    where: Any = ServiceVisit.site == site_id
    if asset_id is not None:
        where = where & (ServiceVisit.asset == asset_id)
    if contract_id is not None:
        where = where & (ServiceVisit.contract == contract_id)
    if due_from is not None:
        where = where & (ServiceVisit.due_on >= due_from)
    if due_until is not None:
        where = where & (ServiceVisit.due_on <= due_until)
    if which in ("open", "overdue"):
        where = where & (ServiceVisit.status == "scheduled")
    elif which == "done":
        where = where & (ServiceVisit.status == "done")
    if which == "overdue":
        today = local_day(now, await site_zone(site_id))
        where = where & (ServiceVisit.due_on < today)
        rows = await ServiceVisit.select().where(where).order_by(ServiceVisit.due_on).order_by(ServiceVisit.id)
        items = [v for v in await views(site_id, rows, now) if v.state == "overdue"]
        return page_of(items[offset : offset + limit], total=len(items), limit=limit, offset=offset)
    total = await ServiceVisit.count().where(where)
    ascending = which != "done"
    rows = (
        await ServiceVisit.select()
        .where(where)
        .order_by(ServiceVisit.due_on, ascending=ascending)
        .order_by(ServiceVisit.id)
        .limit(limit)
        .offset(offset)
    )
    return page_of(await views(site_id, rows, now), total=total, limit=limit, offset=offset)


async def complete_visit(
    settings: Settings,
    redis: Redis,
    principal: Principal,
    visit_id: UUID,
    data: VisitReport,
    now: dt.datetime | None = None,
) -> VisitView:
    now = now or now_utc()
    site_id = principal.site_id
    row = await load(site_id, visit_id)
    today = local_day(now, await site_zone(site_id))
    completed_on = data.completed_on or today
    if completed_on > today:
        raise InvalidInput.for_field("completed_on", "must not be in the future")
    contract = (
        await MaintenanceContract.select(MaintenanceContract.starts_on)
        .where(MaintenanceContract.id == row["contract"])
        .first()
    )
    if contract is not None and completed_on < contract["starts_on"] - dt.timedelta(days=31):
        raise InvalidInput.for_field("completed_on", "is long before the contract started")
    if row["status"] != "scheduled":
        raise Conflict(f"this visit is already {row['status']}", extra={"status": row["status"]})
    done = (
        await ServiceVisit.update(
            {
                ServiceVisit.status: "done",
                ServiceVisit.completed_on: completed_on,
                ServiceVisit.completed_at: now,
                ServiceVisit.completed_by: principal.person_id,
                ServiceVisit.notes: data.notes,
                ServiceVisit.checklist: msgspec.to_builtins(data.checklist),
                ServiceVisit.updated_at: now,
            }
        )
        .where((ServiceVisit.id == visit_id) & (ServiceVisit.status == "scheduled"))
        .returning(ServiceVisit.id)
    )
    if not done:
        current = await load(site_id, visit_id)
        raise Conflict(f"this visit is already {current['status']}", extra={"status": current["status"]})
    await board.board_changed(settings, redis, site_id, "visit_done", visit_id=visit_id)
    return await get_visit(site_id, visit_id, now)


async def add_attachment(
    settings: Settings, principal: Principal, visit_id: UUID, content: bytes | None, now: dt.datetime | None = None
) -> AttachmentView:
    now = now or now_utc()
    await load(principal.site_id, visit_id)
    if content is None:
        raise InvalidInput.for_field("file", "is required")
    if await VisitAttachment.count().where(VisitAttachment.visit == visit_id) >= MAX_ATTACHMENTS:
        raise Conflict(f"a visit holds at most {MAX_ATTACHMENTS} attachments")
    stored = await save_image(content, settings, site_id=principal.site_id, kind="amc", field="file")
    attachment = VisitAttachment(
        site=principal.site_id,
        visit=visit_id,
        key=stored.key,
        media_type=stored.media_type,
        size=stored.size,
        uploaded_by=principal.person_id,
        created_at=now,
    )
    await attachment.save()
    return AttachmentView(id=attachment.id, media_type=stored.media_type, size=stored.size, at=now)


async def read_attachment(settings: Settings, site_id: UUID, visit_id: UUID, attachment_id: UUID) -> tuple[bytes, str]:
    row = (
        await VisitAttachment.select()
        .where(
            (VisitAttachment.site == site_id)
            & (VisitAttachment.visit == visit_id)
            & (VisitAttachment.id == attachment_id)
        )
        .first()
    )
    if row is None:
        raise NotFound("attachment not found")
    try:
        return read_upload(row["key"], settings), row["media_type"]
    except FileNotFoundError:
        raise NotFound("attachment not found") from None
