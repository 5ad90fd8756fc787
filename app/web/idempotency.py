"""``Idempotency-Key`` on state-changing requests: the same key gets the first answer, never a second action.

A guard console that loses its connection after sending "check in" cannot know whether the server
did it. It sends the action again with the same key, and gets the stored answer of the first attempt
(``Idempotent-Replayed: true``) instead of a second check-in. Keys are per caller; a key reused for a
different request (another path or body) is refused with 422; a repeat that arrives while the first
is still running gets 409 with ``Retry-After``. Answers of 5xx are not stored, so a retry runs again.
Stored answers are kept for ``IDEMPOTENCY_TTL_SECONDS``.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Final

import msgspec
from litestar.types import ASGIApp, Receive, Scope, Send
from redis.asyncio import Redis

from app.auth.principal import Principal
from app.config import Settings
from app.errors import PROBLEM_MEDIA_TYPE, PROBLEM_TYPE_BASE, FieldError, ProblemDetail

HEADER: Final = b"idempotency-key"
IDEMPOTENCY_TTL_SECONDS: Final = 24 * 3600
_IN_FLIGHT_SECONDS: Final = 120
_KEY: Final = re.compile(r"^[A-Za-z0-9_.:-]{8,128}$")
_UNSAFE: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_PENDING: Final = b"pending"
# Headers of the first answer that a replay repeats.
_REPLAYED_HEADERS: Final = frozenset({b"content-type", b"content-encoding", b"vary", b"location", b"retry-after"})


class StoredAnswer(msgspec.Struct, frozen=True):
    fingerprint: str
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


def _problem(status: int, slug: str, title: str, detail: str, *, retry_after: int | None = None) -> list[Any]:
    errors = [FieldError(field="Idempotency-Key", message=detail, source="header")] if status == 422 else None
    body = msgspec.json.encode(
        ProblemDetail(type=PROBLEM_TYPE_BASE + slug, title=title, status=status, detail=detail, errors=errors)
    )
    headers = [(b"content-type", PROBLEM_MEDIA_TYPE.encode()), (b"content-length", str(len(body)).encode())]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    return [
        {"type": "http.response.start", "status": status, "headers": headers},
        {"type": "http.response.body", "body": body, "more_body": False},
    ]


class IdempotencyMiddleware:
    """Runs inside authentication (it needs the caller); a request without the header passes untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._handle(scope, receive, send)

    async def _handle(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] not in _UNSAFE:
            await self.app(scope, receive, send)
            return
        raw_key = dict(scope["headers"]).get(HEADER)
        principal = scope.get("user")
        if raw_key is None or not isinstance(principal, Principal):
            await self.app(scope, receive, send)
            return
        key = raw_key.decode("latin-1")
        if not _KEY.match(key):
            for message in _problem(
                422, "invalid-input", "Invalid input", "must be 8-128 letters, digits or _.:-", retry_after=None
            ):
                await send(message)
            return
        state = scope["app"].state
        settings: Settings = state.settings
        redis: Redis = state.redis

        # The body is read once here and handed on unchanged: its hash tells a reuse from a repeat.
        chunks: list[bytes] = []
        while True:
            received = await receive()
            if received["type"] != "http.request":
                break
            chunks.append(received.get("body", b""))
            if not received.get("more_body"):
                break
        body = b"".join(chunks)
        fingerprint = hashlib.sha256(
            scope["method"].encode()
            + b" "
            + scope["path"].encode()
            + b"?"
            + scope.get("query_string", b"")
            + b"\n"
            + body
        ).hexdigest()
        redis_key = f"{settings.redis_prefix}idem:{principal.person_id}:{hashlib.sha256(raw_key).hexdigest()}"

        if not await redis.set(redis_key, _PENDING, nx=True, ex=_IN_FLIGHT_SECONDS):
            stored = await redis.get(redis_key)
            if stored is None or stored == _PENDING:
                messages = _problem(
                    409, "in-progress", "In progress", "a request with this key is still running", retry_after=1
                )
            else:
                answer = msgspec.msgpack.decode(stored, type=StoredAnswer)
                if answer.fingerprint != fingerprint:
                    messages = _problem(
                        422, "invalid-input", "Invalid input", "this key was used for a different request"
                    )
                else:
                    headers = [*answer.headers, (b"idempotent-replayed", b"true")]
                    headers.append((b"content-length", str(len(answer.body)).encode()))
                    messages = [
                        {"type": "http.response.start", "status": answer.status, "headers": headers},
                        {"type": "http.response.body", "body": answer.body, "more_body": False},
                    ]
            for message in messages:
                await send(message)
            return

        delivered = False

        async def replay_body() -> Any:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        status = 500
        kept_headers: list[tuple[bytes, bytes]] = []
        sent: list[bytes] = []

        async def capture(message: Any) -> None:
            nonlocal status, kept_headers
            if message["type"] == "http.response.start":
                status = message["status"]
                kept_headers = [(k.lower(), v) for k, v in message.get("headers", []) if k.lower() in _REPLAYED_HEADERS]
            elif message["type"] == "http.response.body":
                sent.append(message.get("body", b""))
            await send(message)

        stored_ok = False
        try:
            await self.app(scope, replay_body, capture)
            if status < 500:
                answer = StoredAnswer(fingerprint=fingerprint, status=status, headers=kept_headers, body=b"".join(sent))
                await redis.set(redis_key, msgspec.msgpack.encode(answer), ex=IDEMPOTENCY_TTL_SECONDS)
                stored_ok = True
        finally:
            if not stored_ok:
                await redis.delete(redis_key)
