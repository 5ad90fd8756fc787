"""Helpers for AMC and QR tests: an asset with a contract, times on the site's clock, control-room events."""

from __future__ import annotations

import datetime as dt
import json
import secrets
from typing import Any
from uuid import UUID

from redis.asyncio import Redis

from app.amc import assets, contracts
from app.amc.schedule import Frequency
from app.config import Settings
from realtime.history import read_since
from realtime.topics import site_topic
from tests.support.slots import TZ, principal
from tests.support.world import World


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    """Site wall-clock time on ``day`` as UTC."""
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=TZ).astimezone(dt.UTC)


def site_today() -> dt.date:
    return dt.datetime.now(TZ).date()


async def lift(world: World, code: str | None = None, name: str = "Lift A1") -> assets.AssetView:
    return await assets.create_asset(
        world.settings,
        world.site_id,
        assets.NewAsset(
            code=code or f"LIFT-{secrets.token_hex(3)}",
            name=name,
            kind="lift",
            building_id=world.building_ids[0],
            floor="G",
            location="Lobby, left of the main door",
            make="Otis",
        ),
    )


async def contract(
    world: World,
    redis: Redis,
    asset_id: UUID,
    *,
    starts_on: dt.date,
    ends_on: dt.date,
    frequency: Frequency = Frequency.MONTHLY,
    first_visit_on: dt.date | None = None,
    grace: int = 3,
    cost_paise: int = 12_000_000,
) -> contracts.ContractView:
    return await contracts.create_contract(
        world.settings,
        redis,
        principal(world, "fm_admin"),
        contracts.NewContract(
            asset_id=asset_id,
            vendor="Otis Elevator Co.",
            reference="OT-2231",
            starts_on=starts_on,
            ends_on=ends_on,
            frequency=frequency,
            first_visit_on=first_visit_on,
            cost_paise=cost_paise,
            sla_response_hours=4,
            sla_visit_grace_days=grace,
        ),
    )


async def control_events(redis: Redis, settings: Settings, site_id: UUID, event_type: str) -> list[dict[str, Any]]:
    since = await read_since(redis, settings, site_topic(site_id, "control"), 0)
    frames = [json.loads(frame) for _, frame in since.entries]
    return [frame["data"] for frame in frames if frame["type"] == event_type]
