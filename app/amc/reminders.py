"""Reminders before each service visit and before a contract ends, and the overdue alert; run by a cron.

A reminder of lead time L for something on day D is due from ``D - L days`` at the site's reminder
hour (site time). Each run looks at what is due now:

- the reminder with the shortest lead time already due is sent; longer ones not yet decided are
  recorded as ``skipped`` (after a pause of the cron, nobody gets three stale reminders at once);
- a reminder is never sent for a visit already done or cancelled, for a day already past, or for a
  contract already renewed (another active contract on the asset runs past its end).

Exactly once: the NOTIFY notification carries the idempotency key ``amc:{kind}:{subject}:{L}``
(a re-run finds it and creates nothing) and the decision is recorded in ``amc_reminder`` under a
unique (kind, subject, lead) index. A visit past its grace days is published on the control room's
board (``amc.visit_overdue``, at least once) and the FM team is told (once), then marked.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from redis.asyncio import Redis

from app.amc import board
from app.amc.common import ReminderSettings, local_day, local_moment, now_utc, reminder_settings, site_zone
from app.auth.roles import Role
from app.config import Settings
from app.db import is_unique_violation
from notifications.audience import Audience
from notifications.categories import Category, Channel, Urgency
from notifications.service import NotificationRequest, create_notification
from schema.amc import AmcReminder, Asset, MaintenanceContract, ServiceVisit

logger = logging.getLogger(__name__)
RECIPIENTS = Audience(roles=[Role.FM_ADMIN, Role.SITE_ADMIN])
CHANNELS = [Channel.PUSH, Channel.IN_APP, Channel.EMAIL]


def due_leads(day: dt.date, leads: list[int], hour: int, zone: ZoneInfo, now: dt.datetime) -> list[int]:
    """The lead times whose reminder moment for ``day`` has come, longest first."""
    return sorted(
        (lead for lead in leads if local_moment(day - dt.timedelta(days=lead), hour, zone) <= now), reverse=True
    )


async def _decided(kind: str, subject: UUID) -> set[int]:
    rows = await AmcReminder.select(AmcReminder.lead_days).where(
        (AmcReminder.kind == kind) & (AmcReminder.subject == subject)
    )
    return {r["lead_days"] for r in rows}


async def _record(
    site_id: UUID, kind: str, subject: UUID, lead: int, status: str, notification: UUID | None, now: dt.datetime
) -> bool:
    try:
        await AmcReminder.insert(
            AmcReminder(
                site=site_id,
                kind=kind,
                subject=subject,
                lead_days=lead,
                status=status,
                notification=notification,
                created_at=now,
            )
        )
    except Exception as error:  # another run decided it first
        if is_unique_violation(error):
            return False
        raise
    return True


async def _notify(
    site_id: UUID,
    key: str,
    title: str,
    body: str,
    data: dict[str, str],
    now: dt.datetime,
    urgency: Urgency = Urgency.NORMAL,
) -> UUID:
    notification_id, _ = await create_notification(
        site_id=site_id,
        request=NotificationRequest(
            title=title[:200],
            body=body[:4000],
            category=Category.MAINTENANCE,
            audience=RECIPIENTS,
            channels=CHANNELS,
            urgency=urgency,
            idempotency_key=key,
        ),
        kind="event",
        data=data,
        now=now,
    )
    return notification_id


async def _decide(
    site_id: UUID,
    kind: str,
    subject: UUID,
    leads_due: list[int],
    message: Any,
    now: dt.datetime,
) -> int:
    """Send the shortest due lead (if undecided), skip the longer undecided ones. Returns reminders sent."""
    if not leads_due:
        return 0
    decided = await _decided(kind, subject)
    latest = leads_due[-1]
    sent = 0
    for lead in leads_due:
        if lead in decided:
            continue
        if lead == latest:
            title, body, data = message(lead)
            notification = await _notify(site_id, f"amc:{kind}:{subject}:{lead}", title, body, data, now)
            if await _record(site_id, kind, subject, lead, "sent", notification, now):
                sent += 1
        else:
            await _record(site_id, kind, subject, lead, "skipped", None, now)
    return sent


def _in_days(lead: int) -> str:
    return "today" if lead == 0 else ("tomorrow" if lead == 1 else f"in {lead} days")


async def _visit_reminders(
    site_id: UUID, config: ReminderSettings, zone: ZoneInfo, today: dt.date, now: dt.datetime
) -> int:
    leads = config.visit_lead_days
    if not leads:
        return 0
    horizon = today + dt.timedelta(days=max(leads))
    rows = await ServiceVisit.select(
        ServiceVisit.id,
        ServiceVisit.due_on,
        ServiceVisit.asset.code.as_alias("code"),
        ServiceVisit.asset.name.as_alias("name"),
        ServiceVisit.contract.vendor.as_alias("vendor"),
    ).where(
        (ServiceVisit.site == site_id)
        & (ServiceVisit.status == "scheduled")
        & (ServiceVisit.due_on >= today)
        & (ServiceVisit.due_on <= horizon)
    )
    sent = 0
    for row in rows:

        def message(lead: int, row: dict[str, Any] = row) -> tuple[str, str, dict[str, str]]:
            return (
                f"{row['name']} ({row['code']}): service visit {_in_days(lead)}",
                f"{row['vendor']} is due to service {row['name']} on {row['due_on']:%a %d %b %Y}.",
                {"visit_id": str(row["id"]), "due_on": row["due_on"].isoformat(), "lead_days": str(lead)},
            )

        due = due_leads(row["due_on"], leads, config.reminder_hour, zone, now)
        sent += await _decide(site_id, "visit", row["id"], due, message, now)
    return sent


async def _expiry_reminders(
    site_id: UUID, config: ReminderSettings, zone: ZoneInfo, today: dt.date, now: dt.datetime
) -> int:
    leads = config.expiry_lead_days
    if not leads:
        return 0
    horizon = today + dt.timedelta(days=max(leads))
    rows = await MaintenanceContract.select().where(
        (MaintenanceContract.site == site_id)
        & (MaintenanceContract.status == "active")
        & (MaintenanceContract.ends_on >= today)
        & (MaintenanceContract.ends_on <= horizon)
    )
    sent = 0
    for row in rows:
        due = due_leads(row["ends_on"], leads, config.reminder_hour, zone, now)
        if not due or await board.renewed(row):
            continue
        asset = await Asset.select(Asset.code, Asset.name).where(Asset.id == row["asset"]).first() or {}

        def message(
            lead: int, row: dict[str, Any] = row, asset: dict[str, Any] = asset
        ) -> tuple[str, str, dict[str, str]]:
            reference = f" ({row['reference']})" if row["reference"] else ""
            return (
                f"AMC for {asset.get('name', '')} ({asset.get('code', '')}) ends {_in_days(lead)}",
                f"The contract with {row['vendor']}{reference} ends on {row['ends_on']:%a %d %b %Y}. "
                "Renew it or record the next contract.",
                {"contract_id": str(row["id"]), "ends_on": row["ends_on"].isoformat(), "lead_days": str(lead)},
            )

        sent += await _decide(site_id, "expiry", row["id"], due, message, now)
    return sent


async def _overdue(settings: Settings, redis: Redis, site_id: UUID, today: dt.date, now: dt.datetime) -> int:
    rows = [
        r
        for r in await board.open_visits_until(site_id, today)
        if r["overdue_at"] is None and board.days_late(r, today) > 0
    ]
    if not rows:
        return 0
    names = await board._names({r["asset"] for r in rows})
    for row in rows:
        visit = board.board_visit(row, names, today)
        # Publish first, mark last: a run that dies in between publishes again (the board keys by id).
        await board.publish_overdue(settings, redis, site_id, visit)
        notification = await _notify(
            site_id,
            f"amc:overdue:{row['id']}:0",
            f"Overdue: {visit.asset_name} ({visit.asset_code}) service visit",
            f"The visit by {visit.vendor} due on {visit.due_on:%a %d %b %Y} has not been recorded.",
            {"visit_id": str(row["id"]), "due_on": visit.due_on.isoformat()},
            now,
            Urgency.HIGH,
        )
        await _record(site_id, "overdue", row["id"], 0, "sent", notification, now)
        await ServiceVisit.update({ServiceVisit.overdue_at: now}).where(
            (ServiceVisit.id == row["id"]) & ServiceVisit.overdue_at.is_null()
        )
    return len(rows)


async def sites_with_contracts() -> list[UUID]:
    rows = (
        await MaintenanceContract.select(MaintenanceContract.site)
        .where(MaintenanceContract.status == "active")
        .distinct()
    )
    return [r["site"] for r in rows]


async def run(
    settings: Settings, redis: Redis, now: dt.datetime | None = None, site_ids: list[UUID] | None = None
) -> int:
    """One pass over every site with an active contract (or the ones named): returns messages created."""
    now = now or now_utc()
    total = 0
    for site_id in site_ids if site_ids is not None else await sites_with_contracts():
        zone = await site_zone(site_id)
        today = local_day(now, zone)
        config = await reminder_settings(site_id)
        total += await _visit_reminders(site_id, config, zone, today, now)
        total += await _expiry_reminders(site_id, config, zone, today, now)
        total += await _overdue(settings, redis, site_id, today, now)
    return total
