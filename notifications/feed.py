"""A person's in-app notification feed: their in_app ledger rows joined with the notification.

The ledger row *is* the feed entry (see ``notifications.channels.in_app``): it shows once
the pipeline has "sent" it, and reading it moves the row forward to ``read``. Every query
is scoped by site and person, so another person's delivery id is simply not found.
"""

from __future__ import annotations

import datetime as dt
import logging
from uuid import UUID

import msgspec
from piccolo.columns.combination import Combinable
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.config import Settings
from app.errors import NotFound
from notifications.categories import Category, Channel, Urgency
from notifications.live import user_topic
from realtime.publish import publish
from schema.notifications import Delivery

logger = logging.getLogger("opshub.notify.feed")

# Rows the person can see: decided, handed to the feed, possibly read. Pending, deferred and
# suppressed rows are not (yet) in anyone's feed.
VISIBLE_STATUSES = ("sent", "delivered", "read")
READ_EVENT = "notification.read"


class FeedItem(msgspec.Struct, frozen=True, kw_only=True):
    delivery_id: UUID
    notification_id: UUID
    title: str
    body: str
    category: Category
    urgency: Urgency
    created_at: dt.datetime  # when the notification was created
    sent_at: dt.datetime | None  # when it reached the feed (later than created_at if it was deferred)
    read_at: dt.datetime | None


class FeedPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[FeedItem]
    total: int
    unread: int
    limit: int
    offset: int


class ReadResult(msgspec.Struct, frozen=True, kw_only=True):
    delivery_id: UUID
    read_at: dt.datetime


class ReadAllResult(msgspec.Struct, frozen=True, kw_only=True):
    marked: int
    read_at: dt.datetime


class FeedReadEvent(msgspec.Struct, frozen=True, kw_only=True):
    """Published on ``user:{person_id}`` so the person's other devices clear their badges.

    ``all`` means every entry up to ``read_at`` is read (``delivery_ids`` is then empty).
    """

    delivery_ids: list[UUID]
    all: bool
    read_at: dt.datetime


def _mine(site_id: UUID, person_id: UUID) -> Combinable:
    condition: Combinable = (
        (Delivery.site == site_id)
        & (Delivery.person == person_id)
        & (Delivery.channel == str(Channel.IN_APP))
        & Delivery.status.is_in(list(VISIBLE_STATUSES))
    )
    return condition


async def list_feed(
    site_id: UUID, person_id: UUID, *, unread_only: bool = False, limit: int = 50, offset: int = 0
) -> FeedPage:
    """Newest first (by when the entry reached the feed)."""
    condition = _mine(site_id, person_id)
    unread_condition = condition & Delivery.read_at.is_null()
    chosen = unread_condition if unread_only else condition
    rows = (
        await Delivery.select(
            Delivery.id,
            Delivery.notification,
            Delivery.notification.title.as_alias("title"),
            Delivery.notification.body.as_alias("body"),
            Delivery.notification.category.as_alias("category"),
            Delivery.notification.urgency.as_alias("urgency"),
            Delivery.notification.created_at.as_alias("created_at"),
            Delivery.sent_at,
            Delivery.read_at,
        )
        .where(chosen)
        .order_by(Delivery.sent_at, Delivery.id, ascending=False)
        .limit(limit)
        .offset(offset)
    )
    total = await Delivery.count().where(chosen)
    unread = total if unread_only else await Delivery.count().where(unread_condition)
    return FeedPage(
        items=[
            FeedItem(
                delivery_id=row["id"],
                notification_id=row["notification"],
                title=row["title"],
                body=row["body"],
                category=Category(row["category"]),
                urgency=Urgency(row["urgency"]),
                created_at=row["created_at"],
                sent_at=row["sent_at"],
                read_at=row["read_at"],
            )
            for row in rows
        ],
        total=total,
        unread=unread,
        limit=limit,
        offset=offset,
    )


async def mark_read(site_id: UUID, person_id: UUID, delivery_id: UUID, now: dt.datetime) -> tuple[ReadResult, bool]:
    """Mark one entry read; returns (result, whether it changed). Reading twice keeps the first time."""
    condition = _mine(site_id, person_id) & (Delivery.id == delivery_id)
    updated = (
        await Delivery.update({Delivery.read_at: now, Delivery.status: "read", Delivery.updated_at: now})
        .where(condition & Delivery.read_at.is_null())
        .returning(Delivery.read_at)
    )
    if updated:
        return ReadResult(delivery_id=delivery_id, read_at=now), True
    row = await Delivery.select(Delivery.read_at).where(condition).first()
    if row is None or row["read_at"] is None:
        raise NotFound("notification not found")
    return ReadResult(delivery_id=delivery_id, read_at=row["read_at"]), False


async def mark_all_read(site_id: UUID, person_id: UUID, now: dt.datetime) -> ReadAllResult:
    updated = (
        await Delivery.update({Delivery.read_at: now, Delivery.status: "read", Delivery.updated_at: now})
        .where(_mine(site_id, person_id) & Delivery.read_at.is_null())
        .returning(Delivery.id)
    )
    return ReadAllResult(marked=len(updated), read_at=now)


async def announce_read(redis: Redis, settings: Settings, person_id: UUID, event: FeedReadEvent) -> None:
    """Tell the person's other devices; the database already holds the truth, so a failure only logs."""
    try:
        await publish(redis, settings, user_topic(person_id), READ_EVENT, event)
    except RedisError:
        logger.warning("could not publish %s for %s", READ_EVENT, person_id, exc_info=True)
