"""Whether a unit's dues are cleared, as billing knows them: what a move-out permit asks before its final
approval (``app/permits/dues.py``).

A site that has not set billing up in the hub keeps its accounts elsewhere, so billing cannot tell
(``UNKNOWN``: the approver checks by hand). Otherwise every debt of the unit's ledger counts, due or not
yet due, late fees included: a household moving out settles all of it; an advance is no debt.
"""

from __future__ import annotations

from uuid import UUID

from app.billing import ledger
from app.permits.dues import DuesStatus
from schema.billing import BillingSettings


async def dues_of(site_id: UUID, unit_id: UUID) -> DuesStatus:
    if not await BillingSettings.exists().where(BillingSettings.site == site_id):
        return DuesStatus.UNKNOWN
    settlement = await ledger.settlement_of(site_id, unit_id)
    owed = sum(debt.outstanding_minor for debt in settlement.debts)
    return DuesStatus.OUTSTANDING if owed > 0 else DuesStatus.CLEARED
