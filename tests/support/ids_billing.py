"""Real ids of the billing module in a test world (the cross-site access test), and a person's billing data
(the privacy module's export and erasure tests)."""

from __future__ import annotations

from uuid import UUID

from app.billing import invoicing, setup
from app.billing.payments import ManualPayment, record_manual
from schema.billing import ChargeType
from tests.support.billing import ISSUE_DAY, PERIOD, configure
from tests.support.slots import principal
from tests.support.world import World


async def resource_ids(world: World) -> dict[str, str]:
    await configure(world)
    result = await invoicing.run_invoices(world.site_id, PERIOD, issue_date=ISSUE_DAY, unit_ids=[world.unit_ids[0]])
    run = await invoicing.queue_run(world.site_id, invoicing.NewRun(period=PERIOD), None)
    recorded = await record_manual(
        principal(world, "fm_admin"), ManualPayment(unit_id=world.unit_ids[0], amount_minor=10_000, method="cash")
    )
    charge_type = await ChargeType.select(ChargeType.id).where(ChargeType.site == world.site_id).first()
    assert charge_type is not None and recorded.payment_id is not None
    return {
        "invoice_id": str(result.issued[0].invoice_id),
        "payment_id": str(recorded.payment_id),
        "run_id": str(run.id),
        "charge_type_id": str(charge_type["id"]),
    }


async def seed_person_data(world: World, person_id: UUID) -> None:
    """An invoice billed to the person's unit (world.unit_ids[0], with them among its occupants) and a payment."""
    await setup.ensure_site(world.site_id)
    await configure(world)
    await invoicing.run_invoices(world.site_id, PERIOD, issue_date=ISSUE_DAY, unit_ids=[world.unit_ids[0]])
