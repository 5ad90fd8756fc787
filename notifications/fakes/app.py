"""One Litestar app hosting every fake HTTP provider, plus a dashboard of what was "sent".

Layout (each fake's base URL is what the SDK wiring and env vars point at)::

    /twilio/2010-04-01/...   fake Twilio REST API      /twilio/_fake/...  its controls
    /fcm/v1/projects/...     fake FCM HTTP v1          /fcm/_fake/...     its controls
    /razorpay/v1/...         fake Razorpay API and     /razorpay/_fake/... its controls
                             hosted checkout
                                                       /smtp/_fake/...    SMTP records/controls
    /_fake/                  HTML dashboard            /_fake/state       everything as JSON
"""

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

import msgspec
from litestar import Litestar, MediaType, get, post

from notifications.fakes.fcm_server import FcmFake, FcmMessage, fcm_router
from notifications.fakes.razorpay_server import RazorpayFake, razorpay_router
from notifications.fakes.smtp_server import ReceivedEmail, SmtpFake, smtp_router
from notifications.fakes.twilio_models import PlacedCall, SentMessage, WebhookDelivery
from notifications.fakes.twilio_routes import twilio_router
from notifications.fakes.twilio_server import TwilioFake


@dataclass
class FakeHub:
    twilio: TwilioFake = field(default_factory=TwilioFake)
    fcm: FcmFake = field(default_factory=FcmFake)
    smtp: SmtpFake = field(default_factory=SmtpFake)
    razorpay: RazorpayFake = field(default_factory=RazorpayFake)

    def reset(self) -> None:
        self.twilio.reset()
        self.fcm.reset()
        self.smtp.reset()
        self.razorpay.reset()


class HubState(msgspec.Struct):
    twilio_messages: list[SentMessage]
    twilio_calls: list[PlacedCall]
    twilio_webhooks: list[WebhookDelivery]
    fcm_messages: list[FcmMessage]
    emails: list[ReceivedEmail]


def _table(title: str, headers: list[str], rows: Sequence[Sequence[str | None]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = (
        "".join("<tr>" + "".join(f"<td>{escape(cell or '')}</td>" for cell in row) + "</tr>" for row in rows)
        or f'<tr><td colspan="{len(headers)}"><em>nothing yet</em></td></tr>'
    )
    return f"<h2>{escape(title)} ({len(rows)})</h2><table><tr>{head}</tr>{body}</table>"


def render_dashboard(hub: FakeHub) -> str:
    sms = [
        [
            m.date_created.strftime("%H:%M:%S"),
            m.channel,
            m.to,
            m.from_,
            m.status,
            m.body or m.content_sid,
            str(m.error_code or ""),
        ]
        for m in reversed(hub.twilio.messages)
    ]
    calls = [
        [c.date_created.strftime("%H:%M:%S"), c.to, c.status, c.twiml or c.fetched_twiml or c.url]
        for c in reversed(hub.twilio.calls)
    ]
    push = [
        [
            m.received_at.strftime("%H:%M:%S"),
            m.target,
            (m.notification or {}).get("title"),
            (m.notification or {}).get("body"),
            msgspec.json.encode(m.data or {}).decode(),
        ]
        for m in reversed(hub.fcm.messages)
    ]
    mail = [
        [e.received_at.strftime("%H:%M:%S"), ", ".join(e.rcpt_tos), e.subject, (e.text or "")[:200]]
        for e in reversed(hub.smtp.emails)
    ]
    payments = [
        [
            time.strftime("%H:%M:%S", time.localtime(p["created_at"])),
            p["id"],
            p["order_id"],
            f"{p['amount'] / 100:.2f} {p['currency']}",
            p["status"],
            str(p["amount_refunded"]),
        ]
        for p in reversed(list(hub.razorpay.payments.values()))
    ]
    razorpay_hooks = [
        [e.event_id, e.event, ", ".join(str(d) for d in e.deliveries)] for e in reversed(hub.razorpay.events)
    ]
    hooks = [
        [w.sent_at.strftime("%H:%M:%S"), w.kind, w.url, str(w.status_code or w.error)]
        for w in reversed(hub.twilio.webhooks)
    ]
    return (
        "<!doctype html><html><head><meta charset='utf-8'><meta http-equiv='refresh' content='3'>"
        "<title>opshub fake providers</title><style>body{font-family:sans-serif;margin:1.5em}"
        "table{border-collapse:collapse;width:100%;margin-bottom:1.5em}td,th{border:1px solid #ccc;"
        "padding:4px 8px;text-align:left;font-size:13px}th{background:#eee}</style></head><body>"
        "<h1>What the fakes have &ldquo;sent&rdquo;</h1>"
        + _table("SMS / WhatsApp (Twilio)", ["time", "channel", "to", "from", "status", "body", "error"], sms)
        + _table("Voice calls (Twilio)", ["time", "to", "status", "twiml"], calls)
        + _table("Push (FCM)", ["time", "token", "title", "body", "data"], push)
        + _table("Email (SMTP)", ["time", "to", "subject", "text"], mail)
        + _table("Webhooks sent to our app", ["time", "kind", "url", "result"], hooks)
        + _table("Payments (Razorpay)", ["time", "payment", "order", "amount", "status", "refunded"], payments)
        + _table("Razorpay webhooks", ["event id", "event", "deliveries"], razorpay_hooks)
        + "</body></html>"
    )


def build_app(hub: FakeHub) -> Litestar:
    @get("/_fake/", media_type=MediaType.HTML, sync_to_thread=False)
    def dashboard() -> str:
        return render_dashboard(hub)

    @get("/_fake/state", sync_to_thread=False)
    def state() -> HubState:
        return HubState(
            twilio_messages=hub.twilio.messages,
            twilio_calls=hub.twilio.calls,
            twilio_webhooks=hub.twilio.webhooks,
            fcm_messages=hub.fcm.messages,
            emails=hub.smtp.emails,
        )

    @post("/_fake/reset", status_code=204, sync_to_thread=False)
    def reset() -> None:
        hub.reset()

    return Litestar(
        route_handlers=[
            dashboard,
            state,
            reset,
            twilio_router(hub.twilio),
            fcm_router(hub.fcm),
            smtp_router(hub.smtp),
            razorpay_router(hub.razorpay),
        ],
        # The Twilio fake owns an httpx client (for webhooks) bound to the serving loop.
        on_startup=[hub.twilio.start, hub.razorpay.start],
        on_shutdown=[hub.twilio.aclose, hub.razorpay.aclose],
        openapi_config=None,
        # Litestar's default LoggingConfig reconfigures the *root* logger at INFO; the fakes
        # run inside test processes and the dev app, so leave the host's logging alone.
        logging_config=None,
    )
