"""Email over SMTP (aiosmtplib). The delivery id is the Message-ID, so a repeat is recognisable.

A message may carry one file (a scheduled report): its ``data`` names it by ``attachment`` (a key under
the adapter's ``attachments`` directory, never a path of the caller's choosing), ``attachment_name`` and
``attachment_type``. A file that is gone fails the send permanently (``attachment_missing``).
"""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib

from notifications.categories import Channel
from notifications.channels.base import Outcome, Outgoing, Recipient

CONCURRENCY = 8


class EmailAdapter:
    channel = Channel.EMAIL

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        domain: str = "opshub.local",
        attachments: Path | None = None,
    ) -> None:
        self._host, self._port, self._sender, self._domain = host, port, sender, domain
        self._attachments = attachments.resolve() if attachments is not None else None
        self._slots = asyncio.Semaphore(CONCURRENCY)

    def attachment_of(self, message: Outgoing) -> tuple[bytes, str, str] | None:
        """(content, file name, media type) of the message's file; None without one. Raises
        FileNotFoundError for a key that names nothing (or leaves the directory)."""
        key = message.data.get("attachment")
        if not key:
            return None
        if self._attachments is None:
            raise FileNotFoundError(key)
        path = (self._attachments / key).resolve()
        if self._attachments not in path.parents:
            raise FileNotFoundError(key)
        media = message.data.get("attachment_type") or "application/octet-stream"
        return path.read_bytes(), message.data.get("attachment_name") or path.name, media

    def _email(
        self, message: Outgoing, recipient: Recipient, attachment: tuple[bytes, str, str] | None = None
    ) -> EmailMessage:
        email = EmailMessage()
        email["From"] = self._sender
        email["To"] = recipient.address or ""
        email["Subject"] = message.title
        email["Message-ID"] = f"<{recipient.delivery_id}@{self._domain}>"
        email.set_content(message.body)
        if attachment is not None:
            content, filename, media = attachment
            maintype, _, subtype = media.partition("/")
            email.add_attachment(content, maintype=maintype, subtype=subtype or "octet-stream", filename=filename)
        return email

    async def _send_one(
        self, message: Outgoing, recipient: Recipient, attachment: tuple[bytes, str, str] | None = None
    ) -> Outcome:
        if not recipient.address:
            return Outcome(delivery_id=recipient.delivery_id, status="failed", provider_code="no_address")
        async with self._slots:
            try:
                email = self._email(message, recipient, attachment)
                await aiosmtplib.send(email, hostname=self._host, port=self._port, timeout=10)
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
        try:
            attachment = await asyncio.to_thread(self.attachment_of, message)
        except OSError:
            return [
                Outcome(delivery_id=r.delivery_id, status="failed", provider_code="attachment_missing")
                for r in recipients
            ]
        return list(await asyncio.gather(*(self._send_one(message, r, attachment) for r in recipients)))

    async def aclose(self) -> None:
        await asyncio.sleep(0)
