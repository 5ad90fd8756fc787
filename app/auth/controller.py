"""HTTP routes for authentication. Thin: parse, call the service, shape the reply."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, get, post
from litestar.params import JSONBody

from app.auth import service
from app.auth.roles import ALL_ROLES, PUBLIC, Role, allow
from app.auth.throttle import LoginThrottled
from app.deps import Caller, DirectoryDep, RedisDep, SettingsDep
from app.errors import TooManyRequests
from schema.tables import Person


class LoginRequest(msgspec.Struct, frozen=True):
    username: str = msgspec.field()
    password: str = msgspec.field()
    site: str | None = None


class RefreshRequest(msgspec.Struct, frozen=True):
    refresh_token: str


class LogoutRequest(msgspec.Struct, frozen=True):
    refresh_token: str | None = None


class Me(msgspec.Struct, frozen=True):
    person_id: UUID
    site_id: UUID
    full_name: str
    roles: list[Role]


class AuthController(Controller):
    path = "/api/auth"
    tags = ["auth"]

    @post("/login", opt=PUBLIC, status_code=200)
    async def login(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[LoginRequest],
        settings: SettingsDep,
        redis: RedisDep,
        directory: DirectoryDep,
    ) -> service.TokenPair:
        try:
            return await service.login(
                settings=settings,
                redis=redis,
                directory=directory,
                username=data.username,
                password=data.password,
                site_slug=data.site,
                client_address=request.client.host if request.client else "unknown",
            )
        except LoginThrottled as exc:
            raise TooManyRequests(str(exc), headers={"Retry-After": str(exc.retry_after_seconds)}) from None

    @post("/refresh", opt=PUBLIC, status_code=200)
    async def refresh(
        self, data: JSONBody[RefreshRequest], settings: SettingsDep, redis: RedisDep
    ) -> service.TokenPair:
        return await service.refresh(settings=settings, redis=redis, refresh_token=data.refresh_token)

    @post("/logout", opt=allow(*ALL_ROLES), status_code=204)
    async def logout(
        self, data: JSONBody[LogoutRequest | None], principal: Caller, settings: SettingsDep, redis: RedisDep
    ) -> None:
        await service.logout(
            settings=settings, redis=redis, principal=principal, refresh_token=data.refresh_token if data else None
        )

    @post("/logout-everywhere", opt=allow(*ALL_ROLES), status_code=204)
    async def logout_everywhere(self, principal: Caller, settings: SettingsDep, redis: RedisDep) -> None:
        await service.logout_everywhere(settings=settings, redis=redis, person_id=principal.person_id)

    @get("/me", opt=allow(*ALL_ROLES))
    async def me(self, principal: Caller) -> Me:
        person = await Person.select(Person.full_name).where(Person.id == principal.person_id).first()
        return Me(
            person_id=principal.person_id,
            site_id=principal.site_id,
            full_name=person["full_name"] if person else "",
            roles=sorted(principal.roles),
        )
