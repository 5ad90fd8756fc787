"""arq jobs of the notification pipeline. Thin: locks, then calls into notifications/.

The ledger is the truth; the queue only says "look at this now". `notify_tick` re-derives
everything that should be running from the database every few seconds (due schedules, due
deferrals, in-doubt sends, stalled expansions), so a worker killed at any point loses
nothing: its work is picked up again by whichever worker ticks next.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any, cast
from uuid import UUID

from arq.connections import ArqRedis

from app.config import Settings
from notifications import digest, fanout, recovery, sender, service
from notifications.categories import Channel
from notifications.context import NotifyContext
from notifications.lanes import JOB_EXPIRY, Lane, lane_of, queue_placement
from schema.notifications import Notification

logger = logging.getLogger("opshub.notify.jobs")

_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


def _lock_key(settings: Settings, name: str) -> str:
    return f"{settings.redis_prefix}notify:lock:{name}"


@asynccontextmanager
async def exclusive(ctx: dict[str, Any], name: str) -> AsyncIterator[bool]:
    """One holder per name across workers; expires by itself if the holder dies."""
    settings: Settings = ctx["settings"]
    redis: ArqRedis = ctx["redis"]
    key, token = _lock_key(settings, name), secrets.token_hex(8)
    ttl = max(2, settings.notify_claim_lease_seconds)
    acquired = bool(await redis.set(key, token, nx=True, ex=ttl))
    try:
        yield acquired
    finally:
        if acquired:
            await cast(Awaitable[Any], redis.eval(_RELEASE, 1, key, token))


async def lane_of_notification(notification_id: UUID) -> Lane:
    row = (
        await Notification.select(Notification.category, Notification.urgency)
        .where(Notification.id == notification_id)
        .first()
    )
    return lane_of(row["category"], row["urgency"]) if row is not None else Lane.BULK


async def enqueue_send(
    ctx: dict[str, Any], notification_id: UUID, channel: str, lane: Lane | None = None, senders: int = 1
) -> None:
    """Ask `senders` workers at once to send this channel (each takes a sender slot of its own)."""
    lane = lane or await lane_of_notification(notification_id)
    for _ in range(max(1, senders)):
        await ctx["redis"].enqueue_job("notify_send", str(notification_id), channel, **queue_placement(lane))


async def enqueue_expand(redis: ArqRedis, notification_id: UUID, lane: Lane | None = None) -> None:
    lane = lane or await lane_of_notification(notification_id)
    await redis.enqueue_job("notify_expand", str(notification_id), **queue_placement(lane))


def senders_for(settings: Settings, lane: Lane) -> int:
    """Bulk announcements are sent by several workers at once; an urgent message to a flat needs one."""
    return settings.notify_senders_per_channel if lane is Lane.BULK else 1


async def notify_expand(ctx: dict[str, Any], notification_id: str) -> int:
    """Plan the expansion and hand each part not yet done to whichever worker is free."""
    notify: NotifyContext = ctx["notify"]
    async with exclusive(ctx, f"expand:{notification_id}") as mine:
        if not mine:
            return 0
        planned = await fanout.plan(notify, UUID(notification_id))
    if planned is None:
        return 0
    lane = await lane_of_notification(UUID(notification_id))
    if len(planned.todo) == 1:  # one part: expand it here rather than through the queue again
        await notify_expand_part(ctx, notification_id, planned.todo[0], lane)
        return 1
    for part in planned.todo:
        await ctx["redis"].enqueue_job("notify_expand_part", notification_id, part, **queue_placement(lane))
    return len(planned.todo)


# Parts one worker expands at a time. Expanding is mostly this process's own CPU, so a second part here
# would only wait for the first; handed back to the queue, it goes to a worker with a core to spare.
PARTS_AT_ONCE = 1


class PartsHere:
    """The parts this worker process is expanding now: one object for the whole process, put in arq's
    context at start-up. arq gives each job a copy of that context, so a count kept in a job's own context
    was never seen by the next job: one worker that took a township's parts at once expanded them all at
    once, while the others stayed idle."""

    def __init__(self) -> None:
        self.expanding = 0


def parts_here(ctx: dict[str, Any]) -> PartsHere:
    """This process's :class:`PartsHere` (a job run by hand, outside a worker, gets one of its own)."""
    return cast(PartsHere, ctx.setdefault("parts_here", PartsHere()))


# How long a handed-back part waits in the queue, so another worker's look finds it first.
HAND_BACK_SECONDS = 0.2


async def notify_expand_part(ctx: dict[str, Any], notification_id: str, part: int, lane: Lane | None = None) -> int:
    notify: NotifyContext = ctx["notify"]
    lane = lane or await lane_of_notification(UUID(notification_id))
    here = parts_here(ctx)
    if lane is Lane.BULK and here.expanding >= PARTS_AT_ONCE:
        # arq hands a worker every due job it can run; share a big audience's parts with the others.
        later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=HAND_BACK_SECONDS)
        await ctx["redis"].enqueue_job(
            "notify_expand_part", notification_id, part, _defer_until=later, _expires=JOB_EXPIRY
        )
        return 0
    here.expanding += 1
    try:
        senders = senders_for(notify.settings, lane)

        async def start_sending(channels: list[Channel]) -> None:
            for channel in channels:
                await enqueue_send(ctx, UUID(notification_id), str(channel), lane, senders)

        async with exclusive(ctx, f"expand:{notification_id}:{part}") as mine:
            if not mine:
                return 0
            channels = await fanout.expand_part(notify, UUID(notification_id), part, first_rows=start_sending)
    finally:
        here.expanding -= 1
    logger.info(
        "expanded part %d of notification %s",
        part,
        notification_id,
        extra={"event": "part_expanded", "notification": notification_id, "part": part},
    )
    await start_sending(channels)  # the rest of the part's rows, and a sender to complete it
    return len(channels)


async def notify_send(ctx: dict[str, Any], notification_id: str, channel: str) -> int:
    """Send pending rows in one of the channel's sender slots, for at most a share of the claim lease;
    what is left goes back to the queue, so no job outlives its lock or holds a worker for hours."""
    notify: NotifyContext = ctx["notify"]
    for slot in range(notify.settings.notify_senders_per_channel):
        async with exclusive(ctx, f"send:{notification_id}:{channel}:{slot}") as mine:
            if not mine:
                continue  # another worker sends in this slot; claims keep the two apart
            budget = notify.settings.notify_claim_lease_seconds / 2
            summary = await sender.send_pending(notify, UUID(notification_id), Channel(channel), budget_seconds=budget)
        logger.info(
            "sent %d rows of notification %s on %s",
            summary.sent,
            notification_id,
            channel,
            extra={"event": "rows_sent", "notification": notification_id, "channel": channel, "rows": summary.sent},
        )
        if summary.out_of_time:
            await enqueue_send(ctx, UUID(notification_id), channel)
        else:
            await enqueue_retry(ctx, UUID(notification_id), channel)
        return summary.sent
    return 0


async def enqueue_retry(ctx: dict[str, Any], notification_id: UUID, channel: str) -> None:
    """After a sender has let go of its slot: rows left waiting for a backoff or a provider's Retry-After get a
    job at the time they come due, rather than waiting for the tick's stalled-notification sweep (a claim
    lease later); rows due already get one now.

    Rows are due already when they were written after the sender's last claim found nothing, by a part
    expanded on another worker: the send job that part asked for found this sender's slot taken and left
    (another sender had it), and without this they waited for the sweep."""
    due = await sender.next_attempt_at(notification_id, Channel(channel))
    if due is None:
        return
    if due <= ctx["notify"].clock():
        await enqueue_send(ctx, notification_id, channel)
        return
    await ctx["redis"].enqueue_job(
        "notify_send",
        str(notification_id),
        channel,
        _job_id=f"notify_send:{notification_id}:{channel}:{due.timestamp():.3f}",
        _defer_until=due,
        _expires=JOB_EXPIRY,
    )


async def notify_tick(ctx: dict[str, Any], now: dt.datetime | None = None) -> dict[str, int]:
    notify: NotifyContext = ctx["notify"]
    now = now or notify.clock()
    lease = dt.timedelta(seconds=notify.settings.notify_claim_lease_seconds)
    due = await service.due_notifications(now)
    stalled = await service.stalled("expanding", now - lease)
    for notification_id in [*due, *stalled]:
        await enqueue_expand(ctx["redis"], notification_id)
    released = await digest.release_due(notify.directory, now)
    for notification_id in released.touched:
        await sender.finish_if_done(notify, notification_id)
    wake: set[tuple[UUID, str]] = set(released.to_send)
    reconciled = await recovery.reconcile_in_doubt(notify, now)
    wake |= set(reconciled.to_send)
    for notification_id in await service.stalled("sending", now - lease):
        wake |= {(notification_id, str(c)) for c in await sender.pending_channels(notification_id)}
        await sender.finish_if_done(notify, notification_id)
    for notification_id, channel in sorted(wake, key=str):
        await enqueue_send(ctx, notification_id, channel)
    return {
        "expand": len(due) + len(stalled),
        "send": len(wake),
        "in_doubt": reconciled.released,
        "digests": released.digests,
    }
