"""A small Python client for the realtime gateway: connect, subscribe with resume, reconnect with backoff.

    async with RealtimeClient("ws://127.0.0.1:8000/ws", token) as client:
        await client.subscribe("site:<id>:slots")
        async for message in client:
            if isinstance(message, Event): ...
            elif isinstance(message, Resync): ...  # refetch that topic's state over REST

The client remembers the last (epoch, seq) of every topic. After a dropped connection it
reconnects with exponential backoff and jitter (URL ``auto=0``) and subscribes to every
topic again from its last position, so the server replays exactly what was missed or
answers ``resync``. Given several URLs (web hosts without a load balancer in front), it moves
to the next one when a connection cannot be opened or was lost without a close, or the
process said it is restarting or lost Redis (1012, 1013): any web process resumes any topic.
A topic refused as ``unavailable`` (its Redis shard is down) is asked for again with backoff.
A token given as a callable is asked for a fresh token before the
current one expires (sent as ``refresh`` on the open connection) and on every reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from types import TracebackType
from typing import Final
from urllib.parse import urlencode

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from schema.events import (
    CloseCode,
    ErrorReply,
    Event,
    Ping,
    Pong,
    Refresh,
    Resync,
    ServerMessage,
    Subscribe,
    Subscribed,
    TokenRefreshed,
    Unsubscribe,
    Unsubscribed,
    Welcome,
    decode_server_frame,
)

logger = logging.getLogger("opshub.realtime.client")

TokenSource = str | Callable[[], Awaitable[str]]

# Codes after which reconnecting with the same credentials cannot help.
FATAL_CLOSE_CODES: Final = frozenset(
    {CloseCode.BAD_REQUEST, CloseCode.UNAUTHORIZED, CloseCode.TOKEN_REVOKED, CloseCode.FORBIDDEN}
)
# Codes after which another web process may serve better: the link died (no close frame: None, or
# 1006 as websockets reports it), the process is restarting, or it lost its Redis.
ROAMING_CLOSE_CODES: Final = frozenset({None, 1006, CloseCode.SERVICE_RESTART, CloseCode.TRY_AGAIN_LATER})
_encoder = msgspec.json.Encoder()


class RealtimeError(Exception):
    pass


class ClientClosed(RealtimeError):
    """The client stopped: closed by the application, or refused by the server with a fatal code."""

    def __init__(self, code: int | None, reason: str = "") -> None:
        super().__init__(f"realtime client closed ({code} {reason})".strip())
        self.code = code
        self.reason = reason


class RequestFailed(RealtimeError):
    def __init__(self, reply: ErrorReply) -> None:
        super().__init__(f"{reply.code}: {reply.message}")
        self.reply = reply


class RealtimeClient:
    def __init__(
        self,
        url: str | Sequence[str],
        token: TokenSource,
        *,
        gate: str | None = None,
        token_via: str = "query",  # or "subprotocol"
        reconnect: bool = True,
        min_backoff: float = 0.1,
        max_backoff: float = 5.0,
        open_timeout: float = 10.0,
        reply_timeout: float = 10.0,
    ) -> None:
        self.urls = [url] if isinstance(url, str) else list(url)
        if not self.urls:
            raise ValueError("a realtime client needs at least one URL")
        self._url_index = 0
        self.gate = gate
        self.token_via = token_via
        self.reconnect = reconnect
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.open_timeout = open_timeout
        self.reply_timeout = reply_timeout
        self._token = token
        # What the client keeps across reconnects: its topics and the last (epoch, seq) seen on each.
        self.topics: set[str] = set()
        self.positions: dict[str, tuple[str | None, int]] = {}
        self.welcome: Welcome | None = None
        self.connects = 0  # successful connections so far
        self.close_codes: list[int | None] = []  # why each connection ended
        self._ws: ClientConnection | None = None
        self._messages: asyncio.Queue[ServerMessage | ClientClosed] = asyncio.Queue()
        self._replies: dict[str, asyncio.Future[ServerMessage]] = {}
        self._personal: dict[str, asyncio.Future[ServerMessage]] = {}  # first connection's auto-subscriptions
        self._runner: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._first: asyncio.Future[Welcome] | None = None
        self._closed: ClientClosed | None = None
        self._ping_ids = itertools.count()
        self._retries: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        """The URL the client connects (or is connected) to."""
        return self.urls[self._url_index]

    # ------------------------------------------------------------------ public API

    async def connect(self) -> Welcome:
        """Open the first connection; returns once the server subscribed the personal topics."""
        self._first = asyncio.get_running_loop().create_future()
        self._runner = asyncio.create_task(self._run(), name="realtime-client")
        welcome = await self._first
        async with asyncio.timeout(self.reply_timeout):
            await asyncio.gather(*self._personal.values())
        self._personal.clear()
        return welcome

    async def close(self) -> None:
        self._stop(ClientClosed(CloseCode.NORMAL, "closed by the application"))
        for task in list(self._retries):
            task.cancel()
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner

    async def __aenter__(self) -> RealtimeClient:
        await self.connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def subscribe(self, topic: str, *, resume: bool = True) -> Subscribed | Resync:
        """Subscribe (from the last known position when ``resume``); raises RequestFailed if refused."""
        self.topics.add(topic)
        if not resume:
            self.positions.pop(topic, None)
        reply = await self._request(topic, self._subscribe_message(topic))
        if isinstance(reply, ErrorReply):
            self.topics.discard(topic)
            raise RequestFailed(reply)
        assert isinstance(reply, Subscribed | Resync)
        return reply

    async def unsubscribe(self, topic: str) -> None:
        self.topics.discard(topic)
        self.positions.pop(topic, None)
        await self._request(topic, Unsubscribe(topic=topic))

    async def refresh(self, token: str | None = None) -> int:
        """Send a fresh access token on the open connection; returns its expiry."""
        if token is not None:
            self._token = token
        reply = await self._request("", Refresh(token=await self._current_token()))
        if isinstance(reply, ErrorReply):
            raise RequestFailed(reply)
        assert isinstance(reply, TokenRefreshed)
        return reply.expires_at

    async def ping(self) -> float:
        """Round-trip time to the server, in seconds."""
        ping_id = f"p{next(self._ping_ids)}"
        started = time.perf_counter()
        await self._request(f"ping:{ping_id}", Ping(id=ping_id))
        return time.perf_counter() - started

    async def recv(self) -> ServerMessage:
        """The next event, resync, presence snapshot, forced unsubscription or unmatched error.

        Wrap it in ``asyncio.timeout()`` to bound the wait.
        """
        message = await self._messages.get()
        if isinstance(message, ClientClosed):
            self._messages.put_nowait(message)  # every later call fails the same way
            raise message
        return message

    def __aiter__(self) -> AsyncIterator[ServerMessage]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[ServerMessage]:
        while True:
            try:
                yield await self.recv()
            except ClientClosed:
                return

    async def drop_connection(self) -> None:
        """Cut the TCP connection without a closing handshake, as a network failure would (for tests)."""
        if self._ws is not None:
            self._ws.transport.abort()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    # ------------------------------------------------------------------ connection loop

    def _subscribe_message(self, topic: str) -> Subscribe:
        if topic in self.positions:
            epoch, seq = self.positions[topic]
            return Subscribe(topic=topic, last_seq=seq, epoch=epoch)
        return Subscribe(topic=topic)

    async def _request(self, key: str, message: msgspec.Struct) -> ServerMessage:
        if self._closed is not None:
            raise self._closed
        if key in self._replies:
            raise RealtimeError(f"a request for {key!r} is already waiting")
        future: asyncio.Future[ServerMessage] = asyncio.get_running_loop().create_future()
        self._replies[key] = future
        try:
            async with asyncio.timeout(self.reply_timeout):
                await self._connected.wait()
                assert self._ws is not None
                await self._ws.send(_encoder.encode(message).decode())
                return await future
        finally:
            self._replies.pop(key, None)

    async def _current_token(self) -> str:
        return self._token if isinstance(self._token, str) else await self._token()

    async def _open(self, auto: bool) -> ClientConnection:
        token = await self._current_token()
        params: dict[str, str] = {} if auto else {"auto": "0"}
        subprotocols = None
        if self.token_via == "subprotocol":
            subprotocols = ["bearer", token]
        else:
            params["token"] = token
        if self.gate is not None:
            params["gate"] = self.gate
        url = f"{self.url}?{urlencode(params)}" if params else self.url
        return await connect(
            url,
            subprotocols=subprotocols,  # type: ignore[arg-type]
            compression=None,  # events are small; per-connection zlib state costs more than it saves
            open_timeout=self.open_timeout,
            max_size=2**23,
        )

    async def _run(self) -> None:
        try:
            await self._connect_until_closed()
        except Exception as exc:
            # Not a network failure but a bug or a server breaking the protocol: fail whoever waits
            # (connect, recv, a request) instead of leaving them waiting for good.
            logger.exception("realtime client stopped by an unexpected error")
            self._stop(ClientClosed(None, f"client failed: {exc!r}"))

    async def _connect_until_closed(self) -> None:
        backoff = self.min_backoff
        auto = True
        while self._closed is None:
            code: int | None = None
            reason = ""
            welcomed = False
            try:
                ws = await self._open(auto)
                try:
                    welcome = await self._handshake(ws, auto)
                    welcomed = True
                    auto = False  # from now on the client subscribes itself, with positions
                    backoff = self.min_backoff
                    await self._read(ws, welcome)
                finally:
                    self._connected.clear()
                    self._ws = None
                    code, reason = ws.close_code, ws.close_reason or ""
                    ws.transport.abort()
            except (OSError, TimeoutError, InvalidHandshake, ConnectionClosed):
                pass
            self.close_codes.append(code)
            if not welcomed or code in ROAMING_CLOSE_CODES:
                self._url_index = (self._url_index + 1) % len(self.urls)
            expired_for_good = code == CloseCode.TOKEN_EXPIRED and isinstance(self._token, str)
            if code in FATAL_CLOSE_CODES or expired_for_good or not self.reconnect:
                self._stop(ClientClosed(code, reason))
            if self._closed is not None:
                return
            await asyncio.sleep(backoff * (0.5 + random.random()))
            backoff = min(backoff * 2, self.max_backoff)

    async def _handshake(self, ws: ClientConnection, auto: bool) -> Welcome:
        async with asyncio.timeout(self.open_timeout):
            first = decode_server_frame(await ws.recv())
        welcome = first[0]
        if not isinstance(welcome, Welcome):
            raise RealtimeError(f"expected a welcome, got {welcome!r}")
        self.welcome = welcome
        self.connects += 1
        self._ws = ws
        self.topics.update(welcome.personal_topics)
        if auto:
            loop = asyncio.get_running_loop()
            self._personal = {topic: loop.create_future() for topic in welcome.personal_topics}
            self._replies.update(self._personal)
        else:
            # Resume every topic from where this client stopped (new personal topics from scratch).
            for topic in sorted(self.topics):
                await ws.send(_encoder.encode(self._subscribe_message(topic)).decode())
        self._connected.set()
        if self._first is not None and not self._first.done():
            self._first.set_result(welcome)
        for message in first[1:]:
            await self._dispatch(ws, message)
        return welcome

    async def _read(self, ws: ClientConnection, welcome: Welcome) -> None:
        # Silence for this long means the server or the network died without a close.
        silence = welcome.heartbeat_seconds * 2.5
        refresher = None
        if not isinstance(self._token, str):
            refresher = asyncio.create_task(self._refresh_before_expiry(welcome.expires_at))
        try:
            while True:
                async with asyncio.timeout(silence):
                    frame = await ws.recv()
                for message in decode_server_frame(frame):
                    await self._dispatch(ws, message)
        finally:
            if refresher is not None:
                refresher.cancel()

    async def _refresh_before_expiry(self, expires_at: int) -> None:
        while True:
            margin = min(60.0, max(1.0, (expires_at - time.time()) / 5))
            await asyncio.sleep(max(0.0, expires_at - time.time() - margin))
            expires_at = await self.refresh()

    async def _dispatch(self, ws: ClientConnection, message: ServerMessage) -> None:
        if isinstance(message, Event):
            self.positions[message.topic] = (message.epoch, message.seq)
            self._messages.put_nowait(message)
        elif isinstance(message, Ping):
            await ws.send(_encoder.encode(Pong(id=message.id)).decode())
        elif isinstance(message, Subscribed):
            if message.missed == 0:  # otherwise the replayed events move the position
                self.positions[message.topic] = (message.epoch, message.seq)
            self._reply(message.topic, message)
        elif isinstance(message, Resync):
            self.positions[message.topic] = (message.epoch, message.seq)
            self._reply(message.topic, message)
            self._messages.put_nowait(message)
        elif isinstance(message, Unsubscribed):
            self.topics.discard(message.topic)
            self.positions.pop(message.topic, None)
            if not self._reply(message.topic, message):
                self._messages.put_nowait(message)
        elif isinstance(message, ErrorReply):
            key = message.topic if message.topic is not None else ""
            if not self._reply(key, message):
                if message.topic is not None and message.code == "unavailable" and message.topic in self.topics:
                    # A resumed topic whose shard is down: keep it and ask again shortly.
                    task = asyncio.create_task(self._subscribe_again(message.topic))
                    self._retries.add(task)
                    task.add_done_callback(self._retries.discard)
                elif message.topic is not None:
                    self.topics.discard(message.topic)
                self._messages.put_nowait(message)
        elif isinstance(message, TokenRefreshed):
            self._reply("", message)
        elif isinstance(message, Pong):
            self._reply(f"ping:{message.id}", message)
        else:
            self._messages.put_nowait(message)

    async def _subscribe_again(self, topic: str) -> None:
        backoff = self.min_backoff
        while self._closed is None and topic in self.topics:
            await asyncio.sleep(backoff * (0.5 + random.random()))
            backoff = min(backoff * 2, self.max_backoff)
            try:
                reply = await self._request(topic, self._subscribe_message(topic))
            except (RealtimeError, TimeoutError, ConnectionClosed):
                continue
            if not (isinstance(reply, ErrorReply) and reply.code == "unavailable"):
                if isinstance(reply, ErrorReply):
                    self.topics.discard(topic)
                return

    def _reply(self, key: str, message: ServerMessage) -> bool:
        future = self._replies.get(key)
        if future is None or future.done():
            return False
        future.set_result(message)
        if self._personal.get(key) is future:
            del self._replies[key]  # nobody awaits it in _request, which would have removed it
        return True

    def _stop(self, closed: ClientClosed) -> None:
        if self._closed is not None:
            return
        self._closed = closed
        self._messages.put_nowait(closed)
        if self._first is not None and not self._first.done():
            self._first.set_exception(closed)
        for future in self._replies.values():
            if not future.done():
                future.set_exception(closed)
