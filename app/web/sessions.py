"""Browser sessions: an opaque id in an HttpOnly cookie, the session itself in Redis.

A page never holds a token that its scripts could read. The cookie carries a random id; Redis keeps,
under the id's SHA-256, who signed in, their site and roles, and the session's CSRF secret. The same
lookup authenticates API calls made by the pages (``app.auth.middleware``) and the page's websocket
(``realtime.gateway``), so a browser gets exactly the role and site checks an API client gets.

A session ends at logout (its key is deleted), after ``session_idle_seconds`` without a request, at
``session_max_seconds`` after sign-in, and whenever the person's tokens are all revoked (logout
everywhere, deactivation, erasure set the per-person "not before" time that access tokens use too).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Final
from uuid import UUID

import msgspec
from redis.asyncio import Redis

from app.auth.principal import Principal
from app.auth.roles import Role
from app.auth.tokens import not_before_key
from app.config import Settings

SESSION_COOKIE: Final = "opshub_session"
LOGIN_CSRF_COOKIE: Final = "opshub_login_csrf"
LANGUAGE_COOKIE: Final = "opshub_lang"
CSRF_HEADER: Final = "x-csrf-token"
CSRF_FORM_FIELD: Final = "_csrf"
# Sliding: a request in the second half of the idle window extends it.
_decoder = msgspec.json.Decoder()


class BrowserSession(msgspec.Struct, frozen=True, kw_only=True):
    person_id: UUID
    site_id: UUID
    roles: frozenset[Role]
    csrf: str
    created_at: int
    # Absolute end, whatever the activity.
    ends_at: int

    def principal(self, session_id_hash: str, settings: Settings, now: int) -> Principal:
        # The websocket closes with 4004 at `expires_at`, then reconnects on the same cookie: a short
        # horizon makes a logout reach open sockets within one access-token lifetime, as for tokens.
        expires_at = min(self.ends_at, now + settings.access_token_ttl_seconds)
        return Principal(
            person_id=self.person_id,
            site_id=self.site_id,
            roles=self.roles,
            token_id=f"session:{session_id_hash[:24]}",
            expires_at=expires_at,
        )


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def _key(settings: Settings, session_id_hash: str) -> str:
    return f"{settings.redis_prefix}web:session:{session_id_hash}"


async def create_session(
    settings: Settings, redis: Redis, *, person_id: UUID, site_id: UUID, roles: frozenset[Role]
) -> tuple[str, BrowserSession]:
    """A new session; returns the cookie value (shown to nobody but the browser) and the session."""
    session_id = secrets.token_urlsafe(32)
    now = int(time.time())
    session = BrowserSession(
        person_id=person_id,
        site_id=site_id,
        roles=roles,
        csrf=secrets.token_urlsafe(32),
        created_at=now,
        ends_at=now + settings.session_max_seconds,
    )
    await redis.set(
        _key(settings, _hash(session_id)),
        msgspec.json.encode(session),
        ex=min(settings.session_idle_seconds, settings.session_max_seconds),
    )
    return session_id, session


async def load_session(settings: Settings, redis: Redis, session_id: str | None) -> tuple[str, BrowserSession] | None:
    """The session behind a cookie value (and its hash), or None when it ended or never existed."""
    if not session_id or len(session_id) > 128:
        return None
    digest = _hash(session_id)
    key = _key(settings, digest)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.get(key)
        pipe.ttl(key)
        raw, ttl = await pipe.execute()
    if raw is None:
        return None
    try:
        session = _decoder.decode(raw)
        session = msgspec.convert(session, BrowserSession)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    now = int(time.time())
    if now >= session.ends_at:
        await redis.delete(key)
        return None
    not_before = await redis.get(not_before_key(settings, session.person_id))
    if not_before is not None and session.created_at < int(not_before):
        await redis.delete(key)
        return None
    if 0 < ttl < settings.session_idle_seconds // 2:
        await redis.expire(key, min(settings.session_idle_seconds, session.ends_at - now))
    return digest, session


async def end_session(settings: Settings, redis: Redis, session_id: str | None) -> None:
    if session_id:
        await redis.delete(_key(settings, _hash(session_id)))


def csrf_matches(expected: str, given: str | None) -> bool:
    """Constant-time comparison that also refuses a missing or non-ASCII value instead of raising."""
    if not given or not given.isascii():
        return False
    return secrets.compare_digest(expected.encode(), given.encode())
