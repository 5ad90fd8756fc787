"""What a provider told us about a contact point, written back to the person's record.

Shared by the sender (synchronous provider errors) and the Twilio status webhook
(asynchronous ones): an opted-out number (Twilio 21610) or an invalid one (21211 and
friends) is permanent, so we stop sending where it cannot arrive.
"""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from app.people.directory import ContactKind, Directory
from notifications.categories import Channel
from notifications.preferences import withdraw_everywhere
from schema.tables import ContactPoint

ContactEffect = Literal["opted_out", "invalid_address"]


async def mark_contact(
    directory: Directory,
    *,
    site_id: UUID,
    person_id: UUID,
    channel: Channel,
    effect: str,
    address: str | None,
    policy_version: str,
) -> None:
    """Mark the person's contact point that the message went to; an opt-out also withdraws consent.

    ``address`` is the normalised value the message was sent to (E.164 for SMS/WhatsApp,
    lower-case for email); without it there is nothing to mark.
    """
    if address is None or effect not in ("opted_out", "invalid_address"):
        return
    kind: ContactKind = "email" if channel is Channel.EMAIL else "mobile"
    status = "opted_out" if effect == "opted_out" else "invalid"
    index = directory.contact_index(kind, address)
    await ContactPoint.update({ContactPoint.status: status}).where(
        (ContactPoint.person == person_id) & (ContactPoint.kind == kind) & (ContactPoint.value_index == index)
    )
    if effect == "opted_out":
        # The carrier-level STOP is a withdrawal of consent too: it belongs in the history.
        await withdraw_everywhere(
            site_id=site_id, person_id=person_id, channels=[channel], source="provider", policy_version=policy_version
        )
