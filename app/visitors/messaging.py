"""Sending a pass (code + QR link) to the visitor's phone.

A visitor is usually not a person of the site, so NOTIFY's audience (people) cannot address them.
The smallest clean path: the pass's own ledger row (``visitor_message``, one per pass and channel,
claimed pending -> sending before the provider call) and NOTIFY's own provider adapter for the
channel (same Twilio client, sender, status callback and rate limit). If the number belongs to a
person of the site, the message goes through NOTIFY instead, so that person's consent and
provider opt-out apply exactly as for any other message.
"""

from __future__ import annotations

import datetime as dt
from uuid import UUID

from app.people.directory import cipher_for
from app.visitors.common import VisitorDeps, notify, now_utc
from notifications.audience import Audience
from notifications.categories import Channel, Urgency
from notifications.channels.base import Outgoing, Recipient
from notifications.lanes import Lane
from notifications.providers import Providers
from schema.tables import ContactPoint
from schema.visitors import VisitorMessage, VisitorPass

MAX_ATTEMPTS = 5
CLAIM_LEASE = dt.timedelta(minutes=2)
TITLE = "opshub visitor pass"


async def due_messages(now: dt.datetime) -> list[UUID]:
    rows = await VisitorMessage.select(VisitorMessage.id).where(
        (VisitorMessage.status == "pending")
        | ((VisitorMessage.status == "sending") & (VisitorMessage.claimed_at < now - CLAIM_LEASE))
    )
    return [row["id"] for row in rows]


async def send_pass_message(
    deps: VisitorDeps, providers: Providers, message_id: UUID, now: dt.datetime | None = None
) -> str:
    """Send one pending pass message; returns its status afterwards. Safe to re-run."""
    now = now or now_utc()
    claimed = (
        await VisitorMessage.update(
            {
                VisitorMessage.status: "sending",
                VisitorMessage.claimed_at: now,
                VisitorMessage.attempts: VisitorMessage.attempts + 1,
                VisitorMessage.updated_at: now,
            }
        )
        .where(
            (VisitorMessage.id == message_id)
            & (
                (VisitorMessage.status == "pending")
                | ((VisitorMessage.status == "sending") & (VisitorMessage.claimed_at < now - CLAIM_LEASE))
            )
        )
        .returning(VisitorMessage.site, VisitorMessage.visitor_pass, VisitorMessage.channel, VisitorMessage.attempts)
    )
    if not claimed:
        row = await VisitorMessage.select(VisitorMessage.status).where(VisitorMessage.id == message_id).first()
        return str(row["status"]) if row else "missing"
    claim = claimed[0]
    message = await VisitorMessage.select().where(VisitorMessage.id == message_id).first()
    visitor_pass = (
        await VisitorPass.select(VisitorPass.phone_encrypted, VisitorPass.phone_index)
        .where(VisitorPass.id == claim["visitor_pass"])
        .first()
    )
    if message is None or visitor_pass is None or not visitor_pass["phone_encrypted"] or not message["body_encrypted"]:
        await _finish(message_id, "failed", now, reason="no_address")
        return "failed"
    cipher = cipher_for(deps.settings)
    body = cipher.decrypt(message["body_encrypted"])
    channel = Channel(claim["channel"])
    site_id: UUID = claim["site"]
    person = (
        await ContactPoint.select(ContactPoint.person)
        .where(
            (ContactPoint.site == site_id)
            & (ContactPoint.kind == "mobile")
            & (ContactPoint.value_index == visitor_pass["phone_index"])
        )
        .first()
    )
    if person is not None:
        notification_id = await notify(
            deps,
            site_id=site_id,
            audience=Audience(person_ids=[person["person"]]),
            title=TITLE,
            body=body,
            key=f"visitor:pass:{claim['visitor_pass']}:{channel}",
            urgency=Urgency.NORMAL,
            channels=[channel],
            now=now,
        )
        await _finish(message_id, "via_notify", now, notification_id=notification_id)
        return "via_notify"
    adapter = providers.adapters[channel]
    limit = providers.limits.get(channel)
    if limit is not None:
        await limit.acquire(1, Lane.URGENT)  # the visitor is on the way to the gate
    outgoing = Outgoing(notification_id=message_id, category="visitor", urgency="normal", title=TITLE, body=body)
    recipient = Recipient(
        delivery_id=message_id, person_id=claim["visitor_pass"], address=cipher.decrypt(visitor_pass["phone_encrypted"])
    )
    (outcome,) = await adapter.send(outgoing, [recipient])
    if outcome.status == "sent":
        await _finish(message_id, "sent", now, provider_id=outcome.provider_id)
        return "sent"
    if outcome.status == "retry" and claim["attempts"] < MAX_ATTEMPTS:
        await VisitorMessage.update(
            {
                VisitorMessage.status: "pending",
                VisitorMessage.reason: outcome.provider_code,
                VisitorMessage.updated_at: now,
            }
        ).where(VisitorMessage.id == message_id)
        return "pending"
    await _finish(message_id, "failed", now, reason=outcome.provider_code or "failed")
    return "failed"


async def _finish(
    message_id: UUID,
    status: str,
    now: dt.datetime,
    *,
    reason: str | None = None,
    provider_id: str | None = None,
    notification_id: UUID | None = None,
) -> None:
    """A final state; the text (it holds the code) is no longer needed."""
    await VisitorMessage.update(
        {
            VisitorMessage.status: status,
            VisitorMessage.reason: reason,
            VisitorMessage.provider_id: provider_id,
            VisitorMessage.notification_id: notification_id,
            VisitorMessage.body_encrypted: None,
            VisitorMessage.updated_at: now,
        }
    ).where(VisitorMessage.id == message_id)
