"""An asset's whole history on one page: its contracts, every service visit (done, due, overdue), the
complaints raised against it (from its QR code or by staff), the reminders sent, and its QR code's scans.
"""

from __future__ import annotations

import datetime as dt
from typing import Final
from uuid import UUID

import msgspec

from app.amc import assets, contracts, visits
from app.amc.common import now_utc
from app.config import Settings
from app.places import service as places
from schema.amc import AmcReminder, MaintenanceContract, ServiceVisit
from schema.complaints import Complaint, ComplaintCategory

MAX_ROWS: Final = 500


class AssetComplaint(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    category: str
    description: str
    status: str
    priority: str
    created_at: dt.datetime
    resolved_at: dt.datetime | None


class ReminderEntry(msgspec.Struct, frozen=True, kw_only=True):
    kind: str
    subject_id: UUID
    lead_days: int
    status: str
    at: dt.datetime


class AssetHistory(msgspec.Struct, frozen=True, kw_only=True):
    asset: assets.AssetView
    place: places.PlaceView | None
    contracts: list[contracts.ContractView]
    visits: list[visits.VisitView]  # newest due date first
    complaints: list[AssetComplaint]  # newest first
    reminders: list[ReminderEntry]  # newest first
    total_cost_paise: int  # every contract not cancelled


async def asset_history(
    settings: Settings, site_id: UUID, asset_id: UUID, now: dt.datetime | None = None
) -> AssetHistory:
    now = now or now_utc()
    asset = await assets.get_asset(settings, site_id, asset_id)
    place = await places.get_place(settings, site_id, asset.place_id) if asset.place_id else None
    contract_rows = (
        await MaintenanceContract.select()
        .where((MaintenanceContract.site == site_id) & (MaintenanceContract.asset == asset_id))
        .order_by(MaintenanceContract.starts_on, ascending=False)
    )
    visit_rows = (
        await ServiceVisit.select()
        .where((ServiceVisit.site == site_id) & (ServiceVisit.asset == asset_id))
        .order_by(ServiceVisit.due_on, ascending=False)
        .limit(MAX_ROWS)
    )
    complaint_rows = (
        await Complaint.select(
            Complaint.id,
            Complaint.description,
            Complaint.status,
            Complaint.priority,
            Complaint.created_at,
            Complaint.resolved_at,
            Complaint.category,
        )
        .where((Complaint.site == site_id) & (Complaint.asset == asset_id))
        .order_by(Complaint.created_at, ascending=False)
        .limit(MAX_ROWS)
    )
    codes = {
        r["id"]: r["code"]
        for r in await ComplaintCategory.select(ComplaintCategory.id, ComplaintCategory.code).where(
            ComplaintCategory.site == site_id
        )
    }
    subjects = [r["id"] for r in contract_rows] + [r["id"] for r in visit_rows]
    reminder_rows = (
        await AmcReminder.select()
        .where(AmcReminder.subject.is_in(subjects))
        .order_by(AmcReminder.created_at, ascending=False)
        .limit(MAX_ROWS)
        if subjects
        else []
    )
    return AssetHistory(
        asset=asset,
        place=place,
        contracts=await contracts.views(site_id, contract_rows, now),
        visits=await visits.views(site_id, visit_rows, now),
        complaints=[
            AssetComplaint(
                id=r["id"],
                category=codes.get(r["category"], ""),
                description=r["description"],
                status=r["status"],
                priority=r["priority"],
                created_at=r["created_at"],
                resolved_at=r["resolved_at"],
            )
            for r in complaint_rows
        ],
        reminders=[
            ReminderEntry(
                kind=r["kind"],
                subject_id=r["subject"],
                lead_days=r["lead_days"],
                status=r["status"],
                at=r["created_at"],
            )
            for r in reminder_rows
        ],
        total_cost_paise=sum(r["cost_paise"] for r in contract_rows if r["status"] != "cancelled"),
    )
