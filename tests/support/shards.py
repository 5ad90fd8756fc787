"""Three realtime Redis shards for a test (private redis-servers on free ports, each killable and
restartable on its port), and topics of a test world placed on every one of them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from realtime.shards import HashRing, shard_name
from realtime.topics import site_topic, unit_topic
from schema.tables import Unit
from tests.support.faults import RestartableRedis
from tests.support.world import World


def start_shards(tmp: Path, count: int = 3) -> list[RestartableRedis]:
    shards = []
    for index in range(count):
        shard = RestartableRedis(tmp / f"shard{index}")
        shard.start()
        shards.append(shard)
    return shards


def stop_shards(shards: Sequence[RestartableRedis]) -> None:
    for shard in shards:
        shard.stop()


def sharded_settings(settings: Any, shards: Sequence[RestartableRedis]) -> Any:
    return msgspec.structs.replace(settings, realtime_redis_urls=",".join(s.url for s in shards))


def shards_env(shards: Sequence[RestartableRedis]) -> dict[str, str]:
    return {"REALTIME_REDIS_URLS": ",".join(s.url for s in shards)}


async def topics_on_every_shard(world: World, shard_urls: Sequence[str], per_shard: int = 2) -> list[list[str]]:
    """``per_shard`` topics an FM admin of ``world`` may watch on each shard (units are added to the
    world until every shard has enough), indexed like ``shard_urls``."""
    ring = HashRing([shard_name(url) for url in shard_urls])
    placed: list[list[str]] = [[] for _ in shard_urls]
    candidates = [site_topic(world.site_id, "slots"), site_topic(world.site_id, "gate")]
    candidates += [unit_topic(unit_id) for unit_id in world.unit_ids]
    number = 0
    while True:
        for topic in candidates:
            owner = placed[ring.node_for(topic)]
            if len(owner) < per_shard:
                owner.append(topic)
        if all(len(p) == per_shard for p in placed):
            return placed
        number += 1
        unit = Unit(site=world.site_id, building=world.building_ids[0], label=f"S-{number}", floor=1)
        await unit.save()
        candidates = [unit_topic(unit.id)]
