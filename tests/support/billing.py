"""Helpers for billing tests: a site with maintenance rates, and invoices issued the way the run does."""

from __future__ import annotations

import datetime as dt
from uuid import UUID

from app.billing import setup
from app.billing.invoicing import RunResult, run_invoices
from app.billing.setup import RateChange, SettingsChange, UnitProfileChange
from tests.support.world import World

ISSUE_DAY = dt.date(2026, 12, 1)
PERIOD = "2026-12"
MAINTENANCE_MINOR = 250_000  # INR 2,500.00 a month


async def configure(
    world: World,
    *,
    amount_minor: int = MAINTENANCE_MINOR,
    per_sqft: bool = False,
    due_days: int = 15,
    **settings: object,
) -> None:
    await setup.ensure_site(world.site_id)
    await setup.change_settings(
        world.site_id,
        SettingsChange(
            legal_name="Green Meadows Apartment Owners Association",
            address="12 Lake Road, Bengaluru 560001",
            gstin="29AABCG1234M1Z5",
            state_code="29",
            due_days=due_days,
            **settings,  # type: ignore[arg-type]
        ),
    )
    await setup.set_rate(
        world.site_id,
        RateChange(unit_kind="residential", basis="per_sqft" if per_sqft else "per_unit", amount_minor=amount_minor),
    )


async def set_area(world: World, unit_id: UUID, area_sqft_centi: int) -> None:
    await setup.set_unit_profile(world.site_id, unit_id, UnitProfileChange(area_sqft_centi=area_sqft_centi))


async def monthly_run(world: World, period: str = PERIOD, issue_date: dt.date = ISSUE_DAY) -> RunResult:
    return await run_invoices(world.site_id, period, issue_date=issue_date)
