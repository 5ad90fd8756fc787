"""After a commit: publish a complaint's change to its live topics, and notify people through NOTIFY.

Topics for a change: ``complaint:{id}``; the unit's ``unit:{id}`` (not for internal work
orders); the assignee's ``user:{id}`` (and the previous assignee's, on a reassignment); the
raiser's ``user:{id}`` when there is no unit; and ``site:{id}:control``. Internal notes go
only to the control room and the assignee, without their text.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any
from uuid import UUID

import msgspec
from redis.asyncio import Redis

from app.complaints.sla import sla_state
from app.config import Settings
from notifications.audience import Audience
from notifications.categories import Category, Channel, Urgency
from notifications.service import NotificationRequest, create_notification
from realtime.publish import Publisher
from realtime.topics import complaint_topic, site_topic, unit_topic, user_topic
from schema.complaints import ComplaintCategory
from schema.complaints_events import (
    COMPLAINT_ESCALATED,
    ComplaintChanged,
    ComplaintEscalated,
)
from schema.tables import Person

if TYPE_CHECKING:
    from app.complaints.sla import Escalated

STATUS_WORDS = {
    "open": "received",
    "assigned": "assigned to a technician",
    "in_progress": "being worked on",
    "on_hold": "on hold",
    "resolved": "resolved",
    "closed": "closed",
    "reopened": "reopened",
    "cancelled": "cancelled",
}


def owner_of(row: dict[str, Any]) -> UUID | None:
    """The person a complaint is for: the occupant staff raised it for, else whoever raised it."""
    owner: UUID | None = row["raised_for"] or row["raised_by"]
    return owner


def public_topics(row: dict[str, Any]) -> list[str]:
    """Topics that may carry what the raiser may see."""
    topics = [complaint_topic(row["id"])]
    if row["visibility"] != "staff":
        if row["unit"] is not None:
            topics.append(unit_topic(row["unit"]))
        elif owner_of(row) is not None:
            topics.append(user_topic(owner_of(row)))  # type: ignore[arg-type]
    return topics


def staff_topics(row: dict[str, Any], *extra_people: UUID | None) -> list[str]:
    topics = []
    for person in (row["assignee"], *extra_people):
        if person is not None:
            topics.append(user_topic(person))
    topics.append(site_topic(row["site"], "control"))
    return topics


def _dedupe(topics: list[str]) -> list[str]:
    return list(dict.fromkeys(topics))


async def name_of(person_id: UUID | None) -> str | None:
    if person_id is None:
        return None
    row = await Person.select(Person.full_name).where(Person.id == person_id).first()
    return row["full_name"] if row else None


async def category_code(category_id: UUID) -> str:
    row = await ComplaintCategory.select(ComplaintCategory.code).where(ComplaintCategory.id == category_id).first()
    return row["code"] if row else ""


async def changed_payload(
    row: dict[str, Any], *, from_status: str | None, by: UUID | None, now: dt.datetime, at_risk_percent: int
) -> ComplaintChanged:
    return ComplaintChanged(
        complaint_id=row["id"],
        site_id=row["site"],
        unit_id=row["unit"],
        status=row["status"],
        from_status=from_status,
        version=row["version"],
        priority=row["priority"],
        category=await category_code(row["category"]),
        assignee_id=row["assignee"],
        assignee_name=await name_of(row["assignee"]),
        sla_state=str(sla_state(row, now, at_risk_percent)),
        response_due_at=row["response_due_at"],
        resolution_due_at=row["resolution_due_at"],
        by=by,
        at=now,
    )


async def publish_everywhere(
    settings: Settings,
    redis: Redis,
    row: dict[str, Any],
    event_type: str,
    payload: msgspec.Struct,
    *,
    previous_assignee: UUID | None = None,
) -> None:
    """Publish one change to every topic that follows this complaint, each once, in a fixed order."""
    publisher = Publisher(redis, settings)
    for topic in _dedupe(public_topics(row) + staff_topics(row, previous_assignee)):
        await publisher.publish(topic, event_type, payload)


async def publish_staff_only(
    settings: Settings, redis: Redis, row: dict[str, Any], event_type: str, payload: msgspec.Struct
) -> None:
    publisher = Publisher(redis, settings)
    for topic in _dedupe(staff_topics(row)):
        await publisher.publish(topic, event_type, payload)


async def tell(
    row: dict[str, Any],
    people: list[UUID],
    *,
    title: str,
    body: str,
    key: str,
    now: dt.datetime,
    urgency: Urgency = Urgency.NORMAL,
) -> UUID | None:
    """One NOTIFY notification (push and in-app, category complaint); idempotent by ``key``."""
    people = [p for p in dict.fromkeys(people) if p is not None]
    if not people:
        return None
    notification_id, _ = await create_notification(
        site_id=row["site"],
        request=NotificationRequest(
            title=title,
            body=body,
            category=Category.COMPLAINT,
            audience=Audience(person_ids=people),
            channels=[Channel.PUSH, Channel.IN_APP],
            urgency=urgency,
            idempotency_key=key,
        ),
        kind="event",  # not an announcement: the category (complaint) says what it is about
        data={"complaint_id": str(row["id"]), "status": str(row["status"])},
        collapse_key=f"complaint:{row['id']}",
        now=now,
    )
    return notification_id


async def status_to_raiser(row: dict[str, Any], actor_id: UUID | None, now: dt.datetime) -> None:
    """The raiser hears of every status change they did not make themselves."""
    owner = owner_of(row)
    if owner is None or owner == actor_id or row["visibility"] == "staff":
        return
    code = await category_code(row["category"])
    await tell(
        row,
        [owner],
        title=f"Your {code} complaint is {STATUS_WORDS.get(row['status'], row['status'])}",
        body=f"Complaint {str(row['id'])[:8]}: now {row['status'].replace('_', ' ')}.",
        key=f"complaint:{row['id']}:v{row['version']}:raiser",
        now=now,
    )


async def assignment_to_technician(row: dict[str, Any], now: dt.datetime) -> None:
    if row["assignee"] is None:
        return
    code = await category_code(row["category"])
    await tell(
        row,
        [row["assignee"]],
        title=f"New {row['priority']} {code} job",
        body=f"Complaint {str(row['id'])[:8]} is assigned to you.",
        key=f"complaint:{row['id']}:v{row['version']}:assignee",
        now=now,
        urgency=Urgency.HIGH if row["priority"] in ("high", "urgent") else Urgency.NORMAL,
    )


async def escalation(
    row: dict[str, Any], level: int, level_name: str, deadline: str, recipients: list[UUID], now: dt.datetime
) -> UUID | None:
    code = await category_code(row["category"])
    return await tell(
        row,
        recipients,
        title=f"SLA breached ({deadline}): {code} complaint, level {level} ({level_name.replace('_', ' ')})",
        body=f"Complaint {str(row['id'])[:8]} ({row['priority']}) missed its {deadline} deadline.",
        key=f"complaint:{row['id']}:escalation:{level}",
        now=now,
        urgency=Urgency.HIGH,
    )


async def publish_escalation(
    settings: Settings, redis: Redis, row: dict[str, Any], escalated: Escalated, level_name: str, now: dt.datetime
) -> None:
    payload = ComplaintEscalated(
        complaint_id=row["id"],
        level=escalated.level,
        level_name=level_name,
        deadline=escalated.deadline,
        notified=escalated.notified,
        at=now,
    )
    await publish_staff_only(settings, redis, row, COMPLAINT_ESCALATED, payload)
