"""The per-process fan-out: one Redis pub/sub connection serving every websocket of this web process.

- Topics are reference-counted: the first local subscriber SUBSCRIBEs the topic's channel,
  the last one leaving UNSUBSCRIBEs it. Commands go out from one task, in order, and each
  SUBSCRIBE's confirmation resolves a future, so a subscriber knows when live events flow.
- Resume: subscribe locally first (live events are buffered), wait for the Redis
  subscription, read the history after the client's last sequence, send it, then drain the
  buffer dropping what was already sent: no gap and no duplicate.
- Heartbeat: one task pings every client, reaps the silent ones, refreshes gate presence,
  and checks that the pub/sub connection itself is alive (it publishes to its own channel).
- If Redis is lost, every client is closed with 1013 (they reconnect and resume from
  history) and the hub reconnects with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from typing import Final

import msgspec
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from app.config import Settings
from realtime import history
from realtime.config import RealtimeSettings
from realtime.connection import Connection, expiry_clock_for, flush_queue_for
from realtime.presence import Presence
from schema.events import CloseCode, ErrorReply, Ping, Resync, Subscribed

logger = logging.getLogger("opshub.realtime")
_encoder = msgspec.json.Encoder()
PING_FRAME: Final = _encoder.encode(Ping()).decode()
SUBSCRIBE_TIMEOUT_SECONDS: Final = 10.0
# Messages read from Redis between two rounds of flushes, before waiting for the next to end (a
# full frame's worth per client: far more than a round sees unless writing falls behind, or a
# burst arrives that would otherwise land in every outbox at once and cut clients off as slow).
MAX_READS_PER_FLUSH_ROUND: Final = 64


class TopicState:
    """One topic this process is subscribed to in Redis, and its local subscribers."""

    __slots__ = ("channel", "epoch", "ready", "subscribers", "topic")

    def __init__(self, topic: str, channel: bytes, ready: asyncio.Future[None]) -> None:
        self.topic = topic
        self.channel = channel
        self.ready = ready  # resolved when Redis confirmed the SUBSCRIBE
        self.subscribers: set[Connection] = set()
        self.epoch: str | None = None


class Hub:
    def __init__(self, redis: Redis, settings: Settings, realtime: RealtimeSettings) -> None:
        self.redis = redis
        self.settings = settings
        self.realtime = realtime
        self.id = secrets.token_hex(6)
        self.presence = Presence(redis, settings, realtime)
        self.connections: set[Connection] = set()
        self.consoles: set[Connection] = set()
        self.topics: dict[str, TopicState] = {}
        self.available = False
        self._by_channel: dict[bytes, TopicState] = {}
        self._channel_prefix = history.channel_prefix(settings)
        self._control = f"{settings.redis_prefix}rt:hub:{self.id}".encode()
        self._pubsub: PubSub | None = None
        self._idle: set[str] = set()
        self._commands: deque[tuple[str, bytes]] = deque()
        self._confirmations: dict[bytes, deque[asyncio.Future[None]]] = {}
        self._command_wakeup: asyncio.Future[None] | None = None
        self._last_control = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        self._opened = asyncio.Event()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._listen_forever(), name="rt-hub-listener"),
            asyncio.create_task(self._send_commands(), name="rt-hub-commands"),
            asyncio.create_task(self._heartbeat(), name="rt-hub-heartbeat"),
        ]
        # Start-up waits for Redis briefly; if it is down, the hub keeps retrying in the background.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await self._opened.wait()

    async def stop(self) -> None:
        """Graceful shutdown: every client still connected is closed with 1012 (reconnect elsewhere)."""
        connections = list(self.connections)
        for connection in connections:
            connection.close(CloseCode.SERVICE_RESTART, "server restart")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.realtime.close_timeout_seconds):
                await asyncio.gather(*(c.wait_closed() for c in connections))
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for connection in connections:
            if connection.console is not None:
                with contextlib.suppress(Exception):
                    await self.presence.leave(connection.principal.site_id, connection.console)
        await self._close_pubsub()

    def stats(self) -> dict[str, int]:
        """Counts for tests and operators: nothing here may grow without clients."""
        return {
            "connections": len(self.connections),
            "consoles": len(self.consoles),
            "topics": len(self.topics),
            "channels": len(self._by_channel),
            "idle_topics": len(self._idle),
            "pending_commands": len(self._commands),
            "pending_confirmations": sum(len(q) for q in self._confirmations.values()),
            "expiry_timers": len(expiry_clock_for(asyncio.get_running_loop())),
        }

    # ------------------------------------------------------------------ connections

    def attach(self, connection: Connection) -> None:
        self.connections.add(connection)
        if connection.console is not None:
            self.consoles.add(connection)

    def forget(self, connection: Connection) -> None:
        """Drop every local subscription of a connection (synchronous: safe from any callback)."""
        self.connections.discard(connection)
        for topic in list(connection.positions):
            self._release(connection, topic)
        connection.positions.clear()

    async def detach(self, connection: Connection) -> None:
        connection.finish()
        self.forget(connection)
        if connection.console is not None and connection in self.consoles:
            self.consoles.discard(connection)
            try:
                await self.presence.leave(connection.principal.site_id, connection.console)
            except Exception:
                logger.warning("could not record that console %s left", connection.id, exc_info=True)

    # ------------------------------------------------------------------ subscriptions

    def _acquire(self, topic: str) -> TopicState:
        state = self.topics.get(topic)
        if state is None:
            channel = (self._channel_prefix + topic).encode()
            state = TopicState(topic, channel, asyncio.get_running_loop().create_future())
            self.topics[topic] = state
            self._by_channel[channel] = state
            self._confirmations.setdefault(channel, deque()).append(state.ready)
            self._command("SUBSCRIBE", channel)
        else:
            self._idle.discard(topic)
        return state

    def _release(self, connection: Connection, topic: str) -> None:
        state = self.topics.get(topic)
        if state is None:
            return
        state.subscribers.discard(connection)
        if not state.subscribers:
            # Unsubscribed in Redis by the command task, unless someone subscribes again first.
            self._idle.add(topic)
            self._wake_commands()

    def unsubscribe(self, connection: Connection, topic: str) -> None:
        if connection.positions.pop(topic, None) is not None:
            self._release(connection, topic)

    async def subscribe(self, connection: Connection, topic: str, last_seq: int | None, epoch: str | None) -> bool:
        """Subscribe a connection, replaying what it missed after ``last_seq`` when it can; False on failure."""
        self.unsubscribe(connection, topic)  # a repeated subscribe starts over from the given position
        if len(connection.positions) >= self.realtime.max_topics_per_connection:
            connection.send(ErrorReply(code="too_many_topics", message="unsubscribe from something first", topic=topic))
            return False
        state = self._acquire(topic)
        buffer: list[tuple[str, int, str]] = []
        connection.positions[topic] = buffer
        state.subscribers.add(connection)
        try:
            async with asyncio.timeout(SUBSCRIBE_TIMEOUT_SECONDS):
                await asyncio.shield(state.ready)
                since = await history.read_since(self.redis, self.settings, topic, last_seq)
        except Exception:
            logger.warning("subscribe to %s failed", topic, exc_info=True)
            if connection.positions.get(topic) is buffer:
                self.unsubscribe(connection, topic)
            connection.send(ErrorReply(code="unavailable", message="could not subscribe; try again", topic=topic))
            return False
        if connection.positions.get(topic) is not buffer:
            return False  # unsubscribed or closed while waiting
        position = since.position
        if state.epoch is None:
            state.epoch = position.epoch
        delivered = position.seq
        if last_seq is None:
            connection.send(Subscribed(topic=topic, epoch=position.epoch, seq=position.seq))
        elif not _same_epoch(epoch, position.epoch, last_seq) or last_seq > position.seq:
            connection.send(Resync(topic=topic, epoch=position.epoch, seq=position.seq, reason="epoch_changed"))
        elif position.seq > last_seq and (not since.entries or since.entries[0][0] != last_seq + 1):
            connection.send(Resync(topic=topic, epoch=position.epoch, seq=position.seq, reason="history_gone"))
        else:
            connection.send(Subscribed(topic=topic, epoch=position.epoch, seq=position.seq, missed=len(since.entries)))
            for _, frame in since.entries:
                connection.push(frame)
        # Live events that arrived meanwhile: only those after what was just sent.
        current_epoch = position.epoch
        for event_epoch, seq, frame in buffer:
            if event_epoch != current_epoch:
                if current_epoch is not None:
                    connection.send(Resync(topic=topic, epoch=event_epoch, seq=seq - 1, reason="epoch_changed"))
                current_epoch, delivered = event_epoch, seq - 1
            if seq > delivered:
                connection.push(frame)
                delivered = seq
        if connection.positions.get(topic) is buffer:
            connection.positions[topic] = delivered
        return True

    # ------------------------------------------------------------------ Redis pub/sub

    def _command(self, command: str, channel: bytes) -> None:
        self._commands.append((command, channel))
        self._wake_commands()

    def _wake_commands(self) -> None:
        wakeup = self._command_wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    async def _send_commands(self) -> None:
        """The only sender of SUBSCRIBE/UNSUBSCRIBE, so they reach Redis in the order they were decided."""
        loop = asyncio.get_running_loop()
        while True:
            for topic in list(self._idle):
                state = self.topics.get(topic)
                if state is not None and not state.subscribers:
                    del self.topics[topic]
                    self._by_channel.pop(state.channel, None)
                    self._command("UNSUBSCRIBE", state.channel)
            self._idle.clear()
            if not self._commands or self._pubsub is None:
                self._command_wakeup = loop.create_future()
                await self._command_wakeup
                self._command_wakeup = None
                continue
            # Consecutive commands of one kind go out as one (SUBSCRIBE a b c).
            command, channel = self._commands.popleft()
            channels = [channel]
            while self._commands and self._commands[0][0] == command and len(channels) < 500:
                channels.append(self._commands.popleft()[1])
            pubsub = self._pubsub
            try:
                if command == "SUBSCRIBE":
                    await pubsub.subscribe(*channels)
                else:
                    await pubsub.unsubscribe(*channels)
            except Exception:
                # The listener notices the broken connection and resets everything.
                logger.warning("pub/sub %s failed", command, exc_info=True)

    async def _open_pubsub(self) -> PubSub:
        pubsub = self.redis.pubsub()
        try:
            await pubsub.subscribe(self._control)
        except BaseException:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            raise
        self._last_control = time.monotonic()
        self._pubsub = pubsub
        self.available = True
        self._opened.set()
        self._wake_commands()
        return pubsub

    async def _close_pubsub(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    async def _listen_forever(self) -> None:
        backoff = 0.1
        while True:
            try:
                pubsub = await self._open_pubsub()
                backoff = 0.1
                await self._listen(pubsub)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if backoff == 0.1:  # once per outage, not once per retry
                    logger.warning("realtime lost its Redis pub/sub connection (%s); clients will resume", exc)
            self._reset()
            await self._close_pubsub()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    async def _listen(self, pubsub: PubSub) -> None:
        on_message = self._on_message
        confirmations = self._confirmations
        flushes = flush_queue_for(asyncio.get_running_loop(), self.realtime.flush_window_seconds)
        round_seen, read_in_round = flushes.rounds_done, 0
        while True:
            if flushes.rounds_done != round_seen:
                round_seen, read_in_round = flushes.rounds_done, 0
            elif read_in_round >= MAX_READS_PER_FLUSH_ROUND:
                # Writing to clients is the bottleneck: leave the backlog in Redis for now.
                await flushes.round_done()
                round_seen, read_in_round = flushes.rounds_done, 0
            response = await pubsub.parse_response(block=True)
            read_in_round += 1
            if response is None:
                continue
            kind = response[0]
            if kind == b"message":
                on_message(response[1], response[2])
            elif kind == b"subscribe":
                waiting = confirmations.get(response[1])
                if waiting:
                    future = waiting.popleft()
                    if not waiting:
                        del confirmations[response[1]]
                    if not future.done():
                        future.set_result(None)
            elif kind == b"unsubscribe":
                await pubsub.handle_message(response)  # keeps redis-py's channel bookkeeping right

    def _on_message(self, channel: bytes, data: bytes) -> None:
        state = self._by_channel.get(channel)
        if state is None:
            if channel == self._control:
                self._last_control = time.monotonic()
            return
        raw_seq, raw_epoch, raw_frame = data.split(b" ", 2)
        seq, epoch, frame = int(raw_seq), raw_epoch.decode(), raw_frame.decode()
        topic = state.topic
        if epoch != state.epoch:
            if state.epoch is not None:
                # The topic's history was lost and numbering restarted: clients must refetch.
                resync = _encoder.encode(Resync(topic=topic, epoch=epoch, seq=seq - 1, reason="epoch_changed"))
                for connection in state.subscribers:
                    if connection.positions.get(topic).__class__ is int:
                        connection.positions[topic] = seq - 1
                        connection.push(resync.decode())
            state.epoch = epoch
        for connection in tuple(state.subscribers):
            connection.offer(topic, epoch, seq, frame)

    def _reset(self) -> None:
        """Redis is gone: close every client (they resume elsewhere or later) and forget all topics."""
        self.available = False
        for connection in list(self.connections):
            connection.close(CloseCode.TRY_AGAIN_LATER, "realtime backend unavailable")
        for waiting in self._confirmations.values():
            for future in waiting:
                if not future.done():
                    future.set_exception(ConnectionError("Redis pub/sub connection lost"))
        self._confirmations.clear()
        self._commands.clear()
        self._idle.clear()
        self.topics.clear()
        self._by_channel.clear()

    # ------------------------------------------------------------------ heartbeat

    async def _heartbeat(self) -> None:
        interval = self.realtime.heartbeat_seconds
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            idle_limit = now - self.realtime.idle_timeout_seconds
            for connection in tuple(self.connections):
                if connection.last_seen < idle_limit:
                    connection.close(CloseCode.HEARTBEAT_TIMEOUT, "heartbeat timeout")
                else:
                    connection.push(PING_FRAME)
            try:
                await self._check_pubsub(now, interval)
                await self.presence.refresh(
                    [(c.principal.site_id, c.console) for c in self.consoles if c.console is not None]
                )
                await self.presence.sweep()
            except Exception:
                logger.warning("realtime heartbeat could not reach Redis", exc_info=True)

    async def _check_pubsub(self, now: float, interval: float) -> None:
        pubsub = self._pubsub
        if pubsub is None:
            return
        if now - self._last_control > 3 * interval + 5 and pubsub.connection is not None:
            # Our own heartbeats stopped arriving: the connection is dead without having said so.
            logger.warning("realtime pub/sub connection is silent; reconnecting")
            await pubsub.connection.disconnect()
            return
        await self.redis.publish(self._control, b"hb")


def _same_epoch(client_epoch: str | None, server_epoch: str | None, last_seq: int) -> bool:
    # A client that saw nothing yet (last_seq 0) can be replayed any epoch from its start.
    return client_epoch == server_epoch or (last_seq == 0 and client_epoch is None)
