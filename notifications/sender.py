"""Sending the pending ledger rows of one notification on one channel.

Each batch is claimed atomically, decided again with the current consent and DND (so a
withdrawal between enqueue and send suppresses the send), sent through the channel's
adapter within the shared rate limit, and its outcomes recorded under the claim.
Permanent provider failures update the person's record: an opted-out number, an invalid
number or address, a dead push token.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Sequence
from uuid import UUID

import msgspec

from app.observability.metrics import count_provider_errors
from notifications.categories import DEFAULT_TTL_SECONDS, Category, Channel, Urgency
from notifications.channels.base import ChannelAdapter, Outcome, Outgoing, Recipient
from notifications.contacts import mark_contact
from notifications.context import NotifyContext
from notifications.facts import PersonFacts, load_facts, load_site_policy
from notifications.lanes import Lane, lane_of
from notifications.ledger import (
    MAX_ATTEMPTS,
    Claimed,
    claim_batch,
    counters,
    open_rows,
    record_deferred,
    record_failed,
    record_retry,
    record_sent,
    record_suppressed,
)
from notifications.policy import Action, Reason, decide
from notifications.ratelimit import RateLimiter
from schema.jsonvalue import as_dict
from schema.notifications import Delivery, Notification
from schema.tables import Device

logger = logging.getLogger("opshub.notify.sender")
BATCH = {Channel.PUSH: 500, Channel.IN_APP: 500, Channel.EMAIL: 100, Channel.SMS: 200, Channel.WHATSAPP: 200}
PROGRESS_INTERVAL_SECONDS = 0.25
CLAIM_SECONDS_UNDER_LIMIT = 5


class SendSummary(msgspec.Struct):
    claimed: int = 0
    sent: int = 0
    failed: int = 0
    retried: int = 0
    suppressed: int = 0
    deferred: int = 0


def backoff(attempts: int) -> dt.timedelta:
    return dt.timedelta(seconds=min(300, 2 ** max(0, attempts - 1) * 5))


def outgoing_of(notification: Notification) -> Outgoing:
    category = Category(notification.category)
    return Outgoing(
        notification_id=notification.id,
        category=str(category),
        urgency=notification.urgency,
        title=notification.title,
        body=notification.body,
        data={str(k): str(v) for k, v in as_dict(notification.data).items()},
        collapse_key=notification.collapse_key,
        ttl_seconds=DEFAULT_TTL_SECONDS[category],
    )


async def send_pending(ctx: NotifyContext, notification_id: UUID, channel: Channel) -> SendSummary:
    """Send every due pending row of this notification on this channel, batch by batch."""
    summary = SendSummary()
    await _send_batches(ctx, notification_id, channel, summary)
    await finish_if_done(ctx, notification_id)
    return summary


async def _send_batches(ctx: NotifyContext, notification_id: UUID, channel: Channel, summary: SendSummary) -> None:
    notification = await Notification.objects().where(Notification.id == notification_id).first()
    if notification is None:
        return
    adapter = ctx.providers.adapters[channel]
    limiter = ctx.providers.limits.get(channel)
    policy = await load_site_policy(notification.site)
    message = outgoing_of(notification)
    category, urgency = Category(notification.category), Urgency(notification.urgency)
    lane = lane_of(category, urgency)
    batch = claim_size(channel, limiter, lane)
    last_progress = 0.0
    while True:
        now = ctx.clock()
        token, claimed = await claim_batch(notification_id, channel, batch, now)
        if not claimed:
            break
        summary.claimed += len(claimed)
        status = await Notification.select(Notification.status).where(Notification.id == notification_id).first()
        cancelled = status is not None and status["status"] == "cancelled"
        facts = await load_facts(ctx.directory, notification.site, policy.timezone, [c.person_id for c in claimed])
        to_send: list[Claimed] = []
        suppressed: dict[UUID, str | None] = {}
        deferred: dict[UUID, dt.datetime] = {}
        deferred_reason: dict[UUID, str | None] = {}
        for row in claimed:
            if cancelled:
                suppressed[row.delivery_id] = str(Reason.CANCELLED)
                continue
            decision = decide(
                facts[row.person_id].facts(
                    channel=channel, category=category, urgency=urgency, created_at=notification.created_at, now=now
                ),
                policy,
            )
            if decision.action is Action.SEND:
                to_send.append(row)
            elif decision.action is Action.DEFER:
                assert decision.defer_until is not None
                deferred[row.delivery_id] = decision.defer_until
                deferred_reason[row.delivery_id] = str(decision.reason)
            else:
                suppressed[row.delivery_id] = str(decision.reason)
        await record_suppressed(token, suppressed, now)
        await record_deferred(token, deferred, deferred_reason, now)
        summary.suppressed += len(suppressed)
        summary.deferred += len(deferred)

        outcomes = await _send_within_limit(adapter, limiter, lane, message, channel, to_send, facts)
        await _record_outcomes(ctx, token, channel, notification.site, claimed, outcomes, facts, summary)
        if ctx.progress is not None and time.monotonic() - last_progress >= PROGRESS_INTERVAL_SECONDS:
            last_progress = time.monotonic()
            await ctx.progress(notification.site, notification_id, await counters(notification_id))


def claim_size(channel: Channel, limiter: RateLimiter | None, lane: Lane) -> int:
    """Rows to claim at once. Under a provider rate, about five seconds' worth: claimed rows wait in
    `sending` until their turn, and a batch that outlasted the claim lease would look abandoned."""
    if limiter is None or limiter.unlimited:
        return BATCH[channel]
    return max(1, min(BATCH[channel], limiter.chunk(lane) * 4 * CLAIM_SECONDS_UNDER_LIMIT))


async def _send_within_limit(
    adapter: ChannelAdapter,
    limiter: RateLimiter | None,
    lane: Lane,
    message: Outgoing,
    channel: Channel,
    rows: Sequence[Claimed],
    facts: dict[UUID, PersonFacts],
) -> list[Outcome]:
    recipients = [
        Recipient(
            delivery_id=row.delivery_id,
            person_id=row.person_id,
            address=facts[row.person_id].address(channel),
            push_tokens=facts[row.person_id].push_tokens if channel is Channel.PUSH else (),
        )
        for row in rows
    ]
    if limiter is None or limiter.unlimited:
        return await adapter.send(message, recipients) if recipients else []
    outcomes: list[Outcome] = []
    step = limiter.chunk(lane)
    for start in range(0, len(recipients), step):
        part = recipients[start : start + step]
        await limiter.acquire(len(part), lane)
        outcomes += await adapter.send(message, part)
    return outcomes


async def _record_outcomes(
    ctx: NotifyContext,
    token: str,
    channel: Channel,
    site_id: UUID,
    claimed: Sequence[Claimed],
    outcomes: Sequence[Outcome],
    facts: dict[UUID, PersonFacts],
    summary: SendSummary,
) -> None:
    now = ctx.clock()
    await count_provider_errors(ctx.redis, ctx.settings, channel, outcomes)
    attempts = {row.delivery_id: row.attempts for row in claimed}
    person_of = {row.delivery_id: row.person_id for row in claimed}
    sent: dict[UUID, str | None] = {}
    failed: dict[UUID, str | None] = {}
    retry: dict[UUID, str | None] = {}
    for outcome in outcomes:
        if outcome.status == "sent":
            sent[outcome.delivery_id] = outcome.provider_id
        elif outcome.status == "retry" and attempts[outcome.delivery_id] < MAX_ATTEMPTS:
            retry[outcome.delivery_id] = outcome.provider_code
        else:
            failed[outcome.delivery_id] = outcome.provider_code
        if outcome.dead_tokens:
            await Device.delete().where(Device.push_token.is_in(list(outcome.dead_tokens)))
        if outcome.effect in ("opted_out", "invalid_address"):
            person_id = person_of[outcome.delivery_id]
            await mark_contact(
                ctx.directory,
                site_id=site_id,
                person_id=person_id,
                channel=channel,
                effect=outcome.effect,
                address=facts[person_id].address(channel),
                policy_version=ctx.settings.notify_policy_version,
            )
    await record_sent(token, sent, now)
    await record_failed(token, failed, now)
    if retry:
        soonest = max(attempts[i] for i in retry)
        await record_retry(token, retry, now + backoff(soonest), now)
    summary.sent += len(sent)
    summary.failed += len(failed)
    summary.retried += len(retry)


async def finish_if_done(ctx: NotifyContext, notification_id: UUID) -> bool:
    if await open_rows(notification_id):
        return False
    now = ctx.clock()
    finished = (
        await Notification.update({Notification.status: "completed", Notification.completed_at: now})
        .where((Notification.id == notification_id) & (Notification.status == "sending"))
        .returning(Notification.site)
    )
    if finished and ctx.progress is not None:
        await ctx.progress(finished[0]["site"], notification_id, await counters(notification_id))
    return bool(finished)


async def pending_channels(notification_id: UUID) -> list[Channel]:
    rows = (
        await Delivery.select(Delivery.channel)
        .where((Delivery.notification == notification_id) & (Delivery.status == "pending"))
        .distinct()
    )
    return [Channel(r["channel"]) for r in rows]
