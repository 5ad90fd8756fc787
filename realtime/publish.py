"""The one publish path: web processes and arq workers call it after their transaction commits.

    seq = await publish(redis, settings, f"unit:{unit_id}", "visitor.arrived", {"visitor_id": ...})

The event reaches every subscriber on every web process through Redis, and stays in the
topic's bounded history for clients that reconnect. With ``REALTIME_REDIS_URLS`` set the event goes
to the topic's shard (``realtime.shards``) instead of ``redis``.
Publishing before the commit would let clients see (and refetch) state that may still be rolled
back: always publish after.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
from redis.asyncio import Redis

from app.config import Settings
from realtime import history
from realtime.config import RealtimeSettings, get_realtime_settings
from realtime.shards import ShardSet, shards_for
from realtime.topics import parse_topic
from schema.events import EVENT_TYPE_PATTERN

_encoder = msgspec.json.Encoder()


class Publisher:
    """Holds the Redis client and settings, for callers that publish often."""

    def __init__(self, redis: Redis, settings: Settings, realtime: RealtimeSettings | None = None) -> None:
        self.redis = redis
        self.settings = settings
        self.realtime = realtime or get_realtime_settings()
        self._shards: ShardSet | None = None  # chosen on first use: it needs the running loop

    async def publish(self, topic: str, event_type: str, data: Mapping[str, Any] | msgspec.Struct) -> int:
        """Publish one event; returns its sequence number on the topic. Raises ValueError on a bad topic/type."""
        parse_topic(topic)  # only topics that clients could be authorised for
        if not EVENT_TYPE_PATTERN.match(event_type):
            raise ValueError(f"event type {event_type!r} is not a dotted lower-case name like 'visitor.arrived'")
        if self._shards is None:
            self._shards = shards_for(self.redis, self.settings)
        return await history.append(
            self._shards.for_topic(topic).redis,
            self.settings,
            topic,
            topic_json=_encoder.encode(topic),
            type_json=_encoder.encode(event_type),
            data_json=_encoder.encode(data),
            max_len=self.realtime.history_max_len,
            max_age_ms=int(self.realtime.history_max_age_seconds * 1000),
        )


async def publish(
    redis: Redis, settings: Settings, topic: str, event_type: str, data: Mapping[str, Any] | msgspec.Struct
) -> int:
    """Publish one event on ``topic`` after the database transaction committed; returns its sequence number."""
    return await Publisher(redis, settings).publish(topic, event_type, data)
