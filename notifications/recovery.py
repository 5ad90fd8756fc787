"""Putting the pipeline back on its feet after a crash, from the ledger alone.

A row left in `sending` past the claim lease was claimed by a sender that never reported
back. Before it may be sent again we ask the provider whether it arrived (Twilio can list
messages to a number); if it did, the row becomes `sent`, otherwise `pending` again.
Providers that cannot be asked (FCM, SMTP) are retried: the push tag and the e-mail
Message-ID are the delivery id, so a device or mail client shows a repeat as one.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from uuid import UUID

import msgspec

from notifications.categories import Channel
from notifications.channels.base import Recipient, Reconciling
from notifications.context import NotifyContext
from notifications.facts import load_facts, load_site_policy
from notifications.ledger import in_doubt, record_sent, release_claim
from notifications.sender import outgoing_of
from schema.notifications import Notification

logger = logging.getLogger("opshub.notify.recovery")


class Reconciled(msgspec.Struct):
    found_sent: int = 0
    released: int = 0
    to_send: list[tuple[UUID, str]] = msgspec.field(default_factory=list)


async def reconcile_in_doubt(ctx: NotifyContext, now: dt.datetime | None = None) -> Reconciled:
    now = now or ctx.clock()
    result = Reconciled()
    lease_ended = now - dt.timedelta(seconds=ctx.settings.notify_claim_lease_seconds)
    rows = await in_doubt(lease_ended)
    groups: dict[tuple[UUID, str, str], list[dict[str, object]]] = defaultdict(list)
    for row in rows:
        key = (UUID(str(row["notification"])), str(row["channel"]), str(row["claim_token"]))
        groups[key].append(row)
    for (notification_id, channel_name, token), members in groups.items():
        channel = Channel(channel_name)
        notification = await Notification.objects().where(Notification.id == notification_id).first()
        if notification is None:
            continue
        adapter = ctx.providers.adapters[channel]
        found: dict[UUID, str | None] = {}
        if isinstance(adapter, Reconciling):
            policy = await load_site_policy(notification.site)
            people = [UUID(str(m["person"])) for m in members]
            facts = await load_facts(ctx.directory, notification.site, policy.timezone, people)
            message = outgoing_of(notification)
            for member in members:
                person_id, delivery_id = UUID(str(member["person"])), UUID(str(member["id"]))
                claimed_at = member["claimed_at"]
                since = claimed_at.timestamp() if isinstance(claimed_at, dt.datetime) else 0.0
                recipient = Recipient(
                    delivery_id=delivery_id, person_id=person_id, address=facts[person_id].address(channel)
                )
                provider_id = await adapter.find_accepted(message, recipient, since)
                if provider_id is not None:
                    found[delivery_id] = provider_id
        await record_sent(token, found, now)
        unsent = [UUID(str(m["id"])) for m in members if UUID(str(m["id"])) not in found]
        # Asking the provider takes a while, and a sender that was only slow may have renewed its claim and
        # sent meanwhile (not found above: it had not gone yet). Only rows whose claim is still old go back.
        await release_claim(token, unsent, now, claimed_before=lease_ended)
        result.found_sent += len(found)
        result.released += len(unsent)
        if unsent:
            result.to_send.append((notification_id, channel_name))
    if rows:
        logger.info("in-doubt sends: %d found sent at the provider, %d released", result.found_sent, result.released)
    return result
