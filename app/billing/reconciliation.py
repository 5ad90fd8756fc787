"""Reconciliation: our payments against the provider's list, with every mismatch reported.

For a window (default: the last 3 days, cron ``billing_reconcile`` at 04:10 UTC), the provider's
payments are listed through the SDK and compared with ours by the provider's payment id:

- ``missing_here``: captured at the provider, not recorded by us (a webhook lost beyond Razorpay's 24 h
  of retries). When it is for one of our orders it is recorded now, through the same idempotent path as
  a webhook, and reported as ``recovered``; a payment for an order we do not know is reported only.
- ``missing_at_provider``: recorded by us for the provider, absent from its list in the window.
- ``amount_differs``, ``refund_differs``: both have it, with a different amount or refunded amount.

Each run writes one ``Reconciliation`` row per site (and one without a site for payments of orders
that are not ours), listed to the FM team by ``GET /api/billing/reconciliations``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from typing import Any
from uuid import UUID

import msgspec
from redis.asyncio import Redis

from app.billing.payments import announce, record_capture
from app.billing.provider import PaymentProvider, ProviderError
from app.billing.setup import now_utc
from app.config import Settings
from app.pagination import Page, page_of
from schema.billing import Payment, PaymentOrder, Reconciliation
from schema.jsonvalue import as_list

logger = logging.getLogger("opshub.billing.reconciliation")
DEFAULT_WINDOW = dt.timedelta(days=3)


class Mismatch(msgspec.Struct, frozen=True, kw_only=True):
    kind: str  # missing_here | missing_at_provider | amount_differs | refund_differs
    provider_payment_id: str
    ours_minor: int | None
    theirs_minor: int | None
    recovered: bool = False


class ReconciliationView(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    provider: str
    window_from: dt.datetime
    window_to: dt.datetime
    checked: int
    recovered: int
    mismatches: list[Mismatch]
    ran_at: dt.datetime


async def reconcile(
    provider: PaymentProvider,
    redis: Redis,
    settings: Settings,
    *,
    window_from: dt.datetime | None = None,
    window_to: dt.datetime | None = None,
    site_ids: list[UUID] | None = None,
    now: dt.datetime | None = None,
) -> list[ReconciliationView]:
    now = now or now_utc()
    end = window_to or now
    start = window_from or end - DEFAULT_WINDOW
    try:
        theirs = await provider.list_payments(int(start.timestamp()), int(end.timestamp()))
    except ProviderError as exc:
        logger.warning("reconciliation could not list the provider's payments: %s", exc)
        raise
    ours = await Payment.select(
        Payment.site, Payment.provider_payment_id, Payment.amount_minor, Payment.refunded_minor, Payment.captured_at
    ).where(Payment.provider == provider.name)
    ours_by_id = {row["provider_payment_id"]: row for row in ours}
    orders = {
        row["provider_order_id"]: row["site"]
        for row in await PaymentOrder.select(PaymentOrder.provider_order_id, PaymentOrder.site).where(
            PaymentOrder.provider_order_id.is_in([p.order_id for p in theirs if p.order_id] or [""])
        )
    }
    found: dict[UUID | None, list[Mismatch]] = defaultdict(list)
    checked: dict[UUID | None, int] = defaultdict(int)
    seen = set()
    for payment in theirs:
        if payment.status not in ("captured", "refunded"):
            continue
        seen.add(payment.id)
        mine = ours_by_id.get(payment.id)
        site = mine["site"] if mine else orders.get(payment.order_id or "")
        if site_ids is not None and site not in site_ids:
            continue
        checked[site] += 1
        if mine is None:
            recovered = False
            if site is not None:
                recorded = await record_capture(provider.name, payment, now)
                await announce(redis, settings, recorded, now)
                recovered = recorded.outcome == "recorded"
            found[site].append(
                Mismatch(
                    kind="missing_here",
                    provider_payment_id=payment.id,
                    ours_minor=None,
                    theirs_minor=payment.amount_minor,
                    recovered=recovered,
                )
            )
            continue
        if mine["amount_minor"] != payment.amount_minor:
            found[site].append(
                Mismatch(
                    kind="amount_differs",
                    provider_payment_id=payment.id,
                    ours_minor=mine["amount_minor"],
                    theirs_minor=payment.amount_minor,
                )
            )
        if mine["refunded_minor"] != payment.refunded_minor:
            found[site].append(
                Mismatch(
                    kind="refund_differs",
                    provider_payment_id=payment.id,
                    ours_minor=mine["refunded_minor"],
                    theirs_minor=payment.refunded_minor,
                )
            )
    for payment_id, mine in ours_by_id.items():
        if payment_id in seen:
            continue
        if not start <= mine["captured_at"] <= end or (site_ids is not None and mine["site"] not in site_ids):
            continue
        checked[mine["site"]] += 1
        found[mine["site"]].append(
            Mismatch(
                kind="missing_at_provider",
                provider_payment_id=payment_id,
                ours_minor=mine["amount_minor"],
                theirs_minor=None,
            )
        )
    sites = set(checked) | set(found) | set(site_ids or [])
    views = []
    for site in sites:
        mismatches = found.get(site, [])
        row = Reconciliation(
            site=site,
            provider=provider.name,
            window_from=start,
            window_to=end,
            checked=checked.get(site, 0),
            recovered=sum(1 for m in mismatches if m.recovered),
            mismatches=msgspec.to_builtins(mismatches),
            ran_at=now,
        )
        await row.save()
        if mismatches:
            logger.warning("reconciliation of site %s: %d mismatches", site, len(mismatches))
        views.append(_view(row.to_dict()))
    return views


def _view(row: dict[str, Any]) -> ReconciliationView:
    return ReconciliationView(
        id=row["id"],
        provider=row["provider"],
        window_from=row["window_from"],
        window_to=row["window_to"],
        checked=row["checked"],
        recovered=row["recovered"],
        mismatches=[msgspec.convert(m, Mismatch) for m in as_list(row["mismatches"])],
        ran_at=row["ran_at"],
    )


async def list_reconciliations(site_id: UUID, *, limit: int, offset: int) -> Page[ReconciliationView]:
    where = Reconciliation.site == site_id
    rows = (
        await Reconciliation.select()
        .where(where)
        .order_by(Reconciliation.ran_at, ascending=False)
        .limit(limit)
        .offset(offset)
    )
    return page_of(
        [_view(r) for r in rows], total=await Reconciliation.count().where(where), limit=limit, offset=offset
    )
