"""Which guard consoles are online at each gate, for the control room.

A console is a websocket connection opened with ``?gate=<gate>`` by a guard (or staff).
Consoles live in one Redis sorted set, scored by expiry: the owning web process pushes the
expiry forward on every heartbeat, and any web process sweeps expired members, so a console
whose process died disappears within the presence TTL. Every change is published as a
``presence.changed`` event on ``site:{id}:control``; a control-room client gets the full
list (``PresenceSnapshot``) when it subscribes to that topic.
"""

from __future__ import annotations

import time
from uuid import UUID

from redis.asyncio import Redis

from app.config import Settings
from realtime.config import RealtimeSettings
from realtime.publish import Publisher
from realtime.topics import site_topic
from schema.events import PRESENCE_CHANGED, Console, PresenceChanged


def _member(site_id: UUID, console: Console) -> str:
    return f"{site_id}|{console.gate}|{console.person_id}|{console.connection_id}|{console.since:.3f}"


def _parse(member: bytes) -> tuple[UUID, Console]:
    site, gate, person, connection_id, since = member.decode().split("|")
    return UUID(site), Console(gate=gate, person_id=UUID(person), connection_id=connection_id, since=float(since))


class Presence:
    def __init__(self, redis: Redis, settings: Settings, realtime: RealtimeSettings) -> None:
        self.redis = redis
        self.key = f"{settings.redis_prefix}rt:presence"
        self.ttl_ms = int(realtime.presence_ttl_seconds * 1000)
        self.publisher = Publisher(redis, settings, realtime)

    def _expiry(self) -> int:
        return int(time.time() * 1000) + self.ttl_ms

    async def _announce(self, site_id: UUID, change: str, console: Console) -> None:
        await self.publisher.publish(
            site_topic(site_id, "control"),
            PRESENCE_CHANGED,
            PresenceChanged(change="joined" if change == "joined" else "left", console=console),
        )

    async def join(self, site_id: UUID, console: Console) -> None:
        await self.redis.zadd(self.key, {_member(site_id, console): self._expiry()})
        await self._announce(site_id, "joined", console)

    async def leave(self, site_id: UUID, console: Console) -> None:
        if await self.redis.zrem(self.key, _member(site_id, console)):
            await self._announce(site_id, "left", console)

    async def refresh(self, consoles: list[tuple[UUID, Console]]) -> None:
        """Push the expiry of this process's consoles forward; re-announce any a sweep removed meanwhile."""
        if not consoles:
            return
        expiry = self._expiry()
        pipe = self.redis.pipeline(transaction=False)
        for site_id, console in consoles:
            pipe.zadd(self.key, {_member(site_id, console): expiry})
        for (site_id, console), added in zip(consoles, await pipe.execute(), strict=True):
            if added:
                await self._announce(site_id, "joined", console)

    async def sweep(self) -> None:
        """Remove expired consoles (their process stopped refreshing) and announce them as left."""
        now = int(time.time() * 1000)
        pipe = self.redis.pipeline(transaction=True)
        pipe.zrangebyscore(self.key, "-inf", now)
        pipe.zremrangebyscore(self.key, "-inf", now)
        expired, _ = await pipe.execute()
        for member in expired:
            site_id, console = _parse(member)
            await self._announce(site_id, "left", console)

    async def snapshot(self, site_id: UUID) -> list[Console]:
        now = int(time.time() * 1000)
        prefix = f"{site_id}|".encode()
        members = await self.redis.zrangebyscore(self.key, now, "+inf")
        return sorted(
            (_parse(member)[1] for member in members if member.startswith(prefix)),
            key=lambda console: (console.gate, console.since),
        )
