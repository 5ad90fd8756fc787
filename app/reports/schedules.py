"""Scheduled reports: an FM or site admin subscribes to a report, weekly or monthly, and receives it by
e-mail as an attachment, through NOTIFY (category ``report``, the e-mail channel): their consent for
reports by e-mail, their quiet hours and the channel's rate apply as to any message.

Periods are whole UTC days: a week is Monday to Sunday, a month a calendar month. The hourly cron
``report_subscriptions`` (``run``) sends, for every subscription, the last period that has ended and was
not sent yet (``last_period_end``); a notification's idempotency key (subscription and period) makes a
re-run or a second worker send nothing twice. The report is built with the subscriber's scope as it is
when it is sent (a subscriber who lost their role gets nothing). The file is kept under the export
directory as a ``ReportExport`` row that expires with the message's time to live, so the expiry cron
deletes it.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, Literal
from uuid import UUID

import msgspec

from app.auth.principal import Principal
from app.config import Settings
from app.db import is_unique_violation
from app.errors import Conflict, Forbidden, InvalidInput, NotFound
from app.pagination import Page, page_of
from app.privacy.exports import archive_path
from app.reports import export as files
from app.reports.framework import get_report, make_query, scope_of, summarise
from app.reports.jobs import FilterText, now_utc, principal_of
from notifications.audience import Audience
from notifications.categories import DEFAULT_TTL_SECONDS, Category, Channel
from notifications.service import NotificationRequest, create_notification
from schema.reports import ReportExport, ReportSubscription

logger = logging.getLogger("opshub.reports.schedules")

Frequency = Literal["weekly", "monthly"]


class NewSubscription(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    report: FilterText
    frequency: Frequency
    format: files.Format = "xlsx"
    by: FilterText | None = None  # a summary (one of the report's group_by); None: its default summary


class SubscriptionView(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    report: str
    frequency: str
    format: str
    by: str | None
    last_period_end: dt.date | None
    created_at: dt.datetime


def _view(row: dict[str, Any]) -> SubscriptionView:
    return SubscriptionView(
        id=row["id"],
        report=row["report"],
        frequency=row["frequency"],
        format=row["format"],
        by=row["by"],
        last_period_end=row["last_period_end"],
        created_at=row["created_at"],
    )


async def subscribe(principal: Principal, data: NewSubscription, now: dt.datetime | None = None) -> SubscriptionView:
    try:
        report = get_report(data.report)
    except NotFound:
        raise InvalidInput.for_field("report", f"no report '{data.report}'") from None
    try:
        await scope_of(principal, report)
    except Forbidden:
        raise InvalidInput.for_field("report", "this report is not open to your role") from None
    by = data.by or report.default_by
    if by is not None and by not in report.group_by:
        raise InvalidInput.for_field("by", f"report '{report.name}' groups by one of: {', '.join(report.group_by)}")
    row = ReportSubscription(
        site=principal.site_id,
        person=principal.person_id,
        report=report.name,
        frequency=data.frequency,
        format=data.format,
        by=by,
        created_at=now or now_utc(),
    )
    try:
        await row.save()
    except Exception as error:
        if is_unique_violation(error):
            raise Conflict(f"you already receive '{report.name}' {data.frequency}") from None
        raise
    saved = await ReportSubscription.select().where(ReportSubscription.id == row.id).first()
    assert saved is not None
    return _view(saved)


def _mine(principal: Principal) -> Any:
    return (ReportSubscription.site == principal.site_id) & (ReportSubscription.person == principal.person_id)


async def list_subscriptions(principal: Principal, *, limit: int, offset: int) -> Page[SubscriptionView]:
    total = await ReportSubscription.count().where(_mine(principal))
    rows = (
        await ReportSubscription.select()
        .where(_mine(principal))
        .order_by(ReportSubscription.created_at)
        .order_by(ReportSubscription.id)
        .limit(limit)
        .offset(offset)
    )
    return page_of([_view(r) for r in rows], total=total, limit=limit, offset=offset)


async def unsubscribe(principal: Principal, subscription_id: UUID) -> None:
    condition = _mine(principal) & (ReportSubscription.id == subscription_id)
    if not await ReportSubscription.exists().where(condition):
        raise NotFound("subscription not found")
    await ReportSubscription.delete().where(condition)


def last_period(frequency: str, today: dt.date) -> tuple[dt.date, dt.date]:
    """The last whole period that ended before ``today``: Monday to Sunday, or a calendar month."""
    if frequency == "weekly":
        last = today - dt.timedelta(days=today.weekday() + 1)
        return last - dt.timedelta(days=6), last
    last = today.replace(day=1) - dt.timedelta(days=1)
    return last.replace(day=1), last


async def run(settings: Settings, now: dt.datetime | None = None) -> int:
    """Send every subscription's last ended period not sent yet; returns how many were sent."""
    now = now or now_utc()
    sent = 0
    for row in await ReportSubscription.select():
        first, last = last_period(row["frequency"], now.astimezone(dt.UTC).date())
        if row["last_period_end"] is not None and row["last_period_end"] >= last:
            continue
        try:
            if await send_one(settings, row, first, last, now):
                sent += 1
        except Exception:
            logger.exception("scheduled report %s for %s could not be sent", row["report"], row["id"])
            continue
        await ReportSubscription.update({ReportSubscription.last_period_end: last}).where(
            ReportSubscription.id == row["id"]
        )
    return sent


async def send_one(settings: Settings, row: dict[str, Any], first: dt.date, last: dt.date, now: dt.datetime) -> bool:
    """Build the period's file and hand the e-mail to NOTIFY; False if the subscriber may no longer run it."""
    report = get_report(row["report"])
    try:
        scope = await scope_of(await principal_of(row), report)
    except Forbidden:
        logger.info("subscription %s: %s may no longer run %s", row["id"], row["person"], report.name)
        return False
    query = make_query(report, scope, date_from=first, date_to=last, now=now)
    by = row["by"]
    if by is not None:
        columns = report.summary_columns(by)
        batches: Any = files.rows_once(await summarise(report, query, by))
    else:
        columns, batches = report.columns, report.batches(query)
    fmt = row["format"]
    key = f"reports/scheduled/{row['site']}/{row['id']}-{last.isoformat()}.{fmt}"
    path = archive_path(settings, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    written = await files.write_file(path, fmt, columns, batches, title=report.title)
    # ``now`` chose the period and judged the rows; the message and its file live from when they are handed
    # to NOTIFY, whose pipeline runs on the real clock (a message older than its time to live is dropped).
    handed = now_utc()
    expires_at = handed + dt.timedelta(seconds=DEFAULT_TTL_SECONDS[Category.REPORT])
    await ReportExport(
        site=row["site"],
        person=row["person"],
        report=report.name,
        format=fmt,
        params={"format": fmt, "by": by, "from": first.isoformat(), "to": last.isoformat()},
        status="ready",
        rows=written,
        size_bytes=path.stat().st_size,
        file_key=key,
        created_at=handed,
        completed_at=handed,
        expires_at=expires_at,
    ).save()
    filename = f"{report.name}-{first.isoformat()}-to-{last.isoformat()}.{fmt}"
    summary = f", by {by}" if by else ""
    await create_notification(
        site_id=row["site"],
        request=NotificationRequest(
            title=f"{report.title}: {first:%d %b} to {last:%d %b %Y}",
            body=(
                f"Your {row['frequency']} report '{report.title}'{summary}, {first.isoformat()} to "
                f"{last.isoformat()} (UTC days), is attached: {written} rows."
            ),
            category=Category.REPORT,
            audience=Audience(person_ids=[row["person"]]),
            channels=[Channel.EMAIL],
            idempotency_key=f"report:{row['id']}:{last.isoformat()}",
        ),
        kind="event",
        data={
            "attachment": key,
            "attachment_name": filename,
            "attachment_type": files.XLSX if fmt == "xlsx" else "text/csv",
            "report": report.name,
        },
        now=handed,
    )
    return True
