"""One client connection: its topic positions, its bounded outgoing queue and its writer.

Two tasks serve a connection: the websocket handler reads client messages (``gateway``),
and the writer below sends whatever is queued, joining queued messages into one frame
(a JSON array) so a busy client costs one send per batch rather than one per event.

Everything that sends to the client only appends to the outbox, which never blocks the
caller (the hub's dispatch loop serves every connection of the process). A client whose
outbox grows past ``send_queue_max`` is too slow: it is closed with 4008 and forgotten at
once, so it cannot hold memory or slow the others down; it resumes when it reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import msgspec
from litestar.connection import WebSocket

from app.auth.principal import Principal
from realtime.config import RealtimeSettings
from schema.events import CloseCode, Console

logger = logging.getLogger("opshub.realtime")
_encoder = msgspec.json.Encoder()

# A topic's position on a connection: the last sequence number delivered, or, while the
# subscription is replaying history, the live events buffered meanwhile (epoch, seq, frame).
Buffer = list[tuple[str, int, str]]


class Connection:
    __slots__ = (
        "_close_timeout",
        "_closer",
        "_expiry",
        "_limit",
        "_max_batch",
        "_on_forget",
        "_outbox",
        "_reader",
        "_socket",
        "_wakeup",
        "_writer",
        "aborting",
        "closing",
        "console",
        "id",
        "last_seen",
        "positions",
        "principal",
    )

    def __init__(
        self,
        socket: WebSocket[Any, Any, Any],
        principal: Principal,
        *,
        connection_id: str,
        settings: RealtimeSettings,
        console: Console | None,
        on_forget: Callable[[Connection], None],
    ) -> None:
        self.id = connection_id
        self.principal = principal
        self.console = console
        self.positions: dict[str, int | Buffer] = {}
        self.last_seen = time.monotonic()
        self.closing: tuple[int, str] | None = None
        self.aborting = False
        self._socket = socket
        self._outbox: list[str] = []
        self._limit = settings.send_queue_max
        self._max_batch = settings.max_batch
        self._close_timeout = settings.close_timeout_seconds
        self._on_forget = on_forget
        self._wakeup: asyncio.Future[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[Any] | None = None
        self._expiry: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Start the writer; called from the handler task, which is the reader."""
        self._reader = asyncio.current_task()
        self._writer = asyncio.get_running_loop().create_task(self._write(), name=f"rt-writer-{self.id}")
        self.schedule_expiry()

    def schedule_expiry(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
        delay = max(0.0, self.principal.expires_at - time.time())
        self._expiry = asyncio.get_running_loop().call_later(
            delay, self.close, CloseCode.TOKEN_EXPIRED, "token expired"
        )

    # ------------------------------------------------------------------ outgoing (never blocks)

    def offer(self, topic: str, epoch: str, seq: int, frame: str) -> None:
        """A live event on a subscribed topic (the hot path: called once per subscriber)."""
        position = self.positions.get(topic)
        if position.__class__ is int:
            if seq > position:
                self.positions[topic] = seq
                self.push(frame)
        elif position is not None:
            position.append((epoch, seq, frame))  # type: ignore[union-attr]

    def push(self, text: str) -> None:
        if self.closing is not None:
            return
        outbox = self._outbox
        outbox.append(text)
        if len(outbox) > self._limit:
            self.close(CloseCode.SLOW_CONSUMER, "slow consumer")
            return
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    def send(self, message: msgspec.Struct) -> None:
        self.push(_encoder.encode(message).decode())

    async def _write(self) -> None:
        loop = asyncio.get_running_loop()
        send = self._socket.send
        max_batch = self._max_batch
        try:
            while True:
                outbox = self._outbox
                if not outbox:
                    self._wakeup = loop.create_future()
                    await self._wakeup
                    self._wakeup = None
                    continue
                if len(outbox) <= max_batch:
                    self._outbox = []
                    batch = outbox
                else:
                    batch = outbox[:max_batch]
                    del outbox[:max_batch]
                text = batch[0] if len(batch) == 1 else "[" + ",".join(batch) + "]"
                # Waits while the socket's buffer is above its high-water mark: that is the
                # back-pressure that makes a slow client's outbox grow and trip the limit.
                await send({"type": "websocket.send", "text": text, "bytes": None})
        except asyncio.CancelledError:
            raise
        except Exception:
            # The peer is gone; the reader sees the disconnect and cleans up.
            return

    # ------------------------------------------------------------------ closing

    def close(self, code: int, reason: str) -> None:
        """Close from the server side: forget the connection's topics now, send the close frame in the background."""
        if self.closing is not None:
            return
        self.closing = (code, reason)
        self._outbox = []
        self._cancel_timers()
        self._on_forget(self)
        if self._writer is not None:
            self._writer.cancel()
        self._closer = asyncio.get_running_loop().create_task(
            self._send_close(code, reason), name=f"rt-close-{self.id}"
        )

    async def _send_close(self, code: int, reason: str) -> None:
        try:
            async with asyncio.timeout(self._close_timeout):
                await self._socket.close(code, reason)
        except TimeoutError:
            # The close frame is stuck behind data the peer does not read: stop waiting for it.
            logger.info("connection %s: close %s timed out, dropping it", self.id, code)
            self.abort()
        except Exception:
            pass  # already disconnected

    def abort(self) -> None:
        """Make the reader (the handler task) stop waiting for a peer that no longer reads."""
        if self._reader is not None and not self._reader.done():
            self.aborting = True
            self._reader.cancel()

    def finish(self) -> None:
        """The reader ended (peer disconnected or aborted): stop everything the connection runs."""
        if self.closing is None:
            self.closing = (CloseCode.NORMAL, "")
            self._on_forget(self)
        self._cancel_timers()
        self._outbox = []
        if self._writer is not None:
            self._writer.cancel()
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.cancel()

    def _cancel_timers(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None

    async def wait_closed(self) -> None:
        """For shutdown: wait until the close frame went out (or timed out)."""
        if self._closer is not None:
            with contextlib.suppress(Exception):
                await self._closer
