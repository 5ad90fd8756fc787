"""Late and absent alerts to the supervisor: live on the control room's board and through NOTIFY, once each.

The cron (``workers.attendance_jobs.attendance_alerts``, every minute) looks at every duty that has
started and not long ended, today and the overnight one from yesterday. A duty with no check-in is
``late`` once the grace has passed (``late_after_minutes``), and ``absent`` once ``absent_after_minutes``
have: each is alerted once, because ``attendance_alert`` holds one row per staff member, day, shift
start and kind (a unique index). A late alert is skipped when the duty is already past the absent
threshold (the worker was down): the supervisor hears the news that is true now, once.

Order, for a cron that may die anywhere and run twice: the notification is created first (idempotent
by its key), then the alert row is claimed; only the claimer publishes. A re-run finds the row and
does nothing; a run that died before the row retries and gets the same notification back.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from redis.asyncio import Redis

from app.attendance import config as cfg
from app.attendance.duties import Duty, arrival, duties_on, state_of
from app.attendance.punches import publish
from app.attendance.sheet import site_zone
from app.auth.roles import Role
from app.config import Settings
from app.db import is_unique_violation
from notifications.audience import Audience
from notifications.categories import Category, Channel, Urgency
from notifications.service import NotificationRequest, create_notification
from realtime.publish import Publisher
from realtime.topics import user_topic
from schema.attendance import AttendanceAlert, Punch, StaffMember
from schema.attendance_events import ATTENDANCE_ABSENT, ATTENDANCE_LATE, Alerted

logger = logging.getLogger("opshub.attendance.alerts")
AFTER_END = dt.timedelta(hours=1)  # an absence of a short shift is still told just after it ends


@dataclass(frozen=True, slots=True)
class Raised:
    staff_id: UUID
    kind: str
    day: dt.date
    shift_start: str


def supervisors(member: dict[str, Any], site: cfg.SiteAttendance) -> Audience:
    chosen = member["supervisor"] or site.supervisor_id
    if chosen is not None:
        return Audience(person_ids=[chosen])
    return Audience(roles=[Role.FM_ADMIN, Role.SITE_ADMIN])


async def check_attendance(settings: Settings, redis: Redis, now: dt.datetime | None = None) -> list[Raised]:
    """Raise every late and absent alert due at ``now`` that was not raised yet; returns those raised."""
    now = now or dt.datetime.now(dt.UTC)
    staff = await StaffMember.select().where(StaffMember.is_active.eq(True))
    by_site: dict[UUID, list[dict[str, Any]]] = {}
    for row in staff:
        by_site.setdefault(row["site"], []).append(row)
    raised: list[Raised] = []
    for site_id, members in by_site.items():
        try:
            raised += await _check_site(settings, redis, site_id, members, now)
        except Exception:  # one site's bad data must not stop the others' alerts
            logger.exception("attendance alerts failed for site %s", site_id)
    return raised


async def _check_site(
    settings: Settings, redis: Redis, site_id: UUID, members: list[dict[str, Any]], now: dt.datetime
) -> list[Raised]:
    site = await cfg.load(site_id)
    zone = await site_zone(site_id)
    slots = await cfg.weekly_slots(members)
    today = now.astimezone(zone).date()
    due: list[tuple[dict[str, Any], Duty]] = [
        (member, duty)
        for member in members
        for day in (today - dt.timedelta(days=1), today)
        for duty in duties_on(member["id"], slots[member["id"]], day, zone)
        if duty.start_at <= now < duty.end_at + AFTER_END
    ]
    if not due:
        return []
    ids = list({member["id"] for member, _ in due})
    ins: dict[UUID, list[dt.datetime]] = {}
    for punch in await Punch.select(Punch.staff, Punch.at).where(
        Punch.staff.is_in(ids)
        & (Punch.kind == "in")
        & Punch.voided_at.is_null()
        & (Punch.at >= now - dt.timedelta(days=2))
    ):
        ins.setdefault(punch["staff"], []).append(punch["at"])
    sent = {
        (a["staff"], a["day"], a["shift_start"], a["kind"])
        for a in await AttendanceAlert.select().where(
            AttendanceAlert.staff.is_in(ids) & AttendanceAlert.day.is_in([today - dt.timedelta(days=1), today])
        )
    }
    raised = []
    for member, duty in due:
        state, minutes = state_of(duty, arrival(duty, ins.get(member["id"], [])), now, site)
        kind = {"not_arrived": "late", "absent": "absent"}.get(state)
        if kind is None or (member["id"], duty.day, duty.start, kind) in sent:
            continue
        if await _raise(settings, redis, member, duty, kind, minutes, site, now):
            raised.append(Raised(staff_id=member["id"], kind=kind, day=duty.day, shift_start=duty.start))
    return raised


async def _raise(
    settings: Settings,
    redis: Redis,
    member: dict[str, Any],
    duty: Duty,
    kind: str,
    minutes: int,
    site: cfg.SiteAttendance,
    now: dt.datetime,
) -> bool:
    audience = supervisors(member, site)
    local_start = duty.start
    if kind == "late":
        title = f"{member['name']} is late"
        body = (
            f"{member['name']} ({member['category']}) has not checked in for the {local_start} shift:"
            f" {minutes} min late."
        )
    else:
        title = f"{member['name']} is absent"
        body = (
            f"{member['name']} ({member['category']}) has not checked in for the {local_start} shift"
            f" on {duty.day:%d %b}."
        )
    key = f"attendance:{member['id']}:{duty.day.isoformat()}:{duty.start}:{kind}"
    notification_id, _ = await create_notification(
        site_id=member["site"],
        request=NotificationRequest(
            title=title[:200],
            body=body,
            category=Category.ATTENDANCE,
            audience=audience,
            channels=[Channel.PUSH, Channel.IN_APP],
            urgency=Urgency.HIGH,
            idempotency_key=key,
        ),
        kind="event",
        data={"staff_id": str(member["id"]), "kind": kind, "day": duty.day.isoformat(), "shift_start": duty.start},
        now=now,
    )
    try:
        await AttendanceAlert(
            site=member["site"],
            staff=member["id"],
            day=duty.day,
            shift_start=duty.start,
            kind=kind,
            due_at=duty.start_at,
            notification=notification_id,
            at=now,
        ).save()
    except Exception as error:
        if is_unique_violation(error):
            return False  # another run claimed it (and published)
        raise
    event = Alerted(
        staff_id=member["id"],
        name=member["name"],
        category=member["category"],
        day=duty.day,
        shift_start=duty.start,
        due_at=duty.start_at,
        minutes_late=minutes,
        at=now,
    )
    name = ATTENDANCE_LATE if kind == "late" else ATTENDANCE_ABSENT
    await publish(settings, redis, member["site"], name, event, gate=False)
    publisher = Publisher(redis, settings)
    for person in audience.person_ids:
        try:
            await publisher.publish(user_topic(person), name, event)
        except Exception:
            logger.exception("could not publish %s to the supervisor", name)
    return True
