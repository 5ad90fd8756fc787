"""Expanding a notification into ledger rows: the audience in chunks, one decision per person and channel.

Safe to re-run at any point (arq runs jobs at least once; a worker may die mid-way): people
who already have rows are skipped and inserts ignore conflicts.
"""

from __future__ import annotations

import logging
from uuid import UUID, uuid4

import msgspec

from notifications.audience import Audience, resolve_audience
from notifications.categories import Category, Channel, Urgency
from notifications.context import NotifyContext
from notifications.digest import BurstGate, bursts_apply, thread_of
from notifications.facts import load_facts, load_site_policy
from notifications.ledger import counters, existing_people, insert_rows
from notifications.policy import Action, Decision, Reason, decide
from schema.jsonvalue import as_dict, as_list
from schema.notifications import Notification

logger = logging.getLogger("opshub.notify.fanout")
CHUNK = 1000


async def expand(ctx: NotifyContext, notification_id: UUID) -> list[Channel]:
    """Create the ledger rows of a due notification; returns the channels that have rows to send."""
    notification = await Notification.objects().where(Notification.id == notification_id).first()
    if notification is None or notification.status in ("cancelled", "completed", "draft"):
        return []
    now = ctx.clock()
    if notification.scheduled_at is not None and notification.scheduled_at > now:
        return []  # the dispatcher cron picks it up when it is due
    await Notification.update({Notification.status: "expanding"}).where(
        (Notification.id == notification_id) & Notification.status.is_in(["scheduled", "expanding"])
    )
    policy = await load_site_policy(notification.site)
    channels = [Channel(c) for c in as_list(notification.channels)]
    category, urgency = Category(notification.category), Urgency(notification.urgency)
    audience = msgspec.convert(as_dict(notification.audience), Audience)
    gate = BurstGate(ctx.redis, ctx.settings.redis_prefix)
    thread = thread_of(category, notification.collapse_key)
    people = await resolve_audience(notification.site, audience)
    for start in range(0, len(people), CHUNK):
        chunk = people[start : start + CHUNK]
        done = await existing_people(notification_id, chunk)
        todo = [p for p in chunk if p not in done]
        facts = await load_facts(ctx.directory, notification.site, policy.timezone, todo)
        rows = []
        decisions: dict[tuple[UUID, Channel], Decision] = {}
        for person_id in todo:
            for channel in channels:
                decisions[(person_id, channel)] = decide(
                    facts[person_id].facts(
                        channel=channel,
                        category=category,
                        urgency=urgency,
                        created_at=notification.created_at,
                        now=now,
                    ),
                    policy,
                )
        for channel in channels:
            minutes = bursts_apply(policy, category, urgency, channel)
            sending = [(p, channel) for p in todo if decisions[(p, channel)].action is Action.SEND]
            for key, until in (await gate.hold_until(sending, thread, minutes, now)).items():
                decisions[key] = Decision(Action.DEFER, Reason.DIGEST, defer_until=until)
        for person_id in todo:
            for channel in channels:
                decision = decisions[(person_id, channel)]
                status = {Action.SEND: "pending", Action.DEFER: "deferred", Action.SUPPRESS: "suppressed"}[
                    decision.action
                ]
                rows.append(
                    (
                        uuid4(),
                        notification.site,
                        notification_id,
                        person_id,
                        str(channel),
                        status,
                        str(decision.reason) if decision.reason else None,
                        decision.defer_until,
                        0,
                        now,
                        now,
                    )
                )
        await insert_rows(rows)
        if ctx.progress is not None:
            await ctx.progress(notification.site, notification_id, await counters(notification_id))
    await Notification.update(
        {Notification.status: "sending", Notification.targeted: len(people), Notification.expanded_at: now}
    ).where((Notification.id == notification_id) & (Notification.status == "expanding"))
    logger.info("notification %s expanded to %d people on %s", notification_id, len(people), channels)
    return channels
