"""Collections: reminders before and after the due date, late fees, defaulters and ageing.

**Reminders** (cron ``billing_reminders``): each site sets the days before (``reminder_days_before``) and
after (``reminder_days_after``) the due date. For every invoice not paid, the latest reminder day reached
is sent once through NOTIFY (category ``billing``, transactional, so it may go at any hour subject to
the person's own quiet hours), to the unit's occupants; days passed while the cron was down are recorded
as ``skipped`` rather than sent in a burst. The unit's ledger is read again at send time, and a payment
that settles an invoice cancels its reminders not yet delivered (a reminder held back by quiet hours
never arrives after the bill is paid). Each reminder's idempotency key ``billing-reminder:{invoice}:{day}``
makes a re-run of the cron send nothing twice.

**Late fees** (cron ``billing_late_fees``): once an invoice is still owed after its due date plus the
site's grace days, one late fee is entered on the ledger: flat (paise) or a percentage (basis points) of
what is still owed on it, rounded once to the paisa. One per invoice (``late_fee:{invoice}``).

**Defaulters and ageing**: every unit's debts (invoices and late fees) settled oldest first; what is still
owed is aged by days past its due date: not due yet, 0-30, 31-60, 61-90 and 90+ days.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from typing import Final
from uuid import UUID

import msgspec

from app.billing import ledger
from app.billing.money import div_round, format_money
from app.billing.payments import collected
from app.billing.setup import ensure_site, now_utc, site_today
from app.db import write_transaction
from app.errors import Conflict, NotFound
from app.pagination import Page, window
from notifications.audience import Audience
from notifications.categories import Category, Channel, Urgency
from notifications.service import NotificationRequest, cancel_notification, create_notification
from schema.billing import BillingSettings, Invoice, LedgerEntry, Reminder
from schema.jsonvalue import as_list
from schema.notifications import Notification
from schema.tables import Unit

logger = logging.getLogger("opshub.billing.collections")
BUCKETS: Final = ("not_due", "0-30", "31-60", "61-90", "90+")
OPEN_STATUSES: Final = ["open", "partially_paid"]


def bucket_of(days_past_due: int) -> str:
    if days_past_due <= 0:
        return "not_due"
    if days_past_due <= 30:
        return "0-30"
    if days_past_due <= 60:
        return "31-60"
    return "61-90" if days_past_due <= 90 else "90+"


# ------------------------------------------------------------------------------ reminders


def reminder_offsets(settings: dict[str, object]) -> list[int]:
    before = [-int(d) for d in as_list(settings["reminder_days_before"])]
    after = [int(d) for d in as_list(settings["reminder_days_after"])]
    return sorted(set(before + after))


async def send_reminders(now: dt.datetime | None = None, site_ids: list[UUID] | None = None) -> int:
    """Send every reminder that is due now, once; returns how many were sent."""
    now = now or now_utc()
    sites = [r["site"] for r in await BillingSettings.select(BillingSettings.site)]
    sent = 0
    for site_id in sites if site_ids is None else [s for s in sites if s in site_ids]:
        sent += await _site_reminders(site_id, now)
    return sent


async def _site_reminders(site_id: UUID, now: dt.datetime) -> int:
    settings = await ensure_site(site_id)
    offsets = reminder_offsets(settings)
    if not offsets:
        return 0
    today = await site_today(site_id, now)
    invoices = await Invoice.select(
        Invoice.id, Invoice.unit, Invoice.number, Invoice.due_date, Invoice.unit.label.as_alias("label")
    ).where(
        (Invoice.site == site_id)
        & Invoice.status.is_in(OPEN_STATUSES)
        & (Invoice.due_date <= today + dt.timedelta(days=-offsets[0]))
    )
    if not invoices:
        return 0
    done = defaultdict(set)
    for row in await Reminder.select(Reminder.invoice, Reminder.offset_days).where(
        Reminder.invoice.is_in([i["id"] for i in invoices])
    ):
        done[row["invoice"]].add(row["offset_days"])
    sent = 0
    for invoice in invoices:
        reached = [o for o in offsets if invoice["due_date"] + dt.timedelta(days=o) <= today]
        if not reached or reached[-1] in done[invoice["id"]]:
            continue
        latest = reached[-1]
        # The truth at send time: the ledger, not the cached status.
        debt = (await ledger.settlement_of(site_id, invoice["unit"])).invoice(invoice["id"])
        if debt is None or debt.outstanding_minor <= 0:
            continue
        for missed in reached[:-1]:
            if missed not in done[invoice["id"]]:
                await Reminder.insert(
                    Reminder(site=site_id, invoice=invoice["id"], offset_days=missed, status="skipped", created_at=now)
                ).on_conflict(action="DO NOTHING")
        overdue = latest > 0
        amount = format_money(debt.outstanding_minor)
        due = f"{invoice['due_date']:%d %b %Y}"
        notification_id, _ = await create_notification(
            site_id=site_id,
            request=NotificationRequest(
                title=f"Bill overdue: {invoice['label']}" if overdue else f"Bill due {due}: {invoice['label']}",
                body=(
                    f"Invoice {invoice['number']} for {invoice['label']}: {amount} "
                    + (f"was due on {due}." if overdue else f"is due on {due}.")
                    + " Pay in the app under Bills."
                ),
                category=Category.BILLING,
                audience=Audience(unit_ids=[invoice["unit"]]),
                channels=[Channel.IN_APP, Channel.PUSH, Channel.EMAIL],
                urgency=Urgency.NORMAL,
                idempotency_key=f"billing-reminder:{invoice['id']}:{latest}",
            ),
            kind="billing.reminder",
            data={"invoice_id": str(invoice["id"]), "unit_id": str(invoice["unit"])},
            collapse_key=f"billing-reminder:{invoice['id']}",
            now=now,
        )
        await Reminder.insert(
            Reminder(
                site=site_id,
                invoice=invoice["id"],
                offset_days=latest,
                notification=notification_id,
                status="sent",
                created_at=now,
            )
        ).on_conflict(action="DO NOTHING")
        sent += 1
    return sent


async def cancel_reminders(site_id: UUID, invoice_ids: list[UUID], now: dt.datetime | None = None) -> int:
    """The invoices are paid: reminders of theirs not delivered yet are cancelled."""
    if not invoice_ids:
        return 0
    rows = await Reminder.select(Reminder.id, Reminder.notification).where(
        (Reminder.site == site_id) & Reminder.invoice.is_in(invoice_ids) & (Reminder.status == "sent")
    )
    cancelled = 0
    for row in rows:
        if row["notification"] is None:
            continue
        state = await Notification.select(Notification.status).where(Notification.id == row["notification"]).first()
        if state is None or state["status"] in ("completed", "cancelled"):
            continue
        try:
            await cancel_notification(site_id, row["notification"], now)
        except (Conflict, NotFound):
            continue  # finished meanwhile
        await Reminder.update({Reminder.status: "cancelled"}).where(Reminder.id == row["id"])
        cancelled += 1
    return cancelled


# ------------------------------------------------------------------------------ late fees


async def assess_late_fees(now: dt.datetime | None = None, site_ids: list[UUID] | None = None) -> int:
    now = now or now_utc()
    rows = await BillingSettings.select().where(BillingSettings.late_fee_kind != "none")
    assessed = 0
    for settings in rows:
        if site_ids is not None and settings["site"] not in site_ids:
            continue
        site_id = settings["site"]
        today = await site_today(site_id, now)
        cutoff = today - dt.timedelta(days=settings["late_fee_grace_days"])
        overdue = await Invoice.select(Invoice.id, Invoice.unit, Invoice.number).where(
            (Invoice.site == site_id) & Invoice.status.is_in(OPEN_STATUSES) & (Invoice.due_date < cutoff)
        )
        for invoice in overdue:
            key = f"late_fee:{invoice['id']}"
            if await ledger.has_entry(site_id, key):
                continue
            async with write_transaction():
                await ledger.lock_unit(invoice["unit"])
                debt = (await ledger.settlement_of(site_id, invoice["unit"])).invoice(invoice["id"])
                if debt is None or debt.outstanding_minor <= 0:
                    continue
                if settings["late_fee_kind"] == "flat":
                    fee = settings["late_fee_value"]
                else:
                    fee = div_round(debt.outstanding_minor * settings["late_fee_value"], 10_000)
                if fee <= 0:
                    continue
                if await ledger.append(
                    site_id=site_id,
                    unit_id=invoice["unit"],
                    kind="late_fee",
                    entry_key=key,
                    amount_minor=fee,
                    entry_date=today,
                    due_date=today,
                    description=f"Late fee on invoice {invoice['number']}",
                    invoice_id=invoice["id"],
                    now=now,
                ):
                    assessed += 1
                    await ledger.settle_unit(site_id, invoice["unit"], now)
    return assessed


# ------------------------------------------------------------------------------ defaulters and ageing


class Defaulter(msgspec.Struct, frozen=True, kw_only=True):
    unit_id: UUID
    unit_label: str
    outstanding_minor: int  # everything still owed
    overdue_minor: int  # of which past its due date
    oldest_due_date: dt.date
    days_overdue: int
    bucket: str


class AgeingBucket(msgspec.Struct, frozen=True, kw_only=True):
    bucket: str  # not_due | 0-30 | 31-60 | 61-90 | 90+
    amount_minor: int
    units: int


class CollectionsBoard(msgspec.Struct, frozen=True, kw_only=True):
    period: str
    collected_minor: int
    payments: int
    outstanding_minor: int
    overdue_minor: int
    advance_minor: int
    ageing: list[AgeingBucket]
    defaulters: list[Defaulter]  # the ten owing most overdue
    defaulters_total: int


async def _receivables(site_id: UUID, today: dt.date) -> tuple[list[Defaulter], dict[str, tuple[int, set[UUID]]], int]:
    rows = await LedgerEntry.select(
        LedgerEntry.id,
        LedgerEntry.unit,
        LedgerEntry.kind,
        LedgerEntry.amount_minor,
        LedgerEntry.entry_date,
        LedgerEntry.due_date,
        LedgerEntry.invoice,
    ).where(LedgerEntry.site == site_id)
    per_unit: dict[UUID, list[ledger.Entry]] = defaultdict(list)
    for row in rows:
        per_unit[row["unit"]].append(
            ledger.Entry(
                row["id"], row["kind"], row["amount_minor"], row["entry_date"], row["due_date"], row["invoice"]
            )
        )
    labels = {r["id"]: r["label"] for r in await Unit.select(Unit.id, Unit.label).where(Unit.site == site_id)}
    ageing: dict[str, tuple[int, set[UUID]]] = {b: (0, set()) for b in BUCKETS}
    defaulters = []
    advance = 0
    for unit_id, entries in per_unit.items():
        settlement = ledger.settle(entries)
        advance += settlement.advance_minor
        owed = [d for d in settlement.debts if d.outstanding_minor > 0]
        for debt in owed:
            bucket = bucket_of((today - debt.due_date).days)
            amount, units = ageing[bucket]
            units.add(unit_id)
            ageing[bucket] = (amount + debt.outstanding_minor, units)
        overdue = [d for d in owed if d.due_date < today]
        if overdue:
            oldest = min(d.due_date for d in overdue)
            defaulters.append(
                Defaulter(
                    unit_id=unit_id,
                    unit_label=labels.get(unit_id, ""),
                    outstanding_minor=sum(d.outstanding_minor for d in owed),
                    overdue_minor=sum(d.outstanding_minor for d in overdue),
                    oldest_due_date=oldest,
                    days_overdue=(today - oldest).days,
                    bucket=bucket_of((today - oldest).days),
                )
            )
    defaulters.sort(key=lambda d: (-d.overdue_minor, -d.days_overdue, d.unit_label))
    return defaulters, ageing, advance


async def defaulters(site_id: UUID, *, limit: int, offset: int, now: dt.datetime | None = None) -> Page[Defaulter]:
    found, _, _ = await _receivables(site_id, await site_today(site_id, now))
    return window(found, limit=limit, offset=offset)


async def board(site_id: UUID, now: dt.datetime | None = None) -> CollectionsBoard:
    today = await site_today(site_id, now)
    found, ageing, advance = await _receivables(site_id, today)
    period, total, count = await collected(site_id, now)
    buckets = [AgeingBucket(bucket=b, amount_minor=ageing[b][0], units=len(ageing[b][1])) for b in BUCKETS]
    return CollectionsBoard(
        period=period,
        collected_minor=total,
        payments=count,
        outstanding_minor=sum(b.amount_minor for b in buckets),
        overdue_minor=sum(b.amount_minor for b in buckets if b.bucket != "not_due"),
        advance_minor=advance,
        ageing=buckets,
        defaulters=found[:10],
        defaulters_total=len(found),
    )
