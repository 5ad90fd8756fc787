"""The interface every channel adapter implements, and the shapes it exchanges with the sender."""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime
from typing import Literal, Protocol, runtime_checkable
from uuid import UUID

import msgspec

from notifications.categories import Channel


class Outgoing(msgspec.Struct, frozen=True, kw_only=True):
    """The message as every recipient of one notification gets it."""

    notification_id: UUID
    category: str
    urgency: str
    title: str
    body: str
    data: dict[str, str] = msgspec.field(default_factory=dict)
    collapse_key: str | None = None
    ttl_seconds: int = 24 * 3600


class Recipient(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    delivery_id: UUID
    person_id: UUID
    # E.164 phone for sms/whatsapp, email address for email; push tokens for push.
    address: str | None = None
    push_tokens: tuple[str, ...] = ()


# sent: the provider accepted it. retry: transient, try again later. failed: permanent.
OutcomeStatus = Literal["sent", "retry", "failed"]
# What a permanent failure says about the recipient, for the sender to record.
Effect = Literal["opted_out", "invalid_address", "dead_tokens"]


class Outcome(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    delivery_id: UUID
    status: OutcomeStatus
    provider_id: str | None = None
    provider_code: str | None = None
    effect: Effect | None = None
    dead_tokens: tuple[str, ...] = ()
    # The provider's Retry-After: the sender does not try this row again sooner.
    retry_after_seconds: float | None = None


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from an HTTP Retry-After header (delay-seconds or an HTTP-date); None if absent or unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if moment.tzinfo is None:
            return None
        seconds = moment.timestamp() - (time.time() if now is None else now)
    if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN, infinity
        return None
    return max(0.0, seconds)


class ChannelAdapter(Protocol):
    channel: Channel

    async def send(self, message: Outgoing, recipients: list[Recipient]) -> list[Outcome]:
        """Send to every recipient; never raises for a per-recipient failure."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class Reconciling(Protocol):
    """An adapter whose provider can say whether an earlier, unrecorded send was accepted."""

    async def find_accepted(self, message: Outgoing, recipient: Recipient, since_epoch: float) -> str | None:
        """The provider's id of a message to this recipient accepted since then, if any."""
        ...
