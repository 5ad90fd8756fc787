"""Small helpers shared by the fake provider servers."""

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, Literal, Protocol, TypeVar

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


class LimitedAttempt(msgspec.Struct, kw_only=True):
    """One request that went through a fake's provider limits, accepted or refused with 429."""

    at: float  # the fake's clock (epoch seconds) when the request arrived
    key: str  # what the limit is counted for: the sender (Twilio From) or the project (FCM)
    target: str  # the recipient: Twilio To, FCM token
    accepted: bool
    reason: Literal["rate", "concurrency"] | None = None  # why it was refused
    retry_after: int | None = None  # the Retry-After (seconds) it was answered with


class LimitStats(msgspec.Struct, kw_only=True):
    """What a fake's provider limits saw, for tests to assert on (``GET /_fake/limits``)."""

    # Per key, requests accepted in each 1-second window of the fake's clock (window = int(epoch)).
    accepted_per_second: dict[str, dict[int, int]] = msgspec.field(default_factory=dict)
    # Per key, requests refused with 429.
    refused: dict[str, int] = msgspec.field(default_factory=dict)
    # Most requests in flight at once: admitted ones, and all that arrived (admitted or refused).
    max_concurrency: int = 0
    max_offered_concurrency: int = 0
    attempts: list[LimitedAttempt] = msgspec.field(default_factory=list)

    def max_per_second(self, key: str | None = None) -> int:
        """The most requests accepted in one 1-second window (for ``key``, or any key)."""
        keys = [key] if key is not None else list(self.accepted_per_second)
        return max((n for k in keys for n in self.accepted_per_second.get(k, {}).values()), default=0)


class LimitExceeded(Exception):
    def __init__(self, reason: Literal["rate", "concurrency"], retry_after: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class ProviderLimits:
    """A per-key rate in 1-second windows and a cap on requests in flight, as providers enforce them.

    Off unless configured (``None``). ``clock`` is the fake's clock (epoch seconds), which a test
    may replace to move time forward without waiting.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.stats = LimitStats()
        self._in_flight = 0
        self._offered = 0

    def reset(self) -> None:
        self.stats = LimitStats()

    @contextlib.contextmanager
    def admit(
        self,
        key: str,
        target: str,
        *,
        rate_per_second: int | None,
        max_concurrent: int | None,
        retry_after: int | None,
    ) -> Iterator[None]:
        """Hold a slot for one request for the duration of the block, or raise :class:`LimitExceeded`."""
        now = self.clock()
        window = int(now)
        stats = self.stats
        self._offered += 1
        try:
            stats.max_offered_concurrency = max(stats.max_offered_concurrency, self._offered)
            per_window = stats.accepted_per_second.setdefault(key, {})
            reason: Literal["rate", "concurrency"] | None = None
            if max_concurrent is not None and self._in_flight >= max_concurrent:
                reason = "concurrency"
            elif rate_per_second is not None and per_window.get(window, 0) >= rate_per_second:
                reason = "rate"
            if reason is not None:
                # Without a configured value: come back when the current window is over.
                wait = retry_after if retry_after is not None else max(1, -int(-(window + 1 - now)))
                stats.refused[key] = stats.refused.get(key, 0) + 1
                stats.attempts.append(
                    LimitedAttempt(at=now, key=key, target=target, accepted=False, reason=reason, retry_after=wait)
                )
                raise LimitExceeded(reason, wait)
            per_window[window] = per_window.get(window, 0) + 1
            stats.attempts.append(LimitedAttempt(at=now, key=key, target=target, accepted=True))
            self._in_flight += 1
            stats.max_concurrency = max(stats.max_concurrency, self._in_flight)
            try:
                yield
            finally:
                self._in_flight -= 1
        finally:
            self._offered -= 1


class ControllableFake(Protocol):
    """What every fake offers its /_fake control routes."""

    @property
    def behaviour(self) -> msgspec.Struct: ...

    def configure(self, **changes: Any) -> msgspec.Struct: ...

    def reset(self) -> None: ...


def control_routes(fake: ControllableFake, limits: ProviderLimits | None = None) -> list[HTTPRouteHandler]:
    """GET/PATCH /_fake/config and POST /_fake/reset, the same for every fake; with ``limits``, also
    GET /_fake/limits (what its provider limits counted)."""

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

    if limits is None:
        return [get_config, patch_config, reset]

    @get("/_fake/limits")
    async def get_limits() -> Response[bytes]:
        return Response(msgspec.json.encode(limits.stats), media_type="application/json")

    return [get_config, patch_config, reset, get_limits]
