"""Access tokens (short-lived JWT) and their revocation.

Revocation lives in Redis: a revoked token id until its natural expiry, and a per-person
"not before" time that invalidates every token issued earlier (logout everywhere,
deactivation, erasure). Both the HTTP middleware and the websocket gateway call
``authenticate_access_token``.
"""

from __future__ import annotations

import secrets
import time
from typing import Literal
from uuid import UUID

import jwt
from redis.asyncio import Redis

from app.auth.principal import Principal
from app.auth.roles import Role
from app.config import Settings

ALGORITHM = "HS256"
AuthFailure = Literal["missing", "invalid", "expired", "revoked"]


class AuthError(Exception):
    def __init__(self, reason: AuthFailure) -> None:
        super().__init__(reason)
        self.reason: AuthFailure = reason


def issue_access_token(
    settings: Settings, *, person_id: UUID, site_id: UUID, roles: frozenset[Role], now: float | None = None
) -> tuple[str, Principal]:
    issued_at = int(now if now is not None else time.time())
    principal = Principal(
        person_id=person_id,
        site_id=site_id,
        roles=roles,
        token_id=secrets.token_urlsafe(16),
        expires_at=issued_at + settings.access_token_ttl_seconds,
    )
    claims = {
        "sub": str(person_id),
        "site": str(site_id),
        "roles": sorted(roles),
        "jti": principal.token_id,
        "iat": issued_at,
        "exp": principal.expires_at,
        "typ": "access",
    }
    return jwt.encode(claims, settings.jwt_secret, algorithm=ALGORITHM), principal


def decode_access_token(settings: Settings, token: str) -> tuple[Principal, int]:
    """The principal and the token's issued-at time; raises AuthError."""
    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret,
            algorithms=[ALGORITHM],
            options={"require": ["sub", "site", "jti", "iat", "exp"]},
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("expired") from None
    except jwt.PyJWTError:
        raise AuthError("invalid") from None
    if claims.get("typ") != "access":
        raise AuthError("invalid")
    try:
        principal = Principal(
            person_id=UUID(claims["sub"]),
            site_id=UUID(claims["site"]),
            roles=frozenset(Role(r) for r in claims.get("roles", [])),
            token_id=str(claims["jti"]),
            expires_at=int(claims["exp"]),
        )
    except (ValueError, TypeError):
        raise AuthError("invalid") from None
    return principal, int(claims["iat"])


def _revoked_token_key(settings: Settings, token_id: str) -> str:
    return f"{settings.redis_prefix}auth:revoked:{token_id}"


def not_before_key(settings: Settings, person_id: UUID) -> str:
    return f"{settings.redis_prefix}auth:not-before:{person_id}"


async def authenticate_access_token(settings: Settings, redis: Redis, token: str | None) -> Principal:
    if not token:
        raise AuthError("missing")
    principal, issued_at = decode_access_token(settings, token)
    revoked, not_before = await redis.mget(
        _revoked_token_key(settings, principal.token_id), not_before_key(settings, principal.person_id)
    )
    if revoked is not None or (not_before is not None and issued_at < int(not_before)):
        raise AuthError("revoked")
    return principal


async def revoke_access_token(settings: Settings, redis: Redis, principal: Principal) -> None:
    remaining = max(1, principal.expires_at - int(time.time()))
    await redis.set(_revoked_token_key(settings, principal.token_id), b"1", ex=remaining)


async def revoke_all_access_tokens(settings: Settings, redis: Redis, person_id: UUID) -> None:
    # Tokens issued in this same second are refused too (iat < now + 1).
    await redis.set(
        not_before_key(settings, person_id),
        str(int(time.time()) + 1),
        ex=settings.access_token_ttl_seconds + 60,
    )
