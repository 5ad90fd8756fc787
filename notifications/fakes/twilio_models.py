"""msgspec shapes for the fake Twilio: the public REST resources and the fake's own records.

The ``*Resource`` structs mirror the JSON Twilio's 2010-04-01 API returns field for field, so the
real SDK parses them exactly as it would production responses. The ``Sent*``/``Placed*``
records carry what tests want to assert on (raw form, content variables, status history).
"""

from datetime import datetime
from typing import Literal

import msgspec

from notifications.fakes._util import rfc2822

API_VERSION = "2010-04-01"

WebhookKind = Literal["message-status", "call-status", "inbound-message", "voice-url", "gather"]
MessageStatus = Literal["accepted", "queued", "sending", "sent", "delivered", "undelivered", "failed"]


class TwilioErrorBody(msgspec.Struct, omit_defaults=True):
    """Twilio's legacy error JSON; the SDK turns it into ``TwilioRestException(code=...)``."""

    code: int
    message: str
    more_info: str
    status: int
    detail: str | None = None


class DeliveryFailure(msgspec.Struct, frozen=True):
    """How a message to a given number ends, e.g. undelivered/30003 (handset unreachable)."""

    status: Literal["undelivered", "failed"] = "undelivered"
    error_code: int = 30003


class TwilioBehaviour(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Everything a test or the dev dashboard can tweak. Numbers are E.164; an entry without
    the ``whatsapp:`` prefix matches both channels, a prefixed one only WhatsApp."""

    opted_out: set[str] = msgspec.field(default_factory=set)
    invalid: set[str] = msgspec.field(default_factory=set)
    delivery_failures: dict[str, DeliveryFailure] = msgspec.field(default_factory=dict)
    whatsapp_sessions: set[str] = msgspec.field(default_factory=set)
    # Real Twilio accepts a freeform WhatsApp message outside the 24h window (201) and then
    # fails it asynchronously with 63016; "http" instead rejects it synchronously with a 400.
    whatsapp_window_error: Literal["callback", "http"] = "callback"
    fail_next: int = 0
    fail_status: Literal[429, 500, 503] = 429
    callbacks_enabled: bool = True
    callback_delay: float = 0.02
    # Twilio picks a sender from the Messaging Service pool; this is the one the fake "picks".
    messaging_service_from: str = "+15005550006"
    # Provider limits, off unless set. Messages per second per sender (From, or the Messaging
    # Service SID), counted in 1-second windows of the fake's clock; and create requests
    # (Messages, Calls) in flight at once for the whole account. Above either: HTTP 429 with
    # error 20429 and a Retry-After header, as Twilio answers.
    sender_rate_per_second: int | None = None
    max_concurrent_requests: int | None = None
    # Retry-After (seconds) on those 429s; None: until the current 1-second window is over (1).
    limit_retry_after: int | None = None
    # Seconds a create or list request takes to answer (real ones take 100-300 ms); 0 answers at once,
    # which leaves hardly any request in flight for the concurrency cap to see.
    api_latency: float = 0.0


class SentMessage(msgspec.Struct, kw_only=True):
    sid: str
    account_sid: str
    to: str
    from_: str | None = msgspec.field(name="from")
    body: str | None
    channel: Literal["sms", "whatsapp"]
    status: MessageStatus
    messaging_service_sid: str | None
    content_sid: str | None
    content_variables: dict[str, str] | None
    media_urls: list[str]
    status_callback: str | None
    num_segments: int
    date_created: datetime
    date_updated: datetime
    date_sent: datetime | None = None
    error_code: int | None = None
    error_message: str | None = None
    status_history: list[str] = msgspec.field(default_factory=list)
    params: dict[str, list[str]] = msgspec.field(default_factory=dict)

    def resource(self) -> "MessageResource":
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{self.sid}.json"
        return MessageResource(
            account_sid=self.account_sid,
            api_version=API_VERSION,
            body=self.body or "",
            date_created=rfc2822(self.date_created),
            date_sent=rfc2822(self.date_sent),
            date_updated=rfc2822(self.date_updated),
            direction="outbound-api",
            error_code=self.error_code,
            error_message=self.error_message,
            from_=self.from_,
            messaging_service_sid=self.messaging_service_sid,
            num_media=str(len(self.media_urls)),
            num_segments=str(self.num_segments),
            price=None,
            price_unit="USD",
            sid=self.sid,
            status=self.status,
            subresource_uris={
                "media": uri.removesuffix(".json") + "/Media.json",
                "feedback": uri.removesuffix(".json") + "/Feedback.json",
            },
            to=self.to,
            uri=uri,
        )


class MessageResource(msgspec.Struct, kw_only=True):
    account_sid: str
    api_version: str
    body: str
    date_created: str | None
    date_sent: str | None
    date_updated: str | None
    direction: str
    error_code: int | None
    error_message: str | None
    from_: str | None = msgspec.field(name="from")
    messaging_service_sid: str | None
    num_media: str
    num_segments: str
    price: str | None
    price_unit: str
    sid: str
    status: str
    subresource_uris: dict[str, str]
    to: str
    uri: str


class PlacedCall(msgspec.Struct, kw_only=True):
    sid: str
    account_sid: str
    to: str
    from_: str = msgspec.field(name="from")
    twiml: str | None
    url: str | None
    method: str
    status: str
    status_callback: str | None
    status_callback_events: list[str]
    date_created: datetime
    date_updated: datetime
    # TwiML our app returned when the fake fetched ``url`` (what Twilio would then execute).
    fetched_twiml: str | None = None
    status_history: list[str] = msgspec.field(default_factory=list)
    params: dict[str, list[str]] = msgspec.field(default_factory=dict)

    def resource(self) -> "CallResource":
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Calls/{self.sid}.json"
        base = uri.removesuffix(".json")
        return CallResource(
            account_sid=self.account_sid,
            annotation=None,
            answered_by=None,
            api_version=API_VERSION,
            caller_name=None,
            date_created=rfc2822(self.date_created),
            date_updated=rfc2822(self.date_updated),
            direction="outbound-api",
            duration=None,
            end_time=None,
            forwarded_from=None,
            from_=self.from_,
            from_formatted=self.from_,
            group_sid=None,
            parent_call_sid=None,
            phone_number_sid=None,
            price=None,
            price_unit="USD",
            queue_time="0",
            sid=self.sid,
            start_time=None,
            status=self.status,
            subresource_uris={
                "notifications": base + "/Notifications.json",
                "recordings": base + "/Recordings.json",
                "events": base + "/Events.json",
            },
            to=self.to,
            to_formatted=self.to,
            trunk_sid=None,
            uri=uri,
        )


class CallResource(msgspec.Struct, kw_only=True):
    account_sid: str
    annotation: str | None
    answered_by: str | None
    api_version: str
    caller_name: str | None
    date_created: str | None
    date_updated: str | None
    direction: str
    duration: str | None
    end_time: str | None
    forwarded_from: str | None
    from_: str = msgspec.field(name="from")
    from_formatted: str
    group_sid: str | None
    parent_call_sid: str | None
    phone_number_sid: str | None
    price: str | None
    price_unit: str
    queue_time: str
    sid: str
    start_time: str | None
    status: str
    subresource_uris: dict[str, str]
    to: str
    to_formatted: str
    trunk_sid: str | None
    uri: str


class WebhookDelivery(msgspec.Struct, kw_only=True):
    """One signed request the fake made to our app (status callback, inbound message, TwiML)."""

    kind: WebhookKind
    url: str
    params: dict[str, str]
    signature: str
    sent_at: datetime
    status_code: int | None = None
    response_body: str | None = None
    error: str | None = None


class InboundRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of ``POST /_fake/inbound``: ask the fake to deliver an inbound SMS/WhatsApp."""

    url: str
    from_: str = msgspec.field(name="from")
    to: str
    body: str
    extra: dict[str, str] = msgspec.field(default_factory=dict)


class DigitsRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of ``POST /_fake/calls/{sid}/digits``: the callee presses keys during a ``<Gather>``."""

    digits: str
