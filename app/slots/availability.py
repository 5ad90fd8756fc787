"""Availability: free-time search, each resource's state now, the site's per-type counts, and
their coalesced live publication on ``site:{id}:slots``.

Coalescing works across processes through Redis: a change adds the resource to the site's
dirty set (``SADD``) and tries to become the site's flusher (``SET NX PX``). The flusher waits
one short window, then takes the whole dirty set at once, computes each resource's state
from the database *at that moment* and publishes it, plus the site's counts once. A burst of
N changes to one resource within the window therefore sends one event with the latest state.
A change that arrives while a flush is running stays in the set; the flusher looks again
after releasing its lock, so nothing is lost. A flusher that dies leaves its lock to expire;
the worker's ``slots_flush_stale`` cron drains whatever is left.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import secrets
from collections.abc import Awaitable, Iterable
from typing import Any, Final, cast
from uuid import UUID
from zoneinfo import ZoneInfo

import msgspec
from redis.asyncio import Redis

from app.config import Settings
from app.errors import InvalidInput
from app.slots import resources
from app.slots.resources import now_utc
from app.slots.rules import free_starts
from realtime.publish import Publisher
from realtime.topics import site_topic
from schema.slots import ACTIVE_BOOKING_STATES, SlotBooking, SlotResource
from schema.slots_events import (
    SLOT_AVAILABILITY_CHANGED,
    SLOT_COUNTS_CHANGED,
    CountsChanged,
    ResourceAvailability,
    SiteCounts,
)
from schema.tables import Resource

logger = logging.getLogger("opshub.slots.availability")

DOWN_STATUSES: Final = frozenset({"Faulted", "Unavailable"})
IN_USE_STATUSES: Final = frozenset({"Preparing", "Charging", "SuspendedEVSE", "SuspendedEV", "Finishing", "occupied"})
COALESCE_WINDOW_SECONDS: Final = 0.25
_LOCK_TTL_MS: Final = 10_000
_POP_ALL = "local m = redis.call('SMEMBERS', KEYS[1]) redis.call('DEL', KEYS[1]) return m"
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
_background: set[asyncio.Task[None]] = set()

Held = tuple[dt.datetime, dt.datetime, dt.datetime]


class FreeTimes(msgspec.Struct, frozen=True, kw_only=True):
    resource_id: UUID
    date: dt.date
    duration_minutes: int
    timezone: str
    starts: list[dt.datetime]
    state: ResourceAvailability


async def held_ranges(resource_id: UUID, after: dt.datetime, until: dt.datetime) -> list[Held]:
    rows = await SlotBooking.select(SlotBooking.starts_at, SlotBooking.ends_at, SlotBooking.blocks_until).where(
        (SlotBooking.resource == resource_id)
        & SlotBooking.status.is_in(list(ACTIVE_BOOKING_STATES))
        & (SlotBooking.blocks_until > after)
        & (SlotBooking.starts_at < until)
    )
    return sorted((r["starts_at"], r["ends_at"], r["blocks_until"]) for r in rows)


async def search_free(
    site_id: UUID, resource_id: UUID, day: dt.date | None, duration_minutes: int | None, now: dt.datetime | None = None
) -> FreeTimes:
    """Free start times on a local date (default: today) for a booking of the given length (default: one slot)."""
    now = now or now_utc()
    row = await resources.load(site_id, resource_id)
    rules = resources.rules_of(row)
    tz_name, _ = await resources.site_settings(site_id)
    tz = ZoneInfo(tz_name)
    day = day or now.astimezone(tz).date()
    minutes = duration_minutes or max(rules.slot_minutes, rules.min_minutes)
    if not rules.min_minutes <= minutes <= rules.max_minutes:
        raise InvalidInput.for_query(
            "duration_minutes", f"must be between {rules.min_minutes} and {rules.max_minutes} for this resource"
        )
    begin = dt.datetime.combine(day, dt.time(), tzinfo=tz).astimezone(dt.UTC)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=tz).astimezone(dt.UTC)
    state = (await states_of(site_id, [resource_id], now))[0]
    starts: list[dt.datetime] = []
    if state.state != "out_of_service":
        after = max(begin, now)
        until = min(end, now + dt.timedelta(days=rules.advance_days, minutes=1))
        if after < until:
            held = await held_ranges(resource_id, after - dt.timedelta(days=1), until + dt.timedelta(days=1))
            starts = free_starts(
                rules, tz, dt.timedelta(minutes=minutes), held, after=after, until=until, limit=24 * 60
            )
    return FreeTimes(
        resource_id=resource_id, date=day, duration_minutes=minutes, timezone=tz_name, starts=starts, state=state
    )


async def next_free_times(
    site_id: UUID,
    resource_id: UUID,
    after: dt.datetime,
    duration: dt.timedelta,
    *,
    limit: int = 3,
    now: dt.datetime | None = None,
    rules: resources.Rules | None = None,
) -> list[dt.datetime]:
    """The next ``limit`` start times from ``after`` where a booking of ``duration`` would be accepted."""
    now = now or now_utc()
    if rules is None:
        rules = resources.rules_of(await resources.load(site_id, resource_id))
    tz_name, _ = await resources.site_settings(site_id)
    start = max(after, now)
    until = now + dt.timedelta(days=rules.advance_days, minutes=1)
    if start >= until:
        return []
    held = await held_ranges(resource_id, start - dt.timedelta(days=1), until + dt.timedelta(days=1))
    return free_starts(rules, ZoneInfo(tz_name), duration, held, after=start, until=until, limit=limit)


def _state(row: dict[str, Any], held: list[Held], now: dt.datetime) -> ResourceAvailability:
    live = row["live_status"]
    current = [h for h in held if h[0] <= now < h[2]]
    upcoming = [h for h in held if h[0] > now]
    free_until = upcoming[0][0] if upcoming else None
    next_free_at: dt.datetime | None = None
    if not row["is_active"] or live in DOWN_STATUSES:
        state = "out_of_service"
    elif current:
        state = "booked"
        next_free_at = max(h[2] for h in current)
        for begin, _, blocks in held:  # back-to-back bookings push it further
            if begin <= next_free_at < blocks:
                next_free_at = blocks
    elif live in IN_USE_STATUSES:
        state = "in_use"
    else:
        state = "free"
    return ResourceAvailability(
        resource_id=row["resource"],
        code=row["code"],
        category=row["category"],
        state=state,
        live_status=live,
        free_until=free_until if state == "free" else None,
        next_free_at=next_free_at,
        as_of=now,
    )


_STATE_COLUMNS = (
    SlotResource.resource,
    SlotResource.category,
    SlotResource.allocation,
    SlotResource.live_status,
    SlotResource.resource.code.as_alias("code"),
    SlotResource.resource.is_active.as_alias("is_active"),
)


async def _held_by_resource(site_id: UUID, now: dt.datetime, resource_ids: list[UUID] | None) -> dict[UUID, list[Held]]:
    query = SlotBooking.select(
        SlotBooking.resource, SlotBooking.starts_at, SlotBooking.ends_at, SlotBooking.blocks_until
    ).where(
        (SlotBooking.site == site_id)
        & SlotBooking.status.is_in(list(ACTIVE_BOOKING_STATES))
        & (SlotBooking.blocks_until > now)
        & (SlotBooking.starts_at < now + dt.timedelta(days=2))
    )
    if resource_ids is not None:
        query = query.where(SlotBooking.resource.is_in(resource_ids))
    held: dict[UUID, list[Held]] = {}
    for r in await query:
        held.setdefault(r["resource"], []).append((r["starts_at"], r["ends_at"], r["blocks_until"]))
    for ranges in held.values():
        ranges.sort()
    return held


async def states_of(site_id: UUID, resource_ids: list[UUID], now: dt.datetime) -> list[ResourceAvailability]:
    if not resource_ids:
        return []
    rows = await SlotResource.select(*_STATE_COLUMNS).where(
        (SlotResource.site == site_id) & SlotResource.resource.is_in(resource_ids)
    )
    held = await _held_by_resource(site_id, now, resource_ids)
    return [_state(row, held.get(row["resource"], []), now) for row in rows]


async def site_counts(site_id: UUID, now: dt.datetime | None = None) -> SiteCounts:
    now = now or now_utc()
    rows = await SlotResource.select(*_STATE_COLUMNS).where(SlotResource.site == site_id)
    held = await _held_by_resource(site_id, now, None)
    totals = {
        "ev": 0,
        "ev_free": 0,
        "parking": 0,
        "parking_free": 0,
        "visitor_free": 0,
        "amenity": 0,
        "amenity_free": 0,
    }
    for row in rows:
        state = _state(row, held.get(row["resource"], []), now).state
        free = state == "free"
        if row["category"] == "ev_connector":
            totals["ev"] += 1
            totals["ev_free"] += free
        elif row["category"] == "parking_slot":
            totals["parking"] += 1
            totals["parking_free"] += free
            totals["visitor_free"] += free and row["allocation"] == "visitor"
        elif row["category"] == "amenity":
            totals["amenity"] += 1
            totals["amenity_free"] += free
    return SiteCounts(
        ev_total=totals["ev"],
        ev_free_now=totals["ev_free"],
        parking_total=totals["parking"],
        parking_free_now=totals["parking_free"],
        visitor_parking_free_now=totals["visitor_free"],
        amenity_total=totals["amenity"],
        amenity_free_now=totals["amenity_free"],
        as_of=now,
    )


# ------------------------------------------------------------------------------ coalesced publication


def _dirty_key(settings: Settings, site_id: UUID) -> str:
    return f"{settings.redis_prefix}slots:dirty:{site_id}"


def _lock_key(settings: Settings, site_id: UUID) -> str:
    return f"{settings.redis_prefix}slots:flushing:{site_id}"


class AvailabilityFeed:
    """Marks resources changed and publishes their state, coalesced per site (see the module doc)."""

    def __init__(self, redis: Redis, settings: Settings, window_seconds: float = COALESCE_WINDOW_SECONDS) -> None:
        self.redis = redis
        self.settings = settings
        self.window = window_seconds
        self.publisher = Publisher(redis, settings)

    async def changed(
        self, site_id: UUID, resource_ids: Iterable[UUID], *, immediate: bool = False, now: dt.datetime | None = None
    ) -> None:
        """Call after the transaction committed. ``immediate`` flushes now (crons that free slots)."""
        ids = [str(r) for r in resource_ids]
        if not ids:
            return
        await cast(Awaitable[int], self.redis.sadd(_dirty_key(self.settings, site_id), *ids))
        if immediate:
            await self.flush(site_id, now=now)
            return
        token = secrets.token_hex(8)
        if await self.redis.set(_lock_key(self.settings, site_id), token, nx=True, px=_LOCK_TTL_MS):
            task = asyncio.create_task(self._flush_later(site_id, token))
            _background.add(task)
            task.add_done_callback(_background.discard)

    async def _flush_later(self, site_id: UUID, token: str) -> None:
        try:
            while True:
                await asyncio.sleep(self.window)
                await self.flush(site_id)
                await cast(Awaitable[Any], self.redis.eval(_RELEASE, 1, _lock_key(self.settings, site_id), token))
                if not await self.redis.scard(_dirty_key(self.settings, site_id)):  # type: ignore[misc]
                    return
                token = secrets.token_hex(8)
                if not await self.redis.set(_lock_key(self.settings, site_id), token, nx=True, px=_LOCK_TTL_MS):
                    return  # another process took over
        except Exception:  # a lost flush is recovered by the cron; it must not kill the loop
            logger.exception("availability flush failed for site %s", site_id)

    async def flush(self, site_id: UUID, *, now: dt.datetime | None = None) -> int:
        """Publish the current state of every dirty resource of the site and the site's counts."""
        raw = await cast(Awaitable[list[bytes]], self.redis.eval(_POP_ALL, 1, _dirty_key(self.settings, site_id)))
        if not raw:
            return 0
        now = now or now_utc()
        ids = sorted({UUID(v.decode() if isinstance(v, bytes) else v) for v in raw}, key=str)
        topic = site_topic(site_id, "slots")
        for state in await states_of(site_id, ids, now):
            await self.publisher.publish(topic, SLOT_AVAILABILITY_CHANGED, state)
        counts = await site_counts(site_id, now)
        await self.publisher.publish(topic, SLOT_COUNTS_CHANGED, CountsChanged(site_id=site_id, counts=counts))
        return len(ids)

    async def flush_stale(self) -> int:
        """Drain dirty sets whose flusher is gone (worker cron)."""
        flushed = 0
        prefix = f"{self.settings.redis_prefix}slots:dirty:"
        async for key in self.redis.scan_iter(match=prefix + "*"):
            name = key.decode() if isinstance(key, bytes) else key
            site_id = UUID(name.removeprefix(prefix))
            if not await cast(Awaitable[int], self.redis.exists(_lock_key(self.settings, site_id))):
                flushed += await self.flush(site_id)
        return flushed


async def resource_site(resource_id: UUID) -> UUID | None:
    row = await Resource.select(Resource.site).where(Resource.id == resource_id).first()
    return None if row is None else row["site"]
