"""The payment provider adapter, and Razorpay behind it through its official SDK.

Billing talks to ``PaymentProvider`` only; ``RazorpayProvider`` is the first one. The SDK is synchronous
(``requests``), so each call runs in a worker thread with a client of its own (a ``requests.Session`` is
not shared between threads). ``RAZORPAY_BASE_URL`` points the SDK at another server (the local fake) with
the client's own ``base_url`` option; nothing else changes. Signatures are checked with the SDK's own
``utility.verify_webhook_signature`` (webhooks: HMAC-SHA256 of the raw body with the webhook secret) and
``utility.verify_payment_signature`` (the checkout's return: ``order_id|payment_id`` with the key secret).
"""

from __future__ import annotations

import abc
import asyncio
from typing import Any, Final
from urllib.parse import urlencode

import msgspec
import razorpay
from razorpay.constants.url import URL
from razorpay.errors import BadRequestError, GatewayError, ServerError, SignatureVerificationError

from app.config import Settings

RAZORPAY: Final = "razorpay"


class ProviderError(Exception):
    """The provider refused or failed a call (its message says why)."""


class ProviderOrder(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    amount_minor: int
    currency: str


class ProviderPayment(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    order_id: str | None
    amount_minor: int
    currency: str
    status: str  # created | authorized | captured | refunded | failed
    method: str
    refunded_minor: int
    created_at: int  # Unix seconds


class ProviderRefund(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    payment_id: str
    amount_minor: int
    status: str  # pending | processed | failed


class PaymentProvider(abc.ABC):
    """What billing needs of a payment provider."""

    name: str

    @abc.abstractmethod
    async def create_order(
        self, amount_minor: int, currency: str, receipt: str, notes: dict[str, str]
    ) -> ProviderOrder: ...

    @abc.abstractmethod
    def checkout_url(self, order: ProviderOrder, *, callback_url: str, cancel_url: str, description: str) -> str: ...

    @abc.abstractmethod
    def verify_webhook(self, body: bytes, signature: str) -> bool: ...

    @abc.abstractmethod
    def verify_checkout(self, order_id: str, payment_id: str, signature: str) -> bool: ...

    @abc.abstractmethod
    async def fetch_payment(self, payment_id: str) -> ProviderPayment: ...

    @abc.abstractmethod
    async def list_payments(self, start: int, end: int) -> list[ProviderPayment]: ...

    @abc.abstractmethod
    async def refund(self, payment_id: str, amount_minor: int) -> ProviderRefund: ...


def payment_of(entity: dict[str, Any]) -> ProviderPayment:
    return ProviderPayment(
        id=str(entity["id"]),
        order_id=entity.get("order_id"),
        amount_minor=int(entity["amount"]),
        currency=str(entity.get("currency") or "INR"),
        status=str(entity.get("status") or ""),
        method=str(entity.get("method") or ""),
        refunded_minor=int(entity.get("amount_refunded") or 0),
        created_at=int(entity.get("created_at") or 0),
    )


def refund_of(entity: dict[str, Any]) -> ProviderRefund:
    return ProviderRefund(
        id=str(entity["id"]),
        payment_id=str(entity["payment_id"]),
        amount_minor=int(entity["amount"]),
        status=str(entity.get("status") or "processed"),
    )


class RazorpayProvider(PaymentProvider):
    name = RAZORPAY

    def __init__(self, settings: Settings) -> None:
        self.key_id = settings.razorpay_key_id
        self.key_secret = settings.razorpay_key_secret
        self.webhook_secret = settings.razorpay_webhook_secret
        self.base_url = (settings.razorpay_base_url or URL.BASE_URL).rstrip("/")
        self.checkout_base = (settings.razorpay_checkout_url or self.base_url).rstrip("/")

    def client(self) -> razorpay.Client:
        return razorpay.Client(auth=(self.key_id, self.key_secret), base_url=self.base_url)

    async def _call(self, call: Any, *args: Any) -> Any:
        def run() -> Any:
            client = self.client()
            try:
                return call(client, *args)
            finally:
                client.session.close()

        try:
            return await asyncio.to_thread(run)
        except (BadRequestError, GatewayError, ServerError) as exc:
            raise ProviderError(str(exc)) from exc
        except Exception as exc:  # the SDK lets requests' connection errors through
            raise ProviderError(f"{type(exc).__name__}: {exc}") from exc

    async def create_order(
        self, amount_minor: int, currency: str, receipt: str, notes: dict[str, str]
    ) -> ProviderOrder:
        data = {"amount": amount_minor, "currency": currency, "receipt": receipt[:40], "notes": notes}
        order = await self._call(lambda c: c.order.create(data))
        return ProviderOrder(id=order["id"], amount_minor=int(order["amount"]), currency=order["currency"])

    def checkout_url(self, order: ProviderOrder, *, callback_url: str, cancel_url: str, description: str) -> str:
        """Razorpay's hosted checkout for the order; it POSTs the signed result to ``callback_url``."""
        query = urlencode(
            {
                "key_id": self.key_id,
                "order_id": order.id,
                "callback_url": callback_url,
                "cancel_url": cancel_url,
                "name": description,
            }
        )
        return f"{self.checkout_base}/v1/checkout/embedded?{query}"

    def verify_webhook(self, body: bytes, signature: str) -> bool:
        try:
            return bool(
                self.client().utility.verify_webhook_signature(body.decode("utf-8"), signature, self.webhook_secret)
            )
        except (SignatureVerificationError, UnicodeDecodeError):
            return False

    def verify_checkout(self, order_id: str, payment_id: str, signature: str) -> bool:
        try:
            return bool(
                self.client().utility.verify_payment_signature(
                    {
                        "razorpay_order_id": order_id,
                        "razorpay_payment_id": payment_id,
                        "razorpay_signature": signature,
                    }
                )
            )
        except SignatureVerificationError:
            return False

    async def fetch_payment(self, payment_id: str) -> ProviderPayment:
        return payment_of(await self._call(lambda c: c.payment.fetch(payment_id)))

    async def list_payments(self, start: int, end: int) -> list[ProviderPayment]:
        found: list[ProviderPayment] = []
        while True:
            query = {"from": start, "to": end, "count": 100, "skip": len(found)}
            page = await self._call(lambda c, q=query: c.payment.all(q))
            items = page.get("items") or []
            found += [payment_of(item) for item in items]
            if len(items) < 100:
                return found

    async def refund(self, payment_id: str, amount_minor: int) -> ProviderRefund:
        return refund_of(await self._call(lambda c: c.payment.refund(payment_id, {"amount": amount_minor})))


def provider_for(settings: Settings) -> PaymentProvider:
    return RazorpayProvider(settings)
