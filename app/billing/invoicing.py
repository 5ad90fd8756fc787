"""Invoices: issuing one per unit from its pending charges, the monthly run, credit notes.

**Numbers.** Invoice, credit note and receipt numbers are gap-free per site, series and financial year
(India: April-March): ``ledger.next_seq`` takes the next number in the same transaction that inserts the
document, its lines, the charges' new status and the ledger entry. A transaction that fails gives its
number back with everything else, and concurrent runs take numbers one after another (PostgreSQL: the
counter row's lock; SQLite: the database's write lock). Each unit is issued under its lock first, so two
runs that reach the same unit issue one invoice: the second finds no pending charge and takes no number.

**The run** (``run_invoices``) for a month: prepare every unit's maintenance charge for the month (once),
import booking fees of bookings that have started, then issue an invoice to every unit with pending
charges. Running it again issues nothing more. A unit whose credits exceed its charges is skipped (its
charges stay pending for the next run) and reported.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any
from uuid import UUID, uuid4

import msgspec

from app.billing import ledger
from app.billing.charges import import_booking_fees, prepare_maintenance
from app.billing.money import (
    LineInput,
    Rounding,
    TaxKind,
    compute_invoice,
    document_number,
    financial_year,
    line_tax,
)
from app.billing.setup import ensure_site, now_utc, site_today, site_zone, valid_period
from app.db import write_transaction
from app.errors import Conflict, InvalidInput, NotFound
from app.text import MULTI_LINE
from schema.billing import Charge, ChargeType, CreditNote, Invoice, InvoiceLine, Run, UnitProfile
from schema.jsonvalue import as_list
from schema.tables import Occupancy

logger = logging.getLogger("opshub.billing.invoicing")

OWNER_RELATIONS = ("owner", "allottee")


@dataclass(frozen=True, slots=True)
class Issued:
    invoice_id: UUID
    unit_id: UUID
    number: str
    total_minor: int
    due_date: dt.date


@dataclass(slots=True)
class RunResult:
    run_id: UUID | None
    period: str
    issued: list[Issued] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)

    @property
    def total_minor(self) -> int:
        return sum(i.total_minor for i in self.issued)


OnIssued = Callable[[UUID, Issued], Awaitable[None]]


async def billed_to(site_id: UUID, unit_id: UUID) -> str:
    """Who the invoice is addressed to: the unit's owners (or allottees), else its other occupants."""
    rows = await Occupancy.select(Occupancy.relation, Occupancy.person.full_name.as_alias("name")).where(
        (Occupancy.site == site_id) & (Occupancy.unit == unit_id) & Occupancy.is_active.eq(True)
    )
    owners = sorted(r["name"] for r in rows if r["relation"] in OWNER_RELATIONS)
    names = owners or sorted(r["name"] for r in rows)
    return ", ".join(names)[:300]


async def issue_invoice(
    site_id: UUID,
    unit_id: UUID,
    issue_date: dt.date,
    *,
    period: str | None = None,
    run_id: UUID | None = None,
    now: dt.datetime | None = None,
    fail_after_number: bool = False,
) -> Issued | str | None:
    """Issue one invoice from the unit's pending charges. None: nothing pending; a string: why skipped.

    ``fail_after_number`` raises after the number is taken (tests: a failed run leaves no gap)."""
    now = now or now_utc()
    settings = await ensure_site(site_id)
    types = {r["id"]: r for r in await ChargeType.select().where(ChargeType.site == site_id)}
    name = await billed_to(site_id, unit_id)
    profile = await UnitProfile.select(UnitProfile.customer_gstin).where(UnitProfile.unit == unit_id).first()
    async with write_transaction():
        await ledger.lock_unit(unit_id)
        charges = (
            await Charge.select()
            .where((Charge.site == site_id) & (Charge.unit == unit_id) & (Charge.status == "pending"))
            .order_by(Charge.created_at)
            .order_by(Charge.source_key)
        )
        if not charges:
            return None
        lines = [
            LineInput(
                description=c["description"],
                charge_type_code=types[c["charge_type"]]["code"],
                quantity_milli=c["quantity_milli"],
                unit_price_minor=c["unit_price_minor"],
                tax_rate_bp=types[c["charge_type"]]["tax_rate_bp"],
                tax_kind=TaxKind(types[c["charge_type"]]["tax_kind"]),
                hsn_sac=types[c["charge_type"]]["hsn_sac"],
                amount_minor=c["amount_minor"],
            )
            for c in charges
        ]
        totals = compute_invoice(lines, Rounding(settings["rounding"]))
        if totals.total_minor < 0:
            return "credits exceed charges; they stay for the next invoice"
        fy = financial_year(issue_date, settings["fy_start_month"])
        seq = await ledger.next_seq(site_id, "invoice", fy)
        if fail_after_number:
            raise RuntimeError("failed after taking a number (test)")
        invoice_id = uuid4()
        due_date = issue_date + dt.timedelta(days=settings["due_days"])
        number = document_number(settings["invoice_prefix"], fy, seq)
        await Invoice.insert(
            Invoice(
                id=invoice_id,
                site=site_id,
                unit=unit_id,
                run=run_id,
                number=number,
                fy=fy,
                seq=seq,
                issue_date=issue_date,
                due_date=due_date,
                period=period,
                billed_to_name=name,
                customer_gstin=(profile or {}).get("customer_gstin") or "",
                place_of_supply=settings["state_code"],
                subtotal_minor=totals.subtotal_minor,
                cgst_minor=totals.cgst_minor,
                sgst_minor=totals.sgst_minor,
                igst_minor=totals.igst_minor,
                round_off_minor=totals.round_off_minor,
                total_minor=totals.total_minor,
                created_at=now,
            )
        )
        await InvoiceLine.insert(
            *[
                InvoiceLine(
                    site=site_id,
                    invoice=invoice_id,
                    line_no=line.line_no,
                    charge_type_code=line.source.charge_type_code,
                    description=line.source.description,
                    hsn_sac=line.source.hsn_sac,
                    quantity_milli=line.source.quantity_milli,
                    unit_price_minor=line.source.unit_price_minor,
                    taxable_minor=line.taxable_minor,
                    tax_kind=str(line.source.tax_kind),
                    tax_rate_bp=line.source.tax_rate_bp,
                    cgst_minor=line.tax.cgst_minor,
                    sgst_minor=line.tax.sgst_minor,
                    igst_minor=line.tax.igst_minor,
                    total_minor=line.total_minor,
                )
                for line in totals.lines
            ]
        )
        ids = [c["id"] for c in charges]
        marked = (
            await Charge.update({Charge.status: "invoiced", Charge.invoice: invoice_id})
            .where(Charge.id.is_in(ids) & (Charge.status == "pending"))
            .returning(Charge.id)
        )
        if len(marked) != len(ids):  # cannot happen under the unit lock; never issue half an invoice
            raise Conflict("charges changed while the invoice was issued; run again")
        await ledger.append(
            site_id=site_id,
            unit_id=unit_id,
            kind="invoice",
            entry_key=f"invoice:{invoice_id}",
            amount_minor=totals.total_minor,
            entry_date=issue_date,
            due_date=due_date,
            description=f"Invoice {number}",
            invoice_id=invoice_id,
            now=now,
        )
        await ledger.settle_unit(site_id, unit_id, now)  # an advance pays the new invoice at once
    return Issued(invoice_id, unit_id, number, totals.total_minor, due_date)


async def units_with_pending_charges(site_id: UUID) -> list[UUID]:
    rows = await Charge.select(Charge.unit).where((Charge.site == site_id) & (Charge.status == "pending")).distinct()
    return sorted((r["unit"] for r in rows), key=str)


async def run_invoices(
    site_id: UUID,
    period: str,
    *,
    issue_date: dt.date | None = None,
    run_id: UUID | None = None,
    unit_ids: list[UUID] | None = None,
    on_issued: OnIssued | None = None,
    now: dt.datetime | None = None,
) -> RunResult:
    """The monthly run for one site; safe to re-run (it issues only what is still pending)."""
    now = now or now_utc()
    valid_period(period)
    issue_date = issue_date or await site_today(site_id, now)
    await prepare_maintenance(site_id, period, now)
    # Booking fees of bookings that started before the end of the issue date (site time).
    zone = await site_zone(site_id)
    day_end = dt.datetime.combine(issue_date + dt.timedelta(days=1), dt.time(), zone)
    await import_booking_fees(site_id, day_end, now)
    result = RunResult(run_id=run_id, period=period)
    targets = unit_ids if unit_ids is not None else await units_with_pending_charges(site_id)
    for unit_id in targets:
        outcome = await issue_invoice(site_id, unit_id, issue_date, period=period, run_id=run_id, now=now)
        if isinstance(outcome, Issued):
            result.issued.append(outcome)
            if on_issued is not None:
                await on_issued(site_id, outcome)
        elif isinstance(outcome, str):
            result.skipped.append({"unit_id": str(unit_id), "reason": outcome})
    return result


# ------------------------------------------------------------------------------ recorded runs


class NewRun(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    period: Annotated[str, msgspec.Meta(pattern=r"^2[0-9]{3}-(0[1-9]|1[0-2])$")]
    issue_date: dt.date | None = None  # default: today, site time


class RunView(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    period: str
    issue_date: dt.date
    status: str
    invoices: int
    total_minor: int
    skipped: list[dict[str, str]]
    error: str | None
    created_at: dt.datetime
    finished_at: dt.datetime | None


def _run_view(row: dict[str, Any]) -> RunView:
    return RunView(
        id=row["id"],
        period=row["period"],
        issue_date=row["issue_date"],
        status=row["status"],
        invoices=row["invoices"],
        total_minor=row["total_minor"],
        skipped=[dict(s) for s in as_list(row["skipped"])],
        error=row["error"],
        created_at=row["created_at"],
        finished_at=row["finished_at"],
    )


async def queue_run(site_id: UUID, data: NewRun, created_by: UUID | None, now: dt.datetime | None = None) -> RunView:
    now = now or now_utc()
    await ensure_site(site_id)
    issue_date = data.issue_date or await site_today(site_id, now)
    first, _ = valid_period(data.period)
    if issue_date < first - dt.timedelta(days=31):
        raise InvalidInput.for_field("issue_date", "is more than a month before the period")
    run = Run(
        site=site_id,
        period=data.period,
        issue_date=issue_date,
        status="queued",
        created_by=created_by,
        created_at=now,
    )
    await run.save()
    return _run_view(run.to_dict())


async def get_run(site_id: UUID, run_id: UUID) -> RunView:
    row = await Run.select().where((Run.site == site_id) & (Run.id == run_id)).first()
    if row is None:
        raise NotFound("run not found")
    return _run_view(row)


async def list_runs(site_id: UUID, *, limit: int, offset: int) -> tuple[list[RunView], int]:
    rows = (
        await Run.select()
        .where(Run.site == site_id)
        .order_by(Run.created_at, ascending=False)
        .limit(limit)
        .offset(offset)
    )
    return [_run_view(r) for r in rows], await Run.count().where(Run.site == site_id)


async def execute_run(
    run_id: UUID, on_issued: OnIssued | None = None, now: dt.datetime | None = None
) -> RunView | None:
    """The job behind a recorded run: safe to re-run, a completed run is not run again."""
    row = await Run.select().where(Run.id == run_id).first()
    if row is None:
        return None
    if row["status"] == "completed":
        return _run_view(row)
    now = now or now_utc()
    await Run.update({Run.status: "running", Run.started_at: now}).where(Run.id == run_id)
    try:
        result = await run_invoices(
            row["site"], row["period"], issue_date=row["issue_date"], run_id=run_id, on_issued=on_issued, now=now
        )
    except Exception as exc:
        logger.exception("billing run %s failed", run_id)
        await Run.update({Run.status: "failed", Run.error: type(exc).__name__, Run.finished_at: now_utc()}).where(
            Run.id == run_id
        )
        raise
    # Invoices of an earlier attempt of this run count too.
    issued = await Invoice.select(Invoice.total_minor).where(Invoice.run == run_id)
    await Run.update(
        {
            Run.status: "completed",
            Run.invoices: len(issued),
            Run.total_minor: sum(r["total_minor"] for r in issued),
            Run.skipped: result.skipped,
            Run.error: None,
            Run.finished_at: now_utc(),
        }
    ).where(Run.id == run_id)
    return await get_run(row["site"], run_id)


# ------------------------------------------------------------------------------ credit notes


class CreditLine(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    line_no: Annotated[int, msgspec.Meta(ge=1, le=10_000)]
    taxable_minor: Annotated[int, msgspec.Meta(ge=1, le=10**11)]


class NewCreditNote(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A correction of an issued invoice. Without ``lines``: everything not credited yet (a cancellation)."""

    # Required; typed optional only so that another site's invoice is a 404 before the body is judged.
    reason: Annotated[str, msgspec.Meta(max_length=500), MULTI_LINE] = ""
    lines: Annotated[list[CreditLine], msgspec.Meta(max_length=200)] | None = None


class CreditNoteView(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    invoice_id: UUID
    unit_id: UUID
    number: str
    issue_date: dt.date
    reason: str
    taxable_minor: int
    cgst_minor: int
    sgst_minor: int
    igst_minor: int
    total_minor: int
    lines: list[dict[str, int]]


def _credit_view(row: dict[str, Any]) -> CreditNoteView:
    return CreditNoteView(
        id=row["id"],
        invoice_id=row["invoice"],
        unit_id=row["unit"],
        number=row["number"],
        issue_date=row["issue_date"],
        reason=row["reason"],
        taxable_minor=row["taxable_minor"],
        cgst_minor=row["cgst_minor"],
        sgst_minor=row["sgst_minor"],
        igst_minor=row["igst_minor"],
        total_minor=row["total_minor"],
        lines=[dict(x) for x in as_list(row["lines"])],
    )


async def issue_credit_note(
    site_id: UUID,
    invoice_id: UUID,
    data: NewCreditNote,
    created_by: UUID | None = None,
    now: dt.datetime | None = None,
) -> tuple[CreditNoteView, list[ledger.InvoiceChange]]:
    """Credit (part of) an invoice: the taxable value per line with its tax at the invoice's rates."""
    now = now or now_utc()
    settings = await ensure_site(site_id)
    invoice = await Invoice.select().where((Invoice.site == site_id) & (Invoice.id == invoice_id)).first()
    if invoice is None:
        raise NotFound("invoice not found")
    if not data.reason.strip():
        raise InvalidInput.for_field("reason", "say why the invoice is corrected")
    issue_date = await site_today(site_id, now)
    async with write_transaction():
        await ledger.lock_unit(invoice["unit"])
        lines = {r["line_no"]: r for r in await InvoiceLine.select().where(InvoiceLine.invoice == invoice_id)}
        already: dict[int, int] = {}
        already_tax: dict[int, tuple[int, int, int]] = {}
        for note in await CreditNote.select(CreditNote.lines).where(CreditNote.invoice == invoice_id):
            for part in as_list(note["lines"]):
                n = int(part["line_no"])
                already[n] = already.get(n, 0) + int(part["taxable_minor"])
                c, s, i = already_tax.get(n, (0, 0, 0))
                already_tax[n] = (c + int(part["cgst_minor"]), s + int(part["sgst_minor"]), i + int(part["igst_minor"]))
        wanted = (
            {c.line_no: c.taxable_minor for c in data.lines}
            if data.lines is not None
            else {n: line["taxable_minor"] - already.get(n, 0) for n, line in lines.items()}
        )
        parts = []
        for number, taxable in sorted(wanted.items()):
            line = lines.get(number)
            if line is None:
                raise InvalidInput.for_field("lines", f"the invoice has no line {number}")
            left = line["taxable_minor"] - already.get(number, 0)
            if taxable > left:
                raise InvalidInput.for_field("lines", f"line {number}: at most {left} paise is left to credit")
            if taxable <= 0:
                continue
            if taxable == left:  # the rest of the line: its tax is what is left of the line's tax, exactly
                credited_tax = already_tax.get(number, (0, 0, 0))
                cgst, sgst, igst = (
                    line["cgst_minor"] - credited_tax[0],
                    line["sgst_minor"] - credited_tax[1],
                    line["igst_minor"] - credited_tax[2],
                )
            else:
                tax = line_tax(taxable, line["tax_rate_bp"], TaxKind(line["tax_kind"]))
                cgst, sgst, igst = tax.cgst_minor, tax.sgst_minor, tax.igst_minor
            parts.append(
                {
                    "line_no": number,
                    "taxable_minor": taxable,
                    "cgst_minor": cgst,
                    "sgst_minor": sgst,
                    "igst_minor": igst,
                    "total_minor": taxable + cgst + sgst + igst,
                }
            )
        if not parts:
            raise Conflict("nothing is left to credit on this invoice")
        total = sum(p["total_minor"] for p in parts)
        # Crediting everything left also reverses the invoice's round off, so the invoice nets to zero.
        if data.lines is None:
            total += invoice["round_off_minor"]
        fy = financial_year(issue_date, settings["fy_start_month"])
        seq = await ledger.next_seq(site_id, "credit_note", fy)
        number = document_number("CN", fy, seq)
        note_id = uuid4()
        await CreditNote.insert(
            CreditNote(
                id=note_id,
                site=site_id,
                unit=invoice["unit"],
                invoice=invoice_id,
                number=number,
                fy=fy,
                seq=seq,
                issue_date=issue_date,
                reason=data.reason,
                lines=parts,
                taxable_minor=sum(p["taxable_minor"] for p in parts),
                cgst_minor=sum(p["cgst_minor"] for p in parts),
                sgst_minor=sum(p["sgst_minor"] for p in parts),
                igst_minor=sum(p["igst_minor"] for p in parts),
                total_minor=total,
                created_by=created_by,
                created_at=now,
            )
        )
        await ledger.append(
            site_id=site_id,
            unit_id=invoice["unit"],
            kind="credit_note",
            entry_key=f"credit_note:{note_id}",
            amount_minor=-total,
            entry_date=issue_date,
            description=f"Credit note {number} for invoice {invoice['number']}",
            invoice_id=invoice_id,
            credit_note_id=note_id,
            now=now,
        )
        changes = await ledger.settle_unit(site_id, invoice["unit"], now)
    row = await CreditNote.select().where(CreditNote.id == note_id).first()
    assert row is not None
    return _credit_view(row), changes


async def list_credit_notes(site_id: UUID, invoice_id: UUID) -> list[CreditNoteView]:
    rows = await CreditNote.select().where((CreditNote.site == site_id) & (CreditNote.invoice == invoice_id))
    return [_credit_view(r) for r in rows]
