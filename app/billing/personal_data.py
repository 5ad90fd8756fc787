"""Personal data billing holds, registered with `app.privacy.registry`: a legal hold.

Section ``billing``: the invoices of the units the person occupies or occupied (with the name they were
billed to), the payments they made online, and the unit's ledger. Invoices, credit notes, receipts,
payments and the ledger are accounting records the law requires to be kept (India: 8 years), so erasure
keeps them, pseudonymised where the law allows:

- the person's name is removed from the "billed to" of every invoice (replaced by ``[erased]``), except
  on tax invoices issued to a business's GSTIN, where the recipient's name is a required particular
  (GST rule 46); those keep it until the retention period ends (``billing_invoice.billed_to_name``);
- payments and payment orders are detached from the person (the unit and amounts stay);
- charges, credit notes and runs the person entered as staff are detached from them.
No file is stored: PDFs are made from these rows on request, so they show the pseudonymised name.

Retention class ``billing_records`` (8 years by default, at least 5): everything dated before the cutoff
is deleted, and each unit's ledger entries before it are replaced by one "balance brought forward" entry,
so the balance and every later statement are unchanged.
"""

from __future__ import annotations

from typing import Any, Final
from uuid import uuid4

from app.privacy.redact import redact
from app.privacy.registry import (
    ErasureOutcome,
    PersonalDataSection,
    PersonScope,
    RetentionClass,
    RetentionRun,
    register_retention,
    register_section,
)
from schema.billing import (
    Charge,
    CreditNote,
    Invoice,
    LedgerEntry,
    Payment,
    PaymentOrder,
    Reconciliation,
    Refund,
    Run,
    WebhookEvent,
)
from schema.tables import Occupancy

RECORD_DAYS: Final = 2922  # 8 years, leap days included (Companies Act s.128(5); GST: 72 months)
MIN_RECORD_DAYS: Final = 1827  # 5 years: the shortest period any jurisdiction we serve allows


async def _units_of(scope: PersonScope) -> list[Any]:
    rows = await Occupancy.select(Occupancy.unit).where(
        (Occupancy.site == scope.site_id) & (Occupancy.person == scope.person_id)
    )
    return [row["unit"] for row in rows]


async def _export(scope: PersonScope) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    units = await _units_of(scope)
    if units:
        invoices = await Invoice.select(
            Invoice.number,
            Invoice.unit.label.as_alias("unit_label"),
            Invoice.issue_date,
            Invoice.due_date,
            Invoice.period,
            Invoice.billed_to_name,
            Invoice.total_minor,
            Invoice.settled_minor,
            Invoice.status,
        ).where((Invoice.site == scope.site_id) & Invoice.unit.is_in(units))
        out += [{"kind": "invoice", **row} for row in invoices]
    payments = await Payment.select(
        Payment.receipt_number,
        Payment.unit.label.as_alias("unit_label"),
        Payment.provider,
        Payment.method,
        Payment.amount_minor,
        Payment.refunded_minor,
        Payment.captured_at,
    ).where((Payment.site == scope.site_id) & (Payment.person == scope.person_id))
    out += [{"kind": "payment", **row} for row in payments]
    return out


async def _erase(scope: PersonScope) -> ErasureOutcome:
    names = [n for n in scope.identifiers if n and not n.isdigit()]
    erased = 0
    held_b2b = 0
    units = await _units_of(scope)
    if units and names:
        rows = await Invoice.select(Invoice.id, Invoice.billed_to_name, Invoice.customer_gstin).where(
            (Invoice.site == scope.site_id) & Invoice.unit.is_in(units)
        )
        for row in rows:
            cleaned = redact(row["billed_to_name"], names)
            if cleaned == row["billed_to_name"]:
                continue
            if row["customer_gstin"]:
                held_b2b += 1
                continue
            await Invoice.update({Invoice.billed_to_name: cleaned or ""}).where(Invoice.id == row["id"])
            erased += 1
    mine = scope.person_id
    payments = (
        await Payment.update({Payment.person: None})
        .where((Payment.site == scope.site_id) & (Payment.person == mine))
        .returning(Payment.id)
    )
    await PaymentOrder.update({PaymentOrder.person: None}).where(
        (PaymentOrder.site == scope.site_id) & (PaymentOrder.person == mine)
    )
    await Charge.update({Charge.created_by: None}).where((Charge.site == scope.site_id) & (Charge.created_by == mine))
    await CreditNote.update({CreditNote.created_by: None}).where(
        (CreditNote.site == scope.site_id) & (CreditNote.created_by == mine)
    )
    await Run.update({Run.created_by: None}).where((Run.site == scope.site_id) & (Run.created_by == mine))
    erased += len(payments)
    held = []
    if units:
        held.append("the units' invoices, receipts and ledger are kept for the billing retention period")
    if held_b2b:
        held.append(f"{held_b2b} tax invoice(s) issued to a GSTIN keep the name they were billed to (GST rule 46)")
    if payments:
        held.append(f"{len(payments)} payment(s) kept without the person")
    return ErasureOutcome(erased=erased, held=held)


# ------------------------------------------------------------------------------ retention


async def _apply(run: RetentionRun) -> int:
    cutoff = run.cutoff.date()
    site = run.site_id
    old = await LedgerEntry.select(LedgerEntry.id, LedgerEntry.unit, LedgerEntry.amount_minor).where(
        (LedgerEntry.site == site) & (LedgerEntry.entry_date < cutoff)
    )
    forward: dict[Any, int] = {}
    for row in old:
        forward[row["unit"]] = forward.get(row["unit"], 0) + row["amount_minor"]
    deleted = 0
    for unit, amount in forward.items():
        await LedgerEntry.insert(
            LedgerEntry(
                id=uuid4(),
                site=site,
                unit=unit,
                kind="balance_forward",
                entry_key=f"balance_forward:{unit}:{cutoff}:{uuid4().hex[:8]}",
                amount_minor=amount,
                entry_date=cutoff,
                due_date=cutoff,
                description=f"Balance brought forward from before {cutoff}",
                created_at=run.cutoff,
            )
        )
    ids = [row["id"] for row in old]
    for start in range(0, len(ids), 500):
        deleted += len(
            await LedgerEntry.delete().where(LedgerEntry.id.is_in(ids[start : start + 500])).returning(LedgerEntry.id)
        )
    kept_invoices = LedgerEntry.select(LedgerEntry.invoice).where(
        (LedgerEntry.site == site) & LedgerEntry.invoice.is_not_null()
    )
    kept_payments = LedgerEntry.select(LedgerEntry.payment).where(
        (LedgerEntry.site == site) & LedgerEntry.payment.is_not_null()
    )
    deleted += len(
        await Refund.delete()
        .where(
            (Refund.site == site)
            & (Refund.created_at < run.cutoff)
            & Refund.id.not_in(
                LedgerEntry.select(LedgerEntry.refund).where(
                    (LedgerEntry.site == site) & LedgerEntry.refund.is_not_null()
                )
            )
        )
        .returning(Refund.id)
    )
    deleted += len(
        await CreditNote.delete()
        .where(
            (CreditNote.site == site)
            & (CreditNote.issue_date < cutoff)
            & CreditNote.id.not_in(
                LedgerEntry.select(LedgerEntry.credit_note).where(
                    (LedgerEntry.site == site) & LedgerEntry.credit_note.is_not_null()
                )
            )
        )
        .returning(CreditNote.id)
    )
    deleted += len(
        await Payment.delete()
        .where((Payment.site == site) & (Payment.captured_at < run.cutoff) & Payment.id.not_in(kept_payments))
        .returning(Payment.id)
    )
    deleted += len(
        await Charge.delete()
        .where((Charge.site == site) & (Charge.created_at < run.cutoff) & (Charge.status != "pending"))
        .returning(Charge.id)
    )
    deleted += len(
        await Invoice.delete()
        .where((Invoice.site == site) & (Invoice.issue_date < cutoff) & Invoice.id.not_in(kept_invoices))
        .returning(Invoice.id)
    )
    for table, column in (
        (PaymentOrder, PaymentOrder.created_at),
        (WebhookEvent, WebhookEvent.received_at),
        (Reconciliation, Reconciliation.ran_at),
        (Run, Run.created_at),
    ):
        deleted += len(await table.delete().where((table.site == site) & (column < run.cutoff)).returning(table.id))
    return deleted


async def _count(run: RetentionRun) -> int:
    cutoff = run.cutoff.date()
    return int(
        await LedgerEntry.count().where((LedgerEntry.site == run.site_id) & (LedgerEntry.entry_date < cutoff))
    ) + int(await Invoice.count().where((Invoice.site == run.site_id) & (Invoice.issue_date < cutoff)))


SECTION = register_section(
    PersonalDataSection(
        name="billing",
        description="Invoices of the units you occupy or occupied (with the name they were billed to) and the "
        "payments you made online.",
        export=_export,
        erase=_erase,
        legal_hold="Invoices, receipts, payments, credit notes and the unit's ledger are accounting records kept "
        "for the site's billing retention period (8 years by default, as Indian accounting rules require); your "
        "name is removed from them, except on tax invoices issued to a business's GSTIN, where the law requires it.",
        held_columns=("billing_invoice.billed_to_name",),
    )
)
RECORDS = register_retention(
    RetentionClass(
        name="billing_records",
        description="Invoices, credit notes, receipts, payments and ledger entries older than this are deleted; "
        "each unit's ledger keeps its balance as one entry brought forward.",
        default_days=RECORD_DAYS,
        min_days=MIN_RECORD_DAYS,
        apply=_apply,
        count=_count,
    )
)
