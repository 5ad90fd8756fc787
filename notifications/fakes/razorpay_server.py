"""A local fake of Razorpay: the REST API the official ``razorpay`` SDK calls, a hosted checkout page,
and signed webhooks, as Razorpay sends them.

Served under ``/razorpay`` by the fakes' app; the SDK is pointed at it with ``base_url`` (the client's
own option, ``razorpay.Client(auth=..., base_url=...)``).

- ``POST /v1/orders``, ``GET /v1/orders/{id}``, ``GET /v1/orders/{id}/payments``, ``GET /v1/payments``
  (``from``, ``to`` in Unix seconds, ``count``, ``skip``), ``GET /v1/payments/{id}``,
  ``POST /v1/payments/{id}/refund``, ``GET /v1/refunds/{id}``: Basic auth with the key id and secret;
  errors in Razorpay's shape (``{"error": {"code": "BAD_REQUEST_ERROR", "description": ...}}``).
- ``GET /v1/checkout/embedded?key_id=&order_id=&callback_url=&cancel_url=``: Razorpay's hosted checkout.
  Paying captures the payment, sends the webhooks (``payment.authorized``, ``payment.captured``,
  ``order.paid``) and POSTs ``razorpay_payment_id``, ``razorpay_order_id`` and ``razorpay_signature``
  (HMAC-SHA256 of ``order_id|payment_id`` with the key secret) to the callback URL, as Razorpay does.
- Webhooks: JSON ``{"entity": "event", "event", "contains", "payload", "created_at"}`` with
  ``X-Razorpay-Signature`` (HMAC-SHA256 hex of the raw body with the webhook secret) and
  ``X-Razorpay-Event-Id``, to ``webhook_url``. Razorpay delivers at least once and in any order: the
  fake can send every event twice, report a capture twice under two event ids, or send a refund first.
- Controls: ``GET/PATCH /_fake/config``, ``POST /_fake/reset``, ``GET /_fake/events``,
  ``POST /_fake/events/{id}/replay``, ``POST /_fake/payments/{id}/refund`` (a refund made in the
  dashboard: the webhook tells the app).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
import msgspec
from litestar import MediaType, Request, Response, Router, get, post
from litestar.params import FromPath

from app.security.compare import safe_equals
from notifications.fakes._util import TaskGroupLite, control_routes, merge_into_struct

DEFAULT_KEY_ID = "rzp_test_fakeKey000000"
DEFAULT_KEY_SECRET = "fake-razorpay-key-secret"
DEFAULT_WEBHOOK_SECRET = "fake-razorpay-webhook-secret"


class RazorpayBehaviour(msgspec.Struct, forbid_unknown_fields=True):
    webhook_url: str | None = None  # where events go (the dashboard's webhook setting)
    webhook_delay: float = 0.0  # seconds before each delivery
    duplicate_webhooks: bool = False  # every event delivered twice, same event id (at least once)
    capture_twice: bool = False  # payment.captured reported again under a second event id
    webhooks_enabled: bool = True


@dataclass
class SentEvent:
    event_id: str
    event: str
    body: bytes
    deliveries: list[int | str] = field(default_factory=list)  # status codes or errors


class RazorpayError(Exception):
    def __init__(self, status: int, description: str, code: str = "BAD_REQUEST_ERROR") -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.code = code

    def response(self) -> Response[bytes]:
        body = {"error": {"code": self.code, "description": self.description, "source": "NA", "step": "NA"}}
        return Response(json.dumps(body).encode(), status_code=self.status, media_type=MediaType.JSON)


def _id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(10).replace('-', 'x').replace('_', 'y')[:14]}"


def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class RazorpayFake:
    def __init__(
        self,
        key_id: str = DEFAULT_KEY_ID,
        key_secret: str = DEFAULT_KEY_SECRET,
        webhook_secret: str = DEFAULT_WEBHOOK_SECRET,
    ) -> None:
        self.key_id = key_id
        self.key_secret = key_secret
        self.webhook_secret = webhook_secret
        self._behaviour = RazorpayBehaviour()
        self.orders: dict[str, dict[str, Any]] = {}
        self.payments: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.events: list[SentEvent] = []
        self._tasks = TaskGroupLite()
        self._http: httpx.AsyncClient | None = None

    # ---------------------------------------------------------------- lifecycle and controls

    async def start(self) -> None:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=10.0, headers={"User-Agent": "Razorpay-Webhook/v1"})

    async def aclose(self) -> None:
        await self._tasks.cancel_all()
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def drain(self) -> None:
        """Wait until every webhook scheduled so far has been delivered (or failed)."""
        await self._tasks.drain()

    @property
    def behaviour(self) -> RazorpayBehaviour:
        return self._behaviour

    def configure(self, **changes: Any) -> RazorpayBehaviour:
        self._behaviour = merge_into_struct(self._behaviour, changes)
        return self._behaviour

    def reset(self) -> None:
        webhook_url = self._behaviour.webhook_url
        self._behaviour = RazorpayBehaviour(webhook_url=webhook_url)
        self.orders.clear()
        self.payments.clear()
        self.refunds.clear()
        self.events.clear()

    def check_auth(self, header: str | None) -> None:
        if not header or not header.lower().startswith("basic "):
            raise RazorpayError(401, "Please provide your api key for authentication purposes.")
        try:
            key_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            raise RazorpayError(401, "The api key provided is invalid") from None
        if key_id != self.key_id or not safe_equals(secret, self.key_secret):
            raise RazorpayError(401, "The api key provided is invalid")

    # ---------------------------------------------------------------- the API

    def create_order(self, data: dict[str, Any]) -> dict[str, Any]:
        amount = data.get("amount")
        if not isinstance(amount, int) or isinstance(amount, bool) or amount < 100:
            raise RazorpayError(400, "The amount must be atleast INR 1.00.")
        currency = data.get("currency", "INR")
        if currency != "INR":
            raise RazorpayError(400, "Currency is not supported")
        order = {
            "id": _id("order"),
            "entity": "order",
            "amount": amount,
            "amount_paid": 0,
            "amount_due": amount,
            "currency": currency,
            "receipt": str(data.get("receipt") or "")[:40],
            "status": "created",
            "attempts": 0,
            "notes": dict(data.get("notes") or {}),
            "created_at": int(time.time()),
        }
        self.orders[order["id"]] = order
        return order

    def order(self, order_id: str) -> dict[str, Any]:
        order = self.orders.get(order_id)
        if order is None:
            raise RazorpayError(400, "The id provided does not exist")
        return order

    def payment(self, payment_id: str) -> dict[str, Any]:
        payment = self.payments.get(payment_id)
        if payment is None:
            raise RazorpayError(400, "The id provided does not exist")
        return payment

    def list_payments(self, query: dict[str, str]) -> dict[str, Any]:
        start = int(query.get("from") or 0)
        end = int(query.get("to") or 2**40)
        count = min(100, int(query.get("count") or 10))
        skip = int(query.get("skip") or 0)
        found = sorted(
            (p for p in self.payments.values() if start <= p["created_at"] <= end),
            key=lambda p: p["created_at"],
            reverse=True,
        )[skip : skip + count]
        return {"entity": "collection", "count": len(found), "items": found}

    def pay(self, order_id: str, method: str = "upi") -> dict[str, Any]:
        """The payer completes the checkout: an authorized, then captured payment, and its webhooks."""
        order = self.order(order_id)
        if order["status"] == "paid":
            raise RazorpayError(400, "Order has already been paid")
        order["attempts"] += 1
        payment = {
            "id": _id("pay"),
            "entity": "payment",
            "amount": order["amount_due"],
            "currency": order["currency"],
            "status": "captured",
            "order_id": order_id,
            "method": method,
            "captured": True,
            "amount_refunded": 0,
            "refund_status": None,
            "description": order["receipt"],
            "email": "payer@example.test",
            "contact": "+919000000000",
            "notes": order["notes"],
            "fee": order["amount_due"] * 2 // 100,
            "tax": order["amount_due"] * 2 // 100 * 18 // 100,
            "created_at": int(time.time()),
        }
        self.payments[payment["id"]] = payment
        order.update(status="paid", amount_paid=order["amount"], amount_due=0)
        authorized = {**payment, "status": "authorized", "captured": False}
        self.send_event("payment.authorized", {"payment": authorized})
        self.send_event("payment.captured", {"payment": payment})
        if self._behaviour.capture_twice:
            self.send_event("payment.captured", {"payment": payment})
        self.send_event("order.paid", {"payment": payment, "order": order})
        return payment

    def refund(self, payment_id: str, amount: int | None = None, *, notify: bool = True) -> dict[str, Any]:
        payment = self.payment(payment_id)
        left = payment["amount"] - payment["amount_refunded"]
        amount = left if amount is None else amount
        if not isinstance(amount, int) or amount <= 0 or amount > left:
            raise RazorpayError(400, "The refund amount provided is greater than amount captured")
        refund = {
            "id": _id("rfnd"),
            "entity": "refund",
            "amount": amount,
            "currency": payment["currency"],
            "payment_id": payment_id,
            "status": "processed",
            "speed_processed": "normal",
            "notes": {},
            "created_at": int(time.time()),
        }
        self.refunds[refund["id"]] = refund
        payment["amount_refunded"] += amount
        payment["refund_status"] = "full" if payment["amount_refunded"] == payment["amount"] else "partial"
        if payment["refund_status"] == "full":
            payment["status"] = "refunded"
        if notify:
            self.send_event("refund.processed", {"refund": refund, "payment": payment})
        return refund

    def payment_signature(self, order_id: str, payment_id: str) -> str:
        return sign(self.key_secret, f"{order_id}|{payment_id}".encode())

    # ---------------------------------------------------------------- webhooks

    def event_body(self, event: str, entities: dict[str, dict[str, Any]]) -> bytes:
        return json.dumps(
            {
                "entity": "event",
                "account_id": "acc_fake00000000",
                "event": event,
                "contains": list(entities),
                "payload": {name: {"entity": entity} for name, entity in entities.items()},
                "created_at": int(time.time()),
            }
        ).encode()

    def send_event(self, event: str, entities: dict[str, dict[str, Any]]) -> SentEvent:
        sent = SentEvent(event_id=_id("evt"), event=event, body=self.event_body(event, entities))
        self.events.append(sent)
        if self._behaviour.webhooks_enabled:
            self._tasks.spawn(self._deliver(sent, times=2 if self._behaviour.duplicate_webhooks else 1))
        return sent

    def replay(self, event_id: str) -> SentEvent:
        sent = next((e for e in self.events if e.event_id == event_id), None)
        if sent is None:
            raise RazorpayError(400, "The id provided does not exist")
        self._tasks.spawn(self._deliver(sent, times=1))
        return sent

    def headers(self, sent: SentEvent, secret: str | None = None) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "X-Razorpay-Signature": sign(secret or self.webhook_secret, sent.body),
            "X-Razorpay-Event-Id": sent.event_id,
        }

    async def _deliver(self, sent: SentEvent, times: int) -> None:
        import asyncio

        url = self._behaviour.webhook_url
        if not url:
            sent.deliveries.append("no webhook_url configured")
            return
        for _ in range(times):
            if self._behaviour.webhook_delay:
                await asyncio.sleep(self._behaviour.webhook_delay)
            await self.start()
            assert self._http is not None
            try:
                response = await self._http.post(url, content=sent.body, headers=self.headers(sent))
                sent.deliveries.append(response.status_code)
            except httpx.HTTPError as exc:
                sent.deliveries.append(type(exc).__name__)


# ---------------------------------------------------------------- routes


def _json(data: Any, status: int = 200) -> Response[bytes]:
    return Response(json.dumps(data).encode(), status_code=status, media_type=MediaType.JSON)


def _money(amount: int) -> str:
    return f"INR {amount // 100:,}.{amount % 100:02d}"


def checkout_page(fake: RazorpayFake, order: dict[str, Any], callback_url: str, cancel_url: str, name: str) -> str:
    rows = "".join(
        f"<input type='hidden' name='{k}' value='{html.escape(v, quote=True)}'>"
        for k, v in {"order_id": order["id"], "callback_url": callback_url}.items()
    )
    cancel = f"<a href='{html.escape(cancel_url, quote=True)}'>Cancel</a>" if cancel_url else ""
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><link rel='icon' href='data:,'>"
        "<title>Razorpay Checkout (fake)</title></head>"
        "<body><main><h1>Razorpay Checkout (local fake)</h1>"
        f"<p>{html.escape(name)}</p><p id='amount'>{_money(order['amount'])}</p>"
        f"<p>Order {html.escape(order['id'])}</p>"
        f"<form method='post' action='/razorpay/v1/checkout/embedded/pay'>{rows}"
        "<label>Method <select name='method'><option value='upi'>UPI</option><option value='card'>Card</option>"
        "<option value='netbanking'>Netbanking</option></select></label> "
        f"<button type='submit'>Pay {_money(order['amount'])}</button></form>{cancel}</main></body></html>"
    )


def return_page(callback_url: str, fields: dict[str, str]) -> str:
    inputs = "".join(
        f"<input type='hidden' name='{k}' value='{html.escape(v, quote=True)}'>" for k, v in fields.items()
    )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><link rel='icon' href='data:,'>"
        "<title>Returning to the merchant</title></head>"
        f"<body><form id='back' method='post' action='{html.escape(callback_url, quote=True)}'>{inputs}"
        "<button type='submit'>Return to the merchant</button></form>"
        "<script>document.getElementById('back').submit()</script></body></html>"
    )


def razorpay_router(fake: RazorpayFake, path: str = "/razorpay") -> Router:
    def authorised(request: Request[Any, Any, Any]) -> None:
        fake.check_auth(request.headers.get("authorization"))

    @post("/v1/orders", status_code=200)
    async def create_order(request: Request[Any, Any, Any]) -> Response[bytes]:
        try:
            authorised(request)
            return _json(fake.create_order(json.loads(await request.body() or b"{}")))
        except RazorpayError as exc:
            return exc.response()

    @get("/v1/orders/{order_id:str}")
    async def fetch_order(request: Request[Any, Any, Any], order_id: FromPath[str]) -> Response[bytes]:
        try:
            authorised(request)
            return _json(fake.order(order_id))
        except RazorpayError as exc:
            return exc.response()

    @get("/v1/orders/{order_id:str}/payments")
    async def order_payments(request: Request[Any, Any, Any], order_id: FromPath[str]) -> Response[bytes]:
        try:
            authorised(request)
            fake.order(order_id)
            items = [p for p in fake.payments.values() if p["order_id"] == order_id]
            return _json({"entity": "collection", "count": len(items), "items": items})
        except RazorpayError as exc:
            return exc.response()

    @get("/v1/payments")
    async def list_payments(request: Request[Any, Any, Any]) -> Response[bytes]:
        try:
            authorised(request)
            return _json(fake.list_payments(dict(request.query_params)))
        except (RazorpayError, ValueError) as exc:
            return exc.response() if isinstance(exc, RazorpayError) else RazorpayError(400, str(exc)).response()

    @get("/v1/payments/{payment_id:str}")
    async def fetch_payment(request: Request[Any, Any, Any], payment_id: FromPath[str]) -> Response[bytes]:
        try:
            authorised(request)
            return _json(fake.payment(payment_id))
        except RazorpayError as exc:
            return exc.response()

    @post("/v1/payments/{payment_id:str}/refund", status_code=200)
    async def refund(request: Request[Any, Any, Any], payment_id: FromPath[str]) -> Response[bytes]:
        try:
            authorised(request)
            data = json.loads(await request.body() or b"{}")
            return _json(fake.refund(payment_id, data.get("amount")))
        except RazorpayError as exc:
            return exc.response()

    @get("/v1/refunds/{refund_id:str}")
    async def fetch_refund(request: Request[Any, Any, Any], refund_id: FromPath[str]) -> Response[bytes]:
        try:
            authorised(request)
            found = fake.refunds.get(refund_id)
            if found is None:
                raise RazorpayError(400, "The id provided does not exist")
            return _json(found)
        except RazorpayError as exc:
            return exc.response()

    @get("/v1/checkout/embedded", media_type=MediaType.HTML)
    async def checkout(request: Request[Any, Any, Any]) -> Response[str]:
        query = request.query_params
        if query.get("key_id") != fake.key_id:
            return Response("unknown key_id", status_code=400, media_type=MediaType.TEXT)
        try:
            order = fake.order(query.get("order_id") or "")
        except RazorpayError as exc:
            return Response(exc.description, status_code=400, media_type=MediaType.TEXT)
        page = checkout_page(
            fake, order, query.get("callback_url") or "", query.get("cancel_url") or "", query.get("name") or ""
        )
        return Response(page, media_type=MediaType.HTML)

    @post("/v1/checkout/embedded/pay", media_type=MediaType.HTML, status_code=200)
    async def pay(request: Request[Any, Any, Any]) -> Response[str]:
        form = await request.form()
        order_id = str(form.get("order_id") or "")
        try:
            payment = fake.pay(order_id, str(form.get("method") or "upi"))
        except RazorpayError as exc:
            return Response(exc.description, status_code=400, media_type=MediaType.TEXT)
        fields = {
            "razorpay_payment_id": payment["id"],
            "razorpay_order_id": order_id,
            "razorpay_signature": fake.payment_signature(order_id, payment["id"]),
        }
        return Response(return_page(str(form.get("callback_url") or ""), fields), media_type=MediaType.HTML)

    @get("/_fake/events")
    async def events() -> Response[bytes]:
        return _json(
            [
                {"event_id": e.event_id, "event": e.event, "deliveries": e.deliveries, "body": e.body.decode()}
                for e in fake.events
            ]
        )

    @post("/_fake/events/{event_id:str}/replay", status_code=200)
    async def replay(event_id: FromPath[str]) -> Response[bytes]:
        try:
            return _json({"event_id": fake.replay(event_id).event_id})
        except RazorpayError as exc:
            return exc.response()

    @post("/_fake/payments/{payment_id:str}/refund", status_code=200)
    async def dashboard_refund(request: Request[Any, Any, Any], payment_id: FromPath[str]) -> Response[bytes]:
        data = json.loads(await request.body() or b"{}")
        try:
            return _json(fake.refund(payment_id, data.get("amount")))
        except RazorpayError as exc:
            return exc.response()

    return Router(
        path=path,
        route_handlers=[
            create_order,
            fetch_order,
            order_payments,
            list_payments,
            fetch_payment,
            refund,
            fetch_refund,
            checkout,
            pay,
            events,
            replay,
            dashboard_refund,
            *control_routes(fake),
        ],
    )


def checkout_url(base_url: str, **params: str) -> str:
    return f"{base_url.rstrip('/')}/v1/checkout/embedded?{urlencode(params)}"
