"""Expanding a notification into ledger rows: one decision per person and channel.

The audience is read in chunks and split into parts by ranges of person id, so a 100,000-person
township is never one list in memory and several workers expand its parts at once. Sending starts as
soon as a part has rows; the notification moves from ``expanding`` to ``sending`` when every part is
recorded done (``notification_part``, once each).

Safe to re-run at any point (arq runs jobs at least once; a worker may die mid-way): people who
already have rows are skipped, inserts ignore conflicts, and a part is recorded done once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from uuid import UUID, uuid4

import msgspec

from notifications.audience import Audience, audience_chunks, count_audience
from notifications.categories import Category, Channel, Urgency
from notifications.context import NotifyContext
from notifications.digest import BurstGate, bursts_apply, decides_promotions, thread_of
from notifications.facts import PersonFacts, load_facts, load_site_policy
from notifications.ledger import counters, existing_people, insert_rows, new_row_id
from notifications.policy import Action, Decision, Decisions, Reason, SitePolicy
from schema.jsonvalue import as_dict, as_list
from schema.notifications import Notification, NotificationPart

logger = logging.getLogger("opshub.notify.fanout")
CHUNK = 1000
# The first chunk of a part is small: its rows are written, and sending starts, within moments of the
# announcement, while the rest of the part is decided beside the sends (a whole first chunk kept the senders
# waiting for a thousand people's facts and decisions and 3,000 rows' insert).
FIRST_CHUNK = 100
MAX_PARTS = 16
PROGRESS_INTERVAL_SECONDS = 0.25
OPEN_FOR_EXPANSION = ("scheduled", "expanding")


class Plan(msgspec.Struct, frozen=True):
    """What is left to expand of a notification: its parts not yet recorded done."""

    parts: int
    todo: list[int]


async def plan(ctx: NotifyContext, notification_id: UUID) -> Plan | None:
    """Start (or resume) a due notification's expansion; None if it is not to be expanded now."""
    notification = await Notification.objects().where(Notification.id == notification_id).first()
    if notification is None or notification.status not in OPEN_FOR_EXPANSION:
        return None
    if notification.scheduled_at is not None and notification.scheduled_at > ctx.clock():
        return None  # the dispatcher cron picks it up when it is due
    parts = notification.parts
    if parts <= 0:
        audience = msgspec.convert(as_dict(notification.audience), Audience)
        size = await count_audience(notification.site, audience)
        parts = max(1, min(MAX_PARTS, math.ceil(size / ctx.settings.notify_expansion_part_size)))
        # The first planner fixes the number of parts; a racing one adopts it.
        await Notification.update({Notification.parts: parts}).where(
            (Notification.id == notification_id) & (Notification.parts == 0)
        )
        row = await Notification.select(Notification.parts).where(Notification.id == notification_id).first()
        parts = int(row["parts"]) if row else parts
    await Notification.update({Notification.status: "expanding"}).where(
        (Notification.id == notification_id) & Notification.status.is_in(list(OPEN_FOR_EXPANSION))
    )
    done = {
        int(r["part"])
        for r in await NotificationPart.select(NotificationPart.part).where(
            NotificationPart.notification == notification_id
        )
    }
    return Plan(parts=parts, todo=[p for p in range(parts) if p not in done])


async def expand(ctx: NotifyContext, notification_id: UUID) -> list[Channel]:
    """Expand every part here, one after another (tests, benches, small audiences); returns the channels
    that have rows to send."""
    planned = await plan(ctx, notification_id)
    if planned is None:
        return []
    channels: set[Channel] = set()
    for part in planned.todo:
        channels |= set(await expand_part(ctx, notification_id, part))
    return sorted(channels)


async def expand_part(
    ctx: NotifyContext,
    notification_id: UUID,
    part: int,
    first_rows: Callable[[list[Channel]], Awaitable[None]] | None = None,
) -> list[Channel]:
    """Create the ledger rows of one part of the audience; returns the notification's channels, for senders.

    ``first_rows`` is called once the part's first rows are written, so sending can start while the rest
    of the part is decided."""
    notification = await Notification.objects().where(Notification.id == notification_id).first()
    if notification is None or notification.status != "expanding" or not 0 <= part < notification.parts:
        return []
    now = ctx.clock()
    policy = await load_site_policy(notification.site)
    channels = [Channel(c) for c in as_list(notification.channels)]
    audience = msgspec.convert(as_dict(notification.audience), Audience)
    deciding = _Decider(ctx, notification, policy, channels, now)
    people = 0
    last_progress = 0.0
    # One chunk's rows are written while the next chunk's people are read and decided (after the first's).
    writing: asyncio.Task[None] | None = None
    try:
        async for chunk in audience_chunks(
            notification.site, audience, part=part, parts=notification.parts, chunk=CHUNK, first=FIRST_CHUNK
        ):
            whole_part = people == 0 and len(chunk) < FIRST_CHUNK  # a first chunk that is not full: no more follow
            people += len(chunk)
            done = await existing_people(notification_id, chunk)
            todo = [p for p in chunk if p not in done]
            rows = await deciding.rows_for(todo) if todo else []
            if writing is not None:
                await writing
            writing = asyncio.create_task(insert_rows(rows))
            if first_rows is not None and rows and not whole_part:
                # The first (small) chunk's rows are written at once and their senders started; the rest of
                # the part is decided while they send. (A part that is one small chunk starts its senders when
                # it is done, once: the caller does.)
                await writing
                await first_rows(channels)
                first_rows = None
            if ctx.progress is not None and time.monotonic() - last_progress >= PROGRESS_INTERVAL_SECONDS:
                last_progress = time.monotonic()
                await ctx.progress(notification.site, notification_id, await counters(notification_id))
        if writing is not None:
            await writing
    finally:
        if writing is not None and not writing.done():
            writing.cancel()
    await _record_part_done(notification_id, part, people, now)
    if await _finish_expansion(notification_id, notification.parts, now):
        logger.info("notification %s expanded (%d parts) on %s", notification_id, notification.parts, channels)
        if ctx.progress is not None:
            await ctx.progress(notification.site, notification_id, await counters(notification_id))
    # Every channel: a sender of a channel with nothing pending completes the notification once all is final.
    return channels


class _Decider:
    """The ledger rows of one notification's people: a decision for each person and channel (each
    distinct set of facts decided once), bursts held back for their digest."""

    def __init__(
        self,
        ctx: NotifyContext,
        notification: Notification,
        policy: SitePolicy,
        channels: Sequence[Channel],
        now: dt.datetime,
    ) -> None:
        self._ctx = ctx
        self._notification = notification
        self._policy = policy
        self._channels = list(channels)
        self._now = now
        self._category = Category(notification.category)
        self._urgency = Urgency(notification.urgency)
        self._gate = BurstGate(ctx.redis, ctx.settings.redis_prefix)
        self._thread = thread_of(self._category, notification.collapse_key)
        self._decisions = Decisions(policy)
        self._by_key: dict[tuple[object, ...], Decision] = {}

    def decide(self, person: PersonFacts, channel: Channel) -> Decision:
        # Keyed without building the full facts: most people share a key, and the key is cheap.
        key = person.decision_key(channel, self._category)
        decision = self._by_key.get(key)
        if decision is None:
            decision = self._by_key[key] = self._decisions(
                person.facts(
                    channel=channel,
                    category=self._category,
                    urgency=self._urgency,
                    created_at=self._notification.created_at,
                    now=self._now,
                )
            )
        return decision

    async def rows_for(self, people: list[UUID]) -> list[tuple[object, ...]]:
        notification, now = self._notification, self._now
        facts = await load_facts(
            self._ctx.directory,
            notification.site,
            self._policy.timezone,
            people,
            addresses=(),
            channels=self._channels,  # an announcement by push alone reads no contact points, by SMS no devices
            promotional=decides_promotions(self._category, notification.kind),
        )
        decisions = {(p, c): self.decide(facts[p], c) for p in people for c in self._channels}
        for channel in self._channels:
            minutes = bursts_apply(self._policy, self._category, self._urgency, channel)
            if minutes:
                sending = [(p, channel) for p in people if decisions[(p, channel)].action is Action.SEND]
                for key, until in (await self._gate.hold_until(sending, self._thread, minutes, now)).items():
                    decisions[key] = Decision(Action.DEFER, Reason.DIGEST, defer_until=until)
        site, notification_id = notification.site, notification.id
        return [
            (
                new_row_id(),
                site,
                notification_id,
                person_id,
                str(channel),
                STATUS[decision.action],
                str(decision.reason) if decision.reason else None,
                decision.defer_until,
                0,
                now,
                now,
            )
            for (person_id, channel), decision in decisions.items()
        ]


STATUS = {Action.SEND: "pending", Action.DEFER: "deferred", Action.SUPPRESS: "suppressed"}


async def _record_part_done(notification_id: UUID, part: int, people: int, now: dt.datetime) -> None:
    conflict = " ON CONFLICT DO NOTHING"
    await NotificationPart.raw(
        "INSERT INTO notification_part (id, notification, part, people, finished_at) VALUES ({}, {}, {}, {}, {})"
        + conflict,
        uuid4(),
        notification_id,
        part,
        people,
        now,
    )


async def _finish_expansion(notification_id: UUID, parts: int, now: dt.datetime) -> bool:
    """When every part is done: `sending`, with the audience's size. True for the one caller that moved it."""
    rows = await NotificationPart.raw(
        "SELECT COUNT(*) AS n, COALESCE(SUM(people), 0) AS people FROM notification_part WHERE notification = {}",
        notification_id,
    )
    if not rows or int(rows[0]["n"]) < parts:
        return False
    moved = await Notification.raw(
        "UPDATE notification SET status = 'sending', targeted = {}, expanded_at = {} "
        "WHERE id = {} AND status = 'expanding' RETURNING id",
        int(rows[0]["people"]),
        now,
        notification_id,
    )
    return bool(moved)
