"""The interface every channel adapter implements, and the shapes it exchanges with the sender."""

from __future__ import annotations

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


class Recipient(msgspec.Struct, frozen=True, kw_only=True):
    delivery_id: UUID
    person_id: UUID
    # E.164 phone for sms/whatsapp, email address for email; push tokens for push.
    address: str | None = None
    push_tokens: tuple[str, ...] = ()


# sent: the provider accepted it. retry: transient, try again later. failed: permanent.
OutcomeStatus = Literal["sent", "retry", "failed"]
# What a permanent failure says about the recipient, for the sender to record.
Effect = Literal["opted_out", "invalid_address", "dead_tokens"]


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    delivery_id: UUID
    status: OutcomeStatus
    provider_id: str | None = None
    provider_code: str | None = None
    effect: Effect | None = None
    dead_tokens: tuple[str, ...] = ()
    retry_after_seconds: float | None = None


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
