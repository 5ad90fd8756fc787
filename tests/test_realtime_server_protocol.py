"""What an idle connection keeps: the lean uvicorn websocket protocol and the shared expiry clock.

The protocol behaves as uvicorn's does while keeping less per connection. The whole realtime
suite runs on it (tests/support/servers.py); these tests pin down what it changes: the
list-backed queue and event, the handshake objects it lets go of, and that a connection through
it still does everything a websocket must (echo, fragments, ping, close codes, a send that waits
for a slow reader).
"""

from __future__ import annotations

import asyncio
import gc
import math
import time
import weakref
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
import websockets
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol

from app.devredis import free_port
from realtime.connection import ExpiryClock
from realtime.server_protocol import (
    FRAME_WRITER_EXTENSION,
    HandshakeFreeServerProtocol,
    LeanEvent,
    LeanQueue,
    LeanWebSocketProtocol,
    serialize_text_frame,
)

HANDSHAKE = (
    b"GET /ws?token=abc HTTP/1.1\r\n"
    b"Host: 127.0.0.1\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"User-Agent: gate-console/1.0\r\n"
    b"\r\n"
)


def masked(payload: bytes, opcode: int = 0x1, fin: bool = True) -> bytes:
    """A client frame (clients must mask), built by hand so the bytes are known."""
    mask = b"\x01\x02\x03\x04"
    assert len(payload) < 126
    head = bytes([(0x80 if fin else 0) | opcode, 0x80 | len(payload)])
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


# ---------------------------------------------------------------------------- queue and event


async def test_lean_queue_is_fifo_and_wakes_a_waiting_getter() -> None:
    queue: LeanQueue[int] = LeanQueue()
    assert queue.empty()
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    assert not getter.done()
    queue.put_nowait(1)
    queue.put_nowait(2)
    assert await getter == 1
    assert queue.qsize() == 1
    assert await queue.get() == 2
    assert queue.empty()


async def test_a_cancelled_get_leaves_no_waiter_and_loses_no_item() -> None:
    queue: LeanQueue[str] = LeanQueue()
    first = asyncio.create_task(queue.get())
    second = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    queue.put_nowait("only")
    assert await second == "only"
    assert first.cancelled()
    assert queue._waiters is None
    # A put while a getter is being cancelled still reaches the next get.
    third = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.put_nowait("kept")
    third.cancel()
    await asyncio.gather(third, return_exceptions=True)
    assert await queue.get() == "kept"


async def test_lean_event_waits_until_set_and_cleans_up() -> None:
    event = LeanEvent()
    assert not event.is_set()
    waiters = [asyncio.create_task(event.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    waiters[0].cancel()
    event.set()
    assert await asyncio.gather(*waiters[1:]) == [True, True]
    assert event._waiters is None
    assert await event.wait() is True  # set: returns at once
    event.clear()
    late = asyncio.create_task(event.wait())
    await asyncio.sleep(0)
    assert not late.done()
    event.set()
    assert await late is True


# ---------------------------------------------------------------------------- the sans-I/O protocol


def test_the_handshake_request_is_released_and_frames_still_parse() -> None:
    protocol = HandshakeFreeServerProtocol()
    # A client that sends its first frame with the handshake, and one split byte by byte.
    protocol.receive_data(HANDSHAKE + masked(b"early"))
    request, early = protocol.events_received()
    assert isinstance(request, Request) and request.path == "/ws?token=abc"
    assert isinstance(early, Frame) and early.data == b"early"
    protocol.send_response(protocol.accept(request))
    assert protocol.data_to_send()[0].startswith(b"HTTP/1.1 101")
    released = weakref.ref(request)
    del request
    gc.collect()
    assert released() is None
    for byte in masked(b"split"):
        protocol.receive_data(bytes([byte]))
    protocol.receive_data(masked(b"part ", fin=False) + masked(b"two", opcode=0x0))
    protocol.receive_data(masked(b"are you there", opcode=0x9))
    frames = protocol.events_received()
    assert [(f.opcode, f.data) for f in frames] == [
        (Opcode.TEXT, b"split"),
        (Opcode.TEXT, b"part "),
        (Opcode.CONT, b"two"),
        (Opcode.PING, b"are you there"),
    ]
    assert protocol.data_to_send() == [b"\x8a\x0dare you there"]  # the pong


def test_the_librarys_own_protocol_keeps_the_request_for_the_connections_life() -> None:
    """Why the subclass exists: without it the request outlives the handshake."""
    protocol = ServerProtocol()
    protocol.receive_data(HANDSHAKE)
    (request,) = protocol.events_received()
    protocol.send_response(protocol.accept(request))
    kept = weakref.ref(request)
    del request
    gc.collect()
    assert kept() is not None


def test_a_bad_handshake_is_still_refused() -> None:
    protocol = HandshakeFreeServerProtocol()
    protocol.receive_data(HANDSHAKE.replace(b"Sec-WebSocket-Version: 13", b"Sec-WebSocket-Version: 8"))
    (request,) = protocol.events_received()
    response = protocol.accept(request)
    assert response.status_code == 400
    protocol.send_response(response)
    assert protocol.data_to_send()[0].startswith(b"HTTP/1.1 400")
    protocol.receive_data(b"GET / HTTP/1.1\r\n\r\n")  # discarded after the refusal
    assert protocol.events_received() == []


# ---------------------------------------------------------------------------- under uvicorn


class EchoApp:
    """Echoes text; "close <code>" closes with that code; "flood <n>" sends n 64 KiB messages;
    "shared <text>" writes <text> through the frame writer, or sends "declined <text>" through ASGI."""

    def __init__(self) -> None:
        self.flood_done = asyncio.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        while (message := await receive())["type"] == "websocket.receive":
            text = message.get("text") or ""
            if text.startswith("close "):
                await send({"type": "websocket.close", "code": int(text.split()[1]), "reason": "asked"})
            elif text.startswith("shared "):
                writer = scope["extensions"][FRAME_WRITER_EXTENSION]
                if not writer.write_frame(serialize_text_frame(text[7:])):
                    await send({"type": "websocket.send", "text": "declined " + text[7:]})
            elif text.startswith("flood "):
                for _ in range(int(text.split()[1])):
                    await send({"type": "websocket.send", "bytes": b"x" * 65536})
                self.flood_done.set()
            else:
                await send({"type": "websocket.send", "text": text})


@pytest.fixture(params=[False], ids=["plain"])
async def echo_server(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, uvicorn.Server, EchoApp]]:
    app = EchoApp()
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        ws=LeanWebSocketProtocol,
        ws_per_message_deflate=request.param,
        log_level="warning",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done()
        await asyncio.sleep(0.02)
    yield f"ws://127.0.0.1:{port}/ws", server, app
    server.should_exit = True
    await task


def server_protocols(server: uvicorn.Server) -> list[LeanWebSocketProtocol]:
    return [c for c in server.server_state.connections if isinstance(c, LeanWebSocketProtocol)]


async def test_a_connection_keeps_no_handshake_objects_and_works_end_to_end(echo_server: Any) -> None:
    url, server, _app = echo_server
    async with websockets.connect(url, compression=None) as ws:
        await ws.send("hello")
        assert await ws.recv() == "hello"
        (protocol,) = server_protocols(server)
        assert not hasattr(protocol, "request") and not hasattr(protocol, "response")
        # Every attribute uvicorn sets is in a slot: no per-connection dict (~1.6 KB) is made.
        assert vars(protocol) == {}
        assert isinstance(protocol.queue, LeanQueue) and isinstance(protocol.writable, LeanEvent)
        assert isinstance(protocol.conn, HandshakeFreeServerProtocol)
        assert not [o for o in gc.get_referrers(protocol.conn) if isinstance(o, Request)]
        await ws.send(["frag", "mented"])  # a fragmented message arrives whole
        assert await ws.recv() == "fragmented"
        assert await asyncio.wait_for(await ws.ping(), 5) is not None
        await ws.send("close 4008")
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4008


async def test_a_send_waits_for_a_slow_reader_and_then_completes(echo_server: Any) -> None:
    url, server, app = echo_server
    async with websockets.connect(url, compression=None, max_queue=1) as ws:
        await ws.send("flood 200")  # 12.5 MiB: far more than the socket buffers hold
        await asyncio.sleep(0.5)
        assert not app.flood_done.is_set()  # the app's send is waiting for the socket to drain
        (protocol,) = server_protocols(server)
        assert not protocol.writable.is_set()
        received = 0
        while received < 200:
            assert len(await ws.recv()) == 65536
            received += 1
        await asyncio.wait_for(app.flood_done.wait(), 5)
        await ws.send("still here")
        assert await ws.recv() == "still here"


async def test_a_shared_frame_is_written_as_the_library_would_write_it(echo_server: Any) -> None:
    url, server, _app = echo_server
    text = '{"op":"event","data":"caf\u00e9 \u2615"}' + "x" * 300  # non-ASCII, and a 16-bit length
    async with websockets.connect(url, compression=None) as ws:
        await ws.send("shared " + text)
        assert await ws.recv() == text
        (protocol,) = server_protocols(server)
        assert protocol.scope["extensions"][FRAME_WRITER_EXTENSION] is protocol  # type: ignore[index]
        # The very bytes the library's own send would have produced for this connection.
        protocol.conn.send_text(text.encode())
        assert protocol.conn.data_to_send() == [serialize_text_frame(text)]


async def test_the_frame_writer_declines_while_the_socket_is_full_and_once_closing(echo_server: Any) -> None:
    url, server, app = echo_server
    async with websockets.connect(url, compression=None, max_queue=1) as ws:
        await ws.send("flood 200")
        await asyncio.sleep(0.5)
        (protocol,) = server_protocols(server)
        assert not protocol.writable.is_set()
        assert protocol.write_frame(serialize_text_frame("jumping the queue")) is False
        for _ in range(200):
            await ws.recv()
        await asyncio.wait_for(app.flood_done.wait(), 5)
        assert protocol.write_frame(serialize_text_frame("now")) is True
        assert await ws.recv() == "now"
        await ws.send("close 1000")
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
        assert protocol.close_sent
        assert protocol.write_frame(serialize_text_frame("after the close")) is False


@pytest.mark.parametrize("echo_server", [True], ids=["deflate"], indirect=True)
async def test_the_frame_writer_declines_when_compression_makes_frames_per_connection(echo_server: Any) -> None:
    url, _server, _app = echo_server
    async with websockets.connect(url, compression="deflate") as ws:
        await ws.send("shared hello")
        assert await ws.recv() == "declined hello"


# ---------------------------------------------------------------------------- token expiry


class Expiring:
    """Stands in for a Connection: the clock only calls ``expire`` and reads ``id``."""

    def __init__(self, name: str) -> None:
        self.id = name
        self.expired_at: float | None = None

    def expire(self) -> None:
        self.expired_at = time.time()


async def test_one_clock_expires_connections_at_their_second_and_forgets_discarded_ones() -> None:
    clock = ExpiryClock()
    now = time.time()
    soon, later, refreshed = Expiring("soon"), Expiring("later"), Expiring("refreshed")
    clock.add(soon, now + 0.3)  # type: ignore[arg-type]
    second = clock.add(refreshed, now + 0.3)  # type: ignore[arg-type]
    clock.add(later, now + 1.3)  # type: ignore[arg-type]
    clock.discard(refreshed, second)  # type: ignore[arg-type]
    clock.add(refreshed, now + 60)  # type: ignore[arg-type]
    assert len(clock) == 3
    async with asyncio.timeout(5):
        while later.expired_at is None:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    assert soon.expired_at is not None and soon.expired_at >= math.ceil(now + 0.3)
    assert later.expired_at >= math.ceil(now + 1.3)
    assert refreshed.expired_at is None
    assert len(clock) == 1
