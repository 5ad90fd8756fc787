"""What the pipeline publishes live: announcement progress for the control room, feed entries for people."""

from __future__ import annotations

from uuid import UUID

import msgspec
from redis.asyncio import Redis

from app.config import Settings
from notifications.channels.base import Outgoing
from notifications.channels.in_app import FeedAnnouncer
from notifications.context import ProgressSink
from notifications.ledger import Counters
from realtime.publish import publish


class ProgressEvent(msgspec.Struct, frozen=True):
    notification_id: UUID
    counters: Counters


class FeedEvent(msgspec.Struct, frozen=True):
    delivery_id: UUID
    notification_id: UUID
    category: str
    urgency: str
    title: str
    body: str


def control_topic(site_id: UUID) -> str:
    return f"site:{site_id}:control"


def user_topic(person_id: UUID) -> str:
    return f"user:{person_id}"


def progress_sink(redis: Redis, settings: Settings) -> ProgressSink:
    async def sink(site_id: UUID, notification_id: UUID, counters: Counters) -> None:
        await publish(
            redis,
            settings,
            control_topic(site_id),
            "announcement.progress",
            ProgressEvent(notification_id=notification_id, counters=counters),
        )

    return sink


def feed_announcer(redis: Redis, settings: Settings) -> FeedAnnouncer:
    async def announce(person_id: UUID, delivery_id: UUID, message: Outgoing) -> None:
        await publish(
            redis,
            settings,
            user_topic(person_id),
            "notification.created",
            FeedEvent(
                delivery_id=delivery_id,
                notification_id=message.notification_id,
                category=message.category,
                urgency=message.urgency,
                title=message.title,
                body=message.body,
            ),
        )

    return announce
