"""The per-process fan-out: one Redis pub/sub connection per realtime shard, serving every websocket of
this web process (a process subscribes per shard, not per topic, so a connection costs the same
however many shards there are; see ``realtime.shards`` for which topic lives where).

- Topics are reference-counted: the first local subscriber SUBSCRIBEs the topic's channel,
  the last one leaving UNSUBSCRIBEs it. Commands go out from one task, in order, and each
  SUBSCRIBE's confirmation resolves a future, so a subscriber knows when live events flow.
- Resume: subscribe locally first (live events are buffered), wait for the Redis
  subscription, read the history after the client's last sequence, send it, then drain the
  buffer dropping what was already sent: no gap and no duplicate.
- Heartbeat: one task pings every client, reaps the silent ones, refreshes gate presence,
  and checks that the pub/sub connection itself is alive (it publishes to its own channel).
- If one shard is lost while others answer, clients stay connected: the lost shard's topics are
  subscribed again when it is back, and each of their subscribers is replayed what it missed from
  the shard's history, or told ``resync`` if the shard lost it (a new epoch). Other topics flow on.
- If every shard is lost (with one Redis, the default: Redis is lost), every client is closed
  with 1013 (they reconnect and resume from history) and the hub reconnects with backoff.
"""

from __future__ import annotations

import asyncio
import bisect
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
from realtime.shards import Shard, ShardSet
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

    __slots__ = ("channel", "epoch", "link", "ready", "subscribers", "topic")

    def __init__(self, topic: str, channel: bytes, link: ShardLink, ready: asyncio.Future[None]) -> None:
        self.topic = topic
        self.channel = channel
        self.link = link  # the shard the topic lives on
        self.ready = ready  # resolved when Redis confirmed the SUBSCRIBE
        self.subscribers: set[Connection] = set()
        self.epoch: str | None = None


class ShardLink:
    """This process's pub/sub connection to one shard: its channels, and the commands waiting to go out."""

    def __init__(self, shard: Shard, control: bytes) -> None:
        self.shard = shard
        self.control = control  # this hub's own channel on the shard, for the liveness check
        self.pubsub: PubSub | None = None
        self.available = False
        self.by_channel: dict[bytes, TopicState] = {}
        self.idle: set[str] = set()
        self.commands: deque[tuple[str, bytes]] = deque()
        self.confirmations: dict[bytes, deque[asyncio.Future[None]]] = {}
        self.command_wakeup: asyncio.Future[None] | None = None
        self.last_control = 0.0
        self.opened = asyncio.Event()
        self.outages = 0  # times this link was lost since start
        self.check: asyncio.Task[None] | None = None  # the liveness check in progress

    def wake(self) -> None:
        wakeup = self.command_wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    def command(self, command: str, channel: bytes) -> None:
        self.commands.append((command, channel))
        self.wake()


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
        self.shards = ShardSet.from_settings(settings, redis)
        control = f"{settings.redis_prefix}rt:hub:{self.id}".encode()
        self.links = [ShardLink(shard, control) for shard in self.shards.shards]
        self._channel_prefix = history.channel_prefix(settings)
        self._tasks: list[asyncio.Task[None]] = []
        self._recoveries: set[asyncio.Task[None]] = set()

    @property
    def available(self) -> bool:
        """Whether any shard answers: a client may connect (topics on a lost shard wait for it)."""
        return any(link.available for link in self.links)

    def shard_health(self) -> list[tuple[int, str, bool, int]]:
        """(index, name, up, topics subscribed here) per shard, for /ready and the metrics."""
        return [(link.shard.index, link.shard.name, link.available, len(link.by_channel)) for link in self.links]

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        for link in self.links:
            self._tasks += [
                asyncio.create_task(self._listen_forever(link), name=f"rt-hub-listener-{link.shard.index}"),
                asyncio.create_task(self._send_commands(link), name=f"rt-hub-commands-{link.shard.index}"),
            ]
        self._tasks.append(asyncio.create_task(self._heartbeat(), name="rt-hub-heartbeat"))
        # Start-up waits for the shards briefly; one that is down is retried in the background.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await asyncio.gather(*(link.opened.wait() for link in self.links))

    async def stop(self) -> None:
        """Graceful shutdown: every client still connected is closed with 1012 (reconnect elsewhere)."""
        connections = list(self.connections)
        for connection in connections:
            connection.close(CloseCode.SERVICE_RESTART, "server restart")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.realtime.close_timeout_seconds):
                await asyncio.gather(*(c.wait_closed() for c in connections))
        tasks = self._tasks + list(self._recoveries) + [link.check for link in self.links if link.check is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for connection in connections:
            if connection.console is not None:
                with contextlib.suppress(Exception):
                    await self.presence.leave(connection.principal.site_id, connection.console)
        for link in self.links:
            await self._close_pubsub(link)
        await self.shards.aclose()

    def stats(self) -> dict[str, int]:
        """Counts for tests and operators: nothing here may grow without clients."""
        return {
            "connections": len(self.connections),
            "consoles": len(self.consoles),
            "topics": len(self.topics),
            "channels": sum(len(link.by_channel) for link in self.links),
            "idle_topics": sum(len(link.idle) for link in self.links),
            "pending_commands": sum(len(link.commands) for link in self.links),
            "pending_confirmations": sum(len(q) for link in self.links for q in link.confirmations.values()),
            "expiry_timers": len(expiry_clock_for(asyncio.get_running_loop())),
            "recoveries": len(self._recoveries),
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
            link = self.links[self.shards.ring.node_for(topic)]
            channel = (self._channel_prefix + topic).encode()
            state = TopicState(topic, channel, link, asyncio.get_running_loop().create_future())
            self.topics[topic] = state
            link.by_channel[channel] = state
            link.confirmations.setdefault(channel, deque()).append(state.ready)
            link.command("SUBSCRIBE", channel)
        else:
            state.link.idle.discard(topic)
        return state

    def _release(self, connection: Connection, topic: str) -> None:
        state = self.topics.get(topic)
        if state is None:
            return
        state.subscribers.discard(connection)
        if not state.subscribers:
            # Unsubscribed in Redis by the command task, unless someone subscribes again first.
            state.link.idle.add(topic)
            state.link.wake()

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
                since = await history.read_since(state.link.shard.redis, self.settings, topic, last_seq)
        except Exception:
            logger.warning("subscribe to %s failed", topic, exc_info=True)
            if connection.positions.get(topic) is buffer:
                self.unsubscribe(connection, topic)
            connection.send(ErrorReply(code="unavailable", message="could not subscribe; try again", topic=topic))
            return False
        if connection.positions.get(topic) is not buffer:
            return False  # unsubscribed or closed while waiting
        if state.epoch is None:
            state.epoch = since.position.epoch
        self._deliver(connection, topic, buffer, last_seq, epoch, since, announce=True)
        return True

    @staticmethod
    def _deliver(
        connection: Connection,
        topic: str,
        buffer: list[tuple[str, int, str]],
        last_seq: int | None,
        epoch: str | None,
        since: history.Since,
        *,
        announce: bool,
    ) -> None:
        """Bring a connection from ``(epoch, last_seq)`` to live: the missed events or a resync, then
        the live events buffered meanwhile that come after them. ``announce``: answer ``subscribed``
        (a client's subscribe) rather than only replaying (a shard that came back)."""
        position = since.position
        delivered = position.seq
        if last_seq is None:
            connection.send(Subscribed(topic=topic, epoch=position.epoch, seq=position.seq))
        elif not _same_epoch(epoch, position.epoch, last_seq) or last_seq > position.seq:
            connection.send(Resync(topic=topic, epoch=position.epoch, seq=position.seq, reason="epoch_changed"))
        else:
            # ``since`` may start before this connection's position (a shard's topic read once for all).
            missed = since.entries[bisect.bisect_right(since.entries, last_seq, key=lambda e: e[0]) :]
            if position.seq > last_seq and (not missed or missed[0][0] != last_seq + 1):
                connection.send(Resync(topic=topic, epoch=position.epoch, seq=position.seq, reason="history_gone"))
            else:
                if announce:
                    connection.send(Subscribed(topic=topic, epoch=position.epoch, seq=position.seq, missed=len(missed)))
                for _, frame in missed:
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

    # ------------------------------------------------------------------ Redis pub/sub

    async def _send_commands(self, link: ShardLink) -> None:
        """The only sender of a shard's SUBSCRIBE/UNSUBSCRIBE, so they reach it in the order they were decided."""
        loop = asyncio.get_running_loop()
        while True:
            for topic in list(link.idle):
                state = self.topics.get(topic)
                if state is not None and not state.subscribers:
                    del self.topics[topic]
                    link.by_channel.pop(state.channel, None)
                    link.command("UNSUBSCRIBE", state.channel)
            link.idle.clear()
            if not link.commands or link.pubsub is None:
                link.command_wakeup = loop.create_future()
                await link.command_wakeup
                link.command_wakeup = None
                continue
            # Consecutive commands of one kind go out as one (SUBSCRIBE a b c).
            command, channel = link.commands.popleft()
            channels = [channel]
            while link.commands and link.commands[0][0] == command and len(channels) < 500:
                channels.append(link.commands.popleft()[1])
            pubsub = link.pubsub
            try:
                if command == "SUBSCRIBE":
                    await pubsub.subscribe(*channels)
                else:
                    await pubsub.unsubscribe(*channels)
            except Exception:
                # The listener notices the broken connection and resets everything.
                logger.warning("pub/sub %s failed", command, exc_info=True)

    async def _open_pubsub(self, link: ShardLink) -> PubSub:
        pubsub = link.shard.redis.pubsub()
        try:
            await pubsub.subscribe(link.control)
        except BaseException:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            raise
        link.last_control = time.monotonic()
        # Topics kept through an outage of this shard (their subscribers stayed connected) are
        # subscribed again, and their subscribers caught up once Redis confirmed it.
        link.commands.clear()
        link.confirmations.clear()
        recovering: list[tuple[TopicState, str | None, dict[Connection, tuple[int, list[tuple[str, int, str]]]]]] = []
        for channel, state in list(link.by_channel.items()):
            if not state.subscribers:
                del link.by_channel[channel]
                self.topics.pop(state.topic, None)
                continue
            if state.ready.done():
                state.ready = asyncio.get_running_loop().create_future()
            link.confirmations.setdefault(channel, deque()).append(state.ready)
            link.commands.append(("SUBSCRIBE", channel))
            waiting: dict[Connection, tuple[int, list[tuple[str, int, str]]]] = {}
            for connection in state.subscribers:
                position = connection.positions.get(state.topic)
                if position.__class__ is int:
                    buffer: list[tuple[str, int, str]] = []
                    connection.positions[state.topic] = buffer
                    waiting[connection] = (position, buffer)
            if waiting:
                recovering.append((state, state.epoch, waiting))
            state.epoch = None  # the shard's epoch now, whatever it is, is what live events compare with
        link.idle.clear()
        link.pubsub = pubsub
        link.available = True
        link.opened.set()
        link.wake()
        for state, epoch, waiting in recovering:
            task = asyncio.create_task(self._recover(state, epoch, waiting), name=f"rt-recover-{state.topic}")
            self._recoveries.add(task)
            task.add_done_callback(self._recoveries.discard)
        return pubsub

    async def _recover(
        self,
        state: TopicState,
        epoch: str | None,
        waiting: dict[Connection, tuple[int, list[tuple[str, int, str]]]],
    ) -> None:
        """Catch up the subscribers a lost shard's topic had: what they missed, or ``resync``."""
        topic = state.topic
        try:
            async with asyncio.timeout(SUBSCRIBE_TIMEOUT_SECONDS):
                await asyncio.shield(state.ready)
                after = min(last for last, _ in waiting.values())
                since = await history.read_since(state.link.shard.redis, self.settings, topic, after)
        except Exception:
            # Lost again: the subscribers keep their positions (and epoch) for the next attempt.
            if state.epoch is None:
                state.epoch = epoch
            for connection, (last, buffer) in waiting.items():
                if connection.positions.get(topic) is buffer:
                    connection.positions[topic] = last
            return
        if state.epoch is None:
            state.epoch = since.position.epoch
        for connection, (last, buffer) in waiting.items():
            if connection.positions.get(topic) is buffer:
                self._deliver(connection, topic, buffer, last, epoch, since, announce=False)

    async def _close_pubsub(self, link: ShardLink) -> None:
        pubsub, link.pubsub = link.pubsub, None
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    async def _listen_forever(self, link: ShardLink) -> None:
        backoff = 0.1
        while True:
            try:
                pubsub = await self._open_pubsub(link)
                backoff = 0.1
                await self._listen(link, pubsub)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if backoff == 0.1:  # once per outage, not once per retry
                    logger.warning(
                        "realtime lost its pub/sub connection to shard %s (%s); its topics will resume",
                        link.shard.name,
                        exc,
                    )
            self._reset(link)
            await self._close_pubsub(link)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    async def _listen(self, link: ShardLink, pubsub: PubSub) -> None:
        on_message = self._on_message
        confirmations = link.confirmations
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
                on_message(link, response[1], response[2])
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

    def _on_message(self, link: ShardLink, channel: bytes, data: bytes) -> None:
        state = link.by_channel.get(channel)
        if state is None:
            if channel == link.control:
                link.last_control = time.monotonic()
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

    def _reset(self, link: ShardLink) -> None:
        """A shard is gone. While others answer, its topics wait for it with their subscribers (caught up
        when it is back); when none does, every client is closed (they resume elsewhere or later)."""
        if link.available:
            link.outages += 1
        link.available = False
        for waiting in link.confirmations.values():
            for future in waiting:
                if not future.done():
                    future.set_exception(ConnectionError(f"realtime shard {link.shard.name} lost"))
        link.confirmations.clear()
        link.commands.clear()
        link.idle.clear()
        if not self.available:
            for connection in list(self.connections):
                connection.close(CloseCode.TRY_AGAIN_LATER, "realtime backend unavailable")
            for other in self.links:
                for state in other.by_channel.values():
                    self.topics.pop(state.topic, None)
                other.by_channel.clear()
                other.idle.clear()
            self.topics.clear()
            return
        for channel, state in list(link.by_channel.items()):
            if not state.subscribers:
                del link.by_channel[channel]
                self.topics.pop(state.topic, None)
            elif state.ready.done():
                # New subscribers wait on this until the shard is back (or their subscribe times out).
                state.ready = asyncio.get_running_loop().create_future()

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
            # Each shard is checked in a task of its own: one that does not answer must delay neither
            # the others nor the next round of pings to the clients.
            for link in self.links:
                if link.check is None or link.check.done():
                    link.check = asyncio.create_task(self._check_pubsub(link, now, interval))
            try:
                await self.presence.refresh(
                    [(c.principal.site_id, c.console) for c in self.consoles if c.console is not None]
                )
                await self.presence.sweep()
            except Exception:
                logger.warning("realtime heartbeat could not reach Redis", exc_info=True)

    async def _check_pubsub(self, link: ShardLink, now: float, interval: float) -> None:
        pubsub = link.pubsub
        if pubsub is None:
            return
        silent = now - link.last_control > 3 * interval + 5
        if not silent:
            try:
                # A partitioned shard answers nothing and resets nothing: a heartbeat that cannot be
                # published within this long is taken as the link being lost, like silence is.
                async with asyncio.timeout(max(5.0, 2 * interval)):
                    await link.shard.redis.publish(link.control, b"hb")
                return
            except Exception:
                logger.warning("realtime heartbeat could not reach shard %s; reconnecting", link.shard.name)
        else:
            # Our own heartbeats stopped arriving: the connection is dead without having said so.
            logger.warning("realtime pub/sub connection to shard %s is silent; reconnecting", link.shard.name)
        if pubsub.connection is not None:
            with contextlib.suppress(Exception):
                await pubsub.connection.disconnect(nowait=True)


def _same_epoch(client_epoch: str | None, server_epoch: str | None, last_seq: int) -> bool:
    # A client that saw nothing yet (last_seq 0) can be replayed any epoch from its start.
    return client_epoch == server_epoch or (last_seq == 0 and client_epoch is None)
