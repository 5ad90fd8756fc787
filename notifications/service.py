"""Creating, scheduling and cancelling notifications: the entry point for announcements and events."""

from __future__ import annotations

import datetime as dt
from typing import Annotated
from uuid import UUID

import msgspec

from app.db import is_unique_violation
from app.errors import Conflict, InvalidInput, NotFound
from app.text import MULTI_LINE, ONE_LINE
from notifications.audience import Audience
from notifications.categories import Category, Channel, Urgency
from notifications.ledger import Counters, counters, now_utc
from schema.jsonvalue import as_list
from schema.notifications import Delivery, Notification

Title = Annotated[str, msgspec.Meta(min_length=1, max_length=200), ONE_LINE]
Body = Annotated[str, msgspec.Meta(min_length=1, max_length=4000), MULTI_LINE]


class NotificationRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    title: Title
    body: Body
    category: Category
    audience: Audience
    channels: Annotated[list[Channel], msgspec.Meta(min_length=1)]
    urgency: Urgency = Urgency.NORMAL
    scheduled_at: dt.datetime | None = None
    idempotency_key: Annotated[str, msgspec.Meta(min_length=1, max_length=128)] | None = None


class NotificationView(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    kind: str
    title: str
    body: str
    category: Category
    urgency: Urgency
    channels: list[Channel]
    status: str
    scheduled_at: dt.datetime | None
    created_at: dt.datetime
    targeted: int
    counters: Counters


async def create_notification(
    *,
    site_id: UUID,
    request: NotificationRequest,
    kind: str = "announcement",
    created_by: UUID | None = None,
    data: dict[str, str] | None = None,
    collapse_key: str | None = None,
    now: dt.datetime | None = None,
) -> tuple[UUID, bool]:
    """Returns (id, created). The same idempotency key on the same site returns the first one."""
    now = now or now_utc()
    if request.audience.is_empty():
        raise InvalidInput.for_field("audience", "choose at least one of everyone, buildings, units, roles, people")
    if request.scheduled_at is not None and request.scheduled_at.tzinfo is None:
        raise InvalidInput.for_field("scheduled_at", "must include a timezone offset")
    key = request.idempotency_key
    if key is not None and (existing := await _by_idempotency_key(site_id, key)):
        return existing, False
    notification = Notification(
        site=site_id,
        kind=kind,
        category=str(request.category),
        urgency=str(request.urgency),
        title=request.title,
        body=request.body,
        data=data or {},
        channels=sorted({str(c) for c in request.channels}),
        audience=msgspec.to_builtins(request.audience),
        collapse_key=collapse_key,
        idempotency_key=request.idempotency_key,
        created_by=created_by,
        status="scheduled",
        scheduled_at=request.scheduled_at,
        created_at=now,
    )
    try:
        await notification.save()
    except Exception as error:
        # Two requests with one key passed the check together: the unique index let one in.
        if key is not None and is_unique_violation(error) and (existing := await _by_idempotency_key(site_id, key)):
            return existing, False
        raise
    return notification.id, True


async def _by_idempotency_key(site_id: UUID, key: str) -> UUID | None:
    row = (
        await Notification.select(Notification.id)
        .where((Notification.site == site_id) & (Notification.idempotency_key == key))
        .first()
    )
    return None if row is None else UUID(str(row["id"]))


async def cancel_notification(site_id: UUID, notification_id: UUID, now: dt.datetime | None = None) -> None:
    """Stop what has not been sent yet; what was sent stays recorded as sent."""
    now = now or now_utc()
    row = (
        await Notification.select(Notification.status)
        .where((Notification.site == site_id) & (Notification.id == notification_id))
        .first()
    )
    if row is None:
        raise NotFound("notification not found")
    if row["status"] in ("completed", "cancelled"):
        raise Conflict(f"notification is already {row['status']}")
    await Notification.update({Notification.status: "cancelled", Notification.cancelled_at: now}).where(
        Notification.id == notification_id
    )
    await Delivery.update(
        {Delivery.status: "suppressed", Delivery.reason: "cancelled", Delivery.updated_at: now}
    ).where((Delivery.notification == notification_id) & Delivery.status.is_in(["pending", "deferred"]))


async def view_notification(site_id: UUID, notification_id: UUID) -> NotificationView:
    row = (
        await Notification.select().where((Notification.site == site_id) & (Notification.id == notification_id)).first()
    )
    if row is None:
        raise NotFound("notification not found")
    return NotificationView(
        id=row["id"],
        kind=row["kind"],
        title=row["title"],
        body=row["body"],
        category=Category(row["category"]),
        urgency=Urgency(row["urgency"]),
        channels=[Channel(c) for c in as_list(row["channels"])],
        status=row["status"],
        scheduled_at=row["scheduled_at"],
        created_at=row["created_at"],
        targeted=row["targeted"],
        counters=await counters(notification_id),
    )


async def due_notifications(now: dt.datetime) -> list[UUID]:
    rows = await Notification.select(Notification.id).where(
        (Notification.status == "scheduled")
        & ((Notification.scheduled_at.is_null()) | (Notification.scheduled_at <= now))
    )
    return [row["id"] for row in rows]


async def stalled(status: str, older_than: dt.datetime) -> list[UUID]:
    rows = await Notification.select(Notification.id).where(
        (Notification.status == status) & (Notification.created_at < older_than)
    )
    return [row["id"] for row in rows]
