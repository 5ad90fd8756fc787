"""Small helpers shared by the fake provider servers."""

import asyncio
import secrets
from collections.abc import Coroutine, Mapping
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, Protocol, TypeVar

import msgspec
from litestar import Response, get, patch, post
from litestar.exceptions import ValidationException
from litestar.handlers import HTTPRouteHandler
from litestar.params import JSONBody

S = TypeVar("S", bound=msgspec.Struct)


def utcnow() -> datetime:
    return datetime.now(UTC)


def rfc2822(moment: datetime | None) -> str | None:
    """Twilio's REST API renders timestamps as RFC 2822 ("Thu, 30 Jul 2015 20:12:31 +0000")."""
    return format_datetime(moment) if moment is not None else None


def new_sid(prefix: str) -> str:
    """Twilio SIDs are a two-letter type prefix followed by 32 lowercase hex digits."""
    return prefix + secrets.token_hex(16)


def merge_into_struct(current: S, changes: Mapping[str, Any]) -> S:
    """Apply a partial (JSON-ish) update to a config struct, re-validating the whole result.

    Going through ``to_builtins``/``convert`` means a PATCH body and a Python keyword call
    are validated by exactly the same rules, and unknown keys are rejected.
    """
    merged = {**msgspec.to_builtins(current), **msgspec.to_builtins(dict(changes))}
    return msgspec.convert(merged, type(current), strict=False)


class TaskGroupLite:
    """Tracks fire-and-forget tasks so tests can wait for them and shutdown can cancel them."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait until every task (including ones spawned while waiting) has finished."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def cancel_all(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class ControllableFake(Protocol):
    """What every fake offers its /_fake control routes."""

    @property
    def behaviour(self) -> msgspec.Struct: ...

    def configure(self, **changes: Any) -> msgspec.Struct: ...

    def reset(self) -> None: ...


def control_routes(fake: ControllableFake) -> list[HTTPRouteHandler]:
    """GET/PATCH /_fake/config and POST /_fake/reset, the same for every fake."""

    def behaviour_response(behaviour: msgspec.Struct) -> Response[bytes]:
        return Response(msgspec.json.encode(behaviour), media_type="application/json")

    @get("/_fake/config")
    async def get_config() -> Response[bytes]:
        return behaviour_response(fake.behaviour)

    @patch("/_fake/config")
    async def patch_config(data: JSONBody[dict[str, Any]]) -> Response[bytes]:
        try:
            return behaviour_response(fake.configure(**data))
        except msgspec.ValidationError as exc:
            raise ValidationException(str(exc)) from exc

    @post("/_fake/reset", status_code=204)
    async def reset() -> None:
        fake.reset()

    return [get_config, patch_config, reset]
