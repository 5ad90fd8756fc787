"""After ``REALTIME_REDIS_URLS`` changed (a shard added or removed), settle the topics that moved.

    python -m realtime.rebalance --previous "redis://10.0.0.5:6379/0,redis://10.0.0.6:6379/0"

Run it once every web process and worker runs with the new list. For every topic found on the
previous servers whose shard is not the same any more:

1. its keys on the new shard are dropped and a ``topic.moved`` event is published there: it starts a
   new epoch, so every subscriber, on every web process, gets ``resync … "epoch_changed"`` and
   refetches the topic over REST (a topic with no epoch there yet first gets one, with a first
   ``topic.moved``, so that the second is seen as a change). That closes the rolling restart's
   window, in which a process still on the old list published to the old shard events that
   subscribers on the new one never saw;
2. its keys on the old shard are deleted (they would only expire).

Topics that stay where they were are not touched. ``--previous ""`` means realtime was on
``REDIS_URL`` alone. Idempotent: a second run finds nothing left to move.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from redis.asyncio import Redis

from app.config import Settings, load_settings
from realtime import history
from realtime.publish import Publisher
from realtime.shards import HashRing, shard_name, shards_for
from realtime.topics import parse_topic
from schema.events import TOPIC_MOVED


@dataclass
class Rebalanced:
    moved: list[str] = field(default_factory=list)
    stayed: int = 0


def _names(settings: Settings, urls: Sequence[str]) -> list[str]:
    return [shard_name(url) for url in urls] if urls else [shard_name(settings.redis_url or "")]


async def rebalance(settings: Settings, previous_urls: Sequence[str], redis: Redis) -> Rebalanced:
    """Move the topics whose shard changed from ``previous_urls`` to ``settings.realtime_shard_urls``;
    ``redis`` is the ``REDIS_URL`` client (the shard when either list is empty)."""
    old_names = _names(settings, previous_urls)
    new_urls = settings.realtime_shard_urls
    new_names = _names(settings, new_urls)
    old_ring, new_ring = HashRing(old_names), HashRing(new_names)
    publisher = Publisher(redis, settings)
    current = shards_for(redis, settings)
    result = Rebalanced()
    prefix = f"{settings.redis_prefix}rt:{{"
    for index, url in enumerate(previous_urls or [settings.redis_url or ""]):
        old = Redis.from_url(url) if previous_urls else redis
        try:
            async for raw in old.scan_iter(match=f"{prefix}*}}:meta", count=1000):
                key = raw.decode()
                topic = key[len(prefix) : -len("}:meta")]
                try:
                    parse_topic(topic)
                except ValueError:
                    continue
                if old_ring.node_for(topic) != index:
                    continue  # a leftover of an earlier layout on this server; its owner settles it
                if new_names[new_ring.node_for(topic)] == old_names[index]:
                    result.stayed += 1
                    continue
                target = current.for_topic(topic).redis
                since = await history.read_since(target, settings, topic, None)
                if since.position.epoch is None:
                    # Nothing published there yet: subscribers hold "no epoch", and a first epoch would
                    # look like a continuation to them. Give the topic one, so the next is a change.
                    await publisher.publish(topic, TOPIC_MOVED, {"from": old_names[index]})
                await target.delete(history.meta_key(settings, topic), history.history_key(settings, topic))
                await publisher.publish(topic, TOPIC_MOVED, {"from": old_names[index]})
                await old.delete(history.meta_key(settings, topic), history.history_key(settings, topic))
                result.moved.append(topic)
        finally:
            if previous_urls:
                await old.aclose()
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--previous", required=True, help='the previous REALTIME_REDIS_URLS ("" for REDIS_URL alone)')
    args = parser.parse_args(argv)
    settings = load_settings()
    previous = [part.strip() for part in args.previous.split(",") if part.strip()]

    async def run() -> Rebalanced:
        from app.redis import create_redis

        redis = create_redis(settings)
        try:
            return await rebalance(settings, previous, redis)
        finally:
            await redis.aclose()

    result = asyncio.run(run())
    print(f"{len(result.moved)} topics moved (each told its subscribers to resync), {result.stayed} stayed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
