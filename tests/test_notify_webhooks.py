"""Twilio webhooks: signatures, status callbacks on the ledger, opt-out keywords, WhatsApp sessions."""

from __future__ import annotations

import asyncio
import secrets
import socket
from typing import Any
from uuid import UUID

from twilio.request_validator import RequestValidator

from app.auth.roles import Role
from app.main import create_app
from notifications import fanout, sender
from notifications.audience import Audience
from notifications.categories import TRANSACTIONAL, Category, Channel
from notifications.fakes import running_fakes
from notifications.fakes.runner import serve_asgi
from notifications.preferences import ConsentChange, change_consent, consent_history, consent_matrix, is_enabled
from notifications.providers import STATUS_CALLBACK_PATH, whatsapp_session_key
from notifications.service import NotificationRequest, create_notification
from notifications.webhooks import INBOUND_PATH
from schema.notifications import Delivery
from schema.tables import ContactPoint
from tests.support.notify import pipeline
from tests.support.world import World

PROBLEM = "application/problem+json"
OUR_NUMBER = "+15005550006"


def random_mobile() -> str:
    return f"+9198{secrets.randbelow(10**8):08d}"


def signature(settings: Any, path_and_query: str, params: dict[str, str]) -> str:
    url = settings.public_url.rstrip("/") + path_and_query
    return str(RequestValidator(settings.twilio_auth_token).compute_signature(url, params))


async def twilio_post(
    client: Any, settings: Any, path_and_query: str, params: dict[str, str], sign: str | None = "valid"
) -> Any:
    headers = {}
    if sign == "valid":
        headers["X-Twilio-Signature"] = signature(settings, path_and_query, params)
    elif sign is not None:
        headers["X-Twilio-Signature"] = sign
    return await client.post(path_and_query, data=params, headers=headers)


def status_params(
    status: str, sid: str = "SM" + "a" * 32, error_code: str | None = None, to: str = ""
) -> dict[str, str]:
    params = {"MessageSid": sid, "MessageStatus": status, "SmsStatus": status, "To": to, "From": OUR_NUMBER}
    if error_code:
        params["ErrorCode"] = error_code
    return params


async def inbound(client: Any, settings: Any, from_: str, body: str) -> Any:
    params = {"MessageSid": "SM" + secrets.token_hex(16), "From": from_, "To": OUR_NUMBER, "Body": body}
    return await twilio_post(client, settings, INBOUND_PATH, params)


async def sms_delivery(world: World, person_id: UUID, status: str = "sending") -> UUID:
    notification_id, _ = await create_notification(
        site_id=world.site_id,
        request=NotificationRequest(
            title="Water",
            body="Off at 10",
            category=Category.ANNOUNCEMENT,
            audience=Audience(person_ids=[person_id]),
            channels=[Channel.SMS],
        ),
    )
    row = Delivery(site=world.site_id, notification=notification_id, person=person_id, channel="sms", status=status)
    await row.save()
    return row.id


async def delivery_row(delivery_id: UUID) -> dict[str, Any]:
    row = await Delivery.select().where(Delivery.id == delivery_id).first()
    assert row is not None
    return row


async def contact_status(person_id: UUID) -> str:
    row = (
        await ContactPoint.select(ContactPoint.status)
        .where((ContactPoint.person == person_id) & (ContactPoint.kind == "mobile"))
        .first()
    )
    assert row is not None
    return str(row["status"])


async def enabled(person_id: UUID, channel: Channel) -> dict[Category, bool]:
    choices = (await consent_matrix([person_id]))[person_id]
    return {category: is_enabled(choices, channel, category) for category in Category}


# ------------------------------------------------------------------------------ signatures


async def test_missing_or_bad_signature_is_403_and_changes_nothing(client: Any, world: World, settings: Any) -> None:
    mobile = random_mobile()
    person = await world.add_person("resident", frozenset({Role.OCCUPANT}), mobile=mobile)
    delivery_id = await sms_delivery(world, person)
    path = f"{STATUS_CALLBACK_PATH}?delivery={delivery_id}"
    params = status_params("delivered")

    missing = await twilio_post(client, settings, path, params, sign=None)
    assert missing.status_code == 403
    assert missing.headers["content-type"].startswith(PROBLEM)
    wrong_key = RequestValidator("not-the-auth-token").compute_signature(settings.public_url + path, params)
    assert (await twilio_post(client, settings, path, params, sign=wrong_key)).status_code == 403
    # Signed for another row (the query string is part of what is signed): refused.
    other = signature(settings, f"{STATUS_CALLBACK_PATH}?delivery={secrets.token_hex(4)}", params)
    assert (await twilio_post(client, settings, path, params, sign=other)).status_code == 403
    # A tampered parameter breaks the signature too.
    good = signature(settings, path, params)
    tampered = {**params, "MessageStatus": "failed"}
    assert (await twilio_post(client, settings, path, tampered, sign=good)).status_code == 403
    assert (await delivery_row(delivery_id))["status"] == "sending"

    stop = {"MessageSid": "SM1", "From": mobile, "To": OUR_NUMBER, "Body": "STOP"}
    assert (await twilio_post(client, settings, INBOUND_PATH, stop, sign="forged")).status_code == 403
    assert not await consent_history(person)

    # A correct signature is accepted.
    assert (await twilio_post(client, settings, path, params)).status_code == 204
    assert (await delivery_row(delivery_id))["status"] == "delivered"


# ------------------------------------------------------------------------------ status callbacks


async def test_status_callbacks_move_the_row_forward_and_never_back(client: Any, world: World, settings: Any) -> None:
    person = await world.add_person("resident", frozenset({Role.OCCUPANT}), mobile=random_mobile())
    delivery_id = await sms_delivery(world, person)
    path = f"{STATUS_CALLBACK_PATH}?delivery={delivery_id}"
    sid = "SM" + secrets.token_hex(16)

    for status in ("queued", "sending"):  # before "sent": nothing to record
        assert (await twilio_post(client, settings, path, status_params(status, sid))).status_code == 204
    assert (await delivery_row(delivery_id))["status"] == "sending"

    assert (await twilio_post(client, settings, path, status_params("sent", sid))).status_code == 204
    row = await delivery_row(delivery_id)
    assert (row["status"], row["provider_id"]) == ("sent", sid)
    assert row["sent_at"] is not None

    assert (await twilio_post(client, settings, path, status_params("delivered", sid))).status_code == 204
    delivered = await delivery_row(delivery_id)
    assert delivered["status"] == "delivered" and delivered["delivered_at"] is not None

    # Late and out-of-order callbacks change nothing.
    for status in ("sent", "sending", "failed"):
        assert (await twilio_post(client, settings, path, status_params(status, sid, "30003"))).status_code == 204
    assert await delivery_row(delivery_id) == delivered


async def test_unknown_or_malformed_delivery_ids_are_acknowledged(client: Any, settings: Any) -> None:
    for query in (f"?delivery={UUID(int=7)}", "?delivery=not-a-uuid", ""):
        response = await twilio_post(client, settings, STATUS_CALLBACK_PATH + query, status_params("delivered"))
        assert response.status_code == 204, (query, response.text)


async def test_permanent_failures_update_the_contact_point(client: Any, world: World, settings: Any) -> None:
    stopped_mobile, invalid_mobile = random_mobile(), random_mobile()
    stopped = await world.add_person("stopped", frozenset({Role.OCCUPANT}), mobile=stopped_mobile)
    invalid = await world.add_person("invalid", frozenset({Role.OCCUPANT}), mobile=invalid_mobile)
    for person, mobile, code in ((stopped, stopped_mobile, "21610"), (invalid, invalid_mobile, "21211")):
        delivery_id = await sms_delivery(world, person, status="sent")
        path = f"{STATUS_CALLBACK_PATH}?delivery={delivery_id}"
        response = await twilio_post(client, settings, path, status_params("undelivered", error_code=code, to=mobile))
        assert response.status_code == 204
        row = await delivery_row(delivery_id)
        assert (row["status"], row["provider_code"]) == ("failed", code)
    assert await contact_status(stopped) == "opted_out"
    assert await contact_status(invalid) == "invalid"
    history = await consent_history(stopped)
    assert history and all(h.source == "provider" and not h.granted and h.channel is Channel.SMS for h in history)
    assert not await consent_history(invalid)


# ------------------------------------------------------------------------------ inbound keywords


async def test_stop_withdraws_sms_on_every_site_and_start_restores(
    client: Any, world: World, other_world: World, settings: Any
) -> None:
    mobile = random_mobile()
    here = await world.add_person("resident", frozenset({Role.OCCUPANT}), mobile=mobile)
    there = await other_world.add_person("resident", frozenset({Role.OCCUPANT}), mobile=mobile)
    # `here` had opted in to promotional SMS; `there` never did.
    await change_consent(
        site_id=world.site_id,
        person_id=here,
        changes=[ConsentChange(Channel.SMS, Category.PROMOTIONAL, granted=True)],
        source="app",
        policy_version="test",
    )

    response = await inbound(client, settings, mobile, "  stop ")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    assert "<Response><Message>" in response.text and "unsubscribed" in response.text
    for person in (here, there):
        assert not any((await enabled(person, Channel.SMS)).values())
        whatsapp = await enabled(person, Channel.WHATSAPP)
        assert all(whatsapp[c] for c in TRANSACTIONAL)  # the other channel is untouched
        keyword = [h for h in await consent_history(person) if h.source == "keyword"]
        assert {(h.channel, h.granted) for h in keyword} == {(Channel.SMS, False)}
        assert len(keyword) == len(Category)
    # STOP again records nothing more.
    await inbound(client, settings, mobile, "STOPALL")
    assert len([h for h in await consent_history(there) if h.source == "keyword"]) == len(Category)

    await ContactPoint.update({ContactPoint.status: "opted_out"}).where(ContactPoint.person == here)
    response = await inbound(client, settings, mobile, "Start")
    assert "subscribed again" in response.text
    assert await enabled(here, Channel.SMS) == dict.fromkeys(Category, True)  # promotional was on before STOP
    there_now = await enabled(there, Channel.SMS)
    assert all(there_now[c] for c in TRANSACTIONAL) and not there_now[Category.PROMOTIONAL]
    assert await contact_status(here) == "ok"
    latest = (await consent_history(here))[0]
    assert (latest.source, latest.granted, latest.policy_version) == ("keyword", True, settings.notify_policy_version)


async def test_help_unknown_numbers_and_other_text(client: Any, world: World, settings: Any) -> None:
    mobile = random_mobile()
    person = await world.add_person("resident", frozenset({Role.OCCUPANT}), mobile=mobile)
    help_reply = await inbound(client, settings, mobile, "help")
    assert help_reply.status_code == 200 and "Reply STOP" in help_reply.text
    chat = await inbound(client, settings, mobile, "Is the pool open today?")
    assert "does not read replies" in chat.text
    stranger = await inbound(client, settings, random_mobile(), "STOP")
    assert stranger.status_code == 200 and "nothing was changed" in stranger.text
    garbage = await inbound(client, settings, "not-a-number", "STOP")
    assert garbage.status_code == 200 and "nothing was changed" in garbage.text
    assert not await consent_history(person)


async def test_whatsapp_inbound_opens_the_session_and_stop_only_touches_whatsapp(
    client: Any, world: World, settings: Any, redis: Any
) -> None:
    mobile = random_mobile()
    person = await world.add_person("resident", frozenset({Role.OCCUPANT}), mobile=mobile)
    key = whatsapp_session_key(settings, mobile)
    assert not await redis.exists(key)
    hello = await inbound(client, settings, f"whatsapp:{mobile}", "Hello")
    assert hello.status_code == 200
    assert await redis.exists(key)
    assert 0 < await redis.ttl(key) <= 24 * 3600

    stop = await inbound(client, settings, f"whatsapp:{mobile}", "UNSUBSCRIBE")
    assert "WhatsApp" in stop.text
    assert not any((await enabled(person, Channel.WHATSAPP)).values())
    sms = await enabled(person, Channel.SMS)
    assert all(sms[c] for c in TRANSACTIONAL)

    # An unknown WhatsApp sender changes nothing, not even a session.
    stranger = random_mobile()
    await inbound(client, settings, f"whatsapp:{stranger}", "Hello")
    assert not await redis.exists(whatsapp_session_key(settings, stranger))


# ------------------------------------------------------------------------------ end to end


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_fake_twilio_signed_callbacks_reach_the_served_app(world: World, settings: Any, redis: Any) -> None:
    """The fake Twilio calls a real uvicorn server of the app: status callbacks and an inbound STOP."""
    mobile = random_mobile()
    person = await world.add_person("resident", frozenset({Role.OCCUPANT}), mobile=mobile)
    port = free_port()
    public_url = f"http://127.0.0.1:{port}"
    async with running_fakes() as fakes:
        fakes.twilio.configure(callbacks_enabled=True, callback_delay=0.01)
        async with pipeline(settings, redis, fakes, public_url=public_url) as ctx:
            served = create_app(ctx.settings)
            async with serve_asgi(served, port=port) as url:
                assert url == public_url
                notification_id, _ = await create_notification(
                    site_id=world.site_id,
                    request=NotificationRequest(
                        title="Lift",
                        body="Lift B under maintenance",
                        category=Category.ANNOUNCEMENT,
                        audience=Audience(person_ids=[person]),
                        channels=[Channel.SMS],
                    ),
                )
                for channel in await fanout.expand(ctx, notification_id):
                    await sender.send_pending(ctx, notification_id, channel)
                async with asyncio.timeout(15):
                    await fakes.twilio.drain()
                (row,) = await Delivery.select().where(Delivery.notification == notification_id)
                assert row["status"] == "delivered", row
                assert row["provider_id"] == fakes.twilio.messages[0].sid
                callbacks = [w for w in fakes.twilio.webhooks if w.kind == "message-status"]
                assert [w.params["MessageStatus"] for w in callbacks] == ["sent", "delivered"]
                assert all(w.status_code == 204 for w in callbacks), [(w.status_code, w.error) for w in callbacks]

                delivery = await fakes.twilio.send_inbound(url + INBOUND_PATH, from_=mobile, to=OUR_NUMBER, body="STOP")
                assert delivery.status_code == 200 and "unsubscribed" in (delivery.response_body or "")
    assert not any((await enabled(person, Channel.SMS)).values())
    assert (await consent_history(person))[0].source == "keyword"
