"""Documents and collections: the invoice and receipt PDFs read back with pypdf, who may download them,
reminders before and after the due date through NOTIFY that stop once the invoice is paid, late fees,
defaulters and ageing, statements (JSON and CSV)."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import msgspec
from pypdf import PdfReader

from app.billing import collections, ledger
from app.billing.charges import NewCharge, add_charge
from app.billing.invoicing import run_invoices
from app.billing.payments import ManualPayment, record_manual
from app.billing.setup import SettingsChange, change_settings
from schema.billing import Invoice, InvoiceLine, LedgerEntry, Reminder
from schema.notifications import Notification
from tests.support.billing import ISSUE_DAY, PERIOD, configure, monthly_run
from tests.support.slots import principal
from tests.support.world import World

# Site time is Asia/Kolkata; these moments are mid-morning there.
DUE = ISSUE_DAY + dt.timedelta(days=15)  # 16 Dec 2026


def at(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(5, 0), dt.UTC)


def pdf_text(content: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)


async def test_invoice_pdf_holds_number_lines_tax_breakdown_and_total(client: Any, world: World) -> None:
    await configure(world)
    unit = world.unit_ids[0]
    await add_charge(
        world.site_id, NewCharge(unit_id=unit, description="Clubhouse deposit top-up", unit_price_minor=12_345)
    )
    result = await monthly_run(world)
    invoice = next(i for i in result.issued if i.unit_id == unit)
    answer = await client.get(f"/api/billing/invoices/{invoice.invoice_id}/pdf", headers=world.headers("occupant"))
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/pdf"
    assert f"{invoice.number.replace('/', '-')}.pdf" in answer.headers["content-disposition"]
    text = pdf_text(answer.content)
    lines = await InvoiceLine.select().where(InvoiceLine.invoice == invoice.invoice_id).order_by(InvoiceLine.line_no)
    row = await Invoice.select().where(Invoice.id == invoice.invoice_id).first()
    assert row is not None
    assert "TAX INVOICE" in text and invoice.number in text
    assert "Green Meadows Apartment Owners Association" in text and "GSTIN: 29AABCG1234M1Z5" in text
    for line in lines:
        assert line["description"] in text
        assert f"{line['taxable_minor'] // 100:,}.{line['taxable_minor'] % 100:02d}" in text
    # 2500.00 + 123.45 at 18 %: CGST 9 % and SGST 9 % per line, their sums, the round off and the total.
    assert "GST 18% on 2,623.45: CGST 9% 236.11, SGST 9% 236.11" in text
    assert f"Total (INR) {row['total_minor'] // 100:,}.{row['total_minor'] % 100:02d}" in text.replace("\n", " ")
    assert "Round off" in text and "Rupees Three Thousand and Ninety-six Only" in text
    assert row["total_minor"] == 309_600


async def test_only_the_units_occupants_and_staff_download_documents(client: Any, world: World) -> None:
    await configure(world)
    result = await monthly_run(world)
    mine = next(i for i in result.issued if i.unit_id == world.unit_ids[0])
    theirs = next(i for i in result.issued if i.unit_id == world.unit_ids[1])
    recorded = await record_manual(
        principal(world, "fm_admin"),
        ManualPayment(unit_id=world.unit_ids[0], amount_minor=295_000, method="cheque", reference="CHQ 004512"),
    )
    paths = [f"/api/billing/invoices/{mine.invoice_id}/pdf", f"/api/billing/receipts/{recorded.payment_id}/pdf"]
    for path in paths:
        for role in ("occupant", "fm_admin", "site_admin"):
            assert (await client.get(path, headers=world.headers(role))).status_code == 200, (path, role)
        for role in ("guard", "technician"):
            assert (await client.get(path, headers=world.headers(role))).status_code == 403, (path, role)
    # Another flat's invoice is not the occupant's to see.
    assert (
        await client.get(f"/api/billing/invoices/{theirs.invoice_id}/pdf", headers=world.headers("occupant"))
    ).status_code == 404
    receipt = pdf_text((await client.get(paths[1], headers=world.headers("occupant"))).content)
    assert "PAYMENT RECEIPT" in receipt and "RCT/26-27/00001" in receipt and "CHQ 004512" in receipt
    assert "2,950.00" in receipt and "Rupees Two Thousand Nine Hundred and Fifty Only" in receipt


async def test_reminders_before_and_after_the_due_date_stop_once_paid(client: Any, world: World) -> None:
    await configure(world, reminder_days_before=[3], reminder_days_after=[1, 7])
    result = await monthly_run(world)
    site = [world.site_id]
    unit_a, unit_b = world.unit_ids[0], world.unit_ids[1]
    assert await collections.send_reminders(at(DUE - dt.timedelta(days=4)), site) == 0  # too early
    assert await collections.send_reminders(at(DUE - dt.timedelta(days=3)), site) == len(result.issued)
    assert await collections.send_reminders(at(DUE - dt.timedelta(days=3)), site) == 0  # a re-run sends nothing twice
    reminder = (
        await Notification.select()
        .where((Notification.site == world.site_id) & (Notification.kind == "billing.reminder"))
        .first()
    )
    assert reminder is not None and reminder["category"] == "billing"
    assert "is due on 16 Dec 2026" in reminder["body"] and "INR 2,950.00" in reminder["body"]
    # Unit A pays before the due date; unit B does not.
    await record_manual(
        principal(world, "fm_admin"), ManualPayment(unit_id=unit_a, amount_minor=295_000, method="cash")
    )
    sent = await collections.send_reminders(at(DUE + dt.timedelta(days=1)), site)
    assert sent == len(result.issued) - 1
    invoice_a = next(i.invoice_id for i in result.issued if i.unit_id == unit_a)
    invoice_b = next(i.invoice_id for i in result.issued if i.unit_id == unit_b)
    offsets = lambda rows: sorted(r["offset_days"] for r in rows)  # noqa: E731
    assert offsets(await Reminder.select().where(Reminder.invoice == invoice_a)) == [-3]
    assert offsets(await Reminder.select().where(Reminder.invoice == invoice_b)) == [-3, 1]
    # After the cron was down for a week, only the latest day's reminder goes; the one missed is recorded skipped.
    await change_settings(world.site_id, SettingsChange(reminder_days_after=[1, 3, 7]))
    await collections.send_reminders(at(DUE + dt.timedelta(days=8)), site)
    rows = {r["offset_days"]: r["status"] for r in await Reminder.select().where(Reminder.invoice == invoice_b)}
    assert rows == {-3: "sent", 1: "sent", 3: "skipped", 7: "sent"}


async def test_a_payment_cancels_a_reminder_not_delivered_yet(
    client: Any, world: World, redis: Any, settings: Any
) -> None:
    from app.billing.payments import announce

    await configure(world)
    result = await monthly_run(world)
    unit = world.unit_ids[0]
    await collections.send_reminders(at(DUE - dt.timedelta(days=3)), [world.site_id])
    invoice_id = next(i.invoice_id for i in result.issued if i.unit_id == unit)
    [row] = await Reminder.select().where(Reminder.invoice == invoice_id)
    # No worker has sent it (quiet hours, a queue): the payment cancels it.
    recorded = await record_manual(
        principal(world, "fm_admin"), ManualPayment(unit_id=unit, amount_minor=295_000, method="cash")
    )
    assert recorded.paid_invoice_ids == [invoice_id]
    await announce(redis, settings, recorded)
    state = await Notification.select(Notification.status).where(Notification.id == row["notification"]).first()
    assert state == {"status": "cancelled"}
    assert (await Reminder.select(Reminder.status).where(Reminder.id == row["id"]).first()) == {"status": "cancelled"}


async def test_late_fees_defaulters_and_ageing(client: Any, world: World) -> None:
    await configure(world, late_fee_kind="percent", late_fee_value=200, late_fee_grace_days=5)  # 2 % after 5 days
    site = [world.site_id]
    october = await run_invoices(world.site_id, "2026-10", issue_date=dt.date(2026, 10, 1))
    await run_invoices(world.site_id, "2026-12", issue_date=ISSUE_DAY)
    unit_paid, unit_partial = world.unit_ids[0], world.unit_ids[1]
    fm = principal(world, "fm_admin")
    await record_manual(
        fm, ManualPayment(unit_id=unit_paid, amount_minor=2 * 295_000, method="cash", paid_on=dt.date(2026, 10, 5))
    )
    await record_manual(
        fm, ManualPayment(unit_id=unit_partial, amount_minor=100_000, method="cash", paid_on=dt.date(2026, 10, 5))
    )
    now = at(dt.date(2026, 12, 20))
    assessed = await collections.assess_late_fees(now, site)
    # October's invoices are overdue (due 16 Oct + 5 days' grace) except the paid unit's; December's are not yet.
    assert assessed == len(october.issued) - 1
    assert await collections.assess_late_fees(now, site) == 0  # once per invoice
    fee = (
        await LedgerEntry.select(LedgerEntry.amount_minor)
        .where((LedgerEntry.unit == unit_partial) & (LedgerEntry.kind == "late_fee"))
        .first()
    )
    assert fee == {"amount_minor": 3_900}  # 2 % of the 1950.00 still owed on October
    assert (await client.get("/api/billing/collections", headers=world.headers("fm_admin"))).status_code == 200
    board = msgspec.to_builtins(await collections.board(world.site_id, now))
    ageing = {b["bucket"]: b for b in board["ageing"]}
    # December's invoices (due 16 Dec) are 4 days overdue; October's (due 16 Oct) 65; late fees, due when assessed, 0.
    assert ageing["61-90"]["amount_minor"] == 295_000 * (len(october.issued) - 2) + 195_000
    assert ageing["0-30"]["amount_minor"] == 295_000 * (len(october.issued) - 1) + 0  # December, unit_paid's covered
    assert ageing["not_due"]["amount_minor"] == sum(
        r["amount_minor"]
        for r in await LedgerEntry.select(LedgerEntry.amount_minor).where(
            (LedgerEntry.site == world.site_id) & (LedgerEntry.kind == "late_fee")
        )
    )
    assert board["outstanding_minor"] == sum(b["amount_minor"] for b in board["ageing"])
    assert (await client.get("/api/billing/defaulters", headers=world.headers("site_admin"))).status_code == 200
    defaulters = msgspec.to_builtins(await collections.defaulters(world.site_id, limit=50, offset=0, now=now))
    assert defaulters["total"] == len(world.unit_ids) - 1
    by_unit = {d["unit_id"]: d for d in defaulters["items"]}
    assert str(unit_paid) not in by_unit
    assert by_unit[str(unit_partial)]["bucket"] == "61-90" and by_unit[str(unit_partial)]["days_overdue"] == 65
    assert defaulters["items"][0]["overdue_minor"] >= defaulters["items"][-1]["overdue_minor"]
    assert (await client.get("/api/billing/defaulters", headers=world.headers("occupant"))).status_code == 403


async def test_statement_json_and_csv(client: Any, world: World) -> None:
    await configure(world)
    await monthly_run(world)
    unit = world.unit_ids[0]
    await record_manual(principal(world, "fm_admin"), ManualPayment(unit_id=unit, amount_minor=100_000, method="cash"))
    statement = (await client.get(f"/api/billing/units/{unit}/statement", headers=world.headers("occupant"))).json()
    assert [line["kind"] for line in statement["lines"]] == ["invoice", "payment"]
    assert (
        statement["closing_balance_minor"] == 195_000 == (await ledger.settlement_of(world.site_id, unit)).balance_minor
    )
    csv = await client.get(f"/api/billing/units/{unit}/statement.csv", headers=world.headers("fm_admin"))
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    rows = csv.text.strip().splitlines()
    assert rows[0] == "date,kind,description,debit,credit,balance"
    assert rows[2].startswith("2026-12-01,invoice,Invoice INV/26-27/") and rows[2].endswith(",2950.00,,2950.00")
    assert rows[-1].endswith("closing,Closing balance,,,1950.00")
    other = world.unit_ids[1]
    assert (
        await client.get(f"/api/billing/units/{other}/statement", headers=world.headers("occupant"))
    ).status_code == 404
    assert PERIOD == "2026-12"


async def test_erasure_keeps_billing_records_pseudonymised_and_retention_carries_the_balance_forward(
    client: Any, world: World, settings: Any, redis: Any
) -> None:
    from app.people.directory import directory_for
    from app.privacy.registry import PersonScope, RetentionRun, load_registries
    from app.privacy.retention import list_classes

    await configure(world)
    await monthly_run(world)
    unit = world.unit_ids[0]
    sections, classes = load_registries()
    [invoice] = await Invoice.select().where(Invoice.unit == unit)
    assert invoice["billed_to_name"] == "Occupant"
    scope = PersonScope(
        site_id=world.site_id,
        person_id=world.people["occupant"],
        settings=settings,
        directory=directory_for(settings),
        redis=redis,
        identifiers=("Occupant",),
    )
    exported = await sections["billing"].export(scope)
    assert [row["kind"] for row in exported] == ["invoice"]
    outcome = await sections["billing"].erase(scope)
    assert outcome.erased == 1 and any("retention period" in h for h in outcome.held)
    row = await Invoice.select(Invoice.billed_to_name, Invoice.total_minor).where(Invoice.id == invoice["id"]).first()
    assert row == {"billed_to_name": "[erased]", "total_minor": invoice["total_minor"]}  # kept, pseudonymised
    assert "8 years" in (sections["billing"].legal_hold or "")
    # Retention: 8 years by default, never below 5.
    period = next(c for c in await list_classes(world.site_id) if c.name == "billing_records")
    assert (period.default_days, period.min_days) == (2922, 1827)
    # A purge after the period: the old entries go, the balance is carried forward unchanged.
    await record_manual(principal(world, "fm_admin"), ManualPayment(unit_id=unit, amount_minor=100_000, method="cash"))
    before = (await ledger.settlement_of(world.site_id, unit)).balance_minor
    # Entries are dated in the site's own timezone (Asia/Kolkata), a day ahead of UTC's date in the evening:
    # a cutoff two days on is after every entry made today, at any hour.
    cutoff = dt.datetime.combine(dt.date.today() + dt.timedelta(days=2), dt.time(), dt.UTC)
    removed = await classes["billing_records"].apply(
        RetentionRun(site_id=world.site_id, cutoff=cutoff, settings=settings, redis=redis)
    )
    assert removed > 0
    entries = await LedgerEntry.select(LedgerEntry.kind, LedgerEntry.amount_minor).where(LedgerEntry.unit == unit)
    assert entries == [{"kind": "balance_forward", "amount_minor": before}]
    assert (await ledger.settlement_of(world.site_id, unit)).balance_minor == before == 195_000
    assert not await Invoice.exists().where(Invoice.id == invoice["id"])
