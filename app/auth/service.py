"""Login, refresh-token rotation and logout, as plain functions over their dependencies."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
from uuid import UUID, uuid4

import msgspec
from redis.asyncio import Redis

from app.auth.passwords import verify_password
from app.auth.principal import Principal
from app.auth.roles import Role
from app.auth.throttle import check_login_allowed, record_login_failure, record_login_success
from app.auth.tokens import issue_access_token, revoke_access_token, revoke_all_access_tokens
from app.config import Settings
from app.errors import InvalidInput, Unauthenticated
from app.people.directory import Directory, PersonMatch
from app.people.normalise import normalise_email, normalise_phone
from app.privacy import audit
from schema.tables import Person, PersonRole, RefreshToken, Site

logger = logging.getLogger("opshub.auth")


class TokenPair(msgspec.Struct, frozen=True):
    access_token: str
    refresh_token: str
    expires_in: int
    person_id: UUID
    site_id: UUID
    roles: list[Role]
    token_type: str = "bearer"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def roles_of(person_id: UUID) -> frozenset[Role]:
    rows = await PersonRole.select(PersonRole.role).where(PersonRole.person == person_id)
    return frozenset(Role(row["role"]) for row in rows)


async def _candidates(directory: Directory, username: str, site_slug: str | None) -> list[PersonMatch]:
    site_id: UUID | None = None
    region = "IN"
    if site_slug:
        site = await Site.select(Site.id, Site.country_code).where(Site.slug == site_slug).first()
        if site is None:
            return []
        site_id, region = site["id"], site["country_code"]
    try:
        if "@" in username:
            return await directory.find_by_contact("email", normalise_email(username), site_id)
        return await directory.find_by_contact("mobile", normalise_phone(username, region), site_id)
    except ValueError:
        return []


async def _issue_pair(
    settings: Settings, person_id: UUID, site_id: UUID, roles: frozenset[Role], family_id: UUID
) -> TokenPair:
    access_token, _ = issue_access_token(settings, person_id=person_id, site_id=site_id, roles=roles)
    refresh_token = secrets.token_urlsafe(32)
    await RefreshToken(
        site=site_id,
        person=person_id,
        token_hash=_hash_refresh_token(refresh_token),
        family_id=family_id,
        expires_at=_now() + dt.timedelta(seconds=settings.refresh_token_ttl_seconds),
    ).save()
    return TokenPair(
        access_token=access_token,
        refresh_token=refresh_token,
        expires_in=settings.access_token_ttl_seconds,
        person_id=person_id,
        site_id=site_id,
        roles=sorted(roles),
    )


class VerifiedLogin(msgspec.Struct, frozen=True):
    person_id: UUID
    site_id: UUID
    roles: frozenset[Role]


async def verify_credentials(
    *,
    settings: Settings,
    redis: Redis,
    directory: Directory,
    username: str,
    password: str,
    site_slug: str | None,
    client_address: str,
) -> VerifiedLogin:
    """Who these credentials belong to, under the login throttle; raises on a wrong or ambiguous login.

    Both ways in use it: the API's token login and the pages' session login.
    """
    throttle_id = directory.contact_index("email", username.strip().lower())
    await check_login_allowed(settings, redis, throttle_id, client_address)
    verified: list[Person] = []
    candidates = await _candidates(directory, username, site_slug)
    for match in candidates:
        person = await Person.objects().where(Person.id == match.person_id).first()
        if person is not None and person.is_active and verify_password(person.password_hash, password):
            verified.append(person)
    if not verified:
        verify_password(None, password)  # equal work whether or not the account exists
        await record_login_failure(settings, redis, throttle_id, client_address)
        # Every failed login is in the audit log of the account it tried (a username that matches
        # nobody has no site and no subject to file it under: it is logged, without the username).
        for match in candidates:
            await audit.record(match.site_id, [match.person_id], "login_failed", "password")
        if not candidates:
            logger.info("failed login for an unknown username from %s", client_address)
        raise Unauthenticated("username or password is wrong")
    if len(verified) > 1:
        raise InvalidInput.for_field("site", "this account exists on several sites; give the site's slug")
    await record_login_success(settings, redis, throttle_id, client_address)
    person = verified[0]
    roles = await roles_of(person.id)
    if not roles:
        await audit.record(person.site, [person.id], "login_failed", "no_role")
        raise Unauthenticated("this account has no role on its site")
    return VerifiedLogin(person_id=person.id, site_id=person.site, roles=roles)


async def login(
    *,
    settings: Settings,
    redis: Redis,
    directory: Directory,
    username: str,
    password: str,
    site_slug: str | None,
    client_address: str,
) -> TokenPair:
    who = await verify_credentials(
        settings=settings,
        redis=redis,
        directory=directory,
        username=username,
        password=password,
        site_slug=site_slug,
        client_address=client_address,
    )
    return await _issue_pair(settings, who.person_id, who.site_id, who.roles, family_id=uuid4())


async def refresh(*, settings: Settings, redis: Redis, refresh_token: str) -> TokenPair:
    row = await RefreshToken.objects().where(RefreshToken.token_hash == _hash_refresh_token(refresh_token)).first()
    if row is None:
        raise Unauthenticated("refresh token is not valid")
    if row.revoked_at is not None or row.used_at is not None:
        # A used token presented again means it leaked: end the whole login.
        await _revoke_family(row.family_id)
        raise Unauthenticated("refresh token was already used; please log in again")
    if row.expires_at <= _now():
        raise Unauthenticated("refresh token has expired")
    claimed = (
        await RefreshToken.update({RefreshToken.used_at: _now()})
        .where((RefreshToken.id == row.id) & RefreshToken.used_at.is_null())
        .returning(RefreshToken.id)
    )
    if not claimed:
        await _revoke_family(row.family_id)
        raise Unauthenticated("refresh token was already used; please log in again")
    person = await Person.objects().where(Person.id == row.person).first()
    roles = await roles_of(row.person)
    if person is None or not person.is_active or not roles:
        raise Unauthenticated("account is no longer active")
    return await _issue_pair(settings, person.id, person.site, roles, family_id=row.family_id)


async def _revoke_family(family_id: UUID) -> None:
    await RefreshToken.update({RefreshToken.revoked_at: _now()}).where(
        (RefreshToken.family_id == family_id) & RefreshToken.revoked_at.is_null()
    )


async def logout(*, settings: Settings, redis: Redis, principal: Principal, refresh_token: str | None) -> None:
    await revoke_access_token(settings, redis, principal)
    if refresh_token:
        row = (
            await RefreshToken.objects()
            .where(
                (RefreshToken.token_hash == _hash_refresh_token(refresh_token))
                & (RefreshToken.person == principal.person_id)
            )
            .first()
        )
        if row is not None:
            await _revoke_family(row.family_id)


async def logout_everywhere(*, settings: Settings, redis: Redis, person_id: UUID) -> None:
    await RefreshToken.update({RefreshToken.revoked_at: _now()}).where(
        (RefreshToken.person == person_id) & RefreshToken.revoked_at.is_null()
    )
    await revoke_all_access_tokens(settings, redis, person_id)
