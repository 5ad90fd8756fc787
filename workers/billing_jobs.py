"""arq jobs and crons of the billing module; `workers.main` collects FUNCTIONS and CRON_JOBS.

Every job re-derives its work from the database and is safe to re-run (arq runs a job at least once):

- ``billing_invoice_run(run_id)``: one recorded run (``POST /api/billing/runs``); a completed run is
  not run again, and a re-run of an interrupted one issues only what is still pending.
- ``billing_monthly`` (hourly): on each site's ``run_day`` (site time) records and runs the month's run,
  once per site and month.
- ``billing_tick`` (every 2 minutes): runs queued for more than 2 minutes that no worker took.
- ``billing_reminders`` (hourly at :20): reminders due before and after due dates (``collections``).
- ``billing_late_fees`` (daily 01:30 UTC): late fees on invoices past due date and grace.
- ``billing_reconcile`` (daily 04:10 UTC): our payments against the provider's list.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any
from uuid import UUID

from arq import cron, func

from app.billing import collections, invoicing, reconciliation
from app.billing.invoicing import Issued
from app.billing.provider import ProviderError, provider_for
from app.billing.setup import site_today
from realtime.publish import publish
from realtime.topics import unit_topic
from schema.billing import BillingSettings, Run
from schema.billing_events import INVOICE_ISSUED, InvoiceIssued

logger = logging.getLogger("opshub.billing.jobs")
STALE_AFTER = dt.timedelta(minutes=2)


def _now(now: dt.datetime | None) -> dt.datetime:
    return now or dt.datetime.now(dt.UTC)


def announcer(ctx: dict[str, Any]) -> invoicing.OnIssued:
    async def on_issued(site_id: UUID, issued: Issued) -> None:
        event = InvoiceIssued(
            invoice_id=issued.invoice_id,
            unit_id=issued.unit_id,
            number=issued.number,
            total_minor=issued.total_minor,
            due_date=issued.due_date,
        )
        await publish(ctx["redis"], ctx["settings"], unit_topic(issued.unit_id), INVOICE_ISSUED, event)

    return on_issued


async def billing_invoice_run(ctx: dict[str, Any], run_id: str, now: dt.datetime | None = None) -> str:
    view = await invoicing.execute_run(UUID(run_id), announcer(ctx), _now(now))
    return view.status if view else "missing"


async def billing_monthly(ctx: dict[str, Any], now: dt.datetime | None = None) -> int:
    """Each site's run of the month, on its run day (site time), once."""
    now = _now(now)
    started = 0
    for settings in await BillingSettings.select(BillingSettings.site, BillingSettings.run_day):
        today = await site_today(settings["site"], now)
        if today.day < settings["run_day"]:
            continue
        period = today.strftime("%Y-%m")
        if await Run.exists().where((Run.site == settings["site"]) & (Run.period == period)):
            continue
        run = await invoicing.queue_run(settings["site"], invoicing.NewRun(period=period, issue_date=today), None, now)
        await invoicing.execute_run(run.id, announcer(ctx), now)
        started += 1
    return started


async def billing_tick(ctx: dict[str, Any], now: dt.datetime | None = None) -> int:
    now = _now(now)
    stale = await Run.select(Run.id).where(
        Run.status.is_in(["queued", "running"]) & (Run.created_at < now - STALE_AFTER)
    )
    for row in stale:
        await invoicing.execute_run(row["id"], announcer(ctx), now)
    return len(stale)


async def billing_reminders(ctx: dict[str, Any], now: dt.datetime | None = None) -> int:
    return await collections.send_reminders(_now(now))


async def billing_late_fees(ctx: dict[str, Any], now: dt.datetime | None = None) -> int:
    return await collections.assess_late_fees(_now(now))


async def billing_reconcile(ctx: dict[str, Any], now: dt.datetime | None = None) -> int:
    try:
        views = await reconciliation.reconcile(
            provider_for(ctx["settings"]), ctx["redis"], ctx["settings"], now=_now(now)
        )
    except ProviderError:
        logger.warning("reconciliation skipped: the provider did not answer")
        return 0
    return sum(len(v.mismatches) for v in views)


async def billing_reconcile_site(ctx: dict[str, Any], site_id: str, now: dt.datetime | None = None) -> int:
    """A reconciliation of one site asked for by its FM team."""
    views = await reconciliation.reconcile(
        provider_for(ctx["settings"]), ctx["redis"], ctx["settings"], site_ids=[UUID(site_id)], now=_now(now)
    )
    return sum(len(v.mismatches) for v in views)


FUNCTIONS: list[Any] = [func(billing_invoice_run, timeout=1800), func(billing_reconcile_site, timeout=600)]
CRON_JOBS: list[Any] = [
    cron(billing_monthly, minute={5}, unique=True, timeout=1800),
    cron(billing_tick, minute=set(range(0, 60, 2)), second={40}, unique=True, timeout=1800),
    cron(billing_reminders, minute={20}, unique=True, timeout=600),
    cron(billing_late_fees, hour={1}, minute={30}, unique=True, timeout=600),
    cron(billing_reconcile, hour={4}, minute={10}, unique=True, timeout=600),
]
