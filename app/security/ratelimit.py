"""Request rate limits on the doors an attacker tries first, per client address and per account.

``RULES`` lists them; the first rule whose method and path match a request applies. Each rule counts
requests in fixed windows in Redis (shared by every web process), once per client address and, where
the request names one, once per account:

- login (``POST /api/auth/login`` and the sign-in form ``POST /login``): the account is the username
  in the body (hashed; the failure throttle in ``app.auth.throttle`` is separate and stricter);
- refresh (``POST /api/auth/refresh``): the account is the refresh token (hashed);
- pass verification (``POST /api/visitors/gate/verify``): the account is the signed-in guard;
- one-tap approval links (``GET/POST /v/a/{token}``): the account is the link's token;
- personal-data exports and data-rights requests (``POST /api/me/exports``, ``POST /api/me/data-requests``):
  one budget per signed-in person, ``OPSHUB_PRIVACY_REQUESTS_PER_WINDOW`` per
  ``OPSHUB_PRIVACY_REQUEST_WINDOW_SECONDS`` (each export builds an archive; a request asked again
  while its export is still being built counts too);
- a place's public page (``GET /q/{code}``, a scanned QR code): 30 a minute per address;
- the other public pages and device endpoints: per address only.

Provider webhooks (signed by Twilio), ``/health``, ``/ready``, static files and the websocket are not
limited here. Over a limit the answer is a 429 problem with ``Retry-After`` (seconds to the end of the
window). ``OPSHUB_RATE_LIMIT_SCALE`` multiplies every limit (0 turns them off).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Final, Literal
from urllib.parse import parse_qs

import msgspec
from litestar.types import ASGIApp, HTTPResponseStartEvent, Receive, Scope, Send

from app.config import Settings
from app.errors import PROBLEM_MEDIA_TYPE, PROBLEM_TYPE_BASE, ProblemDetail

AccountFrom = Literal["none", "login_body", "refresh_body", "principal", "path_token"]
MAX_PEEK_BYTES: Final = 16 * 1024  # login and refresh bodies are tiny; a larger one names no account


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    methods: frozenset[str]
    path: re.Pattern[str]
    per_address: int  # requests per window from one client address
    per_account: int | None = None  # requests per window for one account, where the request names one
    account_from: AccountFrom = "none"
    window_seconds: int = 60


def _rule(
    name: str, methods: str, path: str, per_address: int, per_account: int | None = None, account: AccountFrom = "none"
) -> Rule:
    return Rule(name, frozenset(methods.split()), re.compile(path), per_address, per_account, account)


RULES: Final[tuple[Rule, ...]] = (
    _rule("login", "POST", r"^/(api/auth/)?login$", 30, 10, "login_body"),
    _rule("refresh", "POST", r"^/api/auth/refresh$", 60, 20, "refresh_body"),
    # A busy gate: several guards behind one address, a few verifications a minute each.
    _rule("pass-verify", "POST", r"^/api/visitors/gate/verify$", 600, 120, "principal"),
    _rule("one-tap", "GET POST", r"^/v/a/[^/]+$", 30, 10, "path_token"),
    # Cameras, chargers and sensors post often, from few addresses.
    _rule("devices", "POST", r"^/api/(visitors/anpr|slots/ocpp/.*|slots/sensors/.*)$", 1200),
    _rule("public", "GET POST", r"^/(login|lang/[^/]+|v/qr/[^/]+|api/privacy/exports/[^/]+/download)?$", 120),
    # A place's public page (a scanned QR code): a person scans a few codes a minute; a crawler walking
    # codes, or a loop inflating a place's scan count, is stopped per address.
    _rule("place-page", "GET", r"^/q/[^/]+$", 30),
)


# Several residents may share one address (a building's Wi-Fi): the address gets many people's share.
PRIVACY_PEOPLE_PER_ADDRESS: Final = 10


def privacy_rule(settings: Settings) -> Rule:
    per_person = settings.privacy_requests_per_window
    return Rule(
        "privacy",
        frozenset({"POST"}),
        re.compile(r"^/api/me/(exports|data-requests)$"),
        per_address=per_person * PRIVACY_PEOPLE_PER_ADDRESS,
        per_account=per_person,
        account_from="principal",
        window_seconds=settings.privacy_request_window_seconds,
    )


def rules_for(settings: Settings) -> tuple[Rule, ...]:
    """``RULES`` and the rules whose limits are settings."""
    return (*RULES, privacy_rule(settings))


def match_rule(method: str, path: str, rules: tuple[Rule, ...] = RULES) -> Rule | None:
    for rule in rules:
        if method in rule.methods and rule.path.match(path):
            return rule
    return None


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:32]


def _account_from_body(body: bytes, content_type: str, field: str) -> str | None:
    if not body or len(body) > MAX_PEEK_BYTES:
        return None
    try:
        if "application/x-www-form-urlencoded" in content_type:
            values = parse_qs(body.decode(), max_num_fields=20).get(field) or [""]
            value: Any = values[0]
        else:
            decoded = json.loads(body)
            value = decoded.get(field) if isinstance(decoded, dict) else None
    except (ValueError, UnicodeDecodeError, RecursionError):  # a hostile body names no account
        return None
    return value.strip().lower() if isinstance(value, str) and value.strip() else None


def _too_many(rule: Rule, retry_after: int) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    body = msgspec.json.encode(
        ProblemDetail(
            type=PROBLEM_TYPE_BASE + "too-many-requests",
            title="Too many requests",
            status=429,
            detail=f"too many {rule.name} requests; try again in {retry_after} s",
            extra={"limit": rule.name, "retry_after_seconds": retry_after},
        )
    )
    headers = [
        (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", str(retry_after).encode()),
        (b"cache-control", b"no-store"),
    ]
    return body, headers


class RateLimitMiddleware:
    """Counts and refuses before the route runs. Runs inside authentication (it sees the principal)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.scale = settings.rate_limit_scale
        self.prefix = f"{settings.redis_prefix}rl:"
        self.rules = rules_for(settings)

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] != "http" or self.scale <= 0:
            return self.app(scope, receive, send)
        rule = match_rule(str(scope.get("method", "")), str(scope.get("path", "")), self.rules)
        if rule is None:
            return self.app(scope, receive, send)
        return self._limited(rule, scope, receive, send)

    def _limit(self, value: int) -> int:
        return max(1, math.ceil(value * self.scale))

    async def _account(self, rule: Rule, scope: Scope, receive: Receive) -> tuple[str | None, Receive]:
        if rule.account_from == "principal":
            user = scope.get("user")
            person_id = getattr(user, "person_id", None)
            return (str(person_id) if person_id else None), receive
        if rule.account_from == "path_token":
            return _digest(str(scope.get("path", "")).rsplit("/", 1)[-1]), receive
        if rule.account_from in ("login_body", "refresh_body"):
            body, replay = await _peek_body(receive)
            headers = dict(scope.get("headers") or [])
            content_type = headers.get(b"content-type", b"").decode("latin-1")
            field = "username" if rule.account_from == "login_body" else "refresh_token"
            value = _account_from_body(body, content_type, field)
            return (_digest(value) if value else None), replay
        return None, receive

    async def _limited(self, rule: Rule, scope: Scope, receive: Receive, send: Send) -> None:
        redis = scope["app"].state.redis
        account, receive = await self._account(rule, scope, receive)
        now = time.time()
        window = int(now // rule.window_seconds)
        retry_after = max(1, math.ceil((window + 1) * rule.window_seconds - now))
        counters = [(f"{self.prefix}{rule.name}:addr:{_digest(client_address(scope))}:{window}", rule.per_address)]
        if account is not None and rule.per_account is not None:
            counters.append((f"{self.prefix}{rule.name}:acct:{account}:{window}", rule.per_account))
        async with redis.pipeline(transaction=False) as pipe:
            for key, _ in counters:
                pipe.incr(key)
                pipe.expire(key, rule.window_seconds + 1)
            results = await pipe.execute()
        counts = results[0::2]
        if any(count > self._limit(limit) for count, (_, limit) in zip(counts, counters, strict=True)):
            body, headers = _too_many(rule, retry_after)
            start: HTTPResponseStartEvent = {"type": "http.response.start", "status": 429, "headers": headers}
            await send(start)
            await send({"type": "http.response.body", "body": body, "more_body": False})
            return
        await self.app(scope, receive, send)


async def _peek_body(receive: Receive) -> tuple[bytes, Receive]:
    """Read the request body and hand the app a receive that replays it unchanged."""
    messages: list[Any] = []
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False) or size > MAX_PEEK_BYTES:
            break

    async def replay() -> Any:
        if messages:
            return messages.pop(0)
        return await receive()

    return b"".join(chunks), replay
