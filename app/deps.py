"""Dependencies injected into route handlers from the application state."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from redis.asyncio import Redis

from app.auth.principal import Principal
from app.config import Settings
from app.people.directory import Directory


def provide_settings(state: State) -> Settings:
    settings: Settings = state.settings
    return settings


def provide_redis(state: State) -> Redis:
    redis: Redis = state.redis
    return redis


def provide_directory(state: State) -> Directory:
    directory: Directory = state.directory
    return directory


def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    principal = request.user
    assert isinstance(principal, Principal), "route is public; it cannot ask for the principal"
    return principal


DEPENDENCIES = {
    "settings": Provide(provide_settings, sync_to_thread=False),
    "redis": Provide(provide_redis, sync_to_thread=False),
    "directory": Provide(provide_directory, sync_to_thread=False),
    "principal": Provide(provide_principal, sync_to_thread=False),
}


# Explicit injection markers (Litestar 2.23+ deprecates inferring them from the name).
Caller = NamedDependency[Principal]
SettingsDep = NamedDependency[Settings]
RedisDep = NamedDependency[Redis]
DirectoryDep = NamedDependency[Directory]
