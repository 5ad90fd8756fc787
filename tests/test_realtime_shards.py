"""Realtime over three Redis shards (issue 21, points 1 and 2), on private redis-servers this file starts.

- The ring: stable, balanced, and adding a shard moves only the topics the new shard takes.
- An event published anywhere reaches subscribers on every web process; each topic's keys live on
  its shard only; a web process holds one pub/sub connection per shard whatever its topics.
- A client dropped from one web process resumes on another with no gap and no duplicate.
- A shard killed (and back empty): its topics answer ``resync``, the others flow on with no gap,
  and ``/ready`` and ``/metrics`` name the degraded shard; a shard flushed: only its topics resync.
- A shard's pub/sub connection cut while its data survives: the missed events are replayed, no resync.
- A shard added: ``realtime.rebalance`` tells the moved topics' subscribers to resync, and only them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import redis as sync_redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.config import ConfigError, load_settings
from realtime import history
from realtime.client import RealtimeClient
from realtime.publish import Publisher
from realtime.rebalance import rebalance
from realtime.shards import VIRTUAL_NODES, HashRing, shard_name
from schema.events import TOPIC_MOVED, Resync
from tests.support.faults import Recorder, RestartableRedis, wait_until
from tests.support.servers import FAST, InProcessServer, SubprocessServer
from tests.support.shards import (
    sharded_settings,
    shards_env,
    start_shards,
    stop_shards,
    topics_on_every_shard,
)
from tests.support.world import World


@pytest.fixture
async def shards(tmp_dir: Path) -> AsyncIterator[list[RestartableRedis]]:
    started = await asyncio.to_thread(start_shards, tmp_dir)
    yield started
    await asyncio.to_thread(stop_shards, started)


def test_the_ring_is_balanced_stable_and_moves_little_when_a_shard_is_added() -> None:
    names = [f"10.0.0.{n}:6379/0" for n in range(1, 4)]
    keys = [f"unit:{n:08x}-0000-4000-8000-000000000000" for n in range(30_000)]
    ring = HashRing(names)
    owners = [ring.node_for(k) for k in keys]
    shares = Counter(owners)
    # Within 15% of a fair third each with 160 points per shard.
    assert all(abs(shares[i] / len(keys) - 1 / 3) < 0.05 for i in range(3)), shares
    # The same list in another order places every key on the same server.
    reordered = HashRing(list(reversed(names)))
    assert all(names[o] == list(reversed(names))[reordered.node_for(k)] for k, o in zip(keys, owners, strict=True))
    # A fourth shard takes about a quarter, and every key that moves moves to it.
    grown = HashRing([*names, "10.0.0.4:6379/0"])
    moved = [(o, grown.node_for(k)) for k, o in zip(keys, owners, strict=True) if grown.node_for(k) != o]
    assert all(new == 3 for _, new in moved)
    assert 0.18 < len(moved) / len(keys) < 0.32, len(moved)
    assert VIRTUAL_NODES == 160
    # The password is no part of a shard's name: rotating it moves nothing.
    assert shard_name("redis://:secret@10.0.0.1:6379/0") == shard_name("redis://10.0.0.1:6379") == names[0]


def test_realtime_redis_urls_are_checked_and_empty_means_redis_url() -> None:
    assert load_settings({}).realtime_shard_urls == ()
    parsed = load_settings({"REALTIME_REDIS_URLS": " redis://a:6379/0, redis://b:6379/0 ,"})
    assert parsed.realtime_shard_urls == ("redis://a:6379/0", "redis://b:6379/0")
    with pytest.raises(ConfigError, match=r"REALTIME_REDIS_URLS: 'http://a' must start with redis://"):
        load_settings({"REALTIME_REDIS_URLS": "redis://b:6379/0,http://a"})
    with pytest.raises(ConfigError, match=r"REALTIME_REDIS_URLS: a server is listed twice"):
        load_settings({"REALTIME_REDIS_URLS": "redis://b:6379/0,redis://b:6379/0"})


async def _publish_round(publisher: Publisher, topics: list[str], n: int) -> None:
    for topic in topics:
        await publisher.publish(topic, "slot.availability_changed", {"n": n})


async def test_events_reach_every_process_and_a_client_resumes_on_another(
    world: World, settings: Any, redis: Any, shards: list[RestartableRedis]
) -> None:
    placed = await topics_on_every_shard(world, [s.url for s in shards])
    topics = [t for per_shard in placed for t in per_shard]
    sharded = sharded_settings(settings, shards)
    local = InProcessServer(sharded, FAST)
    await local.start()
    other = SubprocessServer(env=shards_env(shards))
    await other.start()
    publisher = Publisher(redis, sharded, FAST)
    recorders: list[Recorder] = []
    try:
        roaming = RealtimeClient([local.url, other.url], world.token("fm_admin"), min_backoff=0.05, max_backoff=0.2)
        staying = RealtimeClient(other.url, world.token("fm_admin"), min_backoff=0.05, max_backoff=0.2)
        for client in (roaming, staying):
            await client.connect()
            for topic in topics:
                await client.subscribe(topic)
            recorders.append(Recorder(client))
        for n in range(3):
            await _publish_round(publisher, topics, n)

        async def everyone_has(seq: int) -> bool:
            return all(r.last_seq(t) == seq for r in recorders for t in topics)

        await wait_until(lambda: everyone_has(3), 20, "the first events on both processes")
        # Each topic's meta and history on its own shard, and on no other.
        for index, shard in enumerate(shards):
            client = sync_redis.Redis.from_url(shard.url)
            try:
                for topic in topics:
                    expected = topic in placed[index]
                    assert bool(client.exists(history.meta_key(sharded, topic))) == expected, (index, topic)
                    assert bool(client.exists(history.history_key(sharded, topic))) == expected, (index, topic)
                # One pub/sub connection per web process on each shard, however many topics it holds.
                pubsub_clients = client.client_list(_type="pubsub")
                assert len(pubsub_clients) == 2, pubsub_clients
            finally:
                client.close()
        assert [link.shard.name for link in local.hub.links] == [shard_name(s.url) for s in shards]
        # Dropped from the in-process web process, the roaming client resumes on the other one.
        await roaming.drop_connection()
        for n in range(3, 6):
            await _publish_round(publisher, topics, n)
        await wait_until(lambda: everyone_has(6), 20, "the client to resume on the other process")
        assert roaming.url == other.url and roaming.connects == 2
        await asyncio.sleep(0.3)  # a duplicate would arrive now
    finally:
        for recorder in recorders:
            await recorder.stop()
        await other.stop()
        await local.stop()
    for recorder in recorders:
        for topic in topics:
            assert [e.data["n"] for e in recorder.events(topic)] == list(range(6)), topic
            assert recorder.gaps(topic) == []
        assert not [m for m in recorder.messages if isinstance(m, Resync)]


async def test_a_lost_shard_resyncs_only_its_topics_while_the_others_flow_on(
    world: World, settings: Any, redis: Any, shards: list[RestartableRedis]
) -> None:
    placed = await topics_on_every_shard(world, [s.url for s in shards])
    topics = [t for per_shard in placed for t in per_shard]
    lost, flushed = placed[1], placed[2]
    sharded = sharded_settings(settings, shards)
    server = InProcessServer(sharded, FAST)
    await server.start()
    publisher = Publisher(redis, sharded, FAST)
    published: dict[str, int] = dict.fromkeys(topics, 0)
    refused: Counter[str] = Counter()
    stop = asyncio.Event()

    async def publish_steadily() -> None:
        while not stop.is_set():
            for topic in topics:
                try:
                    published[topic] = await publisher.publish(topic, "slot.availability_changed", {"t": time.time()})
                except (RedisConnectionError, RedisTimeoutError, ConnectionError):
                    refused[topic] += 1
            await asyncio.sleep(0.02)

    async def ready() -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=server.http_url) as http:
            return dict((await http.get("/ready")).json())

    async def shard_up_metrics() -> dict[str, float]:
        async with httpx.AsyncClient(base_url=server.http_url, headers=world.headers("platform_admin")) as http:
            text = (await http.get("/metrics")).text
        found = {}
        for line in text.splitlines():
            if line.startswith("opshub_realtime_shard_up{"):
                label, value = line.rsplit(" ", 1)
                found[label.split('shard="', 1)[1].split('"', 1)[0]] = float(value)
        return found

    recorders: list[Recorder] = []
    publishing: asyncio.Task[None] | None = None
    try:
        for _ in range(2):
            client = RealtimeClient(server.url, world.token("fm_admin"), min_backoff=0.05, max_backoff=0.2)
            await client.connect()
            for topic in topics:
                await client.subscribe(topic)
            recorders.append(Recorder(client))
        assert (await ready())["status"] == "ok"
        publishing = asyncio.create_task(publish_steadily())
        await wait_until(lambda: _all_at_least(recorders, topics, 5), 20, "the first events")
        shards[1].kill()  # a crash: no goodbye, every key gone

        async def degraded() -> bool:
            body = await ready()
            return body["status"] == "degraded" and [s["up"] for s in body["realtime_shards"]] == [True, False, True]

        await wait_until(degraded, 10, "/ready to report the lost shard")
        assert (await shard_up_metrics()) == {
            shard_name(shards[0].url): 1.0,
            shard_name(shards[1].url): 0.0,
            shard_name(shards[2].url): 1.0,
        }
        # The other shards' topics keep flowing while shard 1 is down.
        during = dict(published)
        others = [t for t in topics if t not in lost]
        await wait_until(
            lambda: _all_at_least(recorders, others, min(during[t] for t in others) + 10), 10, "the others to flow"
        )
        assert all(refused[t] > 0 for t in lost) and not any(refused[t] for t in others)
        await asyncio.to_thread(shards[1].start)  # back on its port, empty
        await wait_until(lambda: _status_is(ready, "ok"), 15, "/ready to be ok again")
        # Shard 2 flushed under live subscribers: its topics restart numbering, so they resync too.
        flusher = sync_redis.Redis.from_url(shards[2].url)
        try:
            flusher.flushall()
        finally:
            flusher.close()
        await asyncio.sleep(0.5)
        stop.set()
        await publishing
        publishing = None
        await wait_until(lambda: _all_at_least(recorders, topics, 0, exact=published), 20, "every client to catch up")
        await asyncio.sleep(0.3)
    finally:
        stop.set()
        if publishing is not None:
            await publishing
        for recorder in recorders:
            await recorder.stop()
        await server.stop()
    for recorder in recorders:
        assert recorder.client.connects == 1, recorder.client.close_codes  # never disconnected
        for topic in topics:
            assert recorder.gaps(topic) == [], (topic, recorder.gaps(topic))
            resyncs = [m for m in recorder.messages if isinstance(m, Resync) and m.topic == topic]
            if topic in lost or topic in flushed:
                assert resyncs and all(r.reason == "epoch_changed" for r in resyncs), topic
            else:
                assert resyncs == [], topic
                seqs = [e.seq for e in recorder.events(topic)]
                assert seqs == list(range(1, published[topic] + 1)), topic
    print(f"\npublishes refused while shard 1 was down: {dict(refused)}")


async def test_a_cut_shard_connection_replays_what_it_missed_without_resync(
    world: World, settings: Any, redis: Any, shards: list[RestartableRedis]
) -> None:
    placed = await topics_on_every_shard(world, [s.url for s in shards], per_shard=1)
    topics = [t for per_shard in placed for t in per_shard]
    sharded = sharded_settings(settings, shards)
    server = InProcessServer(sharded, FAST)
    await server.start()
    publisher = Publisher(redis, sharded, FAST)
    client = RealtimeClient(server.url, world.token("fm_admin"))
    recorder: Recorder | None = None
    try:
        await client.connect()
        for topic in topics:
            await client.subscribe(topic)
        recorder = Recorder(client)
        for n in range(40):
            await _publish_round(publisher, topics, n)
            if n == 10:
                # The hub's pub/sub connection to shard 0 dies; its data does not: while the hub
                # reconnects, events keep being published there, and only its history has them.
                killer = sync_redis.Redis.from_url(shards[0].url)
                try:
                    assert killer.client_kill_filter(_type="pubsub") == 1
                finally:
                    killer.close()
        await wait_until(lambda: _all_at_least([recorder], topics, 40), 20, "every event")
        await asyncio.sleep(0.3)
        assert server.hub.links[0].outages == 1 and server.hub.links[0].available
    finally:
        if recorder is not None:
            await recorder.stop()
        else:
            await client.close()
        await server.stop()
    for topic in topics:
        assert [e.data["n"] for e in recorder.events(topic)] == list(range(40)), topic
    assert not [m for m in recorder.messages if isinstance(m, Resync)]
    assert client.connects == 1


async def _all_at_least(
    recorders: list[Recorder], topics: list[str], seq: int, exact: dict[str, int] | None = None
) -> bool:
    for recorder in recorders:
        for topic in topics:
            last = recorder.last_seq(topic) or 0
            if exact is not None:
                if last != exact[topic]:
                    return False
            elif last < seq:
                return False
    return True


async def _status_is(ready: Any, status: str) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return bool((await ready())["status"] == status)
    return False


async def test_after_a_shard_is_added_rebalance_makes_the_moved_topics_resync(
    world: World, settings: Any, redis: Any, shards: list[RestartableRedis]
) -> None:
    urls = [s.url for s in shards]
    before = msgspec.structs.replace(settings, realtime_redis_urls=",".join(urls[:2]))
    after = sharded_settings(settings, shards)
    placed = await topics_on_every_shard(world, urls, per_shard=1)
    moved, stayed = placed[2][0], placed[0][0]  # adding a shard moves topics only to it
    server = InProcessServer(after, FAST)  # a web process already restarted with the third shard
    await server.start()
    client = RealtimeClient(server.url, world.token("fm_admin"))
    recorder: Recorder | None = None
    try:
        await client.connect()
        for topic in (moved, stayed):
            await client.subscribe(topic)
        recorder = Recorder(client)
        # A worker still on the old list publishes the moved topic to its old shard: nobody sees it.
        old_worker = Publisher(redis, before, FAST)
        await old_worker.publish(moved, "slot.availability_changed", {"n": 0})
        await old_worker.publish(stayed, "slot.availability_changed", {"n": 0})
        result = await rebalance(after, urls[:2], redis)
        assert result.moved == [moved] and result.stayed == 1

        async def told() -> bool:
            return any(isinstance(m, Resync) and m.topic == moved for m in recorder.messages)

        await wait_until(told, 10, "the moved topic's subscriber to be told to resync")
        assert (await rebalance(after, urls[:2], redis)).moved == []  # nothing left to move
    finally:
        if recorder is not None:
            await recorder.stop()
        else:
            await client.close()
        await server.stop()
    resync = next(m for m in recorder.messages if isinstance(m, Resync) and m.topic == moved)
    assert resync.reason == "epoch_changed"
    assert [e.type for e in recorder.events(moved)][-1] == TOPIC_MOVED
    assert [e.data for e in recorder.events(stayed)] == [{"n": 0}]
    assert not [m for m in recorder.messages if isinstance(m, Resync) and m.topic == stayed]
    old_shard = sync_redis.Redis.from_url(urls[HashRing([shard_name(u) for u in urls[:2]]).node_for(moved)])
    try:
        assert not old_shard.exists(history.meta_key(after, moved), history.history_key(after, moved))
    finally:
        old_shard.close()
