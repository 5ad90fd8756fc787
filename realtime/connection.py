"""One client connection: its topic positions, its bounded outgoing queue and its writer.

The websocket handler task reads client messages (``gateway``). Sending needs no task of its
own: what is pushed within a short window (``flush_window_seconds``, 5 ms) is joined into one
frame (a JSON array) and written by flush callbacks, ``FLUSH_SLICE`` connections per event-loop
turn (``FlushQueue``). The server's send usually completes without waiting (the socket is writable); only when
it must wait (the client reads slowly) does the connection get a task that finishes that send
and drains the rest. A busy client costs one send per batch, and an idle one no task at all.
Where the server offers it (``realtime.server_protocol``), a flush serializes each distinct
frame once and writes those bytes to every connection that gets the same batch, which in a
fan-out is nearly all of them, instead of one ASGI send per connection.

Everything that sends to the client only appends to the outbox, which never blocks the
caller (the hub's dispatch loop serves every connection of the process). A client whose
outbox grows past ``send_queue_max`` is too slow: it is closed with 4008 and forgotten at
once, so it cannot hold memory or slow the others down; it resumes when it reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol

import msgspec
from litestar.connection import WebSocket

from app.auth.principal import Principal
from app.observability.metrics import SLOW_CONSUMER_CUTS
from realtime.config import RealtimeSettings
from realtime.server_protocol import FRAME_WRITER_EXTENSION, serialize_text_frame
from schema.events import CloseCode, Console

logger = logging.getLogger("opshub.realtime")
_encoder = msgspec.json.Encoder()

# A topic's position on a connection: the last sequence number delivered, or, while the
# subscription is replaying history, the live events buffered meanwhile (epoch, seq, frame).
Buffer = list[tuple[str, int, str]]
# Within one flush: the frame bytes for each distinct batch, by the batch's message (or the
# tuple of its messages; the strings are shared by every connection, so hashing them is cheap).
FrameCache = dict[object, bytes]
# A fan-out flush has a few distinct batches (an event, maybe with a heartbeat ping); a burst of
# new connections has one per connection (each welcome is its own). Keeping only a few frames
# keeps those from piling up during the flush and fragmenting the heap that idle connections live in.
MAX_SHARED_FRAMES = 8


class FrameWriter(Protocol):
    def write_frame(self, frame: bytes) -> bool: ...


class Connection:
    __slots__ = (
        "_close_timeout",
        "_closer",
        "_draining",
        "_expiry",
        "_flush_queue",
        "_flush_window",
        "_limit",
        "_max_batch",
        "_on_forget",
        "_outbox",
        "_queued",
        "_reader",
        "_socket",
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
        self._queued = False  # waiting for this turn's flush
        self._draining: asyncio.Task[None] | None = None  # a send that had to wait, and what follows it
        self._flush_queue: FlushQueue | None = None
        self._flush_window = settings.flush_window_seconds
        self._closer: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[Any] | None = None
        self._expiry: int | None = None  # the second the token expires, while the expiry clock holds it
        self._writer: FrameWriter | None = None

    def start(self) -> None:
        """Called from the handler task, which is the reader."""
        self._reader = asyncio.current_task()
        extensions: dict[str, Any] = self._socket.scope.get("extensions") or {}
        self._writer = extensions.get(FRAME_WRITER_EXTENSION)
        self._flush_queue = flush_queue_for(asyncio.get_running_loop(), self._flush_window)
        if self._outbox:  # the welcome, queued before the connection started
            self._request_flush()
        self.schedule_expiry()

    def schedule_expiry(self) -> None:
        clock = expiry_clock_for(asyncio.get_running_loop())
        if self._expiry is not None:
            clock.discard(self, self._expiry)
        self._expiry = clock.add(self, self.principal.expires_at)

    def expire(self) -> None:
        """Called by the expiry clock when the token's second has come."""
        self._expiry = None
        self.close(CloseCode.TOKEN_EXPIRED, "token expired")

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
            SLOW_CONSUMER_CUTS.inc()
            logger.info("connection %s cut off as a slow consumer", self.id, extra={"ws_session": self.id})
            self.close(CloseCode.SLOW_CONSUMER, "slow consumer")
            return
        if not self._queued:
            self._request_flush()

    def _request_flush(self) -> None:
        # A draining task sends what follows its send itself; before start() there is no queue yet.
        if not self._queued and self._draining is None and self._flush_queue is not None:
            self._queued = True
            self._flush_queue.add(self)

    @property
    def outbox_depth(self) -> int:
        """Messages waiting to be written (read at metrics scrape time)."""
        return len(self._outbox)

    def send(self, message: msgspec.Struct) -> None:
        self.push(_encoder.encode(message).decode())

    def _take_batch(self) -> list[str] | None:
        outbox = self._outbox
        if not outbox:
            return None
        if len(outbox) <= self._max_batch:
            self._outbox = []
            return outbox
        batch = outbox[: self._max_batch]
        del outbox[: self._max_batch]
        return batch

    def flush(self, frames: FrameCache) -> None:
        """Send what is queued; called by the flush queue once its window has passed."""
        self._queued = False
        writer = self._writer
        while self.closing is None and self._draining is None:
            batch = self._take_batch()
            if batch is None:
                return
            if writer is not None:
                key = batch[0] if len(batch) == 1 else tuple(batch)
                frame = frames.get(key)
                if frame is None:
                    if len(frames) >= MAX_SHARED_FRAMES:
                        frames.clear()
                    frame = frames[key] = serialize_text_frame(_joined(batch))
                if writer.write_frame(frame):
                    continue
            sending = self._socket.send({"type": "websocket.send", "text": _joined(batch), "bytes": None})
            if not isinstance(sending, Coroutine):  # an ASGI server whose send is some other awaitable
                self._draining = asyncio.get_running_loop().create_task(
                    self._drain(_awaited(sending), None), name=f"rt-drain-{self.id}"
                )
                return
            try:
                waiting_on = sending.send(None)
            except StopIteration:
                continue  # written at once: the usual case without a frame writer
            except Exception:
                return  # the peer is gone; the reader sees the disconnect and cleans up
            # The socket's buffer is above its high-water mark: finish this send in a task, and
            # let the outbox grow meanwhile (that is what trips the slow-consumer limit).
            self._draining = asyncio.get_running_loop().create_task(
                self._drain(sending, waiting_on), name=f"rt-drain-{self.id}"
            )

    async def _drain(self, sending: Coroutine[Any, Any, None], waiting_on: Any) -> None:
        try:
            await _resume(sending, waiting_on)
            while self.closing is None and (batch := self._take_batch()) is not None:
                await self._socket.send({"type": "websocket.send", "text": _joined(batch), "bytes": None})
        except asyncio.CancelledError:
            raise
        except Exception:
            return  # the peer is gone
        finally:
            self._draining = None
        if self._outbox and self.closing is None:
            self._request_flush()

    # ------------------------------------------------------------------ closing

    def close(self, code: int, reason: str) -> None:
        """Close from the server side: forget the connection's topics now, send the close frame in the background."""
        if self.closing is not None:
            return
        self.closing = (code, reason)
        self._outbox = []
        self._cancel_timers()
        self._on_forget(self)
        if self._draining is not None:
            self._draining.cancel()
        self._closer = asyncio.get_running_loop().create_task(
            self._send_close(code, reason), name=f"rt-close-{self.id}"
        )

    async def _send_close(self, code: int, reason: str) -> None:
        try:
            async with asyncio.timeout(self._close_timeout):
                await self._socket.close(code, reason)
        except TimeoutError:
            # The close frame is stuck behind data the peer does not read: stop waiting for it.
            logger.info("connection %s: close %s timed out, dropping it", self.id, code, extra={"ws_session": self.id})
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
        if self._draining is not None:
            self._draining.cancel()

    def _cancel_timers(self) -> None:
        if self._expiry is not None:
            expiry_clock_for(asyncio.get_running_loop()).discard(self, self._expiry)
            self._expiry = None

    async def wait_closed(self) -> None:
        """For shutdown: wait until the close frame went out (or timed out)."""
        if self._closer is not None:
            with contextlib.suppress(Exception):
                await self._closer


def _joined(batch: list[str]) -> str:
    """One message as is; several as one JSON array (clients accept both)."""
    return batch[0] if len(batch) == 1 else "[" + ",".join(batch) + "]"


async def _resume(coroutine: Coroutine[Any, Any, None], waiting_on: Any) -> None:
    """Finish a coroutine that was started by hand and suspended on ``waiting_on`` (what it
    yielded): the part of running a task that ``asyncio.eager_task_factory`` does on 3.12."""
    try:
        while True:
            if waiting_on is None:
                await asyncio.sleep(0)  # a bare yield: it only gave the loop a turn
            else:
                # What a task does with a yielded future: take it over (the flag says it was yielded
                # by an await that now waits for us to resume it once the future is done).
                waiting_on._asyncio_future_blocking = False
                await waiting_on
            waiting_on = coroutine.send(None)
    except StopIteration:
        return
    finally:
        coroutine.close()


async def _awaited(awaitable: Awaitable[None]) -> None:
    await awaitable


FLUSH_SLICE = 128


class FlushQueue:
    """The connections with something to send, flushed together once the window has passed.

    Measured with bench/ws_fanout.py at 1,000 connections and 200 events/s: flushing every loop
    turn wrote nearly one frame per event per client (p99 58 ms, the server core 91 % busy); a
    5 ms window joins them (p99 43 ms, 82 %); 10 ms adds more waiting than it saves. With the
    frame writer (a frame serialized once per flush) the same holds: 2 ms gave p99 36 ms at
    87 % busy, 5 ms 31-40 ms at 73-75 %, 10 ms 54 ms at 65 %. Flushing at once after a quiet
    spell (no flush for 20 ms) took 5 ms off the gate's p50 but not its p99, and the fan-out's
    p99 was no better (41-44 ms): not kept."""

    __slots__ = ("_flushing", "_ready", "_round_waiters", "_rounds_done", "_scheduled", "_waiting", "_window")

    def __init__(self, window: float) -> None:
        # No reference to the loop: these queues are kept in a weak mapping keyed by it.
        self._window = window
        self._waiting: list[Connection] = []  # added since the window opened
        self._ready: deque[Connection] = deque()  # window passed: flushed slice by slice
        self._scheduled = False
        self._flushing = False  # a round (flushing until no connection is ready) is under way
        self._rounds_done = 0
        self._round_waiters: list[asyncio.Future[None]] = []

    def add(self, connection: Connection) -> None:
        self._waiting.append(connection)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_later(self._window, self._window_passed)

    @property
    def rounds_done(self) -> int:
        return self._rounds_done

    async def round_done(self) -> None:
        """Wait for the round under way, or the one a pending window will start, to end.

        The hub waits here when it has read many events during one round: they arrive faster
        than they can be written, and the backlog is better left in Redis than in every outbox,
        where it would grow until clients were cut off as slow."""
        if not self._flushing and not self._scheduled:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._round_waiters.append(waiter)
        try:
            await waiter
        finally:
            if waiter in self._round_waiters:
                self._round_waiters.remove(waiter)

    def _window_passed(self) -> None:
        self._scheduled = False
        self._ready.extend(self._waiting)
        self._waiting.clear()
        if not self._flushing:
            self._flushing = True
            self._flush_slice()

    def _flush_slice(self) -> None:
        """Flush up to FLUSH_SLICE connections, then let the loop run before the next slice.

        A whole round for 1,000 connections takes about 10 ms; in one piece, an event that reached
        Redis meanwhile waited for all of it before it was even read, and then for its own round.
        Between slices it is read and joins the outboxes not yet flushed in this round."""
        ready = self._ready
        frames: FrameCache = {}
        for _ in range(min(len(ready), FLUSH_SLICE)):
            connection = ready.popleft()
            try:
                connection.flush(frames)
            except Exception:
                logger.exception(
                    "realtime flush of connection %s failed", connection.id, extra={"ws_session": connection.id}
                )
        if ready:
            asyncio.get_running_loop().call_soon(self._flush_slice)
            return
        self._flushing = False
        self._rounds_done += 1
        for waiter in self._round_waiters:
            if not waiter.done():
                waiter.set_result(None)


_FLUSH_QUEUES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[float, FlushQueue]] = (
    weakref.WeakKeyDictionary()
)


def flush_queue_for(loop: asyncio.AbstractEventLoop, window: float) -> FlushQueue:
    queues = _FLUSH_QUEUES.setdefault(loop, {})
    queue = queues.get(window)
    if queue is None:
        queue = queues[window] = FlushQueue(window)
    return queue


class ExpiryClock:
    """Closes connections whose access token has expired, with one timer for all of them.

    A timer per connection cost about 500 bytes each (the handle and its bound arguments). Tokens
    expire at whole seconds (a JWT's ``exp``), so connections are kept in one set per second and
    a single timer is armed for the earliest second that holds any.
    """

    __slots__ = ("_armed_for", "_by_second", "_timer")

    def __init__(self) -> None:
        # No reference to the loop: these clocks are kept in a weak mapping keyed by it.
        self._by_second: dict[int, set[Connection]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._armed_for: int | None = None

    def add(self, connection: Connection, expires_at: float) -> int:
        second = math.ceil(expires_at)
        self._by_second.setdefault(second, set()).add(connection)
        if self._armed_for is None or second < self._armed_for:
            self._arm(second)
        return second

    def discard(self, connection: Connection, second: int) -> None:
        # The timer stays armed: when it fires with nothing due it re-arms for what is left.
        connections = self._by_second.get(second)
        if connections is not None:
            connections.discard(connection)
            if not connections:
                del self._by_second[second]

    def __len__(self) -> int:
        return sum(len(connections) for connections in self._by_second.values())

    def _arm(self, second: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._armed_for = second
        self._timer = asyncio.get_running_loop().call_later(max(0.0, second - time.time()), self._fire)

    def _fire(self) -> None:
        self._timer, self._armed_for = None, None
        now = time.time()
        for second in [second for second in self._by_second if second <= now]:
            for connection in self._by_second.pop(second):
                try:
                    connection.expire()
                except Exception:
                    logger.exception(
                        "realtime expiry of connection %s failed", connection.id, extra={"ws_session": connection.id}
                    )
        if self._by_second:
            self._arm(min(self._by_second))


_EXPIRY_CLOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ExpiryClock] = weakref.WeakKeyDictionary()


def expiry_clock_for(loop: asyncio.AbstractEventLoop) -> ExpiryClock:
    clock = _EXPIRY_CLOCKS.get(loop)
    if clock is None:
        clock = _EXPIRY_CLOCKS[loop] = ExpiryClock()
    return clock
