"""Pass codes, QR payloads, signed one-tap/voice tokens, and the verification throttle.

- A pass code is 6 digits from ``secrets``; only its keyed HMAC (the PII blind index with kind
  ``visitor_code``) is stored. A unique partial index keeps it unique among a site's active passes.
- The QR carries ``VP1.<pass id>.<MAC>``, a MAC over the pass id and the code's HMAC: 128 bits
  that only the server can produce, so the QR needs no lookup by code and cannot be guessed.
- One-tap links and voice callbacks carry a signed, expiring token naming the approval and the
  person answering, keyed from the JWT secret (a separate derivation, so tokens of one kind are
  useless as another).
- Failed verifications are counted in Redis per guard and per site in a fixed window; past the
  limit every verification is a 429 until the window ends.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import secrets
import time
from dataclasses import dataclass
from uuid import UUID

import segno
from redis.asyncio import Redis

from app.config import Settings
from app.errors import TooManyRequests
from app.people.directory import cipher_for
from app.security.compare import safe_equals

CODE_DIGITS = 6
QR_PREFIX = "VP1"
SITE_ALLOWANCE_FACTOR = 4


def new_code() -> str:
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def is_code(text: str) -> bool:
    return len(text) == CODE_DIGITS and text.isdigit()


def code_hash(settings: Settings, code: str) -> str:
    return cipher_for(settings).blind_index("visitor_code", code)


def _key(settings: Settings, purpose: str) -> bytes:
    return hmac.new(settings.jwt_secret.encode(), f"opshub-visitors:{purpose}".encode(), hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _mac(settings: Settings, purpose: str, message: bytes) -> str:
    return _b64(hmac.new(_key(settings, purpose), message, hashlib.sha256).digest()[:16])


# ------------------------------------------------------------------------------ QR


def qr_payload(settings: Settings, pass_id: UUID, hashed_code: str) -> str:
    return f"{QR_PREFIX}.{pass_id.hex}.{_mac(settings, 'qr', pass_id.bytes + hashed_code.encode())}"


def parse_qr(settings: Settings, payload: str) -> tuple[UUID, str] | None:
    """(pass id, MAC) of a well-formed QR payload; the MAC is checked against the pass's code later."""
    parts = payload.strip().split(".")
    if len(parts) != 3 or parts[0] != QR_PREFIX:
        return None
    try:
        return UUID(hex=parts[1]), parts[2]
    except ValueError:
        return None


def qr_matches(settings: Settings, pass_id: UUID, hashed_code: str, mac: str) -> bool:
    expected = qr_payload(settings, pass_id, hashed_code).rsplit(".", 1)[1]
    return safe_equals(expected, mac)


def qr_svg(payload: str) -> bytes:
    buffer = io.BytesIO()
    segno.make(payload, error="m").save(buffer, kind="svg", scale=6, border=2)
    return buffer.getvalue()


# ------------------------------------------------------------------------------ answer tokens


@dataclass(frozen=True, slots=True)
class AnswerToken:
    purpose: str  # link | voice
    approval_id: UUID
    person_id: UUID
    expires_at: int


def sign_answer(settings: Settings, token: AnswerToken) -> str:
    body = f"{token.approval_id.hex}.{token.person_id.hex}.{token.expires_at}"
    return f"{body}.{_mac(settings, 'answer-' + token.purpose, body.encode())}"


def read_answer(settings: Settings, purpose: str, text: str, now: float | None = None) -> AnswerToken | None:
    """The token if its signature is right and it has not expired; None otherwise."""
    parts = text.split(".")
    if len(parts) != 4:
        return None
    body = ".".join(parts[:3])
    if not safe_equals(_mac(settings, "answer-" + purpose, body.encode()), parts[3]):
        return None
    try:
        token = AnswerToken(purpose, UUID(hex=parts[0]), UUID(hex=parts[1]), int(parts[2]))
    except ValueError:
        return None
    if token.expires_at < (now if now is not None else time.time()):
        return None
    return token


# ------------------------------------------------------------------------------ throttle


def _throttle_keys(settings: Settings, site_id: UUID, guard_id: UUID) -> tuple[str, str]:
    prefix = f"{settings.redis_prefix}visitors:code-failures:{site_id}"
    return f"{prefix}:guard:{guard_id}", f"{prefix}:site"


async def check_throttle(redis: Redis, settings: Settings, site_id: UUID, guard_id: UUID, max_failures: int) -> None:
    guard_key, site_key = _throttle_keys(settings, site_id, guard_id)
    guard_count, site_count = await redis.mget(guard_key, site_key)
    for key, count, limit in (
        (guard_key, guard_count, max_failures),
        (site_key, site_count, max_failures * SITE_ALLOWANCE_FACTOR),
    ):
        if count is not None and int(count) >= limit:
            retry = max(1, int(await redis.ttl(key)))
            raise TooManyRequests(
                f"too many failed code verifications; try again in {retry} s",
                extra={"retry_after_seconds": retry},
                headers={"Retry-After": str(retry)},
            )


async def record_failure(redis: Redis, settings: Settings, site_id: UUID, guard_id: UUID, window: int) -> None:
    async with redis.pipeline(transaction=True) as pipe:
        for key in _throttle_keys(settings, site_id, guard_id):
            pipe.set(key, 0, ex=window, nx=True)
            pipe.incr(key)
        await pipe.execute()
