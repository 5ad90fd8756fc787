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


async def seed_two_of_everything(world: World) -> UUID:
    """Two rows behind every billing list (the API-shape test); returns an invoice with two credit notes."""
    from app.billing.invoicing import CreditLine, NewCreditNote, NewRun, issue_credit_note, queue_run
    from app.billing.payments import ManualPayment, record_manual
    from schema.billing import Reconciliation
    from tests.support.slots import principal

    await configure(world)
    await setup.set_rate(world.site_id, RateChange(unit_kind="commercial", basis="per_sqft", amount_minor=500))
    units = world.unit_ids[:2]
    october = await run_invoices(world.site_id, "2026-10", issue_date=dt.date(2026, 10, 1), unit_ids=units)
    await run_invoices(world.site_id, "2026-11", issue_date=dt.date(2026, 11, 1), unit_ids=units)
    first = next(i for i in october.issued if i.unit_id == units[0])
    for taxable in (10_000, 20_000):
        await issue_credit_note(
            world.site_id,
            first.invoice_id,
            NewCreditNote(reason="Lift down", lines=[CreditLine(line_no=1, taxable_minor=taxable)]),
        )
    for amount in (50_000, 60_000):
        await record_manual(
            principal(world, "fm_admin"), ManualPayment(unit_id=units[0], amount_minor=amount, method="cash")
        )
    for period in ("2026-10", "2026-11"):
        await queue_run(world.site_id, NewRun(period=period), None)
    now = dt.datetime.now(dt.UTC)
    for days in (1, 2):
        await Reconciliation(
            site=world.site_id,
            provider="razorpay",
            window_from=now - dt.timedelta(days=days),
            window_to=now,
            ran_at=now,
        ).save()
    return first.invoice_id
