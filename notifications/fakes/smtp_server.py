"""A recording SMTP server (aiosmtpd) that runs inside the caller's event loop.

aiosmtpd's ``Controller`` would run a second loop in a thread; creating the server with
``loop.create_server`` keeps every fake in one loop so records need no locking.
"""

import asyncio
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import msgspec
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from litestar import Router, get

from notifications.fakes._util import control_routes, merge_into_struct, utcnow


class SmtpBehaviour(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    # Recipients refused at RCPT time with "550 5.1.1", like a mailbox that does not exist.
    reject_recipients: set[str] = msgspec.field(default_factory=set)


class ReceivedAttachment(msgspec.Struct, kw_only=True):
    filename: str | None
    content_type: str
    content: bytes


class ReceivedEmail(msgspec.Struct, kw_only=True):
    mail_from: str
    rcpt_tos: list[str]
    subject: str | None
    from_header: str | None
    to_header: str | None
    text: str | None
    html: str | None
    headers: dict[str, str]
    auth_user: str | None
    received_at: datetime
    attachments: list[ReceivedAttachment] = msgspec.field(default_factory=list)


def _bytes(payload: object) -> bytes:
    return payload if isinstance(payload, bytes) else b""


def _parse(envelope: Envelope, auth_user: str | None) -> ReceivedEmail:
    raw = envelope.original_content or envelope.content or b""
    parsed = message_from_bytes(raw if isinstance(raw, bytes) else raw.encode(), policy=policy.default)
    assert isinstance(parsed, EmailMessage)  # guaranteed by policy.default
    text_part = parsed.get_body(preferencelist=("plain",))
    html_part = parsed.get_body(preferencelist=("html",))
    return ReceivedEmail(
        mail_from=envelope.mail_from or "",
        rcpt_tos=list(envelope.rcpt_tos),
        subject=parsed["subject"],
        from_header=parsed["from"],
        to_header=parsed["to"],
        text=text_part.get_content() if isinstance(text_part, EmailMessage) else None,
        html=html_part.get_content() if isinstance(html_part, EmailMessage) else None,
        headers={key: str(value) for key, value in parsed.items()},
        auth_user=auth_user,
        received_at=utcnow(),
        attachments=[
            ReceivedAttachment(
                filename=part.get_filename(),
                content_type=part.get_content_type(),
                content=_bytes(part.get_payload(decode=True)),
            )
            for part in parsed.iter_attachments()
            if isinstance(part, EmailMessage)
        ],
    )


class SmtpFake:
    """aiosmtpd handler (the ``handle_*`` hooks) plus recorded mail and controls."""

    def __init__(self) -> None:
        self.emails: list[ReceivedEmail] = []
        self.behaviour = SmtpBehaviour()
        self._server: asyncio.base_events.Server | None = None
        self._arrived = asyncio.Condition()

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen in the running loop; returns the bound port (useful with port=0)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(
                self,
                # An explicit hostname avoids aiosmtpd's socket.getfqdn(), a blocking DNS lookup.
                hostname="fake-smtp.local",
                authenticator=_accept_any_login,
                # Dev/test only: allow AUTH over plain TCP so clients configured with a
                # username/password work unchanged; AUTH stays optional.
                auth_require_tls=False,
                loop=loop,
            ),
            host=host,
            port=port,
        )
        bound: int = self._server.sockets[0].getsockname()[1]
        return bound

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    # -- controls ------------------------------------------------------------------------------
    def reset(self) -> None:
        self.emails.clear()
        self.behaviour = SmtpBehaviour()

    def configure(self, **changes: Any) -> SmtpBehaviour:
        self.behaviour = merge_into_struct(self.behaviour, changes)
        return self.behaviour

    async def wait_for(self, count: int) -> list[ReceivedEmail]:
        """Wait until at least ``count`` emails have arrived; bound it with ``asyncio.timeout``."""
        async with self._arrived:
            await self._arrived.wait_for(lambda: len(self.emails) >= count)
        return self.emails

    # -- aiosmtpd handler hooks ----------------------------------------------------------------
    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address.lower() in {a.lower() for a in self.behaviour.reject_recipients}:
            return "550 5.1.1 User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        auth_user = None
        if isinstance(session.auth_data, LoginPassword):
            auth_user = session.auth_data.login.decode()
        email = _parse(envelope, auth_user)
        async with self._arrived:
            self.emails.append(email)
            self._arrived.notify_all()
        return "250 Message accepted for delivery"


def _accept_any_login(server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any) -> AuthResult:
    return AuthResult(success=True, auth_data=auth_data)


def smtp_router(fake: SmtpFake, path: str = "/smtp") -> Router:
    @get("/_fake/messages")
    async def list_emails() -> list[ReceivedEmail]:
        return fake.emails

    return Router(
        path=path,
        route_handlers=[
            list_emails,
            *control_routes(fake),
        ],
    )
