"""The ledger per unit: immutable entries, the balance and the statement computed from them.

Every invoice, payment, credit note, late fee and refund is one ``LedgerEntry`` with a signed amount
(positive: the unit owes more; negative: paid or credited) and an ``entry_key`` naming what it records,
so the same event is never entered twice. Nothing here updates or deletes an entry (a database trigger
refuses updates): a correction is a credit note or a refund, a new entry.

Writers of one unit's entries hold the unit's lock (``lock_unit``) inside their transaction, so "is it
already entered?" and the insert are one step, and ``settle_unit`` sees every entry.

**Settlement** (``settle``, pure): which invoices and late fees the unit's payments have paid. Payments,
less refunds, form one pool (an advance when it exceeds what is owed); a credit note reduces its own
invoice; debts are paid from the pool oldest due date first. The invoices' ``settled_minor``, ``status``
and ``paid_at`` are a cache of this, rewritten with every entry.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from uuid import UUID

import msgspec

from app.db import is_sqlite
from schema.billing import Counter, Invoice, LedgerEntry

DEBIT_KINDS: Final = frozenset({"invoice", "late_fee"})
POOL_KINDS: Final = frozenset({"payment", "refund"})


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def lock_unit(unit_id: UUID) -> None:
    """Inside a write transaction: the only writer of this unit's ledger until it ends.

    PostgreSQL: an advisory transaction lock. SQLite: ``write_transaction`` already holds the database.
    """
    if is_sqlite():
        return
    await LedgerEntry.raw("SELECT pg_advisory_xact_lock(hashtextextended({}, 0))", f"billing:unit:{unit_id}")


async def next_seq(site_id: UUID, series: str, fy: str) -> int:
    """Inside a write transaction: the next number of a series for the site and financial year.

    The counter row's UPDATE holds its row lock (PostgreSQL) or the database's write lock (SQLite) until
    the transaction ends, so concurrent writers take numbers one after the other, and a transaction that
    rolls back gives its number back with everything else: the numbers of committed documents have no gaps.
    """
    await Counter.insert(Counter(site=site_id, series=series, fy=fy, last_seq=0)).on_conflict(action="DO NOTHING")
    rows = (
        await Counter.update({Counter.last_seq: Counter.last_seq + 1})
        .where((Counter.site == site_id) & (Counter.series == series) & (Counter.fy == fy))
        .returning(Counter.last_seq)
    )
    return int(rows[0]["last_seq"])


async def has_entry(site_id: UUID, entry_key: str) -> bool:
    return bool(await LedgerEntry.exists().where((LedgerEntry.site == site_id) & (LedgerEntry.entry_key == entry_key)))


async def append(
    *,
    site_id: UUID,
    unit_id: UUID,
    kind: str,
    entry_key: str,
    amount_minor: int,
    entry_date: dt.date,
    description: str,
    due_date: dt.date | None = None,
    invoice_id: UUID | None = None,
    payment_id: UUID | None = None,
    credit_note_id: UUID | None = None,
    refund_id: UUID | None = None,
    now: dt.datetime | None = None,
) -> bool:
    """Enter one event (inside a transaction holding ``lock_unit``); False if it was already entered."""
    if await has_entry(site_id, entry_key):
        return False
    await LedgerEntry.insert(
        LedgerEntry(
            site=site_id,
            unit=unit_id,
            kind=kind,
            entry_key=entry_key,
            amount_minor=amount_minor,
            entry_date=entry_date,
            due_date=due_date,
            description=description[:200],
            invoice=invoice_id,
            payment=payment_id,
            credit_note=credit_note_id,
            refund=refund_id,
            created_at=now or now_utc(),
        )
    )
    return True


# ------------------------------------------------------------------------------ settlement (pure)


@dataclass(frozen=True, slots=True)
class Entry:
    """What settlement needs of a ledger entry."""

    id: UUID
    kind: str
    amount_minor: int
    entry_date: dt.date
    due_date: dt.date | None = None
    invoice_id: UUID | None = None  # invoice, credit note (the invoice it credits), late fee (the overdue one)


@dataclass(slots=True)
class Debt:
    key: UUID  # the invoice id for an invoice, the entry id otherwise
    kind: str  # invoice | late_fee | balance_forward
    amount_minor: int  # after credit notes
    due_date: dt.date
    entry_date: dt.date
    credited_minor: int = 0
    settled_minor: int = 0

    @property
    def outstanding_minor(self) -> int:
        return self.amount_minor - self.settled_minor


@dataclass(slots=True)
class Settlement:
    debts: list[Debt] = field(default_factory=list)
    pool_minor: int = 0  # payments less refunds (and credit carried forward)
    balance_minor: int = 0  # the sum of every entry: > 0 owed, < 0 an advance

    @property
    def advance_minor(self) -> int:
        return max(0, -self.balance_minor)

    def invoice(self, invoice_id: UUID) -> Debt | None:
        return next((d for d in self.debts if d.kind == "invoice" and d.key == invoice_id), None)


def settle(entries: Iterable[Entry]) -> Settlement:
    """Which debts the pool of payments has paid, oldest due date first (then oldest entry)."""
    result = Settlement()
    invoices: dict[UUID, Debt] = {}
    credits: dict[UUID, int] = {}
    for entry in entries:
        result.balance_minor += entry.amount_minor
        if entry.kind == "invoice" and entry.invoice_id is not None:
            debt = Debt(
                entry.invoice_id, "invoice", entry.amount_minor, entry.due_date or entry.entry_date, entry.entry_date
            )
            invoices[entry.invoice_id] = debt
            result.debts.append(debt)
        elif entry.kind == "late_fee" or (entry.kind == "balance_forward" and entry.amount_minor > 0):
            result.debts.append(
                Debt(entry.id, entry.kind, entry.amount_minor, entry.due_date or entry.entry_date, entry.entry_date)
            )
        elif entry.kind == "credit_note" and entry.invoice_id is not None:
            credits[entry.invoice_id] = credits.get(entry.invoice_id, 0) - entry.amount_minor
        else:  # payment, refund, a credit carried forward
            result.pool_minor -= entry.amount_minor
    for invoice_id, credited in credits.items():
        credited_debt = invoices.get(invoice_id)
        if credited_debt is None:  # the invoice was purged by retention: the credit joins the pool
            result.pool_minor += credited
            continue
        applied = min(credited, credited_debt.amount_minor)
        credited_debt.credited_minor = applied
        credited_debt.amount_minor -= applied
        result.pool_minor += credited - applied
    pool = max(0, result.pool_minor)
    for debt in sorted(result.debts, key=lambda d: (d.due_date, d.entry_date)):
        debt.settled_minor = min(pool, debt.amount_minor)
        pool -= debt.settled_minor
    return result


def invoice_status(debt: Debt) -> str:
    if debt.amount_minor == 0 and debt.credited_minor > 0:
        return "credited"
    if debt.settled_minor >= debt.amount_minor:
        return "paid"
    return "partially_paid" if debt.settled_minor > 0 else "open"


# ------------------------------------------------------------------------------ reading


_ENTRY_COLUMNS = (
    LedgerEntry.id,
    LedgerEntry.kind,
    LedgerEntry.amount_minor,
    LedgerEntry.entry_date,
    LedgerEntry.due_date,
    LedgerEntry.invoice,
)


async def entries_of(site_id: UUID, unit_id: UUID) -> list[Entry]:
    rows = (
        await LedgerEntry.select(*_ENTRY_COLUMNS)
        .where((LedgerEntry.site == site_id) & (LedgerEntry.unit == unit_id))
        .order_by(LedgerEntry.entry_date)
        .order_by(LedgerEntry.created_at)
    )
    return [_entry(row) for row in rows]


def _entry(row: dict[str, Any]) -> Entry:
    return Entry(
        id=row["id"],
        kind=row["kind"],
        amount_minor=row["amount_minor"],
        entry_date=row["entry_date"],
        due_date=row["due_date"],
        invoice_id=row["invoice"],
    )


async def settlement_of(site_id: UUID, unit_id: UUID) -> Settlement:
    return settle(await entries_of(site_id, unit_id))


@dataclass(frozen=True, slots=True)
class InvoiceChange:
    invoice_id: UUID
    status: str
    was: str


async def settle_unit(site_id: UUID, unit_id: UUID, now: dt.datetime | None = None) -> list[InvoiceChange]:
    """Inside the transaction that entered something: rewrite the unit's invoices' settlement cache."""
    now = now or now_utc()
    settlement = await settlement_of(site_id, unit_id)
    rows = await Invoice.select(
        Invoice.id, Invoice.status, Invoice.settled_minor, Invoice.credited_minor, Invoice.paid_at
    ).where((Invoice.site == site_id) & (Invoice.unit == unit_id))
    changes = []
    for row in rows:
        debt = settlement.invoice(row["id"])
        if debt is None:
            continue
        status = invoice_status(debt)
        if (status, debt.settled_minor, debt.credited_minor) == (
            row["status"],
            row["settled_minor"],
            row["credited_minor"],
        ):
            continue
        paid_at = (row["paid_at"] or now) if status == "paid" else None
        await Invoice.update(
            {
                Invoice.status: status,
                Invoice.settled_minor: debt.settled_minor,
                Invoice.credited_minor: debt.credited_minor,
                Invoice.paid_at: paid_at,
            }
        ).where(Invoice.id == row["id"])
        if status != row["status"]:
            changes.append(InvoiceChange(row["id"], status, row["status"]))
    return changes


# ------------------------------------------------------------------------------ statement


class StatementLine(msgspec.Struct, frozen=True, kw_only=True):
    entry_date: dt.date
    kind: str
    description: str
    debit_minor: int
    credit_minor: int
    balance_minor: int  # running balance after this entry
    invoice_id: UUID | None
    payment_id: UUID | None


class Statement(msgspec.Struct, frozen=True, kw_only=True):
    unit_id: UUID
    unit_label: str
    currency: str
    date_from: dt.date | None
    date_to: dt.date | None
    opening_balance_minor: int
    closing_balance_minor: int
    total_debits_minor: int
    total_credits_minor: int
    lines: list[StatementLine]


async def statement(
    site_id: UUID, unit_id: UUID, unit_label: str, date_from: dt.date | None = None, date_to: dt.date | None = None
) -> Statement:
    """The unit's entries in date order with a running balance; the opening balance sums what came before."""
    rows = (
        await LedgerEntry.select(
            LedgerEntry.kind,
            LedgerEntry.amount_minor,
            LedgerEntry.entry_date,
            LedgerEntry.description,
            LedgerEntry.invoice,
            LedgerEntry.payment,
        )
        .where((LedgerEntry.site == site_id) & (LedgerEntry.unit == unit_id))
        .order_by(LedgerEntry.entry_date)
        .order_by(LedgerEntry.created_at)
    )
    return build_statement(rows, unit_id, unit_label, date_from, date_to)


def build_statement(
    rows: Sequence[dict[str, Any]],
    unit_id: UUID,
    unit_label: str,
    date_from: dt.date | None,
    date_to: dt.date | None,
) -> Statement:
    opening = 0
    running = 0
    lines = []
    debits = credits = 0
    for row in rows:
        day = row["entry_date"]
        amount = row["amount_minor"]
        if date_from is not None and day < date_from:
            opening += amount
            running += amount
            continue
        if date_to is not None and day > date_to:
            break
        running += amount
        debits += max(amount, 0)
        credits += max(-amount, 0)
        lines.append(
            StatementLine(
                entry_date=day,
                kind=row["kind"],
                description=row["description"],
                debit_minor=max(amount, 0),
                credit_minor=max(-amount, 0),
                balance_minor=running,
                invoice_id=row["invoice"],
                payment_id=row["payment"],
            )
        )
    return Statement(
        unit_id=unit_id,
        unit_label=unit_label,
        currency="INR",
        date_from=date_from,
        date_to=date_to,
        opening_balance_minor=opening,
        closing_balance_minor=running,
        total_debits_minor=debits,
        total_credits_minor=credits,
        lines=lines,
    )
