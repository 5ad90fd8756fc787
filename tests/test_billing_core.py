"""Billing's core, exact to the paisa: line, tax and rounding rules as properties (hypothesis), settlement
of payments against debts, invoices from charges, gap-free numbers under 20 concurrent runs (both
databases), credit notes and the immutable ledger."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.billing import ledger
from app.billing.charges import NewCharge, add_charge
from app.billing.invoicing import CreditLine, NewCreditNote, issue_credit_note, issue_invoice, run_invoices
from app.billing.ledger import Entry, settle
from app.billing.money import (
    BASIS_POINTS,
    LineInput,
    Rounding,
    TaxKind,
    amount_in_words,
    compute_invoice,
    div_round,
    document_number,
    financial_year,
    format_money,
    line_amount,
)
from app.db import is_sqlite
from schema.billing import Invoice, InvoiceLine, LedgerEntry
from tests.support.billing import ISSUE_DAY, PERIOD, configure, monthly_run, set_area
from tests.support.world import World, build_world

# ------------------------------------------------------------------------------ pure properties

lines_strategy = st.lists(
    st.builds(
        LineInput,
        description=st.just("line"),
        charge_type_code=st.sampled_from(["maintenance", "booking", "one_off"]),
        quantity_milli=st.integers(min_value=1, max_value=5_000_000),
        unit_price_minor=st.integers(min_value=-500_000, max_value=50_000_000),
        tax_rate_bp=st.sampled_from([0, 500, 1200, 1800, 2800]) | st.integers(min_value=0, max_value=10_000),
        tax_kind=st.sampled_from(list(TaxKind)),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=400, deadline=None)
@given(lines=lines_strategy, rounding=st.sampled_from(list(Rounding)))
def test_lines_taxes_and_round_off_add_up_to_the_total(lines: list[LineInput], rounding: Rounding) -> None:
    totals = compute_invoice(lines, rounding)
    # The total is the sum of the lines' integers plus one round off: nothing is lost or rounded twice.
    assert totals.total_minor == sum(c.total_minor for c in totals.lines) + totals.round_off_minor
    assert totals.total_minor == totals.subtotal_minor + totals.tax_minor + totals.round_off_minor
    assert totals.subtotal_minor == sum(c.taxable_minor for c in totals.lines)
    assert totals.cgst_minor == sum(c.tax.cgst_minor for c in totals.lines)
    assert [c.line_no for c in totals.lines] == list(range(1, len(lines) + 1))
    for line in totals.lines:
        exact_taxable = line.source.quantity_milli * line.source.unit_price_minor  # in thousandths of a paisa
        assert abs(line.taxable_minor * 1000 - exact_taxable) <= 500  # rule 1: within half a paisa
        rate = line.source.tax_rate_bp if line.source.tax_kind is not TaxKind.EXEMPT else 0
        exact_tax = line.taxable_minor * rate  # in 1/10000 of a paisa
        assert abs(line.tax.total * BASIS_POINTS - exact_tax) <= BASIS_POINTS  # rule 2: at most a paisa off in all
        assert line.tax.cgst_minor == line.tax.sgst_minor
        if line.source.tax_kind is TaxKind.IGST:
            assert line.tax.cgst_minor == 0
        else:
            assert line.tax.igst_minor == 0
    if rounding is Rounding.RUPEE:
        assert totals.total_minor % 100 == 0 and -50 <= totals.round_off_minor <= 50
    else:
        assert totals.round_off_minor == 0


@settings(max_examples=200, deadline=None)
@given(lines=lines_strategy, rounding=st.sampled_from(list(Rounding)), seed=st.integers(0, 2**32))
def test_the_total_does_not_depend_on_the_order_of_lines(lines: list[LineInput], rounding: Rounding, seed: int) -> None:
    shuffled = list(lines)
    random.Random(seed).shuffle(shuffled)
    assert compute_invoice(lines, rounding).total_minor == compute_invoice(shuffled, rounding).total_minor


@given(st.integers(-(10**12), 10**12), st.integers(1, 10**6))
def test_division_rounds_half_away_from_zero(numerator: int, denominator: int) -> None:
    result = div_round(numerator, denominator)
    assert abs(result * denominator - numerator) * 2 <= denominator
    assert div_round(-numerator, denominator) == -result


def test_rounding_rules_on_known_values() -> None:
    assert line_amount(1_234_500, 325) == 401_213  # 1234.5 sq ft at INR 3.25 = 4012.125 -> 4012.13
    assert div_round(5, 10) == 1 and div_round(-5, 10) == -1 and div_round(4, 10) == 0
    totals = compute_invoice(
        [LineInput("Maintenance", "maintenance", 1000, 250_050, 1800, TaxKind.CGST_SGST)], Rounding.RUPEE
    )
    # 2500.50 + 9 % (225.045 -> 225.05) twice = 2950.60 -> 2951.00 with a round off of 0.40
    assert (totals.cgst_minor, totals.sgst_minor, totals.round_off_minor, totals.total_minor) == (
        22_505,
        22_505,
        40,
        295_100,
    )


def test_words_numbers_and_years() -> None:
    assert amount_in_words(12_345_678_950) == (
        "Rupees Twelve Crore Thirty-four Lakh Fifty-six Thousand Seven Hundred and Eighty-nine and Fifty Paise Only"
    )
    assert amount_in_words(100) == "Rupees One Only"
    assert format_money(12_345_678) == "INR 1,23,456.78"
    assert format_money(-5) == "-INR 0.05"
    assert financial_year(dt.date(2026, 3, 31)) == "2025-26"
    assert financial_year(dt.date(2026, 4, 1)) == "2026-27"
    assert financial_year(dt.date(2026, 12, 1), start_month=1) == "2026"
    assert document_number("INV", "2026-27", 42) == "INV/26-27/00042"
    with pytest.raises(ValueError):
        document_number("ABCD", "2026-27", 123_456)


# ------------------------------------------------------------------------------ settlement (pure)


def _entries(draw: Any) -> list[Entry]:
    return draw


events = st.lists(
    st.tuples(st.sampled_from(["invoice", "payment", "late_fee", "refund"]), st.integers(1, 500_000)),
    min_size=1,
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(events=events)
def test_settlement_pays_debts_oldest_first_and_keeps_the_balance(events: list[tuple[str, int]]) -> None:
    entries: list[Entry] = []
    day = dt.date(2026, 1, 1)
    paid = 0
    for number, (kind, amount) in enumerate(events):
        day += dt.timedelta(days=1)
        if kind == "refund":
            amount = min(amount, paid)  # a refund never exceeds what was paid
            if not amount:
                continue
            paid -= amount
        if kind == "payment":
            paid += amount
        signed = -amount if kind == "payment" else amount
        invoice_id = uuid.UUID(int=number + 1) if kind == "invoice" else None
        entries.append(Entry(uuid.uuid4(), kind, signed, day, day, invoice_id))
    result = settle(entries)
    debts = sorted(result.debts, key=lambda d: (d.due_date, d.entry_date))
    owed = sum(d.amount_minor for d in debts)
    assert result.balance_minor == sum(e.amount_minor for e in entries)
    assert result.balance_minor == owed - result.pool_minor
    assert sum(d.settled_minor for d in debts) == min(owed, result.pool_minor)
    assert sum(d.outstanding_minor for d in debts) == max(result.balance_minor, 0)
    assert result.advance_minor == max(-result.balance_minor, 0)
    # Oldest first: no debt is partly paid while a later one has anything paid.
    seen_unpaid = False
    for debt in debts:
        if seen_unpaid:
            assert debt.settled_minor == 0
        if debt.outstanding_minor:
            seen_unpaid = True


# ------------------------------------------------------------------------------ with the database


async def test_monthly_run_issues_one_invoice_per_unit_and_rerunning_adds_nothing(world: World) -> None:
    await configure(world)
    first = await monthly_run(world)
    assert len(first.issued) == len(world.unit_ids)
    again = await monthly_run(world)
    assert again.issued == []
    invoices = await Invoice.select().where(Invoice.site == world.site_id).order_by(Invoice.seq)
    assert [i["seq"] for i in invoices] == list(range(1, len(world.unit_ids) + 1))
    assert invoices[0]["number"] == "INV/26-27/00001"
    # 2500 + 9 % + 9 % = 2950.00 each; the invoice's entry is the only one of the unit.
    assert {i["total_minor"] for i in invoices} == {295_000}
    assert await ledger.settlement_of(world.site_id, world.unit_ids[0]) is not None
    assert (await ledger.settlement_of(world.site_id, world.unit_ids[0])).balance_minor == 295_000


async def test_per_square_foot_one_off_and_credit_lines(world: World) -> None:
    await configure(world, amount_minor=325, per_sqft=True)
    unit = world.unit_ids[0]
    await set_area(world, unit, 123_450)  # 1234.50 sq ft
    await add_charge(world.site_id, NewCharge(unit_id=unit, description="Key card", unit_price_minor=15_000))
    await add_charge(
        world.site_id, NewCharge(unit_id=unit, description="Festival discount", unit_price_minor=10_000, kind="credit")
    )
    result = await monthly_run(world)
    assert [i.unit_id for i in result.issued] == [unit]  # the other units have no area: nothing by area
    lines = (
        await InvoiceLine.select()
        .where(InvoiceLine.invoice == result.issued[0].invoice_id)
        .order_by(InvoiceLine.line_no)
    )
    assert [line["taxable_minor"] for line in lines] == [15_000, -10_000, 401_213]
    invoice = await Invoice.select().where(Invoice.id == result.issued[0].invoice_id).first()
    assert invoice is not None
    assert invoice["subtotal_minor"] == 406_213
    assert invoice["total_minor"] == sum(line["total_minor"] for line in lines) + invoice["round_off_minor"]


async def test_credits_larger_than_charges_are_kept_for_later(world: World) -> None:
    await configure(world)
    unit = world.unit_ids[1]
    await add_charge(
        world.site_id, NewCharge(unit_id=unit, description="Refund of deposit", unit_price_minor=999_999, kind="credit")
    )
    result = await monthly_run(world)
    assert {s["unit_id"] for s in result.skipped} == {str(unit)}
    assert unit not in {i.unit_id for i in result.issued}


async def test_a_failed_issue_gives_its_number_back(world: World) -> None:
    await configure(world)
    await run_invoices(world.site_id, PERIOD, issue_date=ISSUE_DAY, unit_ids=[world.unit_ids[0]])
    with pytest.raises(RuntimeError):
        await issue_invoice(world.site_id, world.unit_ids[1], ISSUE_DAY, period=PERIOD, fail_after_number=True)
    await monthly_run(world)
    seqs = [r["seq"] for r in await Invoice.select(Invoice.seq).where(Invoice.site == world.site_id)]
    assert sorted(seqs) == list(range(1, len(world.unit_ids) + 1))


async def test_gap_free_numbers_under_20_concurrent_runs(settings: Any) -> None:
    """20 runs at once over 40 units in different orders, some issues failing after taking a number:
    every unit is invoiced once and the numbers are exactly 1..40 (PostgreSQL: each run on its own
    connections, so they really are concurrent)."""
    world = await build_world(settings, units_per_building=20)
    await configure(world)
    units = list(world.unit_ids)
    failures = 0

    async def one_run(seed: int) -> None:
        nonlocal failures
        order = list(units)
        random.Random(seed).shuffle(order)
        if seed % 4 == 0:  # a quarter of the runs fail mid-issue on some units first
            for unit in order[:3]:
                try:
                    await issue_invoice(world.site_id, unit, ISSUE_DAY, period=PERIOD, fail_after_number=True)
                except RuntimeError:
                    failures += 1
        await run_invoices(world.site_id, PERIOD, issue_date=ISSUE_DAY, unit_ids=order)

    async def all_runs() -> None:
        await run_invoices(world.site_id, PERIOD, issue_date=ISSUE_DAY, unit_ids=[])  # prepare charges once
        await asyncio.gather(*(one_run(seed) for seed in range(20)))

    if is_sqlite():  # one writer at a time anyway (the database's write lock)
        await all_runs()
    else:  # a loop of its own has no connection pool: every transaction gets its own PostgreSQL connection
        await asyncio.to_thread(asyncio.run, all_runs())
    rows = await Invoice.select(Invoice.seq, Invoice.unit, Invoice.number).where(Invoice.site == world.site_id)
    assert sorted(r["seq"] for r in rows) == list(range(1, len(units) + 1))
    assert sorted((r["unit"] for r in rows), key=str) == sorted(units, key=str)
    assert len({r["number"] for r in rows}) == len(units)
    assert failures > 0 or is_sqlite()
    entries = await LedgerEntry.select(LedgerEntry.amount_minor).where(LedgerEntry.site == world.site_id)
    assert sum(e["amount_minor"] for e in entries) == 295_000 * len(units)


async def test_credit_notes_correct_an_invoice_and_the_ledger_is_immutable(world: World) -> None:
    await configure(world)
    result = await monthly_run(world)
    invoice = result.issued[0]
    partial, _ = await issue_credit_note(
        world.site_id,
        invoice.invoice_id,
        NewCreditNote(reason="Lift out of service for a week", lines=[CreditLine(line_no=1, taxable_minor=50_000)]),
    )
    assert partial.number == "CN/26-27/00001"
    assert (partial.taxable_minor, partial.cgst_minor, partial.sgst_minor, partial.total_minor) == (
        50_000,
        4_500,
        4_500,
        59_000,
    )
    rest, changes = await issue_credit_note(world.site_id, invoice.invoice_id, NewCreditNote(reason="Billed in error"))
    assert rest.number == "CN/26-27/00002"
    assert partial.total_minor + rest.total_minor == invoice.total_minor  # credited exactly, round off included
    assert [c.status for c in changes] == ["credited"]
    settlement = await ledger.settlement_of(world.site_id, invoice.unit_id)
    assert settlement.balance_minor == 0
    row = await Invoice.select(Invoice.status, Invoice.credited_minor).where(Invoice.id == invoice.invoice_id).first()
    assert row == {"status": "credited", "credited_minor": invoice.total_minor}
    # Nothing is left to credit; the ledger refuses edits at the database.
    from app.errors import Conflict

    with pytest.raises(Conflict):
        await issue_credit_note(world.site_id, invoice.invoice_id, NewCreditNote(reason="again"))
    with pytest.raises(Exception, match="immutable"):
        await LedgerEntry.update({LedgerEntry.amount_minor: 1}).where(LedgerEntry.invoice == invoice.invoice_id)
