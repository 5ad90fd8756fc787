"""The in-app feed: the ledger row itself is the feed entry; 'sending' it tells the person's devices."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from uuid import UUID

from notifications.categories import Channel
from notifications.channels.base import Outcome, Outgoing, Recipient

# (person_id, delivery_id, message) -> None; publishes to the person's realtime topic.
FeedAnnouncer = Callable[[UUID, UUID, Outgoing], Awaitable[None]]


class InAppAdapter:
    channel = Channel.IN_APP

    def __init__(self, announce: FeedAnnouncer | None = None) -> None:
        self._announce = announce

    async def send(self, message: Outgoing, recipients: list[Recipient]) -> list[Outcome]:
        if self._announce is not None:
            await asyncio.gather(*(self._announce(r.person_id, r.delivery_id, message) for r in recipients))
        return [Outcome(delivery_id=r.delivery_id, status="sent", provider_id=str(r.delivery_id)) for r in recipients]

    async def aclose(self) -> None:
        await asyncio.sleep(0)
