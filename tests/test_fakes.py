"""The fake providers, exercised through the REAL twilio / firebase-admin SDKs and aiosmtplib.

Nothing here patches an SDK: the only indirection is the URL redirect in
``notifications.fakes.sdk_wiring``. Webhooks from the fake Twilio land on a small local
receiver that validates ``X-Twilio-Signature`` exactly like our app must.
"""

import asyncio
import signal
import sys
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
import firebase_admin
import httpx
import pytest
from firebase_admin import exceptions as firebase_exceptions
from firebase_admin import messaging
from litestar import Litestar, Request, Response, post
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client as TwilioClient

from notifications.fakes import RunningFakes, running_fakes
from notifications.fakes.runner import serve_asgi
from notifications.fakes.sdk_wiring import (
    RedirectingAsyncTwilioHttpClient,
    aclose_firebase_app,
    firebase_app_for_fake,
    twilio_client_for_fake,
)

SENDER = "+15005550006"
RESIDENT = "+919812345678"
WA_SENDER = f"whatsapp:{SENDER}"
WA_RESIDENT = f"whatsapp:{RESIDENT}"
TEMPLATE_SID = "HX" + "ab" * 16
VOICE_TWIML = "<Response><Say>Gas leak reported in tower B</Say></Response>"
REPO_ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------


@dataclass
class Hook:
    path: str
    url: str
    params: dict[str, str]
    signature: str | None


@dataclass
class WebhookReceiver:
    """Stands in for our app's Twilio webhook endpoints."""

    url: str = ""
    hooks: list[Hook] = field(default_factory=list)

    def by_path(self, path: str) -> list[Hook]:
        return [hook for hook in self.hooks if hook.path == path]

    def app(self) -> Litestar:
        async def record(request: Request[Any, Any, Any]) -> None:
            form = await request.form()
            self.hooks.append(
                Hook(
                    path=request.url.path,
                    url=str(request.url),
                    params={key: str(value) for key, value in form.items()},
                    signature=request.headers.get("x-twilio-signature"),
                )
            )

        @post(["/status", "/inbound", "/call-status"], status_code=200)
        async def hook(request: Request[Any, Any, Any]) -> Response[str]:
            await record(request)
            return Response("<Response/>", media_type="text/xml")

        @post("/voice", status_code=200)
        async def voice(request: Request[Any, Any, Any]) -> Response[str]:
            await record(request)
            return Response(VOICE_TWIML, media_type="text/xml")

        return Litestar([hook, voice], logging_config=None, openapi_config=None)


@pytest.fixture(scope="module")
async def fakes() -> AsyncIterator[RunningFakes]:
    async with running_fakes() as running:
        yield running


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    async with serve_asgi(receiver.app()) as url:
        receiver.url = url
        yield receiver


@pytest.fixture(autouse=True)
async def clean_state(fakes: RunningFakes, receiver: WebhookReceiver) -> AsyncIterator[None]:
    yield
    async with asyncio.timeout(10):
        await fakes.twilio.drain()
    fakes.reset()
    receiver.hooks.clear()


@pytest.fixture(scope="module")
async def twilio(fakes: RunningFakes) -> AsyncIterator[TwilioClient]:
    client = twilio_client_for_fake(fakes.twilio_url, fakes.twilio.account_sid, fakes.twilio.auth_token)
    yield client
    await client.http_client.close()


@pytest.fixture(scope="module")
async def firebase_app(fakes: RunningFakes) -> AsyncIterator[firebase_admin.App]:
    app = firebase_app_for_fake(fakes.fcm_url, fakes.fcm.project_id)
    yield app
    await aclose_firebase_app(app)


async def settle(fakes: RunningFakes) -> None:
    async with asyncio.timeout(10):
        await fakes.twilio.drain()


def assert_signed(hook: Hook, auth_token: str) -> None:
    assert hook.signature, "webhook carried no X-Twilio-Signature"
    assert RequestValidator(auth_token).validate(hook.url, hook.params, hook.signature)


# --------------------------------------------------------------------------------------------
# Twilio: Messages
# --------------------------------------------------------------------------------------------


async def test_sms_is_accepted_recorded_and_delivered(fakes: RunningFakes, twilio: TwilioClient) -> None:
    message = await twilio.messages.create_async(to=RESIDENT, from_=SENDER, body="Water supply resumes at 6pm")

    assert message.sid is not None and message.sid.startswith("SM") and len(message.sid) == 34
    assert (message.status, message.to, message.from_) == ("queued", RESIDENT, SENDER)
    assert message.error_code is None and message.date_created is not None
    assert message.num_segments == "1"

    [recorded] = fakes.twilio.messages
    assert (recorded.sid, recorded.channel, recorded.body) == (message.sid, "sms", "Water supply resumes at 6pm")

    await settle(fakes)
    fetched = await twilio.messages(message.sid).fetch_async()
    assert fetched.status == "delivered" and fetched.date_sent is not None
    assert recorded.status_history == ["queued", "sent", "delivered"]


async def test_opted_out_recipient_raises_21610(fakes: RunningFakes, twilio: TwilioClient) -> None:
    fakes.twilio.opt_out(RESIDENT)
    with pytest.raises(TwilioRestException) as caught:
        await twilio.messages.create_async(to=RESIDENT, from_=SENDER, body="hi")
    assert (caught.value.code, caught.value.status) == (21610, 400)
    assert "unsubscribed recipient" in caught.value.msg
    assert fakes.twilio.messages == []


@pytest.mark.parametrize("to", ["9812345678", "+0123", "whatsapp:12345"])
async def test_malformed_number_raises_21211(twilio: TwilioClient, to: str) -> None:
    with pytest.raises(TwilioRestException) as caught:
        await twilio.messages.create_async(to=to, from_=SENDER, body="hi")
    assert (caught.value.code, caught.value.status) == (21211, 400)


async def test_configured_invalid_number_raises_21211(fakes: RunningFakes, twilio: TwilioClient) -> None:
    fakes.twilio.mark_invalid("+15551230000")
    with pytest.raises(TwilioRestException) as caught:
        await twilio.messages.create_async(to="+15551230000", from_=SENDER, body="hi")
    assert caught.value.code == 21211


async def test_transient_failures_then_success(fakes: RunningFakes, twilio: TwilioClient) -> None:
    fakes.twilio.fail_next(2, status=429)
    for _ in range(2):
        with pytest.raises(TwilioRestException) as caught:
            await twilio.messages.create_async(to=RESIDENT, from_=SENDER, body="retry me")
        assert (caught.value.status, caught.value.code) == (429, 20429)
    message = await twilio.messages.create_async(to=RESIDENT, from_=SENDER, body="retry me")
    assert message.status == "queued"

    fakes.twilio.fail_next(1, status=503)
    with pytest.raises(TwilioRestException) as caught:
        await twilio.messages.create_async(to=RESIDENT, from_=SENDER, body="again")
    assert (caught.value.status, caught.value.code) == (503, 20503)


async def test_wrong_credentials_raise_20003(fakes: RunningFakes) -> None:
    client = twilio_client_for_fake(fakes.twilio_url, fakes.twilio.account_sid, "not-the-token")
    try:
        with pytest.raises(TwilioRestException) as caught:
            await client.messages.create_async(to=RESIDENT, from_=SENDER, body="hi")
        assert (caught.value.status, caught.value.code) == (401, 20003)
    finally:
        await client.http_client.close()


async def test_status_callbacks_are_signed_like_twilio(
    fakes: RunningFakes, twilio: TwilioClient, receiver: WebhookReceiver
) -> None:
    callback = f"{receiver.url}/status?notification=42"
    message = await twilio.messages.create_async(to=RESIDENT, from_=SENDER, body="hi", status_callback=callback)
    await settle(fakes)

    hooks = receiver.by_path("/status")
    assert [hook.params["MessageStatus"] for hook in hooks] == ["sent", "delivered"]
    for hook in hooks:
        assert hook.url == callback
        assert_signed(hook, fakes.twilio.auth_token)
        assert hook.params["MessageSid"] == message.sid
        assert hook.params["AccountSid"] == fakes.twilio.account_sid
        assert (hook.params["From"], hook.params["To"], hook.params["ApiVersion"]) == (
            SENDER,
            RESIDENT,
            "2010-04-01",
        )
    # The signature really covers the params: a tampered body must not validate.
    tampered = {**hooks[0].params, "MessageStatus": "delivered"}
    assert not RequestValidator(fakes.twilio.auth_token).validate(callback, tampered, hooks[0].signature)
    assert not RequestValidator("another-token").validate(callback, hooks[0].params, hooks[0].signature)


async def test_undelivered_callback_carries_error_code(
    fakes: RunningFakes, twilio: TwilioClient, receiver: WebhookReceiver
) -> None:
    fakes.twilio.fail_delivery(RESIDENT, "undelivered", 30003)
    message = await twilio.messages.create_async(
        to=RESIDENT, from_=SENDER, body="hi", status_callback=f"{receiver.url}/status"
    )
    await settle(fakes)

    last = receiver.by_path("/status")[-1]
    assert (last.params["MessageStatus"], last.params["ErrorCode"]) == ("undelivered", "30003")
    assert_signed(last, fakes.twilio.auth_token)
    fetched = await twilio.messages(message.sid).fetch_async()
    assert (fetched.status, fetched.error_code) == ("undelivered", 30003)


async def test_callbacks_can_be_turned_off(
    fakes: RunningFakes, twilio: TwilioClient, receiver: WebhookReceiver
) -> None:
    fakes.twilio.configure(callbacks_enabled=False)
    await twilio.messages.create_async(to=RESIDENT, from_=SENDER, body="hi", status_callback=f"{receiver.url}/status")
    await settle(fakes)
    assert receiver.hooks == []
    assert fakes.twilio.messages[0].status == "delivered"  # the lifecycle still advances


async def test_messaging_service_sends_are_accepted_without_from(fakes: RunningFakes, twilio: TwilioClient) -> None:
    service_sid = "MG" + "1" * 32
    message = await twilio.messages.create_async(to=RESIDENT, messaging_service_sid=service_sid, body="hi")
    assert (message.status, message.from_, message.messaging_service_sid) == ("accepted", None, service_sid)
    await settle(fakes)
    assert fakes.twilio.messages[0].from_ == fakes.twilio.behaviour.messaging_service_from


async def test_alphanumeric_sender_id_is_accepted(twilio: TwilioClient) -> None:
    message = await twilio.messages.create_async(to=RESIDENT, from_="OPSHUB", body="OTP 4821")
    assert message.from_ == "OPSHUB"


async def test_missing_sender_and_body_are_rejected(twilio: TwilioClient) -> None:
    with pytest.raises(TwilioRestException) as no_from:
        await twilio.messages.create_async(to=RESIDENT, body="hi")
    with pytest.raises(TwilioRestException) as no_body:
        await twilio.messages.create_async(to=RESIDENT, from_=SENDER)
    assert (no_from.value.code, no_body.value.code) == (21603, 21602)


# --------------------------------------------------------------------------------------------
# Twilio: WhatsApp
# --------------------------------------------------------------------------------------------


async def test_whatsapp_template_is_delivered_outside_session(fakes: RunningFakes, twilio: TwilioClient) -> None:
    message = await twilio.messages.create_async(
        to=WA_RESIDENT,
        from_=WA_SENDER,
        content_sid=TEMPLATE_SID,
        content_variables='{"1": "B-402", "2": "6pm"}',
    )
    assert message.to == WA_RESIDENT
    await settle(fakes)
    [recorded] = fakes.twilio.messages
    assert recorded.channel == "whatsapp"
    assert recorded.content_variables == {"1": "B-402", "2": "6pm"}
    assert recorded.status == "delivered"


async def test_whatsapp_freeform_outside_session_fails_with_63016(
    fakes: RunningFakes, twilio: TwilioClient, receiver: WebhookReceiver
) -> None:
    # Like real Twilio: the API accepts it, then the message fails asynchronously.
    message = await twilio.messages.create_async(
        to=WA_RESIDENT, from_=WA_SENDER, body="freeform", status_callback=f"{receiver.url}/status"
    )
    assert message.status == "queued"
    await settle(fakes)
    [hook] = receiver.by_path("/status")
    assert (hook.params["MessageStatus"], hook.params["ErrorCode"]) == ("failed", "63016")
    assert_signed(hook, fakes.twilio.auth_token)

    # The synchronous variant, for code paths that want it.
    fakes.twilio.configure(whatsapp_window_error="http")
    with pytest.raises(TwilioRestException) as caught:
        await twilio.messages.create_async(to=WA_RESIDENT, from_=WA_SENDER, body="freeform")
    assert caught.value.code == 63016


async def test_whatsapp_freeform_inside_session_is_delivered(fakes: RunningFakes, twilio: TwilioClient) -> None:
    fakes.twilio.open_whatsapp_session(RESIDENT)
    await twilio.messages.create_async(to=WA_RESIDENT, from_=WA_SENDER, body="freeform")
    await settle(fakes)
    assert fakes.twilio.messages[0].status == "delivered"


async def test_whatsapp_channel_mismatch_and_bad_template_are_rejected(twilio: TwilioClient) -> None:
    with pytest.raises(TwilioRestException) as mismatch:
        await twilio.messages.create_async(to=WA_RESIDENT, from_=SENDER, content_sid=TEMPLATE_SID)
    with pytest.raises(TwilioRestException) as bad_vars:
        await twilio.messages.create_async(
            to=WA_RESIDENT, from_=WA_SENDER, content_sid=TEMPLATE_SID, content_variables="not json"
        )
    assert (mismatch.value.code, bad_vars.value.code) == (21910, 21656)


# --------------------------------------------------------------------------------------------
# Twilio: inbound webhooks and voice
# --------------------------------------------------------------------------------------------


async def test_inbound_stop_is_signed_and_opts_the_sender_out(
    fakes: RunningFakes, twilio: TwilioClient, receiver: WebhookReceiver
) -> None:
    delivery = await fakes.twilio.send_inbound(f"{receiver.url}/inbound", from_=RESIDENT, to=SENDER, body="STOP")
    assert delivery.status_code == 200
    [hook] = receiver.by_path("/inbound")
    assert_signed(hook, fakes.twilio.auth_token)
    assert (hook.params["Body"], hook.params["From"], hook.params["OptOutType"]) == ("STOP", RESIDENT, "STOP")
    assert hook.params["MessageSid"].startswith("SM")

    with pytest.raises(TwilioRestException) as caught:
        await twilio.messages.create_async(to=RESIDENT, from_=SENDER, body="are you there?")
    assert caught.value.code == 21610


async def test_inbound_whatsapp_via_control_api_opens_session(
    fakes: RunningFakes, twilio: TwilioClient, receiver: WebhookReceiver
) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{fakes.twilio_url}/_fake/inbound",
            json={"url": f"{receiver.url}/inbound", "from": WA_RESIDENT, "to": WA_SENDER, "body": "hello"},
        )
    assert response.status_code == 200 and response.json()["status_code"] == 200
    [hook] = receiver.by_path("/inbound")
    assert_signed(hook, fakes.twilio.auth_token)
    assert hook.params["WaId"] == RESIDENT.lstrip("+")

    await twilio.messages.create_async(to=WA_RESIDENT, from_=WA_SENDER, body="reply within 24h")
    await settle(fakes)
    assert fakes.twilio.messages[0].status == "delivered"


async def test_voice_call_with_inline_twiml(fakes: RunningFakes, twilio: TwilioClient) -> None:
    call = await twilio.calls.create_async(to=RESIDENT, from_=SENDER, twiml=VOICE_TWIML)
    assert call.sid is not None and call.sid.startswith("CA") and len(call.sid) == 34
    assert call.status == "queued"
    [recorded] = fakes.twilio.calls
    assert recorded.twiml == VOICE_TWIML


async def test_voice_call_fetches_twiml_and_reports_status(
    fakes: RunningFakes, twilio: TwilioClient, receiver: WebhookReceiver
) -> None:
    await twilio.calls.create_async(
        to=RESIDENT, from_=SENDER, url=f"{receiver.url}/voice", status_callback=f"{receiver.url}/call-status"
    )
    await settle(fakes)
    [recorded] = fakes.twilio.calls
    assert recorded.fetched_twiml == VOICE_TWIML
    [voice_hook] = receiver.by_path("/voice")
    [status_hook] = receiver.by_path("/call-status")
    assert_signed(voice_hook, fakes.twilio.auth_token)
    assert_signed(status_hook, fakes.twilio.auth_token)
    assert status_hook.params["CallStatus"] == "completed"


# --------------------------------------------------------------------------------------------
# control API over HTTP (what the demo and non-Python tooling use)
# --------------------------------------------------------------------------------------------


async def test_control_api_and_dashboard(fakes: RunningFakes, twilio: TwilioClient) -> None:
    async with httpx.AsyncClient(base_url=fakes.http_url) as http:
        config = await http.patch("/twilio/_fake/config", json={"opted_out": ["+15550001111"]})
        assert config.status_code == 200 and config.json()["opted_out"] == ["+15550001111"]
        bad = await http.patch("/twilio/_fake/config", json={"no_such_switch": True})
        assert bad.status_code == 400

        with pytest.raises(TwilioRestException):
            await twilio.messages.create_async(to="+15550001111", from_=SENDER, body="x")
        await twilio.messages.create_async(to=RESIDENT, from_=SENDER, body="Lift maintenance <b>today</b>")

        [listed] = (await http.get("/twilio/_fake/messages")).json()
        assert (listed["to"], listed["from"], listed["body"]) == (RESIDENT, SENDER, "Lift maintenance <b>today</b>")

        dashboard = await http.get("/_fake/")
        assert dashboard.headers["content-type"].startswith("text/html")
        assert "Lift maintenance &lt;b&gt;today&lt;/b&gt;" in dashboard.text

        state = (await http.get("/_fake/state")).json()
        assert len(state["twilio_messages"]) == 1

        assert (await http.post("/_fake/reset")).status_code == 204
        assert (await http.get("/twilio/_fake/messages")).json() == []
        assert (await http.get("/twilio/_fake/config")).json()["opted_out"] == []


async def test_twilio_redirect_only_touches_twilio_hosts() -> None:
    client = RedirectingAsyncTwilioHttpClient("http://127.0.0.1:9/twilio/")
    try:
        assert (
            client.rewrite("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json?PageSize=5")
            == "http://127.0.0.1:9/twilio/2010-04-01/Accounts/AC1/Messages.json?PageSize=5"
        )
        assert client.rewrite("https://api.sydney.au1.twilio.com/x") == "http://127.0.0.1:9/twilio/x"
        assert client.rewrite("https://example.com/twilio.com") == "https://example.com/twilio.com"
        assert client.rewrite("https://eviltwilio.com/x") == "https://eviltwilio.com/x"
    finally:
        await client.close()


# --------------------------------------------------------------------------------------------
# FCM through firebase-admin
# --------------------------------------------------------------------------------------------


def push(fid: str) -> messaging.Message:
    return messaging.Message(
        fid=fid,
        notification=messaging.Notification(title="Visitor at gate", body="Ravi is waiting at Gate 2"),
        data={"kind": "visitor", "visitor_id": "v-17"},
        android=messaging.AndroidConfig(collapse_key="visitor-v-17", ttl=300, priority="high"),
        apns=messaging.APNSConfig(headers={"apns-priority": "10", "apns-collapse-id": "visitor-v-17"}),
    )


async def test_fcm_send_each_async_is_accepted_and_recorded(
    fakes: RunningFakes, firebase_app: firebase_admin.App
) -> None:
    batch = await messaging.send_each_async([push("device-1")], app=firebase_app)

    assert (batch.success_count, batch.failure_count) == (1, 0)
    [response] = batch.responses
    assert response.message_id.startswith(f"projects/{fakes.fcm.project_id}/messages/")
    [recorded] = fakes.fcm.messages
    assert recorded.name == response.message_id
    assert (recorded.target_kind, recorded.target) == ("fid", "device-1")
    assert recorded.notification == {"title": "Visitor at gate", "body": "Ravi is waiting at Gate 2"}
    assert recorded.data == {"kind": "visitor", "visitor_id": "v-17"}
    assert (recorded.android_collapse_key, recorded.android_ttl, recorded.android_priority) == (
        "visitor-v-17",
        "300s",
        "high",
    )
    assert recorded.apns_headers == {"apns-priority": "10", "apns-collapse-id": "visitor-v-17"}
    assert recorded.validate_only is False


async def test_fcm_legacy_token_field_still_works(fakes: RunningFakes, firebase_app: firebase_admin.App) -> None:
    with pytest.warns(DeprecationWarning, match="Message.token is deprecated"):
        message = messaging.Message(token="legacy-token", data={"k": "v"})
    batch = await messaging.send_each_async([message], app=firebase_app)
    assert batch.success_count == 1
    assert (fakes.fcm.messages[0].target_kind, fakes.fcm.messages[0].target) == ("token", "legacy-token")


async def test_fcm_unregistered_token_surfaces_as_unregistered_error(
    fakes: RunningFakes, firebase_app: firebase_admin.App
) -> None:
    fakes.fcm.mark_unregistered("dead-device")
    batch = await messaging.send_each_async([push("dead-device")], app=firebase_app)

    [response] = batch.responses
    assert not response.success
    assert isinstance(response.exception, messaging.UnregisteredError)
    assert response.exception.http_response is not None and response.exception.http_response.status_code == 404
    assert fakes.fcm.messages == []


async def test_fcm_multicast_with_one_dead_token(fakes: RunningFakes, firebase_app: firebase_admin.App) -> None:
    fakes.fcm.mark_unregistered("phone-b")
    multicast = messaging.MulticastMessage(
        fids=["phone-a", "phone-b", "phone-c"],
        notification=messaging.Notification(title="Power cut", body="Tower A, 2-4pm"),
        data={"kind": "outage"},
    )
    batch = await messaging.send_each_for_multicast_async(multicast, app=firebase_app)

    assert (batch.success_count, batch.failure_count) == (2, 1)
    dead = [i for i, response in enumerate(batch.responses) if not response.success]
    assert dead == [1]
    assert isinstance(batch.responses[1].exception, messaging.UnregisteredError)
    assert sorted(m.target for m in fakes.fcm.messages) == ["phone-a", "phone-c"]


async def test_fcm_error_mapping(fakes: RunningFakes, firebase_app: firebase_admin.App) -> None:
    fakes.fcm.mark_sender_id_mismatch("other-project-device")
    fakes.fcm.mark_invalid("garbage")
    batch = await messaging.send_each_async([push("other-project-device"), push("garbage")], app=firebase_app)
    mismatch, invalid = (response.exception for response in batch.responses)
    assert isinstance(mismatch, messaging.SenderIdMismatchError)
    assert isinstance(invalid, firebase_exceptions.InvalidArgumentError)

    fakes.fcm.fail_next(1, status=429)
    [quota] = (await messaging.send_each_async([push("device-1")], app=firebase_app)).responses
    assert isinstance(quota.exception, messaging.QuotaExceededError)


async def test_fcm_transient_503_is_retried_by_the_sdk(fakes: RunningFakes, firebase_app: firebase_admin.App) -> None:
    # firebase-admin retries 500/503 itself (first retry immediately), so one 503 is invisible.
    fakes.fcm.fail_next(1, status=503)
    batch = await messaging.send_each_async([push("device-1")], app=firebase_app)
    assert batch.success_count == 1
    assert fakes.fcm.attempts == 2


async def test_fcm_dry_run_and_sync_send(fakes: RunningFakes, firebase_app: firebase_admin.App) -> None:
    [dry] = (await messaging.send_each_async([push("device-1")], dry_run=True, app=firebase_app)).responses
    assert dry.message_id == f"projects/{fakes.fcm.project_id}/messages/fake_message_id"
    assert fakes.fcm.messages[0].validate_only and fakes.fcm.delivered_to("device-1") == []

    # The synchronous (requests-based) path is redirected too.
    message_id = await asyncio.to_thread(messaging.send, push("device-2"), app=firebase_app)
    assert fakes.fcm.delivered_to("device-2")[0].name == message_id


async def test_fcm_wrong_access_token_is_unauthenticated(fakes: RunningFakes) -> None:
    app = firebase_app_for_fake(fakes.fcm_url, fakes.fcm.project_id, access_token="stale", name="fcm-bad-token")
    try:
        [response] = (await messaging.send_each_async([push("device-1")], app=app)).responses
        assert isinstance(response.exception, firebase_exceptions.UnauthenticatedError)
    finally:
        await aclose_firebase_app(app)


# --------------------------------------------------------------------------------------------
# SMTP through aiosmtplib
# --------------------------------------------------------------------------------------------


def email(to: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "ops@opshub.test"
    message["To"] = to
    message["Subject"] = "Monthly maintenance invoice"
    message.set_content("Your invoice for November is ready.")
    message.add_alternative("<p>Your invoice for <b>November</b> is ready.</p>", subtype="html")
    return message


async def test_smtp_records_messages(fakes: RunningFakes) -> None:
    await aiosmtplib.send(
        email("resident@example.com"),
        hostname=fakes.smtp_host,
        port=fakes.smtp_port,
        username="opshub",
        password="secret",
        start_tls=False,
    )
    async with asyncio.timeout(5):
        [received] = await fakes.smtp.wait_for(1)
    assert received.mail_from == "ops@opshub.test"
    assert received.rcpt_tos == ["resident@example.com"]
    assert received.subject == "Monthly maintenance invoice"
    assert received.text is not None and received.text.strip() == "Your invoice for November is ready."
    assert received.html is not None and "<b>November</b>" in received.html
    assert received.auth_user == "opshub"

    async with httpx.AsyncClient() as http:
        listed = (await http.get(f"{fakes.http_url}/smtp/_fake/messages")).json()
    assert listed[0]["subject"] == "Monthly maintenance invoice"


async def test_smtp_rejects_configured_recipients(fakes: RunningFakes) -> None:
    fakes.smtp.configure(reject_recipients=["nobody@example.com"])
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
        await aiosmtplib.send(email("nobody@example.com"), hostname=fakes.smtp_host, port=fakes.smtp_port)
    assert fakes.smtp.emails == []


# --------------------------------------------------------------------------------------------
# the CLI
# --------------------------------------------------------------------------------------------


async def test_cli_starts_all_fakes_and_prints_urls() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "notifications.fakes",
        "--port",
        "0",
        "--smtp-port",
        "0",
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    printed: dict[str, str] = {}
    try:
        async with asyncio.timeout(30):
            while not (line := (await process.stdout.readline()).decode()).startswith("# dashboard"):
                assert line, "CLI exited before printing its URLs"
                key, _, value = line.strip().partition("=")
                printed[key] = value
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"{printed['TWILIO_BASE_URL']}/_fake/messages")).json() == []
            assert (await http.get(f"{printed['FCM_BASE_URL']}/_fake/messages")).json() == []
        smtp = aiosmtplib.SMTP(hostname=printed["SMTP_HOST"], port=int(printed["SMTP_PORT"]))
        await smtp.connect()
        await smtp.quit()
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            async with asyncio.timeout(15):
                assert await process.wait() == 0


async def test_twilio_list_messages_filters_by_recipient_newest_first() -> None:
    from notifications.fakes import running_fakes
    from notifications.fakes.sdk_wiring import twilio_client_for_fake

    async with running_fakes(twilio_account_sid="AC" + "1" * 32, twilio_auth_token="secret") as fakes:
        client = twilio_client_for_fake(fakes.twilio_url, "AC" + "1" * 32, "secret")
        try:
            for body in ("first", "second"):
                await client.messages.create_async(to="+919812345678", from_="OPSHUB", body=body)
            await client.messages.create_async(to="+919812345679", from_="OPSHUB", body="other")
            listed = await client.messages.list_async(to="+919812345678", limit=10)
        finally:
            await client.http_client.close()  # type: ignore[attr-defined]
    assert [m.body for m in listed] == ["second", "first"]
