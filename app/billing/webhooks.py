"""The payment provider's webhooks and the checkout's return.

**Webhooks** (``POST /api/webhooks/razorpay``): the body must carry ``X-Razorpay-Signature``, the
HMAC-SHA256 of the raw body with the webhook secret, checked with the SDK's own utility; a missing or
wrong signature is a 403 problem and changes nothing. Razorpay delivers at least once, out of order, for
24 hours: each event is recorded under its ``X-Razorpay-Event-Id`` (a signed body without one is keyed
by the body's SHA-256), and an event seen before is answered 200 ``replayed`` without being applied
again. Applying is itself idempotent on the provider's payment and refund ids, so two deliveries racing
each other, or one capture reported under two event ids, still record one payment.

- ``payment.captured``, ``order.paid``: record the payment (``payments.record_capture``);
- ``refund.processed`` (and ``refund.created``): record the refund, parked if its capture is not known yet;
- ``payment.authorized``, ``payment.failed`` and anything else: noted, nothing to record (payments are
  captured automatically; a failed attempt leaves the order open for another try).

**Return** (``/billing/checkout/return``): the hosted checkout POSTs ``razorpay_order_id``,
``razorpay_payment_id`` and ``razorpay_signature``. The signature is checked with the SDK's
``verify_payment_signature``; the payment is then fetched from the provider and recorded like a webhook
(whichever comes first records it).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from typing import Any

import msgspec
from redis.asyncio import Redis

from app.billing.payments import Recorded, announce, record_capture, record_refund
from app.billing.provider import PaymentProvider, ProviderError, payment_of, refund_of
from app.config import Settings
from app.errors import Forbidden, InvalidInput
from schema.billing import WebhookEvent

logger = logging.getLogger("opshub.billing.webhooks")
SIGNATURE_HEADER = "X-Razorpay-Signature"
EVENT_ID_HEADER = "X-Razorpay-Event-Id"
CAPTURE_EVENTS = frozenset({"payment.captured", "order.paid"})
REFUND_EVENTS = frozenset({"refund.processed", "refund.created"})


class WebhookAnswer(msgspec.Struct, frozen=True, kw_only=True):
    event_id: str
    event: str
    outcome: str  # recorded | applied | duplicate | replayed | waiting_for_capture | unknown_order | ignored


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def handle_webhook(
    provider: PaymentProvider,
    redis: Redis,
    settings: Settings,
    body: bytes,
    signature: str | None,
    event_id: str | None,
    now: dt.datetime | None = None,
) -> WebhookAnswer:
    now = now or now_utc()
    if not signature or not provider.verify_webhook(body, signature):
        logger.warning("refused a payment webhook with a %s signature", "wrong" if signature else "missing")
        raise Forbidden(f"missing or invalid {SIGNATURE_HEADER}")
    try:
        event = json.loads(body)
        kind = str(event["event"])
        payload: dict[str, Any] = event.get("payload") or {}
    except (ValueError, KeyError, TypeError):
        raise InvalidInput.for_field("body", "not a Razorpay event") from None
    key = (event_id or "").strip()[:64] or "sha256:" + hashlib.sha256(body).hexdigest()[:57]
    if await WebhookEvent.exists().where(WebhookEvent.event_id == key):
        return WebhookAnswer(event_id=key, event=kind, outcome="replayed")
    recorded = Recorded("ignored")
    try:
        if kind in CAPTURE_EVENTS and "payment" in payload:
            payment = payment_of(payload["payment"]["entity"])
            if payment.status == "captured":
                recorded = await record_capture(provider.name, payment, now)
        elif kind in REFUND_EVENTS and "refund" in payload:
            recorded = await record_refund(refund_of(payload["refund"]["entity"]), now)
    except (KeyError, TypeError, ValueError):
        raise InvalidInput.for_field("body", f"a {kind} event without the entity it needs") from None
    await WebhookEvent.insert(
        WebhookEvent(
            provider=provider.name,
            event_id=key,
            event_type=kind[:64],
            site=recorded.site_id,
            outcome=recorded.outcome,
            payload_sha256=hashlib.sha256(body).hexdigest(),
            received_at=now,
        )
    ).on_conflict(action="DO NOTHING")
    await announce(redis, settings, recorded, now)
    logger.info("payment webhook %s %s: %s", kind, key, recorded.outcome)
    return WebhookAnswer(event_id=key, event=kind, outcome=recorded.outcome)


async def handle_return(
    provider: PaymentProvider,
    redis: Redis,
    settings: Settings,
    order_id: str,
    payment_id: str,
    signature: str,
    now: dt.datetime | None = None,
) -> Recorded:
    """The checkout's signed return: verified, then the payment as the provider has it is recorded."""
    if not (order_id and payment_id and signature) or not provider.verify_checkout(order_id, payment_id, signature):
        raise Forbidden("missing or invalid razorpay_signature")
    try:
        payment = await provider.fetch_payment(payment_id)
    except ProviderError:
        logger.warning("could not fetch payment %s after checkout; the webhook will record it", payment_id)
        return Recorded("pending")
    if payment.order_id != order_id or payment.status != "captured":
        return Recorded("pending")
    recorded = await record_capture(provider.name, payment, now)
    await announce(redis, settings, recorded, now)
    return recorded
