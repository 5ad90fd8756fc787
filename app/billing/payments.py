"""Payments, receipts and refunds: from the provider (checkout, webhooks, reconciliation) or recorded by
the FM team (cash, cheque, bank transfer).

Every path records through ``record_capture`` / ``record_refund``, keyed on the provider's own ids:
a payment captured twice, a webhook replayed, or a checkout return and a webhook telling the same story
record it once. Each runs under a lock on the provider's payment id and then the unit's lock, so a refund
that arrives before the capture it refunds (webhooks come in any order) is parked (``waiting``) and
applied by the capture, never lost between them.

A captured payment gets a receipt number, gap-free per site and financial year like invoices, and one
ledger entry; a refund one ledger entry that reverses exactly what it refunds. Partial payments and
advances need nothing special: the ledger's settlement pays debts oldest first and keeps the rest as an
advance, which pays the next invoice when it is issued.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Annotated, Any, Final, Literal
from uuid import UUID, uuid4

import msgspec
from redis.asyncio import Redis

from app.auth.principal import Principal
from app.auth.roles import STAFF
from app.billing import ledger
from app.billing.money import document_number, financial_year
from app.billing.provider import PaymentProvider, ProviderError, ProviderPayment, ProviderRefund
from app.billing.setup import MAX_AMOUNT, ensure_site, now_utc, site_today, site_zone, unit_label
from app.config import Settings
from app.db import is_sqlite, write_transaction
from app.errors import AppError, Conflict, InvalidInput, NotFound
from app.text import ONE_LINE
from realtime.publish import publish
from realtime.topics import site_topic, unit_topic
from schema.billing import Invoice, Payment, PaymentOrder, Refund
from schema.billing_events import COLLECTED, PAYMENT_RECEIVED, REFUNDED, Collected, PaymentReceived, Refunded
from schema.tables import Occupancy

logger = logging.getLogger("opshub.billing.payments")
MIN_ONLINE_MINOR: Final = 100  # Razorpay's smallest order: INR 1.00
MANUAL_METHODS: Final = ("cash", "cheque", "bank_transfer")


class ProviderUnavailable(AppError):
    status = 503
    slug = "payment-provider-unavailable"
    title = "The payment provider did not answer"


# ------------------------------------------------------------------------------ who may see a unit


async def may_see_unit(principal: Principal, unit_id: UUID) -> bool:
    """Staff of the unit's site, or an occupant with an active occupancy of the unit."""
    if principal.has_any(STAFF):
        return True
    return bool(
        await Occupancy.exists().where(
            (Occupancy.site == principal.site_id)
            & (Occupancy.person == principal.person_id)
            & (Occupancy.unit == unit_id)
            & Occupancy.is_active.eq(True)
        )
    )


async def visible_unit(principal: Principal, unit_id: UUID) -> str:
    """The unit's label if the caller may see its billing; another site's or another flat's unit is a 404."""
    label = await unit_label(principal.site_id, unit_id)
    if not await may_see_unit(principal, unit_id):
        raise NotFound("unit not found")
    return label


async def my_unit_ids(principal: Principal) -> list[UUID]:
    rows = await Occupancy.select(Occupancy.unit).where(
        (Occupancy.site == principal.site_id) & (Occupancy.person == principal.person_id) & Occupancy.is_active.eq(True)
    )
    return [row["unit"] for row in rows]


# ------------------------------------------------------------------------------ checkout


class PayRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Pay online. Default: what is due (the invoice's outstanding amount, or the unit's balance);
    ``amount_minor`` pays part of it, or more (an advance)."""

    invoice_id: UUID | None = None
    amount_minor: Annotated[int, msgspec.Meta(ge=MIN_ONLINE_MINOR, le=MAX_AMOUNT)] | None = None


class Checkout(msgspec.Struct, frozen=True, kw_only=True):
    order_id: str
    amount_minor: int
    currency: str
    checkout_url: str


async def start_checkout(
    provider: PaymentProvider,
    settings: Settings,
    principal: Principal,
    unit_id: UUID,
    data: PayRequest,
    now: dt.datetime | None = None,
) -> Checkout:
    label = await visible_unit(principal, unit_id)
    settlement = await ledger.settlement_of(principal.site_id, unit_id)
    amount = data.amount_minor
    if data.invoice_id is not None:
        invoice = (
            await Invoice.select(Invoice.id, Invoice.number)
            .where((Invoice.site == principal.site_id) & (Invoice.unit == unit_id) & (Invoice.id == data.invoice_id))
            .first()
        )
        if invoice is None:
            raise InvalidInput.for_field("invoice_id", "no such invoice for this unit")
        debt = settlement.invoice(data.invoice_id)
        due = debt.outstanding_minor if debt else 0
        if amount is None and due <= 0:
            raise Conflict("invoice_id: the invoice is already paid")
        amount = amount if amount is not None else due
    elif amount is None:
        amount = max(0, settlement.balance_minor)
        if amount == 0:
            raise Conflict("amount_minor: nothing is due; give an amount to pay in advance")
    if amount < MIN_ONLINE_MINOR:
        raise InvalidInput.for_field("amount_minor", f"an online payment is at least {MIN_ONLINE_MINOR} paise")
    notes = {"site_id": str(principal.site_id), "unit_id": str(unit_id)}
    if data.invoice_id is not None:
        notes["invoice_id"] = str(data.invoice_id)
    try:
        order = await provider.create_order(amount, "INR", f"{label}-{uuid4().hex[:8]}", notes)
    except ProviderError as exc:
        logger.warning("payment provider refused an order: %s", exc)
        raise ProviderUnavailable(f"the payment provider could not start the payment: {exc}") from None
    await PaymentOrder(
        site=principal.site_id,
        unit=unit_id,
        invoice=data.invoice_id,
        person=principal.person_id,
        provider=provider.name,
        provider_order_id=order.id,
        amount_minor=order.amount_minor,
        currency=order.currency,
        created_at=now or now_utc(),
    ).save()
    site_name = (await ensure_site(principal.site_id))["legal_name"]
    url = provider.checkout_url(
        order,
        callback_url=settings.public_link("/billing/checkout/return"),
        cancel_url=settings.public_link("/app?section=bills"),
        description=f"{site_name} - {label}",
    )
    return Checkout(order_id=order.id, amount_minor=order.amount_minor, currency=order.currency, checkout_url=url)


# ------------------------------------------------------------------------------ recording


@dataclass(slots=True)
class Recorded:
    """What one capture or refund changed, for the events published after the commit."""

    outcome: str  # recorded | duplicate | unknown_order | waiting_for_capture | applied
    site_id: UUID | None = None
    unit_id: UUID | None = None
    payment_id: UUID | None = None
    receipt_number: str | None = None
    amount_minor: int = 0
    refund_minor: int = 0
    balance_minor: int = 0
    paid_invoice_ids: list[UUID] = field(default_factory=list)
    unpaid_invoice_ids: list[UUID] = field(default_factory=list)


async def _lock_provider_payment(provider_payment_id: str) -> None:
    if not is_sqlite():
        await Payment.raw(
            "SELECT pg_advisory_xact_lock(hashtextextended({}, 0))", f"billing:provider-payment:{provider_payment_id}"
        )


async def record_capture(
    provider_name: str,
    payment: ProviderPayment,
    now: dt.datetime | None = None,
    *,
    site_id: UUID | None = None,
    unit_id: UUID | None = None,
    method: str | None = None,
    reference: str = "",
    person_id: UUID | None = None,
    paid_on: dt.date | None = None,
) -> Recorded:
    """Record a captured payment once. Online payments find their unit through our order; manual ones
    name it (``site_id``, ``unit_id``)."""
    now = now or now_utc()
    order = None
    if payment.order_id:
        order = await PaymentOrder.select().where(PaymentOrder.provider_order_id == payment.order_id).first()
    if order is not None:
        site_id, unit_id = order["site"], order["unit"]
    if site_id is None or unit_id is None:
        logger.warning("payment %s is for order %s, which is not ours", payment.id, payment.order_id)
        return Recorded("unknown_order")
    settings = await ensure_site(site_id)
    today = paid_on or await site_today(site_id, now)
    async with write_transaction():
        await _lock_provider_payment(payment.id)
        await ledger.lock_unit(unit_id)
        existing = await Payment.select(Payment.id).where(Payment.provider_payment_id == payment.id).first()
        if existing is not None:
            return Recorded("duplicate", site_id, unit_id, existing["id"])
        fy = financial_year(today, settings["fy_start_month"])
        seq = await ledger.next_seq(site_id, "receipt", fy)
        receipt = document_number("RCT", fy, seq)
        payment_id = uuid4()
        await Payment.insert(
            Payment(
                id=payment_id,
                site=site_id,
                unit=unit_id,
                order=order["id"] if order else None,
                invoice=order["invoice"] if order else None,
                person=(order["person"] if order else None) or person_id,
                provider=provider_name,
                provider_payment_id=payment.id,
                method=method or payment.method,
                reference=reference,
                amount_minor=payment.amount_minor,
                currency=payment.currency,
                status="captured",
                receipt_number=receipt,
                receipt_fy=fy,
                receipt_seq=seq,
                captured_at=now,
                created_at=now,
            )
        )
        await ledger.append(
            site_id=site_id,
            unit_id=unit_id,
            kind="payment",
            entry_key=f"payment:{payment.id}",
            amount_minor=-payment.amount_minor,
            entry_date=today,
            description=f"Payment received, receipt {receipt}",
            payment_id=payment_id,
            now=now,
        )
        if order is not None:
            await PaymentOrder.update({PaymentOrder.status: "paid"}).where(PaymentOrder.id == order["id"])
        refunded = 0
        waiting = await Refund.select().where((Refund.provider_payment_id == payment.id) & (Refund.status == "waiting"))
        for parked in waiting:  # a refund that arrived before this capture
            refunded += await _apply_refund(site_id, unit_id, payment_id, parked, today, now)
        if refunded:
            await _mark_refunded(payment_id, payment.amount_minor, refunded)
        changes = await ledger.settle_unit(site_id, unit_id, now)
        balance = (await ledger.settlement_of(site_id, unit_id)).balance_minor
    return Recorded(
        "recorded",
        site_id,
        unit_id,
        payment_id,
        receipt,
        amount_minor=payment.amount_minor,
        refund_minor=refunded,
        balance_minor=balance,
        paid_invoice_ids=[c.invoice_id for c in changes if c.status == "paid"],
        unpaid_invoice_ids=[c.invoice_id for c in changes if c.was == "paid"],
    )


async def _apply_refund(
    site_id: UUID, unit_id: UUID, payment_id: UUID, refund: dict[str, Any], today: dt.date, now: dt.datetime
) -> int:
    await ledger.append(
        site_id=site_id,
        unit_id=unit_id,
        kind="refund",
        entry_key=f"refund:{refund['provider_refund_id']}",
        amount_minor=refund["amount_minor"],
        entry_date=today,
        description=f"Refund {refund['provider_refund_id']}",
        payment_id=payment_id,
        refund_id=refund["id"],
        now=now,
    )
    await Refund.update(
        {Refund.status: "applied", Refund.applied_at: now, Refund.payment: payment_id, Refund.site: site_id}
    ).where(Refund.id == refund["id"])
    return int(refund["amount_minor"])


async def _mark_refunded(payment_id: UUID, amount_minor: int, refunded_minor: int) -> None:
    await Payment.update(
        {
            Payment.refunded_minor: refunded_minor,
            Payment.status: "refunded" if refunded_minor >= amount_minor else "partially_refunded",
        }
    ).where(Payment.id == payment_id)


async def record_refund(refund: ProviderRefund, now: dt.datetime | None = None) -> Recorded:
    """Record a processed refund once; before its capture is known, park it for the capture to apply."""
    now = now or now_utc()
    if refund.status not in ("processed", "pending"):
        return Recorded("ignored")
    async with write_transaction():
        await _lock_provider_payment(refund.payment_id)
        existing = await Refund.select().where(Refund.provider_refund_id == refund.id).first()
        if existing is not None and existing["status"] == "applied":
            return Recorded("duplicate")
        payment = await Payment.select().where(Payment.provider_payment_id == refund.payment_id).first()
        if existing is None:
            refund_id = uuid4()
            await Refund.insert(
                Refund(
                    id=refund_id,
                    site=payment["site"] if payment else None,
                    provider_refund_id=refund.id,
                    provider_payment_id=refund.payment_id,
                    amount_minor=refund.amount_minor,
                    status="waiting",
                    created_at=now,
                )
            )
            existing = await Refund.select().where(Refund.id == refund_id).first()
            assert existing is not None
        if payment is None:
            logger.info("refund %s arrived before its payment %s: parked", refund.id, refund.payment_id)
            return Recorded("waiting_for_capture")
        await ledger.lock_unit(payment["unit"])
        if payment["refunded_minor"] + refund.amount_minor > payment["amount_minor"]:
            raise Conflict("the refunds would exceed the payment")
        today = await site_today(payment["site"], now)
        applied = await _apply_refund(payment["site"], payment["unit"], payment["id"], existing, today, now)
        await _mark_refunded(payment["id"], payment["amount_minor"], payment["refunded_minor"] + applied)
        changes = await ledger.settle_unit(payment["site"], payment["unit"], now)
        balance = (await ledger.settlement_of(payment["site"], payment["unit"])).balance_minor
    return Recorded(
        "applied",
        payment["site"],
        payment["unit"],
        payment["id"],
        payment["receipt_number"],
        refund_minor=applied,
        balance_minor=balance,
        unpaid_invoice_ids=[c.invoice_id for c in changes if c.was == "paid"],
    )


# ------------------------------------------------------------------------------ staff actions


class ManualPayment(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A payment received at the office (cash, cheque, bank transfer): recorded with a receipt."""

    unit_id: UUID
    amount_minor: Annotated[int, msgspec.Meta(ge=1, le=MAX_AMOUNT)]
    method: Literal["cash", "cheque", "bank_transfer"]
    reference: Annotated[str, msgspec.Meta(max_length=100), ONE_LINE] = ""
    paid_on: dt.date | None = None


class RefundRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    amount_minor: Annotated[int, msgspec.Meta(ge=1, le=MAX_AMOUNT)] | None = None  # default: all that is left


async def record_manual(principal: Principal, data: ManualPayment, now: dt.datetime | None = None) -> Recorded:
    await unit_label(principal.site_id, data.unit_id)
    today = await site_today(principal.site_id, now)
    if data.paid_on is not None and data.paid_on > today:
        raise InvalidInput.for_field("paid_on", "must not be in the future")
    return await record_capture(
        data.method,
        ProviderPayment(
            id=f"manual:{uuid4()}",
            order_id=None,
            amount_minor=data.amount_minor,
            currency="INR",
            status="captured",
            method=data.method,
            refunded_minor=0,
            created_at=int((now or now_utc()).timestamp()),
        ),
        now,
        site_id=principal.site_id,
        unit_id=data.unit_id,
        method=data.method,
        reference=data.reference,
        person_id=None,
        paid_on=data.paid_on,
    )


async def refund_payment(
    provider: PaymentProvider,
    principal: Principal,
    payment_id: UUID,
    data: RefundRequest,
    now: dt.datetime | None = None,
) -> Recorded:
    row = await Payment.select().where((Payment.site == principal.site_id) & (Payment.id == payment_id)).first()
    if row is None:
        raise NotFound("payment not found")
    left = row["amount_minor"] - row["refunded_minor"]
    amount = data.amount_minor if data.amount_minor is not None else left
    if left <= 0:
        raise Conflict("the payment is already refunded in full")
    if amount > left:
        raise InvalidInput.for_field("amount_minor", f"at most {left} paise is left to refund")
    if row["provider"] in MANUAL_METHODS:
        refund = ProviderRefund(
            id=f"manual:{uuid4()}", payment_id=row["provider_payment_id"], amount_minor=amount, status="processed"
        )
    else:
        try:
            refund = await provider.refund(row["provider_payment_id"], amount)
        except ProviderError as exc:
            raise ProviderUnavailable(f"the payment provider refused the refund: {exc}") from None
    return await record_refund(refund, now)


# ------------------------------------------------------------------------------ collected, and events


def month_bounds(day: dt.date) -> tuple[dt.date, dt.date]:
    first = day.replace(day=1)
    following = dt.date(first.year + (first.month == 12), first.month % 12 + 1, 1)
    return first, following


async def collected(site_id: UUID, now: dt.datetime | None = None) -> tuple[str, int, int]:
    """(period, payments less refunds this month in site time, number of payments)."""
    zone = await site_zone(site_id)
    today = (now or now_utc()).astimezone(zone).date()
    first, following = month_bounds(today)
    start = dt.datetime.combine(first, dt.time(), zone)
    end = dt.datetime.combine(following, dt.time(), zone)
    rows = await Payment.select(Payment.amount_minor, Payment.id).where(
        (Payment.site == site_id) & (Payment.captured_at >= start) & (Payment.captured_at < end)
    )
    refunds = await Refund.select(Refund.amount_minor).where(
        (Refund.site == site_id)
        & (Refund.status == "applied")
        & (Refund.applied_at >= start)
        & (Refund.applied_at < end)
    )
    total = sum(r["amount_minor"] for r in rows) - sum(r["amount_minor"] for r in refunds)
    return first.strftime("%Y-%m"), total, len(rows)


async def announce(redis: Redis, settings: Settings, recorded: Recorded, now: dt.datetime | None = None) -> None:
    """After the commit: the unit's occupants and the control room hear of it; paid invoices' reminders stop."""
    if recorded.outcome not in ("recorded", "applied") or recorded.site_id is None or recorded.unit_id is None:
        return
    assert recorded.payment_id is not None
    from app.billing.collections import cancel_reminders  # collections imports this module

    if recorded.paid_invoice_ids:
        await cancel_reminders(recorded.site_id, recorded.paid_invoice_ids, now)
    if recorded.outcome == "recorded":
        await publish(
            redis,
            settings,
            unit_topic(recorded.unit_id),
            PAYMENT_RECEIVED,
            PaymentReceived(
                payment_id=recorded.payment_id,
                unit_id=recorded.unit_id,
                receipt_number=recorded.receipt_number or "",
                amount_minor=recorded.amount_minor,
                balance_minor=recorded.balance_minor,
                paid_invoice_ids=recorded.paid_invoice_ids,
            ),
        )
    if recorded.refund_minor:
        await publish(
            redis,
            settings,
            unit_topic(recorded.unit_id),
            REFUNDED,
            Refunded(
                payment_id=recorded.payment_id,
                unit_id=recorded.unit_id,
                amount_minor=recorded.refund_minor,
                balance_minor=recorded.balance_minor,
            ),
        )
    period, total, count = await collected(recorded.site_id, now)
    await publish(
        redis,
        settings,
        site_topic(recorded.site_id, "control"),
        COLLECTED,
        Collected(
            period=period,
            collected_minor=total,
            payments=count,
            change_minor=recorded.amount_minor - recorded.refund_minor,
            unit_id=recorded.unit_id,
        ),
    )
