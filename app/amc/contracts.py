"""Maintenance contracts and the service visits generated from them.

Creating a contract writes its schedule at once (``app.amc.schedule``): one ``ServiceVisit`` per due
date from the first visit to the contract's end, in the same transaction. Cancelling a contract
cancels the visits not yet done. Money is integer paise, never a float.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from redis.asyncio import Redis

from app.amc import assets, board
from app.amc.common import Name, Notes, Short, local_day, now_utc, reminder_settings, site_zone
from app.amc.schedule import Frequency, visit_dates
from app.auth.principal import Principal
from app.config import Settings
from app.db import write_transaction
from app.errors import Conflict, InvalidInput, NotFound
from app.pagination import Page, page_of
from app.text import ONE_LINE
from schema.amc import Asset, MaintenanceContract, ServiceVisit

MAX_YEARS = 10
INSERT_CHUNK = 200
Paise = Annotated[int, msgspec.Meta(ge=0, le=10**13, description="integer paise (1 rupee = 100 paise)")]
ContractState = Literal["upcoming", "active", "expiring", "ended", "cancelled"]


class NewContract(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    asset_id: UUID
    vendor: Name
    starts_on: dt.date
    ends_on: dt.date  # inclusive
    frequency: Frequency
    first_visit_on: dt.date | None = None  # default: the start date
    cost_paise: Paise = 0
    currency: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")] = "INR"
    reference: Annotated[str, msgspec.Meta(max_length=64), ONE_LINE] = ""
    sla_response_hours: Annotated[int, msgspec.Meta(ge=1, le=720)] | None = None
    sla_visit_grace_days: Annotated[int, msgspec.Meta(ge=0, le=60)] = 3
    notes: Notes = ""


class Cancellation(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    reason: Short = ""


class Renewal(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The next contract on the same terms, from the day after this one ends. Each field left out keeps
    this contract's value; ``ends_on`` defaults to the same length again."""

    ends_on: dt.date | None = None
    cost_paise: Paise | None = None
    vendor: Name | None = None
    reference: Annotated[str, msgspec.Meta(max_length=64), ONE_LINE] | None = None


class ContractView(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    asset_id: UUID
    asset_code: str
    asset_name: str
    vendor: str
    reference: str
    starts_on: dt.date
    ends_on: dt.date
    frequency: str
    first_visit_on: dt.date
    cost_paise: int
    currency: str
    sla_response_hours: int | None
    sla_visit_grace_days: int
    status: str
    state: ContractState
    days_to_end: int
    visits_total: int
    visits_done: int
    next_visit_on: dt.date | None
    notes: str
    created_at: dt.datetime


def contract_state(row: dict[str, Any], today: dt.date, expiring_days: int) -> ContractState:
    if row["status"] == "cancelled":
        return "cancelled"
    if today < row["starts_on"]:
        return "upcoming"
    if today > row["ends_on"]:
        return "ended"
    return "expiring" if (row["ends_on"] - today).days <= expiring_days else "active"


async def views(site_id: UUID, rows: list[dict[str, Any]], now: dt.datetime) -> list[ContractView]:
    if not rows:
        return []
    today = local_day(now, await site_zone(site_id))
    expiring = max((await reminder_settings(site_id)).expiry_lead_days, default=0)
    asset_rows = await Asset.select(Asset.id, Asset.code, Asset.name).where(
        Asset.id.is_in(list({r["asset"] for r in rows}))
    )
    names = {a["id"]: (a["code"], a["name"]) for a in asset_rows}
    visits = await ServiceVisit.select(ServiceVisit.contract, ServiceVisit.status, ServiceVisit.due_on).where(
        ServiceVisit.contract.is_in([r["id"] for r in rows])
    )
    counts: dict[UUID, list[int]] = {}
    upcoming: dict[UUID, dt.date] = {}
    for visit in visits:
        count = counts.setdefault(visit["contract"], [0, 0])
        if visit["status"] != "cancelled":
            count[0] += 1
        if visit["status"] == "done":
            count[1] += 1
        if visit["status"] == "scheduled":
            previous = upcoming.get(visit["contract"])
            upcoming[visit["contract"]] = min(previous, visit["due_on"]) if previous else visit["due_on"]
    return [
        ContractView(
            id=row["id"],
            asset_id=row["asset"],
            asset_code=names.get(row["asset"], ("", ""))[0],
            asset_name=names.get(row["asset"], ("", ""))[1],
            vendor=row["vendor"],
            reference=row["reference"],
            starts_on=row["starts_on"],
            ends_on=row["ends_on"],
            frequency=row["frequency"],
            first_visit_on=row["first_visit_on"],
            cost_paise=row["cost_paise"],
            currency=row["currency"],
            sla_response_hours=row["sla_response_hours"],
            sla_visit_grace_days=row["sla_visit_grace_days"],
            status=row["status"],
            state=contract_state(row, today, expiring),
            days_to_end=(row["ends_on"] - today).days,
            visits_total=counts.get(row["id"], [0, 0])[0],
            visits_done=counts.get(row["id"], [0, 0])[1],
            next_visit_on=upcoming.get(row["id"]),
            notes=row["notes"],
            created_at=row["created_at"],
        )
        for row in rows
    ]


async def load(site_id: UUID, contract_id: UUID) -> dict[str, Any]:
    row = (
        await MaintenanceContract.select()
        .where((MaintenanceContract.site == site_id) & (MaintenanceContract.id == contract_id))
        .first()
    )
    if row is None:
        raise NotFound("contract not found")
    return row


async def get_contract(site_id: UUID, contract_id: UUID, now: dt.datetime | None = None) -> ContractView:
    return (await views(site_id, [await load(site_id, contract_id)], now or now_utc()))[0]


async def list_contracts(
    site_id: UUID,
    *,
    asset_id: UUID | None = None,
    state: ContractState | None = None,
    limit: int,
    offset: int,
    now: dt.datetime | None = None,
) -> Page[ContractView]:
    now = now or now_utc()
    where: Any = MaintenanceContract.site == site_id
    if asset_id is not None:
        where = where & (MaintenanceContract.asset == asset_id)
    rows = (
        await MaintenanceContract.select()
        .where(where)
        .order_by(MaintenanceContract.ends_on)
        .order_by(MaintenanceContract.id)
    )
    items = await views(site_id, rows, now)
    if state is not None:
        items = [c for c in items if c.state == state]
    return page_of(items[offset : offset + limit], total=len(items), limit=limit, offset=offset)


def _check_dates(data: NewContract) -> dt.date:
    if data.ends_on < data.starts_on:
        raise InvalidInput.for_field("ends_on", "must not be before starts_on")
    if data.ends_on > dt.date(data.starts_on.year + MAX_YEARS, 12, 31):
        raise InvalidInput.for_field("ends_on", f"a contract runs at most {MAX_YEARS} years")
    first = data.first_visit_on or data.starts_on
    if not data.starts_on <= first <= data.ends_on:
        raise InvalidInput.for_field("first_visit_on", "must fall between starts_on and ends_on")
    return first


async def write_contract(
    site_id: UUID, created_by: UUID | None, data: NewContract, now: dt.datetime | None = None
) -> UUID:
    """The contract and its whole schedule, in one transaction (nothing published: see create_contract)."""
    now = now or now_utc()
    first = _check_dates(data)
    try:
        asset = await assets.load(site_id, data.asset_id)
    except NotFound:
        raise InvalidInput.for_field("asset_id", "no such asset on this site") from None
    if asset["status"] != "active":
        raise InvalidInput.for_field("asset_id", "the asset is retired")
    contract = MaintenanceContract(
        site=site_id,
        asset=data.asset_id,
        vendor=data.vendor,
        reference=data.reference,
        starts_on=data.starts_on,
        ends_on=data.ends_on,
        frequency=str(data.frequency),
        first_visit_on=first,
        cost_paise=data.cost_paise,
        currency=data.currency,
        sla_response_hours=data.sla_response_hours,
        sla_visit_grace_days=data.sla_visit_grace_days,
        status="active",
        notes=data.notes,
        created_by=created_by,
        created_at=now,
        updated_at=now,
    )
    dates = visit_dates(data.frequency, first, data.ends_on)
    async with write_transaction():
        await contract.save()
        rows = [
            ServiceVisit(
                site=site_id,
                contract=contract.id,
                asset=data.asset_id,
                due_on=day,
                status="scheduled",
                checklist=[],
                created_at=now,
                updated_at=now,
            )
            for day in dates
        ]
        for start in range(0, len(rows), INSERT_CHUNK):  # within SQLite's bound variables per statement
            await ServiceVisit.insert(*rows[start : start + INSERT_CHUNK])
    return contract.id


async def create_contract(
    settings: Settings, redis: Redis, principal: Principal, data: NewContract, now: dt.datetime | None = None
) -> ContractView:
    now = now or now_utc()
    contract_id = await write_contract(principal.site_id, principal.person_id, data, now)
    await board.board_changed(settings, redis, principal.site_id, "contract_created")
    return await get_contract(principal.site_id, contract_id, now)


async def cancel_contract(
    settings: Settings,
    redis: Redis,
    site_id: UUID,
    contract_id: UUID,
    data: Cancellation,
    now: dt.datetime | None = None,
) -> ContractView:
    now = now or now_utc()
    row = await load(site_id, contract_id)
    if row["status"] == "cancelled":
        raise Conflict("the contract is already cancelled")
    note = f"Cancelled: {data.reason}" if data.reason else "Cancelled"
    async with write_transaction():
        await MaintenanceContract.update(
            {
                MaintenanceContract.status: "cancelled",
                MaintenanceContract.notes: (row["notes"] + "\n" + note).strip(),
                MaintenanceContract.updated_at: now,
            }
        ).where(MaintenanceContract.id == contract_id)
        await ServiceVisit.update({ServiceVisit.status: "cancelled", ServiceVisit.updated_at: now}).where(
            (ServiceVisit.contract == contract_id) & (ServiceVisit.status == "scheduled")
        )
    await board.board_changed(settings, redis, site_id, "contract_cancelled")
    return await get_contract(site_id, contract_id, now)


async def renew_contract(
    settings: Settings,
    redis: Redis,
    principal: Principal,
    contract_id: UUID,
    data: Renewal,
    now: dt.datetime | None = None,
) -> ContractView:
    """The next contract from the day after this one ends. Its visits continue this contract's cadence
    (monthly on the 31st stays on month ends), so the first one is the next date of the old schedule."""
    now = now or now_utc()
    row = await load(principal.site_id, contract_id)
    if row["status"] == "cancelled":
        raise Conflict("a cancelled contract is not renewed: add a new one")
    starts_on = row["ends_on"] + dt.timedelta(days=1)
    ends_on = data.ends_on or starts_on + (row["ends_on"] - row["starts_on"])
    if ends_on < starts_on:
        raise InvalidInput.for_field("ends_on", f"must be on or after {starts_on.isoformat()}")
    frequency = Frequency(row["frequency"])
    cadence = visit_dates(frequency, row["first_visit_on"], ends_on)
    first = next((day for day in cadence if day >= starts_on), starts_on)
    renewal = NewContract(
        asset_id=row["asset"],
        vendor=data.vendor or row["vendor"],
        reference=row["reference"] if data.reference is None else data.reference,
        starts_on=starts_on,
        ends_on=ends_on,
        frequency=frequency,
        first_visit_on=first,
        cost_paise=row["cost_paise"] if data.cost_paise is None else data.cost_paise,
        currency=row["currency"],
        sla_response_hours=row["sla_response_hours"],
        sla_visit_grace_days=row["sla_visit_grace_days"],
    )
    new_id = await write_contract(principal.site_id, principal.person_id, renewal, now)
    await board.board_changed(settings, redis, principal.site_id, "contract_created")
    return await get_contract(principal.site_id, new_id, now)
