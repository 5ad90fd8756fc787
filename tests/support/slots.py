"""Helpers for slots tests: resources with rules, chargers, principals and times on the site's clock."""

from __future__ import annotations

import datetime as dt
import secrets
import time
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from app.auth.principal import Principal
from app.slots import resources
from tests.support.world import World

TZ = ZoneInfo("Asia/Kolkata")  # the test world's site timezone (the Site default)


def principal(world: World, name: str) -> Principal:
    return Principal(
        person_id=world.people[name],
        site_id=world.site_id,
        roles=world.roles[name],
        token_id=secrets.token_hex(4),
        expires_at=int(time.time()) + 3600,
    )


def local(days: int, hour: int, minute: int = 0) -> dt.datetime:
    """A wall-clock time `days` from today in the site's timezone, as UTC."""
    today = dt.datetime.now(TZ).date()
    return dt.datetime.combine(today + dt.timedelta(days=days), dt.time(hour, minute), tzinfo=TZ).astimezone(dt.UTC)


async def amenity(world: World, code: str | None = None, **rules: Any) -> resources.ResourceView:
    return await resources.create_resource(
        world.site_id,
        resources.NewResource(
            category="amenity",
            code=code or f"CLUB-{secrets.token_hex(3)}",
            name="Clubhouse",
            rules=resources.Rules(**rules),
        ),
    )


async def parking_slot(world: World, code: str, allocation: str = "visitor") -> resources.ResourceView:
    return await resources.create_resource(
        world.site_id,
        resources.NewResource(category="parking_slot", code=code, name=f"Parking {code}", allocation=allocation),  # type: ignore[arg-type]
    )


async def charger(
    world: World, code: str, connectors: list[tuple[int, float, str]], **rules: Any
) -> resources.DeviceCredentials:
    return await resources.create_charger(
        world.site_id,
        resources.NewCharger(
            code=code,
            name=f"Charger {code}",
            connectors=[
                resources.NewConnector(connector_no=n, power_kw=kw, connector_type=kind)  # type: ignore[arg-type]
                for n, kw, kind in connectors
            ],
            rules=resources.Rules(**rules),
        ),
    )


def device_headers(credentials: resources.DeviceCredentials) -> dict[str, str]:
    return {"X-Device-Id": str(credentials.device_id), "X-Device-Token": credentials.token}


def iso(moment: dt.datetime) -> str:
    return moment.isoformat()


def ids(views: list[Any]) -> list[UUID]:
    return [v.id for v in views]


async def next_free_times(http: Any, resource_id: Any, headers: dict[str, str]) -> dict[str, Any]:
    """A resource's free times today, or tomorrow's when none of today's are left (late in the evening
    at the site a one-hour slot no longer fits before midnight)."""
    url = f"/api/slots/resources/{resource_id}/availability"
    free: dict[str, Any] = (await http.get(url, headers=headers)).json()
    if not free["starts"]:
        tomorrow = dt.date.fromisoformat(free["date"]) + dt.timedelta(days=1)
        free = (await http.get(url, params={"date": tomorrow.isoformat()}, headers=headers)).json()
    return free
