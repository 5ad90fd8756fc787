"""Email over SMTP (aiosmtplib). The delivery id is the Message-ID, so a repeat is recognisable."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage

import aiosmtplib

from notifications.categories import Channel
from notifications.channels.base import Outcome, Outgoing, Recipient

CONCURRENCY = 8


class EmailAdapter:
    channel = Channel.EMAIL

    def __init__(self, *, host: str, port: int, sender: str, domain: str = "opshub.local") -> None:
        self._host, self._port, self._sender, self._domain = host, port, sender, domain
        self._slots = asyncio.Semaphore(CONCURRENCY)

    def _email(self, message: Outgoing, recipient: Recipient) -> EmailMessage:
        email = EmailMessage()
        email["From"] = self._sender
        email["To"] = recipient.address or ""
        email["Subject"] = message.title
        email["Message-ID"] = f"<{recipient.delivery_id}@{self._domain}>"
        email.set_content(message.body)
        return email

    async def _send_one(self, message: Outgoing, recipient: Recipient) -> Outcome:
        if not recipient.address:
            return Outcome(delivery_id=recipient.delivery_id, status="failed", provider_code="no_address")
        async with self._slots:
            try:
                await aiosmtplib.send(self._email(message, recipient), hostname=self._host, port=self._port, timeout=10)
            except aiosmtplib.SMTPRecipientsRefused as exc:
                return Outcome(
                    delivery_id=recipient.delivery_id,
                    status="failed",
                    provider_code="550",
                    effect="invalid_address" if exc.recipients else None,
                )
            except (aiosmtplib.SMTPException, OSError) as exc:
                return Outcome(delivery_id=recipient.delivery_id, status="retry", provider_code=type(exc).__name__)
        return Outcome(delivery_id=recipient.delivery_id, status="sent", provider_id=str(recipient.delivery_id))

    async def send(self, message: Outgoing, recipients: list[Recipient]) -> list[Outcome]:
        return list(await asyncio.gather(*(self._send_one(message, r) for r in recipients)))

    async def aclose(self) -> None:
        await asyncio.sleep(0)
