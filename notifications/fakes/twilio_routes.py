"""HTTP surface of the fake Twilio: the provider API plus the ``/_fake`` control API."""

import asyncio
from typing import Any

import msgspec
from litestar import Request, Response, Router, get, post
from litestar.exceptions import NotFoundException, ValidationException
from litestar.params import FromPath, JSONBody

from notifications.fakes._util import control_routes
from notifications.fakes.twilio_models import (
    API_VERSION,
    DigitsRequest,
    InboundRequest,
    PlacedCall,
    SentMessage,
    WebhookDelivery,
)
from notifications.fakes.twilio_server import TwilioApiError, TwilioFake, encode_error

_ACCOUNT = f"/{API_VERSION}/Accounts/{{account_sid:str}}"


def _json(payload: msgspec.Struct, status_code: int) -> Response[bytes]:
    return Response(msgspec.json.encode(payload), status_code=status_code, media_type="application/json")


def _error(exc: TwilioApiError) -> Response[bytes]:
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else {}
    return Response(encode_error(exc), status_code=exc.http_status, media_type="application/json", headers=headers)


async def _form(request: Request[Any, Any, Any]) -> dict[str, list[str]]:
    # Twilio params can repeat (MediaUrl, StatusCallbackEvent), so keep every value.
    form = await request.form()
    collected: dict[str, list[str]] = {}
    for key, value in form.multi_items():
        collected.setdefault(key, []).append(str(value))
    return collected


def twilio_router(fake: TwilioFake, path: str = "/twilio") -> Router:
    """Routes are closures over ``fake`` so several independent fakes can coexist."""

    @post(f"{_ACCOUNT}/Messages.json", status_code=201)
    async def create_message(request: Request[Any, Any, Any], account_sid: FromPath[str]) -> Response[bytes]:
        try:
            fake.check_auth(request.headers.get("authorization"), account_sid)
            form = await _form(request)
            async with fake.limited(form, per_sender=True):
                message = fake.create_message(form)
        except TwilioApiError as exc:
            return _error(exc)
        return _json(message.resource(), 201)

    @get(f"{_ACCOUNT}/Messages.json")
    async def list_messages_api(request: Request[Any, Any, Any], account_sid: FromPath[str]) -> Response[bytes]:
        """Twilio's list: newest first, filtered by To/From, one page (PageSize, default 50)."""
        try:
            fake.check_auth(request.headers.get("authorization"), account_sid)
        except TwilioApiError as exc:
            return _error(exc)
        if fake.behaviour.api_latency > 0:
            await asyncio.sleep(fake.behaviour.api_latency)  # the page is read as the answer goes out
        query = request.query_params
        size = min(1000, int(query.get("PageSize", "50")))
        found = [
            m
            for m in reversed(fake.messages)
            if m.account_sid == account_sid
            and (not query.get("To") or m.to == query["To"])
            and (not query.get("From") or m.from_ == query["From"])
        ][:size]
        uri = f"/{API_VERSION}/Accounts/{account_sid}/Messages.json"
        page = {
            "messages": [msgspec.to_builtins(m.resource()) for m in found],
            "page": 0,
            "page_size": size,
            "first_page_uri": uri,
            "previous_page_uri": None,
            "next_page_uri": None,
            "start": 0,
            "end": max(0, len(found) - 1),
            "uri": uri,
        }
        return Response(msgspec.json.encode(page), media_type="application/json")

    @get(f"{_ACCOUNT}/Messages/{{resource:str}}")
    async def fetch_message(
        request: Request[Any, Any, Any], account_sid: FromPath[str], resource: FromPath[str]
    ) -> Response[bytes]:
        try:
            fake.check_auth(request.headers.get("authorization"), account_sid)
            message = fake.message(resource.removesuffix(".json"))
            if message is None:
                raise TwilioApiError(20404)
        except TwilioApiError as exc:
            return _error(exc)
        return _json(message.resource(), 200)

    @post(f"{_ACCOUNT}/Calls.json", status_code=201)
    async def create_call(request: Request[Any, Any, Any], account_sid: FromPath[str]) -> Response[bytes]:
        try:
            fake.check_auth(request.headers.get("authorization"), account_sid)
            form = await _form(request)
            async with fake.limited(form, per_sender=False):
                call = fake.create_call(form)
        except TwilioApiError as exc:
            return _error(exc)
        return _json(call.resource(), 201)

    @get(f"{_ACCOUNT}/Calls/{{resource:str}}")
    async def fetch_call(
        request: Request[Any, Any, Any], account_sid: FromPath[str], resource: FromPath[str]
    ) -> Response[bytes]:
        try:
            fake.check_auth(request.headers.get("authorization"), account_sid)
            call = fake.call(resource.removesuffix(".json"))
            if call is None:
                raise TwilioApiError(20404)
        except TwilioApiError as exc:
            return _error(exc)
        return _json(call.resource(), 200)

    # -- control / inspection --------------------------------------------------------------------
    @get("/_fake/messages")
    async def list_messages() -> list[SentMessage]:
        return fake.messages

    @get("/_fake/messages/{sid:str}")
    async def get_message(sid: FromPath[str]) -> SentMessage:
        message = fake.message(sid)
        if message is None:
            raise NotFoundException(f"no message {sid}")
        return message

    @get("/_fake/calls")
    async def list_calls() -> list[PlacedCall]:
        return fake.calls

    @post("/_fake/calls/{sid:str}/digits", status_code=200)
    async def press_digits(sid: FromPath[str], data: JSONBody[DigitsRequest]) -> WebhookDelivery:
        try:
            return await fake.press_digits(sid, data.digits)
        except LookupError as exc:
            raise NotFoundException(str(exc)) from exc
        except ValueError as exc:
            raise ValidationException(str(exc)) from exc

    @get("/_fake/webhooks")
    async def list_webhooks() -> list[WebhookDelivery]:
        return fake.webhooks

    @post("/_fake/drain", status_code=204)
    async def drain() -> None:
        async with asyncio.timeout(30):
            await fake.drain()

    @post("/_fake/inbound", status_code=200)
    async def inbound(data: JSONBody[InboundRequest]) -> WebhookDelivery:
        return await fake.send_inbound(data.url, from_=data.from_, to=data.to, body=data.body, extra=data.extra)

    return Router(
        path=path,
        route_handlers=[
            create_message,
            fetch_message,
            create_call,
            fetch_call,
            list_messages,
            list_messages_api,
            get_message,
            list_calls,
            press_digits,
            list_webhooks,
            *control_routes(fake, fake.limits),
            drain,
            inbound,
        ],
    )
