"""The control room's maintenance board: overdue visits, visits due soon, contracts about to end.

``amc_board`` is the REST snapshot (``GET /api/amc/board``). Live, on ``site:{id}:control``:

- ``amc.visit_overdue`` (``BoardVisit``) when a visit passes its grace days (the reminders cron finds
  it; at least once: the page keys rows by visit id, so a repeat changes nothing);
- ``amc.board_changed`` (``BoardChanged``) when a contract is created or cancelled or a visit is
  recorded: the page fetches the snapshot again.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final
from uuid import UUID

import msgspec
from redis.asyncio import Redis

from app.amc.common import local_day, now_utc, reminder_settings, site_zone
from app.config import Settings
from realtime.publish import Publisher
from realtime.topics import site_topic
from schema.amc import Asset, MaintenanceContract, ServiceVisit

AMC_VISIT_OVERDUE: Final = "amc.visit_overdue"
AMC_BOARD_CHANGED: Final = "amc.board_changed"
DUE_SOON_DAYS: Final = 7
BOARD_LIMIT: Final = 100


class BoardVisit(msgspec.Struct, frozen=True, kw_only=True):
    visit_id: UUID
    asset_id: UUID
    asset_code: str
    asset_name: str
    vendor: str
    due_on: dt.date
    days_late: int  # days past the grace period (overdue), or 0


class BoardContract(msgspec.Struct, frozen=True, kw_only=True):
    contract_id: UUID
    asset_id: UUID
    asset_code: str
    asset_name: str
    vendor: str
    ends_on: dt.date
    days_left: int


class AmcBoard(msgspec.Struct, frozen=True, kw_only=True):
    overdue: list[BoardVisit]  # most overdue first
    due_soon: list[BoardVisit]  # due within the next week (or within their grace), soonest first
    expiring: list[BoardContract]  # active contracts ending within the longest expiry lead time, soonest first
    as_of: dt.datetime


class BoardChanged(msgspec.Struct, frozen=True, kw_only=True):
    site_id: UUID
    reason: str  # contract_created | contract_cancelled | visit_done | asset_changed
    visit_id: UUID | None = None


async def _names(asset_ids: set[UUID]) -> dict[UUID, tuple[str, str]]:
    if not asset_ids:
        return {}
    rows = await Asset.select(Asset.id, Asset.code, Asset.name).where(Asset.id.is_in(list(asset_ids)))
    return {r["id"]: (r["code"], r["name"]) for r in rows}


async def open_visits_until(site_id: UUID, until: dt.date) -> list[dict[str, Any]]:
    """Scheduled visits due on or before ``until``, with their contract's vendor and grace days."""
    return list(
        await ServiceVisit.select(
            ServiceVisit.id,
            ServiceVisit.asset,
            ServiceVisit.contract,
            ServiceVisit.due_on,
            ServiceVisit.overdue_at,
            ServiceVisit.contract.vendor.as_alias("vendor"),
            ServiceVisit.contract.sla_visit_grace_days.as_alias("grace"),
        )
        .where((ServiceVisit.site == site_id) & (ServiceVisit.status == "scheduled") & (ServiceVisit.due_on <= until))
        .order_by(ServiceVisit.due_on)
        .order_by(ServiceVisit.id)
    )


def days_late(row: dict[str, Any], today: dt.date) -> int:
    return (today - (row["due_on"] + dt.timedelta(days=row["grace"]))).days


def board_visit(row: dict[str, Any], names: dict[UUID, tuple[str, str]], today: dt.date) -> BoardVisit:
    code, name = names.get(row["asset"], ("", ""))
    return BoardVisit(
        visit_id=row["id"],
        asset_id=row["asset"],
        asset_code=code,
        asset_name=name,
        vendor=row["vendor"] or "",
        due_on=row["due_on"],
        days_late=max(0, days_late(row, today)),
    )


async def amc_board(site_id: UUID, now: dt.datetime | None = None) -> AmcBoard:
    now = now or now_utc()
    today = local_day(now, await site_zone(site_id))
    rows = await open_visits_until(site_id, today + dt.timedelta(days=DUE_SOON_DAYS))
    horizon = max((await reminder_settings(site_id)).expiry_lead_days, default=30)
    contracts = (
        await MaintenanceContract.select()
        .where(
            (MaintenanceContract.site == site_id)
            & (MaintenanceContract.status == "active")
            & (MaintenanceContract.ends_on >= today)
            & (MaintenanceContract.ends_on <= today + dt.timedelta(days=horizon))
        )
        .order_by(MaintenanceContract.ends_on)
        .limit(BOARD_LIMIT)
    )
    names = await _names({r["asset"] for r in rows} | {c["asset"] for c in contracts})
    overdue = [board_visit(r, names, today) for r in rows if days_late(r, today) > 0]
    overdue.sort(key=lambda v: (-v.days_late, v.asset_code))
    due_soon = [board_visit(r, names, today) for r in rows if days_late(r, today) <= 0]
    expiring = [
        BoardContract(
            contract_id=c["id"],
            asset_id=c["asset"],
            asset_code=names.get(c["asset"], ("", ""))[0],
            asset_name=names.get(c["asset"], ("", ""))[1],
            vendor=c["vendor"],
            ends_on=c["ends_on"],
            days_left=(c["ends_on"] - today).days,
        )
        for c in contracts
        if not await renewed(c)
    ]
    return AmcBoard(overdue=overdue[:BOARD_LIMIT], due_soon=due_soon[:BOARD_LIMIT], expiring=expiring, as_of=now)


async def renewed(contract: dict[str, Any]) -> bool:
    """Another active contract on the same asset runs past this one's end: nothing to renew."""
    return bool(
        await MaintenanceContract.exists().where(
            (MaintenanceContract.asset == contract["asset"])
            & (MaintenanceContract.id != contract["id"])
            & (MaintenanceContract.status == "active")
            & (MaintenanceContract.ends_on > contract["ends_on"])
            & (MaintenanceContract.starts_on <= contract["ends_on"] + dt.timedelta(days=1))
        )
    )


async def board_changed(
    settings: Settings, redis: Redis, site_id: UUID, reason: str, *, visit_id: UUID | None = None
) -> None:
    """After a commit: the control room refetches its maintenance board."""
    await Publisher(redis, settings).publish(
        site_topic(site_id, "control"),
        AMC_BOARD_CHANGED,
        BoardChanged(site_id=site_id, reason=reason, visit_id=visit_id),
    )


async def publish_overdue(settings: Settings, redis: Redis, site_id: UUID, visit: BoardVisit) -> None:
    await Publisher(redis, settings).publish(site_topic(site_id, "control"), AMC_VISIT_OVERDUE, visit)
