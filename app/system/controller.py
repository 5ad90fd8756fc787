"""Liveness and readiness probes."""

from __future__ import annotations

from typing import Literal

import msgspec
from litestar import Response, get

from app.auth.roles import PUBLIC
from app.db import database_is_reachable
from app.deps import RedisDep
from app.redis import redis_is_reachable


class Health(msgspec.Struct, frozen=True):
    status: Literal["ok"]


class Readiness(msgspec.Struct, frozen=True):
    status: Literal["ok", "unavailable"]
    database: bool
    redis: bool


@get("/health", opt=PUBLIC, tags=["system"])
async def health() -> Health:
    return Health(status="ok")


@get("/ready", opt=PUBLIC, tags=["system"])
async def ready(redis: RedisDep) -> Response[Readiness]:
    database_ok = await database_is_reachable()
    redis_ok = await redis_is_reachable(redis)
    ok = database_ok and redis_ok
    return Response(
        Readiness(status="ok" if ok else "unavailable", database=database_ok, redis=redis_ok),
        status_code=200 if ok else 503,
    )
