"""SMS and WhatsApp through Twilio's Messages API (the twilio SDK's async client).

Twilio error 21610 (recipient unsubscribed) and 21211 (invalid number) are permanent and
change the person's record; 20429 and 5xx are transient, and a Retry-After the response
carries is passed up (read through :class:`HeaderKeepingTwilioHttpClient`). Each message carries a status
callback URL naming its delivery row, so the ledger learns delivery even if the worker
that sent it died before recording the send.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from typing import Any

from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.rest import Client

from notifications.categories import Channel
from notifications.channels.base import Outcome, Outgoing, Recipient, parse_retry_after

OPTED_OUT = 21610
INVALID_NUMBERS = {21211, 21614, 21612}
TRANSIENT_CODES = {20429, 20003, 20500, 20503}
CONCURRENCY = 32
CLOCK_SKEW_SECONDS = 5.0

# Which of these numbers wrote to us on WhatsApp within 24 hours (free-form replies allowed): one look per batch.
SessionCheck = Callable[[list[str]], Awaitable[set[str]]]

# The headers of the last response the HTTP client got in this asyncio task. TwilioRestException
# carries status, code and message but no headers, and the SDK's client is shared by concurrent
# sends (its own _test_only_last_response is overwritten by each), so a context variable, which
# every task has its own copy of, tells each send the headers of its own response.
_LAST_RESPONSE_HEADERS: ContextVar[Mapping[str, str] | None] = ContextVar("twilio_last_response_headers", default=None)


class HeaderKeepingTwilioHttpClient(AsyncTwilioHttpClient):
    """The SDK's own aiohttp client, remembering each response's headers for the task that asked.

    Only then can the adapter pass a 429's ``Retry-After`` up. Must be constructed inside a
    running event loop (its parent creates an ``aiohttp.ClientSession``).
    """

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the SDK's signature
        allow_redirects: bool = False,
    ) -> TwilioResponse:
        _LAST_RESPONSE_HEADERS.set(None)
        response: TwilioResponse = await super().request(
            method,
            url,
            params=params,
            data=data,
            headers=headers,
            auth=auth,
            timeout=timeout,
            allow_redirects=allow_redirects,
        )
        _LAST_RESPONSE_HEADERS.set(response.headers)
        return response


def last_response_headers() -> Mapping[str, str] | None:
    """Headers of the last Twilio response in this task (only with :class:`HeaderKeepingTwilioHttpClient`)."""
    return _LAST_RESPONSE_HEADERS.get()


class TwilioMessagingAdapter:
    def __init__(
        self,
        client: Client,
        *,
        channel: Channel,
        sender: str,
        status_callback_url: str,
        whatsapp_template_sid: str | None = None,
        whatsapp_session_open: SessionCheck | None = None,
    ) -> None:
        assert channel in (Channel.SMS, Channel.WHATSAPP)
        self.channel: Channel = channel
        self._client = client
        self._sender = sender
        self._callback = status_callback_url
        self._template_sid = whatsapp_template_sid
        self._session_open = whatsapp_session_open
        self._slots = asyncio.Semaphore(CONCURRENCY)

    async def _in_session(self, recipients: list[Recipient]) -> set[str]:
        """The WhatsApp numbers among these that may get free-form text now (nobody's on SMS)."""
        if self.channel is not Channel.WHATSAPP or self._session_open is None:
            return set()
        numbers = [r.address for r in recipients if r.address]
        return await self._session_open(numbers) if numbers else set()

    def _params(self, message: Outgoing, recipient: Recipient, in_session: bool) -> dict[str, Any]:
        assert recipient.address is not None
        params: dict[str, Any] = {
            "from_": self._sender,
            "status_callback": f"{self._callback}?delivery={recipient.delivery_id}",
        }
        # A body of several lines (a digest's list) starts on a line of its own.
        separator = ":\n" if "\n" in message.body else ": "
        text = f"{message.title}{separator}{message.body}" if message.title else message.body
        if self.channel is Channel.WHATSAPP:
            params["to"] = f"whatsapp:{recipient.address}"
            if not in_session and self._template_sid:
                # Outside the 24-hour window WhatsApp only takes an approved template.
                params["content_sid"] = self._template_sid
                params["content_variables"] = json.dumps({"1": message.title, "2": message.body})
            else:
                params["body"] = text
        else:
            params["to"] = recipient.address
            # India (DLT): the entity and template ids are registered with Twilio for the sender,
            # not sent per message; the text must match one of those approved templates.
            params["body"] = text
        return params

    async def _send_one(self, message: Outgoing, recipient: Recipient, in_session: bool) -> Outcome:
        if not recipient.address:
            return Outcome(delivery_id=recipient.delivery_id, status="failed", provider_code="no_address")
        params = self._params(message, recipient, in_session)
        async with self._slots:
            _LAST_RESPONSE_HEADERS.set(None)
            try:
                created = await self._client.messages.create_async(**params)
            except TwilioRestException as exc:
                headers = last_response_headers()
                return _failure(recipient, exc, parse_retry_after(headers.get("Retry-After") if headers else None))
            except Exception as exc:  # network trouble: the request may not have arrived; try again
                return Outcome(delivery_id=recipient.delivery_id, status="retry", provider_code=type(exc).__name__)
        return Outcome(delivery_id=recipient.delivery_id, status="sent", provider_id=created.sid)

    async def find_accepted(self, message: Outgoing, recipient: Recipient, since_epoch: float) -> str | None:
        """Ask Twilio for recent messages to this number; ours has this body and a later creation time."""
        if not recipient.address:
            return None
        params = self._params(message, recipient, recipient.address in await self._in_session([recipient]))
        listed = await self._client.messages.list_async(to=params["to"], limit=50)
        for sent in listed:
            created = sent.date_created.timestamp() if sent.date_created else 0.0
            # Allow for clock skew between us and the provider.
            if created + CLOCK_SKEW_SECONDS < since_epoch:
                continue
            if "body" not in params or sent.body == params["body"]:
                return sent.sid
        return None

    async def send(self, message: Outgoing, recipients: list[Recipient]) -> list[Outcome]:
        open_now = await self._in_session(recipients)
        return list(await asyncio.gather(*(self._send_one(message, r, r.address in open_now) for r in recipients)))

    async def aclose(self) -> None:
        http_client: Any = self._client.http_client
        close = getattr(http_client, "close", None)
        if close is not None:
            await close()


def _failure(recipient: Recipient, exc: TwilioRestException, retry_after: float | None = None) -> Outcome:
    code = exc.code
    if code == OPTED_OUT:
        return Outcome(delivery_id=recipient.delivery_id, status="failed", provider_code=str(code), effect="opted_out")
    if code in INVALID_NUMBERS:
        return Outcome(
            delivery_id=recipient.delivery_id, status="failed", provider_code=str(code), effect="invalid_address"
        )
    if code in TRANSIENT_CODES or exc.status in (429, 500, 502, 503, 504):
        # Twilio's 429 (20429, too many requests) says when to come back; the sender waits at least that.
        return Outcome(
            delivery_id=recipient.delivery_id,
            status="retry",
            provider_code=str(code or exc.status),
            retry_after_seconds=retry_after,
        )
    return Outcome(delivery_id=recipient.delivery_id, status="failed", provider_code=str(code or exc.status))
