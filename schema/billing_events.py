"""Event payloads the billing module publishes (see docs/billing.md for topics and types).

Ids, numbers and amounts (integer paise) only: never a name.
"""

from __future__ import annotations

import datetime as dt
from typing import Final
from uuid import UUID

import msgspec

# unit:{unit_id}: the unit's occupants (and staff watching it)
INVOICE_ISSUED: Final = "billing.invoice_issued"
PAYMENT_RECEIVED: Final = "billing.payment_received"
REFUNDED: Final = "billing.refunded"
# site:{site_id}:control: the control room
COLLECTED: Final = "billing.collected"


class InvoiceIssued(msgspec.Struct, frozen=True, kw_only=True):
    invoice_id: UUID
    unit_id: UUID
    number: str
    total_minor: int
    due_date: dt.date


class PaymentReceived(msgspec.Struct, frozen=True, kw_only=True):
    payment_id: UUID
    unit_id: UUID
    receipt_number: str
    amount_minor: int
    balance_minor: int  # the unit's balance after it: > 0 still owed, < 0 an advance
    paid_invoice_ids: list[UUID]


class Refunded(msgspec.Struct, frozen=True, kw_only=True):
    payment_id: UUID
    unit_id: UUID
    amount_minor: int
    balance_minor: int


class Collected(msgspec.Struct, frozen=True, kw_only=True):
    """What the site has collected this month (site time), after a payment or a refund."""

    period: str  # YYYY-MM
    collected_minor: int  # payments less refunds
    payments: int
    change_minor: int  # this event's payment (positive) or refund (negative)
    unit_id: UUID
