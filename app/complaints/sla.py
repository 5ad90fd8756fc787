"""SLA: per-site windows by category and priority, deadlines, the visible state, and escalation.

Deadlines are fixed when a complaint is raised: ``response_due_at`` (work must have started:
the complaint reached ``in_progress``) and ``resolution_due_at`` (it must be resolved).

State, for an active complaint: ``breached`` once a deadline passed unmet, ``at_risk`` once
the site's share (default 75 %) of the pending window is used, else ``on_track``. A resolved
or closed complaint is ``met`` or ``breached``; a cancelled one is ``cancelled``.

Escalation (``escalate_breaches``, run by an arq cron): a breached complaint climbs one level
at the breach and one more every ``escalation_step_minutes`` after it: 1 the technician
(its assignee), 2 the site's supervisor, 3 the FM managers (the site's FM admins). Each level
is notified once (the notification's idempotency key is per complaint and level) and recorded
once (a unique index on complaint and level), so re-running the cron changes nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final
from uuid import UUID

from redis.asyncio import Redis

from app.auth.roles import Role
from app.complaints.lifecycle import ACTIVE, DONE, Status
from app.config import Settings
from app.db import write_transaction
from schema.complaints import Complaint, ComplaintEscalation, ComplaintSiteConfig, ComplaintSlaRule
from schema.tables import Person, PersonRole


class Priority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


PRIORITY_RANK: Final = {Priority.URGENT: 0, Priority.HIGH: 1, Priority.NORMAL: 2, Priority.LOW: 3}

# (response minutes, resolution minutes) when a site has no rule for a category and priority.
DEFAULT_WINDOWS: Final = {
    Priority.URGENT: (30, 240),
    Priority.HIGH: (60, 480),
    Priority.NORMAL: (240, 1440),
    Priority.LOW: (480, 4320),
}


class SlaState(StrEnum):
    ON_TRACK = "on_track"
    AT_RISK = "at_risk"
    BREACHED = "breached"
    MET = "met"
    CANCELLED = "cancelled"


LEVEL_NAMES: Final = {1: "technician", 2: "supervisor", 3: "fm_manager"}
MAX_LEVEL: Final = 3


@dataclass(frozen=True, slots=True)
class SiteRules:
    reopen_window_hours: int = 72
    at_risk_percent: int = 75
    escalation_step_minutes: int = 60
    supervisor_id: UUID | None = None


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def site_rules(site_id: UUID) -> SiteRules:
    row = await ComplaintSiteConfig.select().where(ComplaintSiteConfig.site == site_id).first()
    if row is None:
        return SiteRules()
    return SiteRules(
        reopen_window_hours=row["reopen_window_hours"],
        at_risk_percent=row["at_risk_percent"],
        escalation_step_minutes=row["escalation_step_minutes"],
        supervisor_id=row["supervisor"],
    )


async def windows_for(site_id: UUID, category_id: UUID, priority: Priority) -> tuple[int, int]:
    row = (
        await ComplaintSlaRule.select(ComplaintSlaRule.response_minutes, ComplaintSlaRule.resolution_minutes)
        .where(
            (ComplaintSlaRule.site == site_id)
            & (ComplaintSlaRule.category == category_id)
            & (ComplaintSlaRule.priority == str(priority))
        )
        .first()
    )
    if row is None:
        return DEFAULT_WINDOWS[priority]
    return row["response_minutes"], row["resolution_minutes"]


def aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def response_missed(row: dict[str, Any]) -> bool:
    """Whether work started late (or has not started and the response deadline passed: see breach_at)."""
    responded = row["responded_at"]
    return responded is not None and aware(responded) > aware(row["response_due_at"])


def breach(row: dict[str, Any]) -> tuple[dt.datetime, str]:
    """When this active complaint breaches (or breached) its SLA first, and which deadline that is."""
    response_due = aware(row["response_due_at"])
    resolution_due = aware(row["resolution_due_at"])
    responded = row["responded_at"]
    if (responded is None or aware(responded) > response_due) and response_due <= resolution_due:
        return response_due, "response"
    return resolution_due, "resolution"


def sla_state(row: dict[str, Any], now: dt.datetime, at_risk_percent: int = 75) -> SlaState:
    status = Status(row["status"])
    if status is Status.CANCELLED:
        return SlaState.CANCELLED
    if status in DONE:
        resolved = row["resolved_at"] or row["closed_at"]
        on_time = resolved is not None and aware(resolved) <= aware(row["resolution_due_at"])
        return SlaState.MET if on_time and not response_missed(row) else SlaState.BREACHED
    breach_at, _ = breach(row)
    if now >= breach_at or response_missed(row):
        return SlaState.BREACHED
    start = aware(row["created_at"])
    window = (breach_at - start).total_seconds()
    used = (now - start).total_seconds()
    if window <= 0 or used * 100 >= window * at_risk_percent:
        return SlaState.AT_RISK
    return SlaState.ON_TRACK


def due_level(row: dict[str, Any], now: dt.datetime, step_minutes: int) -> int:
    """The escalation level an active complaint should be at by ``now`` (0: not breached)."""
    breach_at, _ = breach(row)
    if now < breach_at:
        return 0
    steps = int((now - breach_at).total_seconds() // max(60, step_minutes * 60))
    return min(MAX_LEVEL, 1 + steps)


async def fm_managers(site_id: UUID) -> list[UUID]:
    rows = await PersonRole.select(PersonRole.person).where(
        (PersonRole.site == site_id) & (PersonRole.role == str(Role.FM_ADMIN))
    )
    ids = [row["person"] for row in rows]
    if not ids:
        return []
    active = await Person.select(Person.id).where(Person.id.is_in(ids) & (Person.is_active.eq(True)))
    return sorted((row["id"] for row in active), key=str)


async def level_recipients(row: dict[str, Any], level: int, rules: SiteRules) -> list[UUID]:
    """Who is told at ``level``; a level with nobody configured falls through to the next one."""
    if level <= 1 and row["assignee"] is not None:
        return [row["assignee"]]
    if level <= 2 and rules.supervisor_id is not None:
        return [rules.supervisor_id]
    return await fm_managers(row["site"])


@dataclass(frozen=True, slots=True)
class Escalated:
    complaint_id: UUID
    site_id: UUID
    level: int
    deadline: str
    notified: list[UUID]


async def escalate_breaches(
    now: dt.datetime | None = None,
    *,
    settings: Settings,
    redis: Redis,
    site_id: UUID | None = None,
) -> list[Escalated]:
    """Climb every breached active complaint to the level it is due; notify and record each level once.

    Safe to re-run and to run after a pause: a complaint that missed several levels climbs
    through each of them, in order, each notified and recorded once.
    """
    from app.complaints import notify

    now = now or now_utc()
    query = Complaint.select().where(
        Complaint.status.is_in([str(s) for s in ACTIVE])
        & (Complaint.escalation_level < MAX_LEVEL)
        & ((Complaint.response_due_at <= now) | (Complaint.resolution_due_at <= now))
    )
    if site_id is not None:
        query = query.where(Complaint.site == site_id)
    rows = await query.order_by(Complaint.created_at)
    done: list[Escalated] = []
    rules_by_site: dict[UUID, SiteRules] = {}
    for row in rows:
        rules = rules_by_site.get(row["site"]) or await site_rules(row["site"])
        rules_by_site[row["site"]] = rules
        target = due_level(row, now, rules.escalation_step_minutes)
        _, deadline = breach(row)
        for level in range(row["escalation_level"] + 1, target + 1):
            recipients = await level_recipients(row, level, rules)
            notification_id = await notify.escalation(row, level, LEVEL_NAMES[level], deadline, recipients, now)
            if await _record(row, level, deadline, recipients, notification_id, now):
                escalated = Escalated(row["id"], row["site"], level, deadline, recipients)
                done.append(escalated)
                await notify.publish_escalation(settings, redis, row, escalated, LEVEL_NAMES[level], now)
    return done


async def _record(
    row: dict[str, Any],
    level: int,
    deadline: str,
    recipients: list[UUID],
    notification_id: UUID | None,
    now: dt.datetime,
) -> bool:
    """Record one level once; False when it was already recorded (a re-run, or a concurrent cron)."""
    async with write_transaction():
        exists = await ComplaintEscalation.exists().where(
            (ComplaintEscalation.complaint == row["id"]) & (ComplaintEscalation.level == level)
        )
        if exists:
            return False
        await ComplaintEscalation.insert(
            ComplaintEscalation(
                site=row["site"],
                complaint=row["id"],
                level=level,
                deadline=deadline,
                notified=[str(p) for p in recipients],
                notification=notification_id,
                created_at=now,
            )
        )
        # Not a state change: the version is left alone so no one's pending update conflicts.
        await Complaint.update({Complaint.escalation_level: level}).where(
            (Complaint.id == row["id"]) & (Complaint.escalation_level < level)
        )
    return True
