"""Where a realtime topic lives: one of the Redis servers of ``REALTIME_REDIS_URLS``, by consistent hashing.

A topic's three things (its ``meta`` hash with ``seq``/``epoch``, its history stream and its pub/sub
channel) all live on one shard, so the publish script stays one atomic call on one server and a
resume reads one server. The shard is chosen by a hash ring with virtual nodes: every process
computes the same ring from the same list (the order of the list does not matter), and adding a
fifth shard to four moves about a fifth of the topics, not four fifths as ``hash % n`` would.

A moved topic starts a new epoch on its new shard, so its subscribers are told ``resync`` rather
than silently missing events (see docs/deploy.md, *Adding a shard*).

With ``REALTIME_REDIS_URLS`` empty there is one shard, the ``REDIS_URL`` client itself: exactly
the single-Redis behaviour from before sharding.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from redis.asyncio import Redis

from app.config import Settings

# Points per shard on the ring. With 160 the largest of three shards holds within a few per cent of
# a third of the topics (tests/test_realtime_shards.py measures it); more points only cost memory.
VIRTUAL_NODES: Final = 160
# A shard that does not answer must not hold a publisher (a web request, a worker's job) for long:
# it fails fast and the caller's event is reported lost for that shard only.
SHARD_CONNECT_TIMEOUT_SECONDS: Final = 2.0
SHARD_SOCKET_TIMEOUT_SECONDS: Final = 5.0


def _point(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")


def shard_name(url: str) -> str:
    """A shard's identity on the ring and in reports: host, port and database, never the password."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"unix:{parts.path}"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    database = parts.path.lstrip("/") or "0"
    return f"{host}:{parts.port or 6379}/{database}"


class HashRing:
    """Consistent hashing of keys over named nodes, ``VIRTUAL_NODES`` points per node."""

    def __init__(self, names: Sequence[str], virtual_nodes: int = VIRTUAL_NODES) -> None:
        if not names:
            raise ValueError("a hash ring needs at least one node")
        points: list[tuple[int, int]] = []
        for index, name in enumerate(names):
            points.extend((_point(f"{name}#{v}"), index) for v in range(virtual_nodes))
        points.sort()
        self._hashes = [p for p, _ in points]
        self._owners = [i for _, i in points]
        self.size = len(names)

    def node_for(self, key: str) -> int:
        """The index (into the names given) of the node that owns ``key``."""
        if self.size == 1:
            return 0
        at = bisect.bisect(self._hashes, _point(key))
        return self._owners[at % len(self._owners)]


@dataclass(frozen=True, slots=True)
class Shard:
    index: int
    name: str
    redis: Redis


class ShardSet:
    """The realtime shards of one process (on one event loop) and the ring that picks among them."""

    def __init__(self, shards: Sequence[Shard], *, owned: bool) -> None:
        self.shards = list(shards)
        self.ring = HashRing([s.name for s in self.shards])
        self._owned = owned  # clients this set created and must close

    @classmethod
    def from_settings(cls, settings: Settings, default: Redis) -> ShardSet:
        """Clients for ``REALTIME_REDIS_URLS``, or the one ``default`` client (``REDIS_URL``) when it is empty."""
        urls = settings.realtime_shard_urls
        if not urls:
            return cls([Shard(0, "default", default)], owned=False)
        return cls(
            [
                Shard(
                    index,
                    shard_name(url),
                    Redis.from_url(
                        url,
                        health_check_interval=30,
                        socket_connect_timeout=SHARD_CONNECT_TIMEOUT_SECONDS,
                        socket_timeout=SHARD_SOCKET_TIMEOUT_SECONDS,
                    ),
                )
                for index, url in enumerate(urls)
            ],
            owned=True,
        )

    @property
    def sharded(self) -> bool:
        return self._owned

    def for_topic(self, topic: str) -> Shard:
        return self.shards[self.ring.node_for(topic)]

    async def aclose(self) -> None:
        if self._owned:
            for shard in self.shards:
                await shard.redis.aclose()


# Publishers (web requests, worker jobs) share one set per event loop: a Redis client's connections
# belong to the loop that opened them, and a process may run several loops (the test suite does).
_per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, ...], ShardSet]] = (
    weakref.WeakKeyDictionary()
)


def shards_for(redis: Redis, settings: Settings) -> ShardSet:
    """The shard set publishers on this loop use: ``redis`` alone unless ``REALTIME_REDIS_URLS`` is set."""
    urls = settings.realtime_shard_urls
    if not urls:
        return ShardSet([Shard(0, "default", redis)], owned=False)
    sets = _per_loop.setdefault(asyncio.get_running_loop(), {})
    found = sets.get(urls)
    if found is None:
        found = sets[urls] = ShardSet.from_settings(settings, redis)
    return found
