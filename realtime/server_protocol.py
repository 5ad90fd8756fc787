"""uvicorn's sans-I/O websocket protocol, holding less per idle connection.

A web process keeps thousands of mostly idle websockets open, so every object a connection keeps
alive is paid thousands of times. uvicorn's ``websockets-sansio`` protocol (frame parsing and the
handshake are done by the ``websockets`` library, which we keep) allocates per connection an
``asyncio.Queue`` and an ``asyncio.Event``: four deques of about 760 bytes each, although the
queue rarely holds more than one message (uvicorn pauses reading while one is unread). It also
keeps the handshake's request and response, headers and all, for the connection's whole life,
though nothing reads them after the handshake. This subclass swaps the queue and the event for
list-backed equivalents that allocate only while someone waits, and lets go of the handshake
objects once the handshake is over. Everything else, including every byte on the wire, is
uvicorn's and the ``websockets`` library's.

A fan-out sends the same frame to many connections. Through ASGI, each of those sends goes through
Litestar's send wrappers, uvicorn's send and the library's frame serializer: about two thirds of
what a send costs, the rest being the write system call. So the protocol also offers the app a
way to write a frame it serialized once (with the library's ``Frame.serialize``) straight to the
transport, as the ASGI scope extension ``opshub.frame_writer`` (``FRAME_WRITER_EXTENSION``). It
writes only when the plain ASGI send would write the same bytes at once: the connection is open,
nothing is waiting for the socket to drain, and no extension (compression) changes the frame.
Otherwise it declines and the app sends through ASGI as usual.

Run it with ``uvicorn --ws realtime.server_protocol:LeanWebSocketProtocol`` (the Procfile does).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Generator
from typing import Any, Final, Generic, TypeVar, cast

from uvicorn._types import ASGIReceiveEvent
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import Protocol, State
from websockets.server import ServerProtocol

UVICORN_WS = "realtime.server_protocol:LeanWebSocketProtocol"  # for ``uvicorn --ws``
# The scope extension naming the object whose ``write_frame(bytes) -> bool`` writes a frame
# made by ``serialize_text_frame``. (ASGI extensions are usually dicts; this private one is the
# writer itself, so offering it costs a connection nothing.)
FRAME_WRITER_EXTENSION: Final = "opshub.frame_writer"

Item = TypeVar("Item")


class _Waitable:
    """Tasks parked until woken, in a list that exists only while someone is parked."""

    __slots__ = ("_waiters",)

    def __init__(self) -> None:
        self._waiters: list[asyncio.Future[None]] | None = None

    async def _park(self) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            self._waiters.remove(waiter)
            if not self._waiters:
                self._waiters = None

    def _wake(self) -> None:
        for waiter in self._waiters or ():
            if not waiter.done():
                waiter.set_result(None)


class LeanQueue(_Waitable, Generic[Item]):
    """An unbounded FIFO with ``asyncio.Queue``'s ``put_nowait``/``get``/``empty``, in plain lists."""

    __slots__ = ("_items",)

    def __init__(self) -> None:
        super().__init__()
        self._items: list[Item] = []

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)

    def put_nowait(self, item: Item) -> None:
        self._items.append(item)
        self._wake()

    async def get(self) -> Item:
        while not self._items:
            await self._park()
        return self._items.pop(0)


class LeanEvent(_Waitable):
    """``asyncio.Event``'s ``set``/``clear``/``is_set``/``wait``, without a deque per instance."""

    __slots__ = ("_flag",)

    def __init__(self) -> None:
        super().__init__()
        self._flag = False

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        self._flag = True
        self._wake()

    def clear(self) -> None:
        self._flag = False

    async def wait(self) -> bool:
        if not self._flag:
            await self._park()
        return True


class _StopAfterHandshake(Protocol):
    def parse(self) -> Generator[None]:
        return
        yield


class HandshakeFreeServerProtocol(ServerProtocol, _StopAfterHandshake):
    """``websockets``' server protocol, minus the handshake request it keeps for the connection's life.

    ``ServerProtocol.parse`` reads the handshake request into a local variable, then goes on in the
    same generator to parse frames until the connection ends, so the request and its headers stay
    alive as long as the connection does. Here the frame parsing that ``ServerProtocol.parse``
    delegates to (``super().parse()``, which the method resolution order sends to
    ``_StopAfterHandshake``) returns at once, so that generator ends after the handshake and takes
    the request with it; frames are then parsed by ``Protocol.parse``, exactly as before.
    """

    def parse(self) -> Generator[None]:
        yield from super().parse()
        yield from Protocol.parse(self)


class LeanWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's ``websockets-sansio`` protocol with the per-connection overhead above removed."""

    # uvicorn's protocol sets about 40 attributes. Past 30, CPython stops sharing an instance
    # dict's keys with the class and gives each connection a dict of its own (~1.6 KB); in slots
    # they cost 8 bytes each. An attribute a later uvicorn adds lands in the dict and still works
    # (tests/test_realtime_server_protocol.py notices it).
    __slots__ = (
        *("app", "app_state", "asgi_version", "client", "close_sent", "close_timeout", "close_timer"),
        *("config", "conn", "connections", "curr_msg_data_type", "default_headers", "disconnected"),
        *("frames", "handshake_complete", "handshake_initiated", "initial_response", "last_ping_rtt"),
        *("logger", "loop", "pending_ping_payload", "ping_interval", "ping_sent_at", "ping_timeout"),
        *("ping_timer", "pong_timer", "queue", "read_paused", "request", "response", "root_path"),
        *("scheme", "scope", "server", "tasks", "transport", "writable"),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Same interface as the asyncio objects uvicorn created; only their footprint differs.
        self.queue: LeanQueue[ASGIReceiveEvent] = LeanQueue()  # type: ignore[assignment]
        self.writable: LeanEvent = LeanEvent()  # type: ignore[assignment]
        self.writable.set()
        uvicorns = self.conn
        self.conn = HandshakeFreeServerProtocol(
            extensions=uvicorns.available_extensions, max_size=self.config.ws_max_size, logger=uvicorns.logger
        )

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        extensions = cast(dict[str, Any], self.scope.get("extensions"))
        extensions[FRAME_WRITER_EXTENSION] = self
        # The app reads the handshake from the scope; uvicorn never reads the request again.
        del self.request
        if self.handshake_complete:  # refused by the library before the app saw it
            self._forget_response()

    def start_keepalive(self) -> None:
        # uvicorn calls this right after it wrote the accepted handshake's response, which it
        # never reads again. (Hooked here rather than around ``send``, which runs for every frame.)
        self._forget_response()
        super().start_keepalive()

    def _forget_response(self) -> None:
        with contextlib.suppress(AttributeError):
            del self.response

    def write_frame(self, frame: bytes) -> bool:
        """Write a frame from ``serialize_text_frame`` now, if the ASGI send would write those bytes now.

        False means nothing was written: the handshake is not done, the connection is closing,
        the socket is above its high-water mark (the ASGI send waits for it), or an extension
        such as compression makes this connection's frames its own.
        """
        if (
            self.writable.is_set()
            and self.handshake_complete
            and not self.close_sent
            and self.initial_response is None
            and not self.disconnected
            and self.conn.state is State.OPEN
            and not self.conn.extensions
        ):
            self.transport.write(frame)
            return True
        return False


def serialize_text_frame(text: str) -> bytes:
    """A server's text frame for ``text``, by the ``websockets`` library: without extensions, the
    bytes are the same for every connection, so a fan-out serializes each distinct frame once."""
    return Frame(Opcode.TEXT, text.encode()).serialize(mask=False)
