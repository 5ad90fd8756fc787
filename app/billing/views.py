"""What occupants and the FM team read: dues, invoices with their lines, receipts, statements (and CSV).

Occupants see the units they have an active occupancy of; staff see the whole site. Anything else is a
404, as if it did not exist.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any
from uuid import UUID

import msgspec
from piccolo.columns.combination import Combinable

from app.auth.principal import Principal
from app.auth.roles import STAFF
from app.billing import ledger
from app.billing.payments import my_unit_ids, visible_unit
from app.errors import NotFound
from app.pagination import Page, page_of
from schema.billing import Invoice, InvoiceLine, Payment


class InvoiceLineView(msgspec.Struct, frozen=True, kw_only=True):
    line_no: int
    charge_type: str
    description: str
    hsn_sac: str
    quantity_milli: int
    unit_price_minor: int
    taxable_minor: int
    tax_kind: str
    tax_rate_bp: int
    cgst_minor: int
    sgst_minor: int
    igst_minor: int
    total_minor: int


class InvoiceView(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    unit_id: UUID
    unit_label: str
    number: str
    issue_date: dt.date
    due_date: dt.date
    period: str | None
    billed_to_name: str
    currency: str
    subtotal_minor: int
    cgst_minor: int
    sgst_minor: int
    igst_minor: int
    round_off_minor: int
    total_minor: int
    credited_minor: int
    settled_minor: int
    outstanding_minor: int
    status: str
    paid_at: dt.datetime | None
    lines: list[InvoiceLineView] | None = None  # in the detail only


class ReceiptView(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    unit_id: UUID
    unit_label: str
    receipt_number: str
    provider: str
    method: str
    amount_minor: int
    refunded_minor: int
    status: str
    captured_at: dt.datetime


class Dues(msgspec.Struct, frozen=True, kw_only=True):
    unit_id: UUID
    unit_label: str
    balance_minor: int  # > 0 owed, < 0 an advance
    outstanding_minor: int
    overdue_minor: int
    advance_minor: int
    next_due_date: dt.date | None
    open_invoices: list[InvoiceView]


_INVOICE_COLUMNS = (*Invoice.all_columns(), Invoice.unit.label.as_alias("unit_label"))


def _invoice_view(row: dict[str, Any], lines: list[dict[str, Any]] | None = None) -> InvoiceView:
    net = row["total_minor"] - row["credited_minor"]
    return InvoiceView(
        id=row["id"],
        unit_id=row["unit"],
        unit_label=row["unit_label"],
        number=row["number"],
        issue_date=row["issue_date"],
        due_date=row["due_date"],
        period=row["period"],
        billed_to_name=row["billed_to_name"],
        currency=row["currency"],
        subtotal_minor=row["subtotal_minor"],
        cgst_minor=row["cgst_minor"],
        sgst_minor=row["sgst_minor"],
        igst_minor=row["igst_minor"],
        round_off_minor=row["round_off_minor"],
        total_minor=row["total_minor"],
        credited_minor=row["credited_minor"],
        settled_minor=row["settled_minor"],
        outstanding_minor=max(0, net - row["settled_minor"]),
        status=row["status"],
        paid_at=row["paid_at"],
        lines=None
        if lines is None
        else [
            InvoiceLineView(
                line_no=r["line_no"],
                charge_type=r["charge_type_code"],
                description=r["description"],
                hsn_sac=r["hsn_sac"],
                quantity_milli=r["quantity_milli"],
                unit_price_minor=r["unit_price_minor"],
                taxable_minor=r["taxable_minor"],
                tax_kind=r["tax_kind"],
                tax_rate_bp=r["tax_rate_bp"],
                cgst_minor=r["cgst_minor"],
                sgst_minor=r["sgst_minor"],
                igst_minor=r["igst_minor"],
                total_minor=r["total_minor"],
            )
            for r in lines
        ],
    )


async def _scope(principal: Principal, unit_id: UUID | None) -> list[UUID] | None:
    """The units a list may show: None for all of the site (staff), else the caller's units (or the one asked)."""
    if unit_id is not None:  # a unit the caller may not see (or none) lists nothing
        try:
            await visible_unit(principal, unit_id)
        except NotFound:
            return []
        return [unit_id]
    return None if principal.has_any(STAFF) else await my_unit_ids(principal)


async def list_invoices(
    principal: Principal, *, unit_id: UUID | None, status: str | None, limit: int, offset: int
) -> Page[InvoiceView]:
    units = await _scope(principal, unit_id)
    where: Combinable = Invoice.site == principal.site_id
    if units is not None:
        if not units:
            return page_of([], total=0, limit=limit, offset=offset)
        where &= Invoice.unit.is_in(units)
    if status is not None:
        where &= Invoice.status == status
    rows = (
        await Invoice.select(*_INVOICE_COLUMNS)
        .where(where)
        .order_by(Invoice.issue_date, ascending=False)
        .order_by(Invoice.seq, ascending=False)
        .limit(limit)
        .offset(offset)
    )
    return page_of(
        [_invoice_view(r) for r in rows], total=await Invoice.count().where(where), limit=limit, offset=offset
    )


async def invoice_row(principal: Principal, invoice_id: UUID) -> dict[str, Any]:
    row = (
        await Invoice.select(*_INVOICE_COLUMNS)
        .where((Invoice.site == principal.site_id) & (Invoice.id == invoice_id))
        .first()
    )
    if row is None:
        raise NotFound("invoice not found")
    try:
        await visible_unit(principal, row["unit"])
    except NotFound:
        raise NotFound("invoice not found") from None
    return dict(row)


async def get_invoice(principal: Principal, invoice_id: UUID) -> InvoiceView:
    row = await invoice_row(principal, invoice_id)
    lines = await InvoiceLine.select().where(InvoiceLine.invoice == invoice_id).order_by(InvoiceLine.line_no)
    return _invoice_view(row, lines)


_RECEIPT_COLUMNS = (*Payment.all_columns(), Payment.unit.label.as_alias("unit_label"))


def _receipt_view(row: dict[str, Any]) -> ReceiptView:
    return ReceiptView(
        id=row["id"],
        unit_id=row["unit"],
        unit_label=row["unit_label"],
        receipt_number=row["receipt_number"],
        provider=row["provider"],
        method=row["method"],
        amount_minor=row["amount_minor"],
        refunded_minor=row["refunded_minor"],
        status=row["status"],
        captured_at=row["captured_at"],
    )


async def list_receipts(principal: Principal, *, unit_id: UUID | None, limit: int, offset: int) -> Page[ReceiptView]:
    units = await _scope(principal, unit_id)
    where: Combinable = Payment.site == principal.site_id
    if units is not None:
        if not units:
            return page_of([], total=0, limit=limit, offset=offset)
        where &= Payment.unit.is_in(units)
    rows = (
        await Payment.select(*_RECEIPT_COLUMNS)
        .where(where)
        .order_by(Payment.captured_at, ascending=False)
        .limit(limit)
        .offset(offset)
    )
    return page_of(
        [_receipt_view(r) for r in rows], total=await Payment.count().where(where), limit=limit, offset=offset
    )


async def receipt_row(principal: Principal, payment_id: UUID) -> dict[str, Any]:
    row = (
        await Payment.select(*_RECEIPT_COLUMNS)
        .where((Payment.site == principal.site_id) & (Payment.id == payment_id))
        .first()
    )
    if row is None:
        raise NotFound("receipt not found")
    try:
        await visible_unit(principal, row["unit"])
    except NotFound:
        raise NotFound("receipt not found") from None
    return dict(row)


async def get_receipt(principal: Principal, payment_id: UUID) -> ReceiptView:
    return _receipt_view(await receipt_row(principal, payment_id))


async def dues(principal: Principal, unit_id: UUID, today: dt.date) -> Dues:
    label = await visible_unit(principal, unit_id)
    settlement = await ledger.settlement_of(principal.site_id, unit_id)
    owed = [d for d in settlement.debts if d.outstanding_minor > 0]
    open_rows = (
        await Invoice.select(*_INVOICE_COLUMNS)
        .where(
            (Invoice.site == principal.site_id)
            & (Invoice.unit == unit_id)
            & Invoice.status.is_in(["open", "partially_paid"])
        )
        .order_by(Invoice.due_date)
    )
    return Dues(
        unit_id=unit_id,
        unit_label=label,
        balance_minor=settlement.balance_minor,
        outstanding_minor=sum(d.outstanding_minor for d in owed),
        overdue_minor=sum(d.outstanding_minor for d in owed if d.due_date < today),
        advance_minor=settlement.advance_minor,
        next_due_date=min((d.due_date for d in owed), default=None),
        open_invoices=[_invoice_view(r) for r in open_rows],
    )


async def unit_statement(
    principal: Principal, unit_id: UUID, date_from: dt.date | None, date_to: dt.date | None
) -> ledger.Statement:
    label = await visible_unit(principal, unit_id)
    return await ledger.statement(principal.site_id, unit_id, label, date_from, date_to)


def statement_csv(statement: ledger.Statement) -> bytes:
    """One row per entry, amounts in rupees with two decimals (a spreadsheet's money), opening and closing rows."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["date", "kind", "description", "debit", "credit", "balance"])

    def rupees(minor: int) -> str:
        sign = "-" if minor < 0 else ""
        return f"{sign}{abs(minor) // 100}.{abs(minor) % 100:02d}"

    writer.writerow(
        [statement.date_from or "", "opening", "Opening balance", "", "", rupees(statement.opening_balance_minor)]
    )
    for line in statement.lines:
        writer.writerow(
            [
                line.entry_date.isoformat(),
                line.kind,
                line.description,
                rupees(line.debit_minor) if line.debit_minor else "",
                rupees(line.credit_minor) if line.credit_minor else "",
                rupees(line.balance_minor),
            ]
        )
    writer.writerow(
        [statement.date_to or "", "closing", "Closing balance", "", "", rupees(statement.closing_balance_minor)]
    )
    return out.getvalue().encode()
