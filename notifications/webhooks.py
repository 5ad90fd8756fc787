"""Twilio webhooks: message status callbacks and inbound SMS/WhatsApp (opt-out keywords, sessions).

Public routes, but every request must carry a valid ``X-Twilio-Signature``: an HMAC of the
URL Twilio called (our ``public_url`` + path + query string) and the form parameters, keyed
with the account's auth token. Anything else is a 403 problem and changes nothing.

They are left out of the OpenAPI schema: Twilio is their only client.

Keywords (whole message, trimmed, any case), as Twilio's Advanced Opt-Out knows them:
- STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, OPTOUT, REVOKE: withdraw consent on the
  channel the message came in on (SMS, or WhatsApp for ``whatsapp:`` senders), every
  category, source "keyword", for every person on any site holding that mobile number;
- START, YES, UNSTOP, OPTIN: grant every transactional category on that channel again and
  set the number's contact points back to "ok". Promotional messages need an explicit
  opt-in, so START restores promotional only when this keyword STOP is what turned it off
  (it was granted right before); otherwise it stays off and the person opts in in the app;
- HELP, INFO: reply with help.
Any inbound WhatsApp message from a known number opens its 24-hour session window.
Numbers we do not know get a polite reply and nothing changes.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any
from uuid import UUID

from litestar import Controller, Request, Response, post
from litestar.datastructures import MultiDict
from litestar.enums import MediaType
from redis.asyncio import Redis
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from app.auth.roles import own_auth
from app.config import Settings
from app.deps import DirectoryDep, RedisDep, SettingsDep
from app.errors import Forbidden
from app.people.directory import Directory, PersonMatch
from app.people.normalise import normalise_phone
from notifications.categories import TRANSACTIONAL, Category, Channel
from notifications.channels.twilio_messaging import INVALID_NUMBERS, OPTED_OUT
from notifications.contacts import mark_contact
from notifications.ledger import advance_from_callback, now_utc
from notifications.preferences import ConsentChange, change_consent, consent_matrix
from notifications.providers import STATUS_CALLBACK_PATH, delivery_id_from_callback, open_whatsapp_session
from schema.notifications import ConsentEvent, Delivery
from schema.tables import ContactPoint

logger = logging.getLogger("opshub.notify.webhooks")

SIGNATURE_HEADER = "X-Twilio-Signature"
WHATSAPP_PREFIX = "whatsapp:"
INBOUND_PATH = "/api/webhooks/twilio/inbound"

OPT_OUT_KEYWORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"})
OPT_IN_KEYWORDS = frozenset({"START", "YES", "UNSTOP", "OPTIN"})
HELP_KEYWORDS = frozenset({"HELP", "INFO"})
CALLBACK_FAILURES = frozenset({"failed", "undelivered"})

CHANNEL_NAMES = {Channel.SMS: "SMS", Channel.WHATSAPP: "WhatsApp"}


def _reply_unsubscribed(channel: Channel) -> str:
    return (
        f"opshub: you are unsubscribed and will receive no more {CHANNEL_NAMES[channel]} messages from us. "
        "Reply START to subscribe again."
    )


def _reply_subscribed(channel: Channel) -> str:
    return (
        f"opshub: you are subscribed again to {CHANNEL_NAMES[channel]} messages about your residence. "
        "Reply STOP to unsubscribe, HELP for help."
    )


HELP_REPLY = (
    "opshub: messages from your residence's management (visitors, complaints, bookings, notices). "
    "Reply STOP to unsubscribe, START to subscribe again. Manage all notifications in the opshub app."
)
NOT_MONITORED_REPLY = "opshub: this number does not read replies. Please use the opshub app. Reply HELP for help."
UNKNOWN_NUMBER_REPLY = (
    "opshub: we could not find this number in any residence, so nothing was changed. "
    "Please contact your facility management office."
)


# ------------------------------------------------------------------------------ signature


def signed_url(settings: Settings, request: Request[Any, Any, Any]) -> str:
    """The URL Twilio called, as it signed it: our public URL, the path and the raw query string."""
    query = request.url.query
    return settings.public_link(request.url.path + (f"?{query}" if query else ""))


async def verified_params(request: Request[Any, Any, Any], settings: Settings) -> MultiDict[str]:
    """The form parameters of a request Twilio signed; a missing or wrong signature is a 403."""
    form = await request.form()
    params = MultiDict([(key, str(value)) for key, value in form.multi_items()])
    signature = request.headers.get(SIGNATURE_HEADER)
    if not signature or not RequestValidator(settings.twilio_auth_token).validate(
        signed_url(settings, request), params, signature
    ):
        logger.warning("refused a Twilio webhook with a %s signature", "bad" if signature else "missing")
        raise Forbidden("missing or invalid X-Twilio-Signature")
    return params


# ------------------------------------------------------------------------------ status callbacks


async def apply_status_callback(
    directory: Directory, settings: Settings, delivery_id: UUID, params: MultiDict[str], now: dt.datetime
) -> bool:
    """Move the ledger row forward; a permanent failure also updates the contact point. Returns whether it moved."""
    status = (params.get("MessageStatus") or params.get("SmsStatus") or "").lower()
    provider_code = params.get("ErrorCode") or None
    if not status:
        return False
    moved = await advance_from_callback(
        delivery_id, status, provider_id=params.get("MessageSid") or None, provider_code=provider_code, now=now
    )
    if moved and status in CALLBACK_FAILURES and provider_code is not None:
        await _record_permanent_failure(directory, settings, delivery_id, provider_code, params.get("To"))
    return moved


async def _record_permanent_failure(
    directory: Directory, settings: Settings, delivery_id: UUID, provider_code: str, to: str | None
) -> None:
    try:
        code = int(provider_code)
    except ValueError:
        return
    effect = "opted_out" if code == OPTED_OUT else "invalid_address" if code in INVALID_NUMBERS else None
    if effect is None or not to:
        return
    row = (
        await Delivery.select(Delivery.site, Delivery.person, Delivery.channel)
        .where(Delivery.id == delivery_id)
        .first()
    )
    if row is None:
        return
    try:
        address = normalise_phone(to.removeprefix(WHATSAPP_PREFIX))
    except ValueError:
        return
    await mark_contact(
        directory,
        site_id=row["site"],
        person_id=row["person"],
        channel=Channel(row["channel"]),
        effect=effect,
        address=address,
        policy_version=settings.notify_policy_version,
    )


# ------------------------------------------------------------------------------ inbound messages


def _keyword(body: str) -> str:
    return body.strip().upper()


def _changes(
    choices: dict[tuple[Channel, Category], bool], channel: Channel, categories: list[Category], granted: bool
) -> list[ConsentChange]:
    """Only what changes: a pair already explicitly set to the same value records nothing again."""
    return [
        ConsentChange(channel=channel, category=category, granted=granted)
        for category in categories
        if choices.get((channel, category)) != granted
    ]


async def _promotional_was_stopped_by_keyword(person_id: UUID, channel: Channel) -> bool:
    """Whether the last promotional change on the channel is a keyword STOP that withdrew a grant."""
    rows = (
        await ConsentEvent.select(ConsentEvent.granted, ConsentEvent.source)
        .where(
            (ConsentEvent.person == person_id)
            & (ConsentEvent.channel == str(channel))
            & (ConsentEvent.category == str(Category.PROMOTIONAL))
        )
        .order_by(ConsentEvent.created_at, ascending=False)
        .limit(2)
    )
    return len(rows) == 2 and not rows[0]["granted"] and rows[0]["source"] == "keyword" and bool(rows[1]["granted"])


async def opt_out(matches: list[PersonMatch], channel: Channel, policy_version: str) -> None:
    choices = await consent_matrix([m.person_id for m in matches])
    for match in matches:
        changes = _changes(choices[match.person_id], channel, list(Category), granted=False)
        if changes:
            await change_consent(
                site_id=match.site_id,
                person_id=match.person_id,
                changes=changes,
                source="keyword",
                policy_version=policy_version,
            )


async def opt_in(
    directory: Directory, matches: list[PersonMatch], channel: Channel, e164: str, policy_version: str
) -> None:
    choices = await consent_matrix([m.person_id for m in matches])
    transactional = [c for c in Category if c in TRANSACTIONAL]
    for match in matches:
        changes = _changes(choices[match.person_id], channel, transactional, granted=True)
        if not choices[match.person_id].get((channel, Category.PROMOTIONAL), False) and (
            await _promotional_was_stopped_by_keyword(match.person_id, channel)
        ):
            changes.append(ConsentChange(channel=channel, category=Category.PROMOTIONAL, granted=True))
        if changes:
            await change_consent(
                site_id=match.site_id,
                person_id=match.person_id,
                changes=changes,
                source="keyword",
                policy_version=policy_version,
            )
    # The number answered us: whatever the provider said about it before no longer holds.
    await ContactPoint.update({ContactPoint.status: "ok"}).where(
        (ContactPoint.kind == "mobile")
        & (ContactPoint.value_index == directory.contact_index("mobile", e164))
        & (ContactPoint.status != "ok")
    )


async def handle_inbound(directory: Directory, redis: Redis, settings: Settings, sender: str, body: str) -> str | None:
    """Apply an inbound message; returns the text to reply with (None: no reply)."""
    channel = Channel.WHATSAPP if sender.startswith(WHATSAPP_PREFIX) else Channel.SMS
    try:
        e164 = normalise_phone(sender.removeprefix(WHATSAPP_PREFIX))
    except ValueError:
        logger.info("inbound %s from an unparseable sender", channel)
        return UNKNOWN_NUMBER_REPLY
    matches = await directory.find_by_contact("mobile", e164)
    if not matches:
        return UNKNOWN_NUMBER_REPLY
    if channel is Channel.WHATSAPP:
        # Any message from the person opens WhatsApp's 24-hour window for free-form replies.
        await open_whatsapp_session(redis, settings, e164)
    keyword = _keyword(body)
    if keyword in OPT_OUT_KEYWORDS:
        await opt_out(matches, channel, settings.notify_policy_version)
        return _reply_unsubscribed(channel)
    if keyword in OPT_IN_KEYWORDS:
        await opt_in(directory, matches, channel, e164, settings.notify_policy_version)
        return _reply_subscribed(channel)
    if keyword in HELP_KEYWORDS:
        return HELP_REPLY
    return NOT_MONITORED_REPLY


def twiml(reply: str | None) -> Response[bytes]:
    response = MessagingResponse()
    if reply:
        response.message(reply)
    return Response(content=str(response).encode(), media_type=MediaType.XML, status_code=200)


# ------------------------------------------------------------------------------ routes


class TwilioWebhookController(Controller):
    tags = ["webhooks"]

    @post(STATUS_CALLBACK_PATH, opt=own_auth("twilio_signature"), status_code=204)
    async def message_status(
        self, request: Request[Any, Any, Any], settings: SettingsDep, directory: DirectoryDep
    ) -> None:
        params = await verified_params(request, settings)
        delivery_id = delivery_id_from_callback(request.query_params.get("delivery"))
        if delivery_id is None:
            return  # not one of ours (or a malformed id): acknowledge, or Twilio keeps retrying
        await apply_status_callback(directory, settings, delivery_id, params, now_utc())

    @post(INBOUND_PATH, opt=own_auth("twilio_signature"), status_code=200)
    async def inbound_message(
        self, request: Request[Any, Any, Any], settings: SettingsDep, redis: RedisDep, directory: DirectoryDep
    ) -> Response[bytes]:
        params = await verified_params(request, settings)
        sender = params.get("From") or ""
        reply = await handle_inbound(directory, redis, settings, sender, params.get("Body") or "")
        return twiml(reply)
