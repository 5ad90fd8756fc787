"""After a commit: publish a permit's change to its live topics, and tell people through NOTIFY.

Topics: ``site:{id}:control`` (the permit queue), the applicant's ``user:{id}``, the unit's
``unit:{id}`` when the permit is for a unit, each named approver's ``user:{id}``, and
``site:{id}:gate`` when a permit becomes approved or stops being so (the guards' list of today's
permits). The applicant hears of every step they did not take themselves; the people who decide
the next step hear that a permit awaits them.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from redis.asyncio import Redis

from app.auth.roles import Role
from app.config import Settings
from app.permits.lifecycle import Action, Status
from app.permits.types import ChainStep, chain_of
from app.visitors.passes import site_zone_of
from notifications.audience import Audience
from notifications.categories import Category, Channel, Urgency
from notifications.service import NotificationRequest, create_notification
from realtime.publish import Publisher
from realtime.topics import site_topic, unit_topic, user_topic
from schema.permits import PermitType
from schema.permits_events import PERMIT_CHANGED, PermitChanged
from schema.tables import Person, Unit

logger = logging.getLogger("opshub.permits")


site_zone = site_zone_of  # the site's wall clock, as the visitors module reads it


def local_text(value: dt.datetime, zone: ZoneInfo) -> str:
    """A time in the site's clock, as messages show it: "12 Dec 2026 09:00"."""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
    local = aware.astimezone(zone)
    return f"{local.day} {local:%b %Y %H:%M}"


async def _type(row: dict[str, Any]) -> dict[str, Any]:
    found = await PermitType.select(PermitType.kind, PermitType.name).where(PermitType.id == row["permit_type"]).first()
    return found or {"kind": "", "name": "permit"}


async def _name(person_id: UUID | None) -> str | None:
    if person_id is None:
        return None
    found = await Person.select(Person.full_name).where(Person.id == person_id).first()
    return found["full_name"] if found else None


def topics_for(row: dict[str, Any], previous_status: str | None) -> list[str]:
    topics = [site_topic(row["site"], "control")]
    if row["applicant"] is not None:
        topics.append(user_topic(row["applicant"]))
    if row["unit"] is not None and row["status"] != Status.DRAFT:
        topics.append(unit_topic(row["unit"]))
    for step in chain_of(row["chain"]):
        topics += [user_topic(person) for person in step.person_ids or []]
    if Status.APPROVED in (row["status"], previous_status):
        topics.append(site_topic(row["site"], "gate"))
    return list(dict.fromkeys(topics))


def _awaited(row: dict[str, Any]) -> ChainStep | None:
    if row["status"] != Status.PENDING:
        return None
    chain = chain_of(row["chain"])
    return chain[row["step"]] if row["step"] < len(chain) else None


async def after_change(
    settings: Settings,
    redis: Redis,
    row: dict[str, Any],
    *,
    previous_status: str | None,
    action: Action,
    actor: UUID | None,
    now: dt.datetime,
) -> None:
    """Publish and notify; a failure is logged, never undoes the committed change (clients refetch)."""
    type_row = await _type(row)
    awaited = _awaited(row)
    payload = PermitChanged(
        permit_id=row["id"],
        reference=row["reference"],
        kind=type_row["kind"],
        type_name=type_row["name"],
        unit_id=row["unit"],
        status=row["status"],
        action=str(action),
        round=row["round"],
        step=row["step"],
        step_label=awaited.label if awaited else None,
        version=row["version"],
        applicant_id=row["applicant"],
        by=actor,
        valid_from=row["valid_from"],
        valid_until=row["valid_until"],
        at=now,
    )
    publisher = Publisher(redis, settings)
    for topic in topics_for(row, previous_status):
        try:
            await publisher.publish(topic, PERMIT_CHANGED, payload)
        except Exception:
            logger.exception("could not publish %s on %s", PERMIT_CHANGED, topic)
    try:
        await _tell_applicant(row, type_row, action, actor, now)
        if awaited is not None:
            await _tell_approvers(row, type_row, awaited, now)
    except Exception:
        logger.exception("could not notify about permit %s", row["id"])


async def tell(
    row: dict[str, Any], audience: Audience, *, title: str, body: str, key: str, now: dt.datetime, urgency: Urgency
) -> UUID | None:
    """One NOTIFY notification (push and in-app, category permit); idempotent by ``key``."""
    if audience.is_empty():
        return None
    notification_id, _ = await create_notification(
        site_id=row["site"],
        request=NotificationRequest(
            title=title[:200],
            body=body[:4000],
            category=Category.PERMIT,
            audience=audience,
            channels=[Channel.PUSH, Channel.IN_APP],
            urgency=urgency,
            idempotency_key=key[:128],
        ),
        kind="event",
        data={"permit_id": str(row["id"]), "status": str(row["status"]), "reference": str(row["reference"])},
        collapse_key=f"permit:{row['id']}",
        now=now,
    )
    return notification_id


async def _tell_applicant(
    row: dict[str, Any], type_row: dict[str, Any], action: Action, actor: UUID | None, now: dt.datetime
) -> None:
    applicant = row["applicant"]
    if applicant is None or applicant == actor:
        return
    zone = await site_zone(row["site"])
    ref, name = row["reference"], type_row["name"]
    by = await _name(actor) or "the FM team"
    reason = row["decision_reason"] or ""
    chain = chain_of(row["chain"])
    if action is Action.APPROVED and row["status"] == Status.APPROVED:
        title = f"Permit {ref} approved"
        body = (
            f"Your {name} permit is approved, valid {local_text(row['valid_from'], zone)}"
            f" to {local_text(row['valid_until'], zone)}."
        )
    elif action is Action.APPROVED:
        done = row["step"]
        title = f"Permit {ref}: step {done} of {len(chain)} approved"
        body = f"{by} approved your {name} permit; it now waits for {chain[done].label}."
    elif action is Action.REJECTED:
        title = f"Permit {ref} rejected"
        body = f"{by} rejected your {name} permit: {reason}"
    elif action is Action.SENT_BACK:
        title = f"Permit {ref}: changes requested"
        body = f"{by} sent your {name} permit back for changes: {reason}. Edit it and resubmit."
    elif action is Action.REVOKED:
        title = f"Permit {ref} revoked"
        body = f"{by} revoked your {name} permit: {reason}. The gate no longer accepts it."
    elif action is Action.CANCELLED:
        title = f"Permit {ref} cancelled"
        body = f"{by} cancelled your {name} permit."
    else:
        return
    await tell(
        row,
        Audience(person_ids=[applicant]),
        title=title,
        body=body,
        key=f"permit:{row['id']}:v{row['version']}:applicant",
        now=now,
        urgency=Urgency.HIGH if action in (Action.REVOKED, Action.SENT_BACK) else Urgency.NORMAL,
    )


async def _tell_approvers(row: dict[str, Any], type_row: dict[str, Any], step: ChainStep, now: dt.datetime) -> None:
    audience = (
        Audience(roles=[Role(step.role)]) if step.role is not None else Audience(person_ids=list(step.person_ids or []))
    )
    where = await _where(row)
    await tell(
        row,
        audience,
        title=f"Permit {row['reference']} awaits your approval",
        body=f"{type_row['name']} for {where}: step {row['step'] + 1} ({step.label}) is yours to decide.",
        key=f"permit:{row['id']}:r{row['round']}:s{row['step']}:approvers",
        now=now,
        urgency=Urgency.NORMAL,
    )


async def _where(row: dict[str, Any]) -> str:
    if row["unit"] is None:
        return str(row["location"] or "the site")
    found = await Unit.select(Unit.label).where(Unit.id == row["unit"]).first()
    return str(found["label"]) if found else "a unit"
