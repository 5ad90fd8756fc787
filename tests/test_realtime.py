"""The websocket gateway end to end, on real Redis, with real uvicorn servers and the realtime client.

One web process runs inside the test process (so the tests can count its tasks and topics),
others run as uvicorn subprocesses on the same Redis and database (cross-process delivery,
restarts). Timings are shortened through RealtimeSettings / OPSHUB_RT_* variables.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

import msgspec
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from app.auth.roles import Role
from app.auth.tokens import issue_access_token, revoke_access_token
from realtime import history
from realtime.client import ClientClosed, RealtimeClient, RequestFailed
from realtime.config import RealtimeSettings
from realtime.publish import Publisher, publish
from realtime.topics import site_topic, unit_topic, user_topic
from schema.events import (
    CloseCode,
    Event,
    PresenceSnapshot,
    Resync,
    Subscribed,
    Welcome,
    decode_server_frame,
)
from tests.support.servers import FAST, InProcessServer, SubprocessServer


@pytest.fixture(scope="module")
async def gateway(settings) -> AsyncIterator[InProcessServer]:  # type: ignore[no-untyped-def]
    server = InProcessServer(settings, FAST)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="module")
async def process_b() -> AsyncIterator[SubprocessServer]:
    server = SubprocessServer()
    await server.start()
    yield server
    await server.stop()


# ---------------------------------------------------------------------------- helpers


async def collect(client: RealtimeClient, count: int, within: float = 10.0) -> list[Any]:
    messages = []
    async with asyncio.timeout(within):
        while len(messages) < count:
            messages.append(await client.recv())
    return messages


async def events_on(client: RealtimeClient, topic: str, count: int, within: float = 10.0) -> list[Event]:
    events: list[Event] = []
    async with asyncio.timeout(within):
        while len(events) < count:
            message = await client.recv()
            if isinstance(message, Event) and message.topic == topic:
                events.append(message)
    return events


async def no_more_events(client: RealtimeClient, wait: float = 0.3) -> list[Any]:
    extra = []
    try:
        async with asyncio.timeout(wait):
            while True:
                extra.append(await client.recv())
    except TimeoutError:
        pass
    return [m for m in extra if isinstance(m, Event)]


async def raw_close(url: str, **kwargs: Any) -> tuple[int | None, list[str]]:
    """Connect without the client library; the close code and any frames received before it."""
    frames = []
    async with websockets.connect(url, compression=None, **kwargs) as ws:
        try:
            async with asyncio.timeout(5):
                while True:
                    frames.append(await ws.recv())
        except websockets.ConnectionClosed:
            pass
    return ws.close_code, frames


def short_token(world: Any, name: str, seconds: float) -> str:
    """A real token for `name` that expires in `seconds`."""
    ttl = world.settings.access_token_ttl_seconds
    token, _ = issue_access_token(
        world.settings,
        person_id=world.people[name],
        site_id=world.site_id,
        roles=world.roles[name],
        now=time.time() - ttl + seconds,
    )
    return token


# ---------------------------------------------------------------------------- wire format and publish


async def test_publish_numbers_events_and_frames_match_the_schema(redis, settings, world, gateway) -> None:  # type: ignore[no-untyped-def]
    topic = site_topic(world.site_id, "slots")
    async with RealtimeClient(gateway.url, world.token("occupant")) as client:
        subscribed = await client.subscribe(topic)
        assert isinstance(subscribed, Subscribed) and subscribed.seq == 0 and subscribed.epoch is None
        before = time.time()
        seqs = [await publish(redis, settings, topic, "slot.availability_changed", {"slot": n}) for n in range(3)]
        assert seqs == [1, 2, 3]
        events = await events_on(client, topic, 3)
    assert [e.seq for e in events] == [1, 2, 3]
    assert [e.data for e in events] == [{"slot": 0}, {"slot": 1}, {"slot": 2}]
    assert len({e.epoch for e in events}) == 1
    assert all(e.type == "slot.availability_changed" and before - 1 < e.ts < time.time() + 1 for e in events)
    # The history holds the same frames, and they decode as schema Events.
    since = await history.read_since(redis, settings, topic, 0)
    assert [seq for seq, _ in since.entries] == [1, 2, 3]
    assert msgspec.json.decode(since.entries[0][1], type=Event) == events[0]
    with pytest.raises(ValueError):
        await publish(redis, settings, "unit:not-a-uuid", "a.b", {})
    with pytest.raises(ValueError):
        await publish(redis, settings, topic, "NotDotted", {})


async def next_op(ws: ClientConnection, op: str, within: float = 5.0) -> Any:
    """The next server message with this op on a raw connection (frames may be batches)."""
    async with asyncio.timeout(within):
        while True:
            for message in decode_server_frame(await ws.recv()):
                if msgspec.inspect.type_info(type(message)).tag == op:  # type: ignore[attr-defined]
                    return message


async def open_subscribed_guards(url: str, world: Any, topic: str, count: int, *, into: list[ClientConnection]) -> None:
    """Open ``count`` raw guard connections subscribed to ``topic``, each added to ``into`` as it
    opens (so the caller closes them all, even if one fails)."""
    for _ in range(count):
        ws = await websockets.connect(f"{url}?token={world.token('guard')}", compression=None)
        into.append(ws)
        await ws.send(msgspec.json.encode({"op": "subscribe", "topic": topic}).decode())
        await next_op(ws, "subscribed")


# ---------------------------------------------------------------------------- authentication


async def test_refused_tokens_close_with_documented_codes_before_any_data(gateway, world, redis, settings) -> None:  # type: ignore[no-untyped-def]
    expired = short_token(world, "guard", -5)
    revoked, principal = issue_access_token(
        settings, person_id=world.people["guard"], site_id=world.site_id, roles=world.roles["guard"]
    )
    await revoke_access_token(settings, redis, principal)
    url = gateway.url
    cases: list[tuple[str, dict[str, Any], int]] = [
        (url, {}, CloseCode.UNAUTHORIZED),
        (f"{url}?token=not-a-jwt", {}, CloseCode.UNAUTHORIZED),
        (f"{url}?token={expired}", {}, CloseCode.TOKEN_EXPIRED),
        (f"{url}?token={revoked}", {}, CloseCode.TOKEN_REVOKED),
        (url, {"subprotocols": ["bearer", "not-a-jwt"]}, CloseCode.UNAUTHORIZED),
        (url, {"subprotocols": ["bearer", expired]}, CloseCode.TOKEN_EXPIRED),
        (url, {"subprotocols": ["bearer", revoked]}, CloseCode.TOKEN_REVOKED),
        (f"{url}?token={world.token('occupant')}&gate=main", {}, CloseCode.FORBIDDEN),
        (f"{url}?token={world.token('guard')}&gate=Main%20Gate%21", {}, CloseCode.BAD_REQUEST),
    ]
    for case_url, options, expected in cases:
        code, frames = await raw_close(case_url, **options)
        assert (code, frames) == (expected, []), case_url
    # Both ways of passing a good token work; the subprotocol is answered with "bearer".
    async with websockets.connect(url, subprotocols=["bearer", world.token("guard")], compression=None) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "bearer"
        assert isinstance(await next_op(ws, "welcome"), Welcome)
    async with websockets.connect(f"{url}?token={world.token('guard')}", compression=None) as ws:
        assert ws.subprotocol is None
        assert isinstance(await next_op(ws, "welcome"), Welcome)


async def test_the_welcome_comes_first_even_when_a_heartbeat_is_due(world, settings) -> None:  # type: ignore[no-untyped-def]
    """A heartbeat ping queued before the welcome made the realtime client give up (seen on CI)."""
    eager = InProcessServer(settings, msgspec.structs.replace(FAST, heartbeat_seconds=0.001))
    await eager.start()
    try:

        async def first_message(n: int) -> Any:
            # An occupant's personal topics need a database query: the window a ping could slip into.
            async with websockets.connect(f"{eager.url}?token={world.token('occupant')}", compression=None) as ws:
                return decode_server_frame(await asyncio.wait_for(ws.recv(), 5))[0]

        # The race is narrow (a ping must fall into one query's wait), so give it many chances.
        for _ in range(5):
            firsts = await asyncio.gather(*(first_message(n) for n in range(100)))
            assert all(isinstance(message, Welcome) for message in firsts), [type(m).__name__ for m in firsts]
    finally:
        await eager.stop()


async def test_a_client_fails_instead_of_waiting_when_the_server_breaks_the_protocol(world) -> None:  # type: ignore[no-untyped-def]
    async def not_a_gateway(connection: websockets.asyncio.server.ServerConnection) -> None:
        await connection.send('{"op":"ping"}')  # a valid server message, but not the welcome
        await connection.wait_closed()

    async with websockets.serve(not_a_gateway, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        client = RealtimeClient(f"ws://127.0.0.1:{port}/ws", world.token("guard"))
        with pytest.raises(ClientClosed) as failed:
            async with asyncio.timeout(5):
                await client.connect()
        assert "expected a welcome" in failed.value.reason
        await client.close()


async def test_token_refresh_keeps_the_connection_and_expiry_closes_it(gateway, world, redis, settings) -> None:  # type: ignore[no-untyped-def]
    async with (
        RealtimeClient(gateway.url, short_token(world, "guard", 1.5), reconnect=False) as refreshed,
        RealtimeClient(gateway.url, short_token(world, "guard", 1.5), reconnect=False) as expiring,
    ):
        assert await refreshed.refresh(world.token("guard")) > time.time() + 60
        # Another person's token is refused and changes nothing.
        with pytest.raises(RequestFailed) as refused:
            await refreshed.refresh(world.token("fm_admin"))
        assert refused.value.reply.code == "refresh_failed"
        with pytest.raises(ClientClosed) as closed:
            async with asyncio.timeout(5):
                while True:
                    await expiring.recv()
        assert closed.value.code == CloseCode.TOKEN_EXPIRED
        assert await refreshed.ping() < 1.0  # well past the first token's expiry
        # A refresh with a revoked token ends the connection: the person was logged out.
        revoked, principal = issue_access_token(
            settings, person_id=world.people["guard"], site_id=world.site_id, roles=world.roles["guard"]
        )
        await revoke_access_token(settings, redis, principal)
        with pytest.raises(ClientClosed):
            await refreshed.refresh(revoked)
        assert refreshed.close_codes[-1] == CloseCode.TOKEN_REVOKED


async def test_ping_and_malformed_messages(gateway, world) -> None:  # type: ignore[no-untyped-def]
    async with websockets.connect(f"{gateway.url}?token={world.token('guard')}", compression=None) as ws:
        await next_op(ws, "welcome")
        await ws.send('{"op":"ping","id":"7"}')
        assert (await next_op(ws, "pong")).id == "7"
        await ws.send("not json")
        assert (await next_op(ws, "error")).code == "bad_request"
        await ws.send('{"op":"subscribe","topic":"unit:123"}')
        assert (await next_op(ws, "error")).code == "unknown_topic"
        await ws.send('{"op":"pong"}')  # answering a ping needs no reply
        await ws.send('{"op":"ping"}')
        assert isinstance(await next_op(ws, "pong"), object)


# ---------------------------------------------------------------------------- topics


async def test_personal_topics_are_subscribed_on_connect(gateway, world, redis, settings) -> None:  # type: ignore[no-untyped-def]
    people = world.people
    expected = {
        "occupant": [user_topic(people["occupant"]), unit_topic(world.unit_ids[0])],
        "guard": [user_topic(people["guard"]), site_topic(world.site_id, "gate")],
        "technician": [user_topic(people["technician"])],
        "fm_admin": [
            user_topic(people["fm_admin"]),
            site_topic(world.site_id, "gate"),
            site_topic(world.site_id, "control"),
        ],
    }
    for name, topics in expected.items():
        async with RealtimeClient(gateway.url, world.token(name)) as client:
            assert client.welcome is not None and client.welcome.personal_topics == topics
            for topic in topics:
                await publish(redis, settings, topic, "test.hello", {"to": name})
            received = []
            async with asyncio.timeout(5):
                while len(received) < len(topics):
                    message = await client.recv()
                    if isinstance(message, Event):
                        received.append(message.topic)
            assert sorted(received) == sorted(topics)


async def test_occupant_never_receives_another_units_events(gateway, world, other_world, redis, settings) -> None:  # type: ignore[no-untyped-def]
    own, neighbours = unit_topic(world.unit_ids[0]), unit_topic(world.unit_ids[1])
    async with (
        RealtimeClient(gateway.url, world.token("occupant")) as occupant,
        RealtimeClient(gateway.url, other_world.token("guard")) as foreign_guard,
    ):
        for client, topic in [
            (occupant, neighbours),
            (occupant, site_topic(world.site_id, "gate")),
            (foreign_guard, own),
            (foreign_guard, site_topic(world.site_id, "gate")),
            (foreign_guard, site_topic(world.site_id, "slots")),
        ]:
            with pytest.raises(RequestFailed) as refused:
                await client.subscribe(topic)
            assert refused.value.reply.code == "forbidden"
        await publish(redis, settings, neighbours, "visitor.arrived", {"n": 1})
        await publish(redis, settings, site_topic(world.site_id, "gate"), "visitor.arrived", {"n": 2})
        await publish(redis, settings, own, "visitor.arrived", {"n": 3})
        (event,) = await events_on(occupant, own, 1)
        assert event.data == {"n": 3}
        assert await no_more_events(occupant) == []
        assert await no_more_events(foreign_guard) == []


# ---------------------------------------------------------------------------- delivery and recovery


async def test_event_published_through_process_a_reaches_a_client_of_process_b(gateway, process_b, world) -> None:  # type: ignore[no-untyped-def]
    topic = site_topic(world.site_id, "slots")
    async with (
        RealtimeClient(process_b.url, world.token("guard")) as on_b,
        RealtimeClient(gateway.url, world.token("fm_admin")) as on_a,
    ):
        await on_b.subscribe(topic)
        await on_a.subscribe(topic)
        # Web process A (the one in this test process) publishes with its own Redis client.
        state = gateway.app.state
        seq = await publish(state.redis, state.settings, topic, "slot.availability_changed", {"free": 3})
        (on_b_event,) = await events_on(on_b, topic, 1)
        (on_a_event,) = await events_on(on_a, topic, 1)
    assert on_b_event == on_a_event
    assert (on_b_event.seq, on_b_event.data) == (seq, {"free": 3})


async def test_resume_after_dropped_connections_delivers_exactly_the_missed_events(
    gateway, world, redis, settings
) -> None:  # type: ignore[no-untyped-def]
    topic = site_topic(world.site_id, "slots")
    publisher = Publisher(redis, settings)
    total = 300

    async def publish_steadily() -> None:
        for n in range(total):
            await publisher.publish(topic, "slot.availability_changed", {"n": n})
            await asyncio.sleep(0.002)

    async with RealtimeClient(gateway.url, world.token("guard"), min_backoff=0.02, max_backoff=0.1) as client:
        await client.subscribe(topic)
        publishing = asyncio.create_task(publish_steadily())
        for _ in range(4):  # drop the network under the client while events keep coming
            await asyncio.sleep(0.12)
            await client.drop_connection()
        await publishing
        events = await events_on(client, topic, total, within=15)
        assert await no_more_events(client) == []
        assert client.connects >= 5
    assert [e.seq for e in events] == list(range(1, total + 1))
    assert [e.data["n"] for e in events] == list(range(total))


async def test_resume_across_a_web_process_restart(world, redis, settings) -> None:  # type: ignore[no-untyped-def]
    topic = site_topic(world.site_id, "slots")
    server = SubprocessServer()
    await server.start()
    try:
        async with RealtimeClient(server.url, world.token("guard"), min_backoff=0.1, max_backoff=0.3) as client:
            await client.subscribe(topic)
            for n in range(5):
                await publish(redis, settings, topic, "slot.availability_changed", {"n": n})
            before = await events_on(client, topic, 5)
            await server.stop()  # SIGTERM: the client is closed with 1012
            for n in range(5, 12):  # committed while no web process runs
                await publish(redis, settings, topic, "slot.availability_changed", {"n": n})
            await server.start()  # same port
            after = await events_on(client, topic, 7, within=20)
            assert await no_more_events(client) == []
            assert CloseCode.SERVICE_RESTART in client.close_codes
    finally:
        await server.stop()
    assert [e.seq for e in before + after] == list(range(1, 13))


async def test_resync_when_the_history_no_longer_reaches_back(gateway, world, redis, settings) -> None:  # type: ignore[no-untyped-def]
    topic = site_topic(world.site_id, "slots")
    short = Publisher(redis, settings, RealtimeSettings(history_max_len=5))
    for n in range(3):
        await short.publish(topic, "slot.availability_changed", {"n": n})
    epoch = (await history.read_since(redis, settings, topic, None)).position.epoch
    async with RealtimeClient(gateway.url, world.token("guard")) as client:
        client.positions[topic] = (epoch, 1)  # as if it had seen seq 1 before dropping
        reply = await client.subscribe(topic)
        assert isinstance(reply, Subscribed) and (reply.seq, reply.missed) == (3, 2)
        assert [e.seq for e in await events_on(client, topic, 2)] == [2, 3]
        await client.unsubscribe(topic)
        for n in range(3, 13):  # the history now holds only 9..13
            await short.publish(topic, "slot.availability_changed", {"n": n})
        client.positions[topic] = (epoch, 3)
        reply = await client.subscribe(topic)
        assert reply == Resync(topic=topic, epoch=epoch, seq=13, reason="history_gone")
        await short.publish(topic, "slot.availability_changed", {"n": 13})
        assert [e.seq for e in await events_on(client, topic, 1)] == [14]  # live again after the resync
        # The age bound works the same way.
        aged_topic = site_topic(world.site_id, "gate")
        aged = Publisher(redis, settings, RealtimeSettings(history_max_age_seconds=0.3))
        await aged.publish(aged_topic, "visitor.arrived", {"n": 1})
        aged_epoch = (await history.read_since(redis, settings, aged_topic, None)).position.epoch
        await asyncio.sleep(0.5)
        await aged.publish(aged_topic, "visitor.arrived", {"n": 2})
        assert [s for s, _ in (await history.read_since(redis, settings, aged_topic, 0)).entries] == [2]
        client.positions[aged_topic] = (aged_epoch, 0)
        reply = await client.subscribe(aged_topic)
        assert isinstance(reply, Resync) and reply.reason == "history_gone"


async def test_a_lost_history_is_detected_by_its_epoch(gateway, world, redis, settings) -> None:  # type: ignore[no-untyped-def]
    topic = site_topic(world.site_id, "slots")
    async with (
        RealtimeClient(gateway.url, world.token("guard")) as live,
        RealtimeClient(gateway.url, world.token("fm_admin")) as returning,
    ):
        await live.subscribe(topic)
        for n in range(2):
            await publish(redis, settings, topic, "slot.availability_changed", {"n": n})
        old = await events_on(live, topic, 2)
        # Redis loses the topic, as a flush or a restart without persistence would.
        await redis.delete(history.meta_key(settings, topic), history.history_key(settings, topic))
        assert await publish(redis, settings, topic, "slot.availability_changed", {"n": 2}) == 1
        resync, event = await collect(live, 2)
        assert isinstance(resync, Resync) and resync.reason == "epoch_changed" and resync.seq == 0
        assert isinstance(event, Event) and event.seq == 1 and event.epoch == resync.epoch != old[0].epoch
        # A client coming back with the old epoch is told to resync, not replayed the wrong events.
        returning.positions[topic] = (old[0].epoch, 2)
        reply = await returning.subscribe(topic)
        assert reply == Resync(topic=topic, epoch=event.epoch, seq=1, reason="epoch_changed")


# ---------------------------------------------------------------------------- liveness and back-pressure


async def test_slow_consumer_is_cut_off_while_others_keep_receiving(gateway, world, redis, settings) -> None:  # type: ignore[no-untyped-def]
    topic = site_topic(world.site_id, "slots")
    # A client that stops reading: a tiny receive buffer and no reads fill the server's socket.
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.setblocking(False)
    await asyncio.get_running_loop().sock_connect(raw, ("127.0.0.1", gateway.port))
    slow = await websockets.connect(
        f"{gateway.url}?token={world.token('guard')}", sock=raw, compression=None, max_queue=1, max_size=None
    )
    await slow.send(msgspec.json.encode({"op": "subscribe", "topic": topic}).decode())
    await next_op(slow, "subscribed")
    connections_before = len(gateway.hub.connections)
    publisher = Publisher(redis, settings)
    blob = "x" * 16_000
    async with RealtimeClient(gateway.url, world.token("fm_admin")) as fast:
        await fast.subscribe(topic)
        for n in range(400):
            await publisher.publish(topic, "slot.availability_changed", {"n": n, "blob": blob})
        events = await events_on(fast, topic, 400, within=30)
        assert [e.seq for e in events] == list(range(1, 401))
        assert len(gateway.hub.connections) == connections_before  # the slow one left, the fast one came
    # Once it reads again, the slow client finds the 4008 close after what it had been sent.
    received = 0
    with pytest.raises(websockets.ConnectionClosed):
        async with asyncio.timeout(20):
            while True:
                received += len(decode_server_frame(await slow.recv()))
    assert slow.close_code == CloseCode.SLOW_CONSUMER
    assert received < 400


async def test_a_fan_out_serializes_each_frame_once_for_all_its_subscribers(  # type: ignore[no-untyped-def]
    gateway, world, redis, settings, monkeypatch
) -> None:
    from realtime import connection as connection_module

    topic = site_topic(world.site_id, "slots")
    marker = f"fan-out-{uuid4()}"
    serialized: list[str] = []
    library_serialize = connection_module.serialize_text_frame

    def counting(text: str) -> bytes:  # a spy: the library's serializer still makes every frame
        if marker in text:
            serialized.append(text)
        return library_serialize(text)

    monkeypatch.setattr(connection_module, "serialize_text_frame", counting)
    clients: list[ClientConnection] = []
    try:
        await open_subscribed_guards(gateway.url, world, topic, 20, into=clients)
        await Publisher(redis, settings).publish(topic, "slot.availability_changed", {"marker": marker})
        received = []
        for ws in clients:
            async with asyncio.timeout(5):
                while marker not in (frame := await ws.recv()):
                    pass
            received.append(frame)
    finally:
        await asyncio.gather(*(ws.close() for ws in clients))
    # Each distinct frame (the event alone, or batched with a heartbeat ping) was made once,
    # and every subscriber was written those bytes.
    assert sorted(serialized) == sorted(set(received))
    assert len(serialized) < len(clients)


async def test_a_connection_does_not_keep_its_parsed_query_and_token(gateway, world) -> None:  # type: ignore[no-untyped-def]
    from litestar.types import Empty
    from litestar.utils.scope.state import ScopeState

    from realtime.server_protocol import LeanWebSocketProtocol

    token = world.token("guard")
    async with websockets.connect(f"{gateway.url}?token={token}&gate=main", compression=None) as ws:
        await next_op(ws, "welcome")
        (protocol,) = [
            p
            for p in gateway.server.server_state.connections
            if isinstance(p, LeanWebSocketProtocol) and token.encode() in p.scope["query_string"]
        ]
        # Litestar's query_params would cache the parsed query, token and all, for the connection's life.
        assert ScopeState.from_scope(protocol.scope).parsed_query is Empty  # type: ignore[arg-type]


async def test_a_burst_of_events_is_paced_from_redis_instead_of_cutting_clients_off(world, redis, settings) -> None:  # type: ignore[no-untyped-def]
    # Every client reads; only the burst is large. Read from Redis all at once, it would land in
    # every outbox before the first flush and trip the slow-consumer limit for all of them.
    # The 60 clients decode 48,000 frames in the server's own loop: on a busy machine their pongs come late,
    # and heartbeats are not what this test is about (test_silent_connections_are_reaped is).
    server = InProcessServer(settings, msgspec.structs.replace(FAST, send_queue_max=200, idle_timeout_seconds=15.0))
    await server.start()
    topic = site_topic(world.site_id, "slots")
    clients: list[ClientConnection] = []
    try:
        await open_subscribed_guards(server.url, world, topic, 60, into=clients)
        # 800 events reach the web process in one burst: published by one script, back to back.
        # (The frames are the ones realtime.publish would make; publish itself takes a round trip each.)
        first = await Publisher(redis, settings).publish(topic, "slot.availability_changed", {"n": 0})
        epoch = (await history.read_since(redis, settings, topic, None)).position.epoch
        frames = [
            f"{seq} {epoch} ".encode()
            + msgspec.json.encode(
                Event(topic=topic, epoch=epoch, seq=seq, type="slot.availability_changed", ts=time.time(), data={})
            )
            for seq in range(first + 1, first + 800)
        ]
        burst = "for i, frame in ipairs(ARGV) do redis.call('PUBLISH', KEYS[1], frame) end"
        await redis.eval(burst, 1, history.channel(settings, topic), *frames)  # type: ignore[misc]

        async def read_all(ws: ClientConnection) -> list[int]:
            seqs: list[int] = []
            async with asyncio.timeout(30):
                while len(seqs) < 800:
                    seqs += [m.seq for m in decode_server_frame(await ws.recv()) if isinstance(m, Event)]
            return seqs

        received = await asyncio.gather(*(read_all(ws) for ws in clients))
        assert all(seqs == list(range(first, first + 800)) for seqs in received)
        assert len(server.hub.connections) == len(clients)  # nobody was cut off
    finally:
        await asyncio.gather(*(ws.close() for ws in clients))
        await server.stop()


async def test_silent_connections_are_reaped(gateway, world) -> None:  # type: ignore[no-untyped-def]
    async with websockets.connect(f"{gateway.url}?token={world.token('guard')}", compression=None) as ws:
        started = time.monotonic()
        with pytest.raises(websockets.ConnectionClosed):
            async with asyncio.timeout(8):
                while True:
                    await ws.recv()  # reads, but never answers the gateway's pings
    assert ws.close_code == CloseCode.HEARTBEAT_TIMEOUT
    assert time.monotonic() - started >= FAST.idle_timeout_seconds
    # The realtime client answers pings, so it stays.
    async with RealtimeClient(gateway.url, world.token("guard")) as client:
        await asyncio.sleep(FAST.idle_timeout_seconds + 0.5)
        assert client.connects == 1 and client.close_codes == []


# ---------------------------------------------------------------------------- presence


async def test_gate_console_presence_is_live_for_the_control_room(gateway, world, other_world, redis, settings) -> None:  # type: ignore[no-untyped-def]
    from realtime.presence import Presence
    from schema.events import Console

    control = site_topic(world.site_id, "control")

    async def presence_events(client: RealtimeClient, count: int) -> list[tuple[str, str]]:
        events = await events_on(client, control, count)
        return [(e.data["change"], e.data["console"]["gate"]) for e in events]

    async with RealtimeClient(gateway.url, world.token("fm_admin")) as room:
        snapshot = await room.recv()
        assert snapshot == PresenceSnapshot(site_id=world.site_id, consoles=[])
        async with RealtimeClient(gateway.url, world.token("guard"), gate="main") as console:
            assert console.welcome is not None and console.welcome.gate == "main"
            assert await presence_events(room, 1) == [("joined", "main")]
            async with RealtimeClient(gateway.url, world.token("fm_admin")) as late_room:
                late = await late_room.recv()
                assert isinstance(late, PresenceSnapshot)
                assert [(c.gate, c.person_id) for c in late.consoles] == [("main", world.people["guard"])]
        assert await presence_events(room, 1) == [("left", "main")]
        # A console whose web process died (no more refreshes) is swept after the TTL by any process.
        dead = Presence(redis, settings, RealtimeSettings(presence_ttl_seconds=0.3))
        ghost = Console(gate="service", person_id=world.people["guard"], connection_id=str(uuid4()), since=time.time())
        await dead.join(world.site_id, ghost)
        assert await presence_events(room, 2) == [("joined", "service"), ("left", "service")]
    # Another site's staff cannot watch this control room.
    async with RealtimeClient(gateway.url, other_world.token("fm_admin")) as stranger:
        with pytest.raises(RequestFailed):
            await stranger.subscribe(control)


# ---------------------------------------------------------------------------- leaks


async def test_200_clients_connecting_and_dropping_at_once_leak_nothing(gateway, world, redis, settings) -> None:  # type: ignore[no-untyped-def]
    hub = gateway.hub
    pattern = f"{settings.redis_prefix}rt:ch:*"

    async def quiet() -> tuple[dict[str, int], int, int]:
        channels = len(await redis.pubsub_channels(pattern))
        return hub.stats(), channels, len(asyncio.all_tasks())

    async def settle(target: tuple[dict[str, int], int, int]) -> tuple[dict[str, int], int, int]:
        current = await quiet()
        deadline = time.monotonic() + 15
        while current != target and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            current = await quiet()
        return current

    async with asyncio.timeout(10):  # earlier tests' connections are gone and their topics released
        while hub.connections or hub.stats()["idle_topics"] or hub.stats()["pending_commands"]:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    baseline = await quiet()
    slots = site_topic(world.site_id, "slots")

    async def connect(n: int) -> ClientConnection:
        token, _ = issue_access_token(settings, person_id=uuid4(), site_id=world.site_id, roles=frozenset({Role.GUARD}))
        gate = f"&gate=g{n % 4}" if n % 5 == 0 else ""
        ws = await websockets.connect(f"{gateway.url}?token={token}{gate}", compression=None)
        await ws.send(msgspec.json.encode({"op": "subscribe", "topic": slots}).decode())
        while (await next_op(ws, "subscribed")).topic != slots:
            pass
        return ws

    clients = await asyncio.gather(*(connect(n) for n in range(200)))
    during = hub.stats()
    assert during["connections"] == baseline[0]["connections"] + 200
    assert during["consoles"] == 40
    assert during["expiry_timers"] == baseline[0]["expiry_timers"] + 200
    assert during["topics"] >= 202  # 200 personal user topics, the gate and the slots topic
    assert len(await redis.pubsub_channels(pattern)) >= baseline[1] + 200
    # Half vanish like a dead network, half close politely, all at once.
    await asyncio.gather(*(ws.close() for ws in clients[::2]))
    for ws in clients[1::2]:
        ws.transport.abort()
    after = await settle(baseline)
    assert after == baseline, (after, baseline)
    assert await redis.zcard(f"{settings.redis_prefix}rt:presence") == 0
