"""Liveness and readiness probes."""

from __future__ import annotations

from typing import Literal

import msgspec
from litestar import Response, get
from litestar.datastructures import State

from app.auth.roles import PUBLIC
from app.db import database_is_reachable
from app.deps import RedisDep
from app.redis import redis_is_reachable


class Health(msgspec.Struct, frozen=True):
    status: Literal["ok"]


class RealtimeShard(msgspec.Struct, frozen=True):
    """One realtime Redis shard as this web process's hub sees it (``REALTIME_REDIS_URLS``)."""

    shard: str  # host:port/db, or "default" (REDIS_URL) when realtime is not sharded
    up: bool


class Readiness(msgspec.Struct, frozen=True):
    # "degraded": some realtime shards are lost; their topics wait (and resync), the rest works,
    # so the process stays in rotation (a load balancer taking every process out would not help).
    status: Literal["ok", "degraded", "unavailable"]
    database: bool
    redis: bool
    realtime_shards: list[RealtimeShard]


@get("/health", opt=PUBLIC, tags=["system"])
async def health() -> Health:
    return Health(status="ok")


@get("/ready", opt=PUBLIC, tags=["system"])
async def ready(redis: RedisDep, state: State) -> Response[Readiness]:
    database_ok = await database_is_reachable()
    redis_ok = await redis_is_reachable(redis)
    hub = state.get("realtime")
    shards = [RealtimeShard(shard=name, up=up) for _, name, up, _ in hub.shard_health()] if hub is not None else []
    ok = database_ok and redis_ok and (not shards or any(s.up for s in shards))
    status: Literal["ok", "degraded", "unavailable"] = "unavailable"
    if ok:
        status = "ok" if all(s.up for s in shards) else "degraded"
    return Response(
        Readiness(status=status, database=database_ok, redis=redis_ok, realtime_shards=shards),
        status_code=200 if ok else 503,
    )
