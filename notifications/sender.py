"""Sending the pending ledger rows of one notification on one channel.

Each batch is claimed atomically, decided again with the current consent and DND (so a
withdrawal between enqueue and send suppresses the send), sent through the channel's
adapter within the shared rate limit, and its outcomes recorded under the claim.
Permanent provider failures update the person's record: an opted-out number, an invalid
number or address, a dead push token.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import time
from collections.abc import AsyncIterator, Sequence
from uuid import UUID

import msgspec

from app.observability.metrics import count_provider_errors
from notifications import digest
from notifications.categories import DEFAULT_TTL_SECONDS, Category, Channel, Urgency
from notifications.channels.base import ChannelAdapter, Outcome, Outgoing, Recipient
from notifications.contacts import mark_contact
from notifications.context import NotifyContext
from notifications.facts import CONTACT_KIND_OF, PersonFacts, load_facts, load_site_policy, open_addresses
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
    renew_claim,
)
from notifications.policy import Action, Decision, Reason, SitePolicy, decide
from notifications.ratelimit import RateLimiter
from schema.jsonvalue import as_dict
from schema.notifications import Delivery, Notification
from schema.tables import Device

logger = logging.getLogger("opshub.notify.sender")
BATCH = {Channel.PUSH: 500, Channel.IN_APP: 500, Channel.EMAIL: 100, Channel.SMS: 200, Channel.WHATSAPP: 200}
PROGRESS_INTERVAL_SECONDS = 0.25
CLAIM_SECONDS_UNDER_LIMIT = 5
# Sends per rate check on a channel without a rate (a whole batch: FCM takes 500 per call); a provider's pause
# (429) stops the batches after it.
UNLIMITED_CHUNK = 500
# Rows a provider throttled (429) come due again after its Retry-After; a sender waits for them itself
# when that is this soon, rather than leaving them to the next job.
THROTTLE_WAIT_IN_JOB_SECONDS = 30.0


class SendSummary(msgspec.Struct):
    claimed: int = 0
    sent: int = 0
    failed: int = 0
    retried: int = 0
    suppressed: int = 0
    deferred: int = 0
    throttled: int = 0  # sends the provider refused for its rate (429), to be tried again after Retry-After
    out_of_time: bool = False  # stopped at its time budget with rows still to send


def backoff(attempts: int) -> dt.timedelta:
    """How long a row waits after its `attempts`-th transient failure: 5 s, 10 s, 20 s ... up to 300 s."""
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


async def send_pending(
    ctx: NotifyContext, notification_id: UUID, channel: Channel, budget_seconds: float | None = None
) -> SendSummary:
    """Send every due pending row of this notification on this channel, batch by batch.

    Rows the provider throttled come due again after its Retry-After; when that is soon the sender
    waits and sends them itself, so a throttled announcement keeps going without waiting for a tick.
    With a budget, no batch is claimed after it has run out (``summary.out_of_time``: call again).
    """
    summary = SendSummary()
    deadline = time.monotonic() + budget_seconds if budget_seconds is not None else None
    while True:
        claimed_before = summary.claimed
        await _send_batches(ctx, notification_id, channel, summary, deadline)
        if summary.out_of_time:
            break
        if not summary.throttled or summary.claimed == claimed_before:
            break  # nothing throttled, or a pass that found nothing due (or a clock that does not move)
        due = await next_attempt_at(notification_id, channel)
        wait = (due - ctx.clock()).total_seconds() if due is not None else None
        if wait is None or wait > THROTTLE_WAIT_IN_JOB_SECONDS:
            break
        if deadline is not None and time.monotonic() + wait > deadline:
            summary.out_of_time = True
            break
        await asyncio.sleep(max(0.0, wait))
    await finish_if_done(ctx, notification_id)
    return summary


async def next_attempt_at(notification_id: UUID, channel: Channel) -> dt.datetime | None:
    """When the earliest pending row of this notification and channel may be tried again (None: no such row)."""
    row = (
        await Delivery.select(Delivery.next_attempt_at)
        .where(
            (Delivery.notification == notification_id)
            & (Delivery.channel == str(channel))
            & (Delivery.status == "pending")
        )
        .order_by(Delivery.next_attempt_at)
        .first()
    )
    if row is None:
        return None
    due = row["next_attempt_at"]
    if due is None:
        return dt.datetime.now(dt.UTC)
    return due if due.tzinfo is not None else due.replace(tzinfo=dt.UTC)


class _Batch(msgspec.Struct):
    """A claimed batch, decided: what to send, to whom, with what text."""

    token: str
    claimed_at: dt.datetime  # by ctx.clock(), as the ledger records it
    claimed: list[Claimed]
    to_send: list[Claimed]
    facts: dict[UUID, PersonFacts]
    message: Outgoing


# Batches in flight at once per sender: while one waits for its slowest provider answers, the next is
# already sending, and the one after it is being claimed and decided (database work beside provider calls).
SENDING_BATCHES = 2


async def _send_batches(
    ctx: NotifyContext, notification_id: UUID, channel: Channel, summary: SendSummary, deadline: float | None
) -> None:
    notification = await Notification.objects().where(Notification.id == notification_id).first()
    if notification is None:
        return
    adapter = ctx.providers.adapters[channel]
    limiter = ctx.providers.limits.get(channel)
    policy = await load_site_policy(notification.site)
    lane = lane_of(Category(notification.category), Urgency(notification.urgency))
    ready: asyncio.Queue[_Batch | None] = asyncio.Queue(maxsize=1)
    keepers: dict[str, _ClaimKeeper] = {}  # by claim token, from the claim until the outcomes are recorded
    last_progress = 0.0

    async def claim_and_decide() -> None:
        while True:
            if deadline is not None and time.monotonic() >= deadline:
                summary.out_of_time = True
                break
            if limiter is not None:
                await limiter.refresh()  # the platform operator may change the rate while we send
            size = claim_size(channel, limiter, lane, ctx.settings.notify_claim_lease_seconds)
            batch = await _prepare(ctx, notification, channel, policy, size, summary)
            if batch is None:
                break
            keepers[batch.token] = _ClaimKeeper(ctx, batch)
            await ready.put(batch)
        for _ in range(SENDING_BATCHES):
            await ready.put(None)

    async def send_and_record() -> None:
        nonlocal last_progress
        while (batch := await ready.get()) is not None:
            keeper = keepers[batch.token]
            async for outcomes in _send_within_limit(ctx, adapter, limiter, lane, channel, batch, keeper):
                await _record_outcomes(ctx, channel, notification.site, batch, outcomes, summary)
            await keepers.pop(batch.token).stop()
            if ctx.progress is not None and time.monotonic() - last_progress >= PROGRESS_INTERVAL_SECONDS:
                last_progress = time.monotonic()
                await ctx.progress(notification.site, notification_id, await counters(notification_id))

    # A failure in any of them cancels the others; rows they held stay claimed until the lease ends and
    # recovery settles them (notifications.recovery), as for a worker that died.
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(claim_and_decide())
            for _ in range(SENDING_BATCHES):
                group.create_task(send_and_record())
    finally:
        for left in keepers.values():
            await left.stop()


async def _prepare(
    ctx: NotifyContext,
    notification: Notification,
    channel: Channel,
    policy: SitePolicy,
    size: int,
    summary: SendSummary,
) -> _Batch | None:
    """Claim a batch and decide each row again with today's consent and DND; the rows not to send are
    recorded at once. None when nothing is due."""
    now = ctx.clock()
    claim = await claim_batch(notification.id, channel, size, now)
    token, claimed, cancelled = claim.token, claim.rows, claim.cancelled
    if not claimed:
        return None
    summary.claimed += len(claimed)
    people = [c.person_id for c in claimed]
    category, urgency = Category(notification.category), Urgency(notification.urgency)
    facts = await load_facts(
        ctx.directory,
        notification.site,
        policy.timezone,
        people,
        # The contact value the channel sends to is the only one read for a batch, and only of the people it is
        # sent to: it stays sealed (encrypted) until they are decided.
        addresses=(),
        sealed=(CONTACT_KIND_OF[channel],) if channel in CONTACT_KIND_OF else (),
        channels=(channel,),
        promotional=digest.decides_promotions(category, notification.kind),
    )
    message = outgoing_of(notification)
    # One moment for the whole batch: people with equal decision keys get equal decisions, and most share one.
    by_key: dict[tuple[object, ...], Decision] = {}
    to_send: list[Claimed] = []
    suppressed: dict[UUID, str | None] = {}
    deferred: dict[UUID, dt.datetime] = {}
    deferred_reason: dict[UUID, str | None] = {}
    for row in claimed:
        if cancelled:
            suppressed[row.delivery_id] = str(Reason.CANCELLED)
            continue
        person = facts[row.person_id]
        key = person.decision_key(channel, category)
        decision = by_key.get(key)
        if decision is None:
            row_facts = person.facts(
                channel=channel, category=category, urgency=urgency, created_at=notification.created_at, now=now
            )
            if notification.kind == digest.DIGEST_KIND:
                # A digest's consent is each item's own (still_wanted), not that of the category it travels as.
                row_facts = msgspec.structs.replace(row_facts, consented=True)
            decision = by_key[key] = decide(row_facts, policy)
        if decision.action is Action.SEND and notification.kind == digest.DIGEST_KIND:
            # One row per digest: its text is what is still wanted of its items now.
            text = await digest.still_wanted(notification, facts[row.person_id], channel, policy, now)
            if text is None:
                suppressed[row.delivery_id] = str(Reason.NO_CONSENT)
                continue
            message = msgspec.structs.replace(message, title=text[0], body=text[1])
        if decision.action is Action.SEND:
            to_send.append(row)
        elif decision.action is Action.DEFER:
            assert decision.defer_until is not None
            deferred[row.delivery_id] = decision.defer_until
            deferred_reason[row.delivery_id] = str(decision.reason)
        else:
            suppressed[row.delivery_id] = str(decision.reason)
    facts = await open_addresses(ctx.directory, notification.site, channel, facts, (row.person_id for row in to_send))
    await record_suppressed(token, suppressed, now)
    await record_deferred(token, deferred, deferred_reason, now)
    summary.suppressed += len(suppressed)
    summary.deferred += len(deferred)
    return _Batch(token=token, claimed_at=now, claimed=claimed, to_send=to_send, facts=facts, message=message)


def claim_size(channel: Channel, limiter: RateLimiter | None, lane: Lane, lease_seconds: float) -> int:
    """Rows to claim at once. Under a provider rate, a few seconds' worth (at most a quarter of the claim
    lease): claimed rows wait in `sending` for their turn, where no other worker can take them and where a
    crash leaves them in doubt until recovery; the fewer, the better shared and the less to reconcile."""
    if limiter is None or limiter.unlimited:
        return BATCH[channel]
    seconds = min(CLAIM_SECONDS_UNDER_LIMIT, lease_seconds / 4)
    return max(1, min(BATCH[channel], math.floor(limiter.chunk(lane) * 4 * seconds)))


async def _send_within_limit(
    ctx: NotifyContext,
    adapter: ChannelAdapter,
    limiter: RateLimiter | None,
    lane: Lane,
    channel: Channel,
    batch: _Batch,
    keeper: _ClaimKeeper,
) -> AsyncIterator[list[Outcome]]:
    """Send a batch within the channel's rate; yields outcomes to record. Under a rate each paced chunk's
    outcomes are yielded as it is sent (a batch is seconds of sending: the ledger and the control room
    follow it, and a crash leaves less in doubt); without one, the whole batch's at once.

    Only the rows the claim still holds are sent (``_ClaimKeeper.held``). Its keeper renews it all along, but
    not while the database is away: a batch may then have outlived its lease, and recovery may have given
    its rows to another sender. Those are not ours any more."""
    message, rows, facts = batch.message, batch.to_send, batch.facts
    recipients = [
        Recipient(
            delivery_id=row.delivery_id,
            person_id=row.person_id,
            address=facts[row.person_id].address(channel),
            push_tokens=facts[row.person_id].push_tokens if channel is Channel.PUSH else (),
        )
        for row in rows
    ]
    if not recipients:
        return

    async def still_held(part: list[Recipient]) -> list[Recipient]:
        held = await keeper.held()
        return [r for r in part if r.delivery_id in held]

    if limiter is None:
        if recipients := await still_held(recipients):
            yield await adapter.send(message, recipients)
        return
    outcomes: list[Outcome] = []
    step = UNLIMITED_CHUNK if limiter.unlimited else limiter.chunk(lane)
    for start in range(0, len(recipients), step):
        part = recipients[start : start + step]
        await limiter.acquire(len(part), lane)
        if not (part := await still_held(part)):
            continue
        answers = await adapter.send(message, part)
        waits = [o.retry_after_seconds for o in answers if o.retry_after_seconds is not None]
        if waits:
            # The provider refused for its rate: every sender of this channel waits as long as it asked.
            await limiter.pause(max(waits))
        if limiter.unlimited:
            outcomes += answers
        else:
            yield answers
    if outcomes:
        yield outcomes


class _ClaimKeeper:
    """Keeps a batch's claim from the moment it is taken until its outcomes are recorded, renewing it every
    third of the lease, and tells the sender which rows are still its own to send.

    A claimed batch waits for a free sender, then for the rate limiter, then for its provider, and on a
    loaded machine any of these can outlast the lease. The sender is alive all that time, so its rows are
    not abandoned: recovery must take only those of a sender that stopped. Without this, recovery gave a
    live sender's rows back; they were claimed again (a second attempt towards MAX_ATTEMPTS each time), and
    pushes, which the provider cannot be asked about, were sent again.

    Before each provider call the sender asks :meth:`held`. A renewal less than a third of a lease old
    answers it: recovery takes only rows whose claim is older than a whole lease, so none of those can
    have gone. Otherwise it renews first. (Renewing before every call rewrote every row of every batch once
    more, a third of the ledger's writes during a fan-out.)"""

    def __init__(self, ctx: NotifyContext, batch: _Batch) -> None:
        self._ctx = ctx
        self._token = batch.token
        self._interval = dt.timedelta(seconds=ctx.settings.notify_claim_lease_seconds / 3)
        self._held = {row.delivery_id for row in batch.to_send}
        self._renewed_at = batch.claimed_at
        self._task = asyncio.create_task(self._keep())

    async def held(self) -> set[UUID]:
        """The rows still ours to send; renews the claim first unless it was renewed a moment ago."""
        if self._ctx.clock() - self._renewed_at >= self._interval:
            await self._renew()
        return self._held

    async def _renew(self) -> None:
        now = self._ctx.clock()
        self._held = await renew_claim(self._token, self._held, now)
        self._renewed_at = now

    async def _keep(self) -> None:
        while True:
            due = self._renewed_at + self._interval - self._ctx.clock()
            await asyncio.sleep(max(due.total_seconds(), 0.0))
            try:
                await self._renew()
            except Exception:  # the database is away: recovery may take the rows, which it handles
                logger.warning("could not renew claim %s", self._token)
                await asyncio.sleep(self._interval.total_seconds())
                continue
            if not self._held:
                return  # every row recorded, or given back

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)  # its cancellation, not ours


async def _record_outcomes(
    ctx: NotifyContext,
    channel: Channel,
    site_id: UUID,
    batch: _Batch,
    outcomes: Sequence[Outcome],
    summary: SendSummary,
) -> None:
    token, claimed, facts = batch.token, batch.claimed, batch.facts
    now = ctx.clock()
    await count_provider_errors(ctx.redis, ctx.settings, channel, outcomes)
    attempts = {row.delivery_id: row.attempts for row in claimed}
    person_of = {row.delivery_id: row.person_id for row in claimed}
    sent: dict[UUID, str | None] = {}
    failed: dict[UUID, str | None] = {}
    retry: dict[UUID, str | None] = {}
    retry_at: dict[UUID, dt.datetime] = {}
    throttled: set[UUID] = set()
    for outcome in outcomes:
        if outcome.status == "sent":
            sent[outcome.delivery_id] = outcome.provider_id
        elif outcome.status == "retry" and outcome.retry_after_seconds is not None:
            # Refused for the provider's rate (429 with Retry-After): not a failure of this message. It is
            # tried again when the provider said, and the attempt is not counted; the TTL check at each
            # claim ends it as expired if the provider never lets it through in time.
            retry[outcome.delivery_id] = outcome.provider_code
            retry_at[outcome.delivery_id] = now + dt.timedelta(seconds=outcome.retry_after_seconds)
            throttled.add(outcome.delivery_id)
        elif outcome.status == "retry" and attempts[outcome.delivery_id] < MAX_ATTEMPTS:
            retry[outcome.delivery_id] = outcome.provider_code
            retry_at[outcome.delivery_id] = now + backoff(attempts[outcome.delivery_id])
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
    # Each row at its own time: its own attempt count, or the Retry-After its provider answer named.
    for when, was_throttled in sorted({(at, i in throttled) for i, at in retry_at.items()}):
        ids = {i: retry[i] for i, at in retry_at.items() if at == when and (i in throttled) == was_throttled}
        await record_retry(token, ids, when, now, count_attempt=not was_throttled)
    summary.sent += len(sent)
    summary.failed += len(failed)
    summary.retried += len(retry) - len(throttled)
    summary.throttled += len(throttled)


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
