"""A fake of Twilio's 2010-04-01 REST API (Messages, Calls) that the real ``twilio`` SDK talks to.

Besides answering the API it behaves like Twilio towards *our* app: it POSTs status callbacks
and inbound messages signed with ``X-Twilio-Signature`` (HMAC-SHA1 of URL + sorted params with
the auth token), so webhook signature checks are exercised for real.
"""

import asyncio
import base64
import binascii
import contextlib
import json
import re
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any, Literal

import httpx
import msgspec
from twilio.request_validator import RequestValidator

from notifications.fakes._util import (
    LimitExceeded,
    ProviderLimits,
    TaskGroupLite,
    merge_into_struct,
    new_sid,
    utcnow,
)
from notifications.fakes.twilio_models import (
    API_VERSION,
    DeliveryFailure,
    MessageStatus,
    PlacedCall,
    SentMessage,
    TwilioBehaviour,
    TwilioErrorBody,
    WebhookDelivery,
    WebhookKind,
)

DEFAULT_ACCOUNT_SID = "AC" + "0" * 32
DEFAULT_AUTH_TOKEN = "fake-twilio-auth-token"

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
# SMS senders may also be short codes or alphanumeric sender IDs (1-11 chars, >= 1 letter).
_SHORT_CODE = re.compile(r"^\d{5,6}$")
_ALPHANUMERIC_SENDER = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")
_CONTENT_SID = re.compile(r"^HX[0-9a-fA-F]{32}$")
_WHATSAPP = "whatsapp:"
MAX_BODY_CHARS = 1600

# Twilio's Advanced Opt-Out keywords: an inbound STOP opts the sender out for real, so later
# sends to that number fail with 21610 exactly as they would in production.
OPT_OUT_KEYWORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT"})
OPT_IN_KEYWORDS = frozenset({"START", "YES", "UNSTOP", "OPTIN"})

# HTTP status + message for the error codes the fake can produce (as documented by Twilio).
ERRORS: dict[int, tuple[int, str]] = {
    20003: (401, "Authenticate"),
    20404: (404, "The requested resource was not found"),
    20429: (429, "Too Many Requests"),
    20500: (500, "Internal Server Error"),
    20503: (503, "Service Unavailable"),
    21205: (400, "Url parameter is required."),
    21211: (400, "Invalid 'To' Phone Number"),
    21212: (400, "Invalid 'From' Phone Number"),
    21602: (400, "Message body is required."),
    21603: (400, "A 'From' phone number is required."),
    21604: (400, "A 'To' phone number is required."),
    21610: (400, "Attempt to send to unsubscribed recipient"),
    21617: (400, "The concatenated message body exceeds the 1600 character limit."),
    21655: (400, "The ContentSid is Invalid."),
    21656: (400, "The ContentVariables Parameter is invalid."),
    21910: (400, "Invalid From and To pair. From and To should be of the same channel."),
    63016: (
        400,
        "Failed to send freeform message because you are outside the allowed window. "
        "If you are using WhatsApp, please use a Message Template.",
    ),
}
_TRANSIENT_CODES = {429: 20429, 500: 20500, 503: 20503}

# GSM 03.38 basic set (+ escape table): decides 160/153 vs 70/67 chars per segment.
_GSM7 = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà^{}\\[~]|€"
)


# How many webhook deliveries (status callbacks, inbound) may be in flight at once.
WEBHOOK_CONCURRENCY = 16


class TwilioApiError(Exception):
    def __init__(self, code: int, detail: str | None = None, retry_after: int | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.detail = detail
        # Seconds for a Retry-After header (Twilio sends one with its 429s).
        self.retry_after = retry_after

    @property
    def http_status(self) -> int:
        return ERRORS[self.code][0]

    def body(self) -> TwilioErrorBody:
        return TwilioErrorBody(
            code=self.code,
            message=ERRORS[self.code][1],
            more_info=f"https://www.twilio.com/docs/errors/{self.code}",
            status=self.http_status,
            detail=self.detail,
        )


def bare_number(address: str) -> str:
    return address.removeprefix(_WHATSAPP)


def count_segments(body: str) -> int:
    if not body:
        return 1
    single, multi = (160, 153) if set(body) <= _GSM7 else (70, 67)
    return 1 if len(body) <= single else -(-len(body) // multi)


class TwilioFake:
    """State, behaviour switches and webhook machinery of the fake Twilio account."""

    def __init__(
        self,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        behaviour: TwilioBehaviour | None = None,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.behaviour = behaviour or TwilioBehaviour()
        self.messages: list[SentMessage] = []
        self.calls: list[PlacedCall] = []
        self.webhooks: list[WebhookDelivery] = []
        self._validator = RequestValidator(auth_token)
        self._tasks = TaskGroupLite()
        self._webhook_slots = asyncio.Semaphore(WEBHOOK_CONCURRENCY)
        self._http: httpx.AsyncClient | None = None
        # Rate and concurrency limits (configured in ``behaviour``) and what they counted. A test may
        # replace ``limits.clock`` (epoch seconds) to move the fake's time with its own.
        self.limits = ProviderLimits()

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=10.0, headers={"User-Agent": "TwilioProxy/1.1"})

    async def aclose(self) -> None:
        await self._tasks.cancel_all()
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def drain(self) -> None:
        """Wait until all scheduled status callbacks / webhooks have been delivered.

        Callers bound the wait themselves (``async with asyncio.timeout(...)``).
        """
        await self._tasks.drain()

    # -- controls ------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget everything sent and restore default behaviour (credentials are kept)."""
        self.messages.clear()
        self.calls.clear()
        self.webhooks.clear()
        self.behaviour = TwilioBehaviour()
        self.limits.reset()

    def configure(self, **changes: Any) -> TwilioBehaviour:
        self.behaviour = merge_into_struct(self.behaviour, changes)
        return self.behaviour

    def opt_out(self, *numbers: str) -> None:
        self.behaviour.opted_out.update(numbers)

    def mark_invalid(self, *numbers: str) -> None:
        self.behaviour.invalid.update(numbers)

    def open_whatsapp_session(self, *numbers: str) -> None:
        self.behaviour.whatsapp_sessions.update(bare_number(n) for n in numbers)

    def fail_delivery(
        self, number: str, status: Literal["undelivered", "failed"] = "undelivered", error_code: int = 30003
    ) -> None:
        self.behaviour.delivery_failures[number] = DeliveryFailure(status=status, error_code=error_code)

    def fail_next(self, count: int, status: Literal[429, 500, 503] = 429) -> None:
        """Make the next ``count`` API requests fail transiently (for retry tests)."""
        self.configure(fail_next=count, fail_status=status)

    def message(self, sid: str) -> SentMessage | None:
        return next((m for m in self.messages if m.sid == sid), None)

    def call(self, sid: str) -> PlacedCall | None:
        return next((c for c in self.calls if c.sid == sid), None)

    # -- request checks --------------------------------------------------------------------
    def check_auth(self, authorization: str | None, path_account_sid: str) -> None:
        username, password = _parse_basic_auth(authorization)
        if username != self.account_sid or password != self.auth_token:
            raise TwilioApiError(20003, "Your AccountSid or AuthToken was incorrect.")
        if path_account_sid != self.account_sid:
            raise TwilioApiError(20404)

    @contextlib.asynccontextmanager
    async def limited(self, form: Mapping[str, list[str]], *, per_sender: bool) -> AsyncIterator[None]:
        """Admit one create request under the configured limits for the duration of the block.

        Raises :class:`TwilioApiError` 20429 (HTTP 429, with Retry-After) above the account's
        concurrency cap or, with ``per_sender`` (Messages), above the sender's rate.
        """
        first = {key: values[0] for key, values in form.items() if values}
        sender = first.get("From") or first.get("MessagingServiceSid") or ""
        key = sender if per_sender else f"call:{sender}"  # calls are not counted against a sender's messages
        behaviour = self.behaviour
        try:
            with self.limits.admit(
                key,
                first.get("To", ""),
                rate_per_second=behaviour.sender_rate_per_second if per_sender else None,
                max_concurrent=behaviour.max_concurrent_requests,
                retry_after=behaviour.limit_retry_after,
            ):
                if behaviour.api_latency > 0:
                    await asyncio.sleep(behaviour.api_latency)
                yield
        except LimitExceeded as exc:
            raise TwilioApiError(20429, retry_after=exc.retry_after) from None

    def _consume_transient_failure(self) -> None:
        if self.behaviour.fail_next > 0:
            self.behaviour.fail_next -= 1
            raise TwilioApiError(_TRANSIENT_CODES[self.behaviour.fail_status])

    def _matches(self, configured: set[str] | dict[str, Any], address: str) -> bool:
        return address in configured or bare_number(address) in configured

    def _check_to(self, to: str) -> None:
        if not _E164.match(bare_number(to)) or self._matches(self.behaviour.invalid, to):
            raise TwilioApiError(21211)

    # -- Messages ------------------------------------------------------------------------------
    def create_message(self, form: Mapping[str, list[str]]) -> SentMessage:
        """Validate a Messages.json POST like Twilio does; record and schedule delivery."""
        self._consume_transient_failure()
        first = {key: values[0] for key, values in form.items() if values}
        to = first.get("To")
        if not to:
            raise TwilioApiError(21604)
        from_ = first.get("From")
        service_sid = first.get("MessagingServiceSid")
        if not from_ and not service_sid:
            raise TwilioApiError(21603)
        body = first.get("Body")
        content_sid = first.get("ContentSid")
        media_urls = list(form.get("MediaUrl", []))
        if not body and not content_sid and not media_urls:
            raise TwilioApiError(21602)
        if body and len(body) > MAX_BODY_CHARS:
            raise TwilioApiError(21617)
        self._check_to(to)
        channel: Literal["sms", "whatsapp"] = "whatsapp" if to.startswith(_WHATSAPP) else "sms"
        if from_ is not None:
            if from_.startswith(_WHATSAPP) != (channel == "whatsapp"):
                raise TwilioApiError(21910)
            if not _valid_sender(from_):
                raise TwilioApiError(21212)
        if content_sid is not None and not _CONTENT_SID.match(content_sid):
            raise TwilioApiError(21655)
        content_variables = _parse_content_variables(first.get("ContentVariables"))
        if self._matches(self.behaviour.opted_out, to):
            raise TwilioApiError(21610)
        outside_window = (
            channel == "whatsapp" and content_sid is None and bare_number(to) not in self.behaviour.whatsapp_sessions
        )
        if outside_window and self.behaviour.whatsapp_window_error == "http":
            raise TwilioApiError(63016)

        now = utcnow()
        # With only a Messaging Service, Twilio answers "accepted" with from=null and picks the
        # sender later; with an explicit From it answers "queued".
        status: Literal["accepted", "queued"] = "queued" if from_ else "accepted"
        message = SentMessage(
            sid=new_sid("SM"),
            account_sid=self.account_sid,
            to=to,
            from_=from_,
            body=body,
            channel=channel,
            status=status,
            messaging_service_sid=service_sid,
            content_sid=content_sid,
            content_variables=content_variables,
            media_urls=media_urls,
            status_callback=first.get("StatusCallback"),
            num_segments=count_segments(body or ""),
            date_created=now,
            date_updated=now,
            status_history=[status],
            params={key: list(values) for key, values in form.items()},
        )
        self.messages.append(message)
        self._tasks.spawn(self._progress_message(message, outside_window))
        return message

    async def _progress_message(self, message: SentMessage, outside_window: bool) -> None:
        """Walk the message through Twilio's lifecycle, POSTing a callback at each step."""
        delay = self.behaviour.callback_delay
        failure = self._delivery_failure(message.to)
        if outside_window:
            steps: list[tuple[MessageStatus, int | None]] = [("failed", 63016)]
        elif failure is not None:
            steps = [("sent", None), (failure.status, failure.error_code)]
        else:
            steps = [("sent", None), ("delivered", None)]
        for status, error_code in steps:
            await asyncio.sleep(delay)
            self._set_message_status(message, status, error_code)
            if message.status_callback and self.behaviour.callbacks_enabled:
                await self._post_webhook("message-status", message.status_callback, _status_params(message))

    def _delivery_failure(self, to: str) -> DeliveryFailure | None:
        failures = self.behaviour.delivery_failures
        return failures.get(to) or failures.get(bare_number(to))

    def _set_message_status(self, message: SentMessage, status: MessageStatus, error_code: int | None) -> None:
        message.status = status
        message.status_history.append(status)
        message.date_updated = utcnow()
        if message.from_ is None:
            prefix = _WHATSAPP if message.channel == "whatsapp" else ""
            message.from_ = prefix + self.behaviour.messaging_service_from
        if status == "sent":
            message.date_sent = message.date_updated
        if error_code is not None:
            message.error_code = error_code
            message.error_message = ERRORS.get(error_code, (0, "Message delivery failed"))[1]

    # -- Calls --------------------------------------------------------------------------------------
    def create_call(self, form: Mapping[str, list[str]]) -> PlacedCall:
        self._consume_transient_failure()
        first = {key: values[0] for key, values in form.items() if values}
        to = first.get("To")
        if not to:
            raise TwilioApiError(21604)
        from_ = first.get("From")
        if not from_:
            raise TwilioApiError(21603)
        twiml, url = first.get("Twiml"), first.get("Url")
        if not twiml and not url and not first.get("ApplicationSid"):
            raise TwilioApiError(21205)
        self._check_to(to)
        now = utcnow()
        call = PlacedCall(
            sid=new_sid("CA"),
            account_sid=self.account_sid,
            to=to,
            from_=from_,
            twiml=twiml,
            url=url,
            method=first.get("Method", "POST"),
            status="queued",
            status_callback=first.get("StatusCallback"),
            status_callback_events=list(form.get("StatusCallbackEvent", [])),
            date_created=now,
            date_updated=now,
            status_history=["queued"],
            params={key: list(values) for key, values in form.items()},
        )
        self.calls.append(call)
        self._tasks.spawn(self._progress_call(call))
        return call

    async def _progress_call(self, call: PlacedCall) -> None:
        delay = self.behaviour.callback_delay
        failure = self._delivery_failure(call.to)
        final = "failed" if failure is not None else "completed"
        # Twilio only reports intermediate events the caller subscribed to; "completed" always.
        wanted = [e for e in ("initiated", "ringing", "answered") if e in call.status_callback_events]
        for status in [*wanted, final]:
            await asyncio.sleep(delay)
            if status in ("answered", "completed"):
                await self._fetch_twiml(call)
            call.status = "in-progress" if status == "answered" else status
            call.status_history.append(call.status)
            call.date_updated = utcnow()
            if call.status_callback and self.behaviour.callbacks_enabled:
                params = _call_params(call, call.status)
                if call.status in ("completed", "failed"):
                    params["CallDuration"] = "0" if failure else "5"
                await self._post_webhook("call-status", call.status_callback, params)

    async def _fetch_twiml(self, call: PlacedCall) -> None:
        """Twilio fetches TwiML from ``Url`` once the callee answers; do it once, signed."""
        if call.url and call.fetched_twiml is None and self.behaviour.callbacks_enabled:
            delivery = await self._post_webhook("voice-url", call.url, _call_params(call, "in-progress"))
            call.fetched_twiml = delivery.response_body or ""

    def twiml_of(self, call: PlacedCall) -> str | None:
        """The TwiML the call is executing: given inline (``Twiml``) or fetched from ``Url``."""
        return call.twiml or call.fetched_twiml

    async def press_digits(self, sid: str, digits: str) -> WebhookDelivery:
        """The callee presses ``digits`` during the call's ``<Gather>``: Twilio POSTs them, signed, to
        the Gather's ``action`` (relative actions resolve against the call's ``Url``), with the call's
        parameters plus ``Digits``. The app's answer (TwiML) is recorded on the delivery."""
        call = self.call(sid)
        if call is None:
            raise LookupError(f"no call {sid}")
        if call.url and call.fetched_twiml is None:
            await self._fetch_twiml(call)
        twiml = self.twiml_of(call)
        if not twiml:
            raise ValueError(f"call {sid} has no TwiML")
        action, method = _gather_action(twiml, call.url)
        if action is None:
            raise ValueError(f"the TwiML of call {sid} has no <Gather> with an action")
        if method != "POST":
            raise ValueError("only POST Gather actions are supported by the fake")
        params = {**_call_params(call, "in-progress"), "Digits": digits, "FinishedOnKey": ""}
        call.status_history.append(f"gathered:{digits}")
        return await self._post_webhook("gather", action, params)

    # -- webhooks to our app ------------------------------------------------------------------
    def sign(self, url: str, params: Mapping[str, str]) -> str:
        return str(self._validator.compute_signature(url, dict(params)))

    async def _post_webhook(self, kind: WebhookKind, url: str, params: dict[str, str]) -> WebhookDelivery:
        if self._http is None:
            await self.start()
        assert self._http is not None
        signature = self.sign(url, params)
        delivery = WebhookDelivery(kind=kind, url=url, params=params, signature=signature, sent_at=utcnow())
        headers = {
            "X-Twilio-Signature": signature,
            # Twilio sends this so receivers can deduplicate retried webhooks.
            "I-Twilio-Idempotency-Token": str(uuid.uuid4()),
        }
        try:
            # Bounded: thousands of callbacks queued in one httpx pool make its bookkeeping
            # quadratic and stall the whole fake (Twilio also paces its webhook deliveries).
            async with self._webhook_slots:
                response = await self._http.post(url, data=params, headers=headers)
        except httpx.HTTPError as exc:
            delivery.error = f"{type(exc).__name__}: {exc}"
        else:
            delivery.status_code = response.status_code
            delivery.response_body = response.text
        self.webhooks.append(delivery)
        return delivery

    async def send_inbound(
        self, url: str, *, from_: str, to: str, body: str, extra: Mapping[str, str] | None = None
    ) -> WebhookDelivery:
        """Deliver an inbound SMS/WhatsApp to our app as Twilio would (signed form POST).

        Side effects mirror Twilio: an inbound WhatsApp message opens the sender's 24h session,
        and STOP/START keywords on SMS opt the sender out/in (Advanced Opt-Out).
        """
        sid = new_sid("SM")
        params = {
            "MessageSid": sid,
            "SmsMessageSid": sid,
            "SmsSid": sid,
            "SmsStatus": "received",
            "AccountSid": self.account_sid,
            "From": from_,
            "To": to,
            "Body": body,
            "NumMedia": "0",
            "NumSegments": str(count_segments(body)),
            "ApiVersion": API_VERSION,
        }
        keyword = body.strip().upper()
        if from_.startswith(_WHATSAPP):
            params["WaId"] = bare_number(from_).lstrip("+")
            params["ProfileName"] = "Fake Resident"
            self.open_whatsapp_session(from_)
        elif keyword in OPT_OUT_KEYWORDS:
            params["OptOutType"] = "STOP"
            self.behaviour.opted_out.add(from_)
        elif keyword in OPT_IN_KEYWORDS:
            params["OptOutType"] = "START"
            self.behaviour.opted_out.discard(from_)
        params.update(extra or {})
        return await self._post_webhook("inbound-message", url, params)


def _status_params(message: SentMessage) -> dict[str, str]:
    params = {
        "MessageSid": message.sid,
        "SmsSid": message.sid,
        "MessageStatus": message.status,
        "SmsStatus": message.status,
        "AccountSid": message.account_sid,
        "From": message.from_ or "",
        "To": message.to,
        "ApiVersion": API_VERSION,
    }
    if message.messaging_service_sid:
        params["MessagingServiceSid"] = message.messaging_service_sid
    if message.error_code is not None:
        params["ErrorCode"] = str(message.error_code)
    return params


def _call_params(call: PlacedCall, status: str) -> dict[str, str]:
    return {
        "CallSid": call.sid,
        "AccountSid": call.account_sid,
        "From": call.from_,
        "To": call.to,
        "CallStatus": status,
        "Direction": "outbound-api",
        "ApiVersion": API_VERSION,
    }


def _gather_action(twiml: str, base_url: str | None) -> tuple[str | None, str]:
    """The action URL and method of the first ``<Gather>`` in a TwiML document."""
    from urllib.parse import urljoin
    from xml.etree import ElementTree

    try:
        root = ElementTree.fromstring(twiml)
    except ElementTree.ParseError:
        return None, "POST"
    gather = root.find(".//Gather")
    if gather is None:
        return None, "POST"
    action = gather.get("action")
    if action and base_url:
        action = urljoin(base_url, action)
    return action, (gather.get("method") or "POST").upper()


def _valid_sender(from_: str) -> bool:
    if from_.startswith(_WHATSAPP):
        return bool(_E164.match(bare_number(from_)))
    return any(pattern.match(from_) for pattern in (_E164, _SHORT_CODE, _ALPHANUMERIC_SENDER))


def _parse_basic_auth(header: str | None) -> tuple[str | None, str | None]:
    if not header or not header.lower().startswith("basic "):
        return None, None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    username, _, password = decoded.partition(":")
    return username, password


def _parse_content_variables(raw: str | None) -> dict[str, str] | None:
    if raw is None:
        return None
    try:
        parsed = json.loads(raw)
    except ValueError:
        raise TwilioApiError(21656) from None
    if not isinstance(parsed, dict):
        raise TwilioApiError(21656)
    return {str(key): str(value) for key, value in parsed.items()}


def encode_error(error: TwilioApiError) -> bytes:
    return msgspec.json.encode(error.body())
