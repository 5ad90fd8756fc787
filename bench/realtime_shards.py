"""Realtime publish over shards: one Redis (the baseline), three by consistent hashing, a three-master Redis Cluster.

Run from the repository root::

    .venv/bin/python bench/realtime_shards.py                 # ~1 min
    .venv/bin/python bench/realtime_shards.py --seconds 5 --topics 3000 --publishers 2

Method
------
* Every Redis is a fresh ``redis-server`` 7 (PATH) on a free port, no persistence, as the hub runs it.
* **single**: one server; events go through ``realtime.history.append`` (the Lua script: sequence,
  history, trim, PUBLISH), exactly the default publish path.
* **ring**: three servers; ``realtime.shards.ShardSet`` picks the topic's server (``REALTIME_REDIS_URLS``),
  the same script runs there.
* **cluster**: three masters with the slots split by ``CLUSTER ADDSLOTSRANGE``; the same script with the
  channel under the topic's hash tag and ``SPUBLISH`` (sharded pub/sub) instead of ``PUBLISH``, sent
  through ``redis.asyncio.cluster.RedisCluster`` (which routes by slot).
* Load: ``--publishers`` processes, each with 32 concurrent tasks publishing ~200-byte events on
  ``--topics`` topics round-robin for ``--seconds``. One subscriber process per variant holds ONE pub/sub
  connection per server (as a web process does: ``SUBSCRIBE`` for the ring and single, ``SSUBSCRIBE`` per
  shard for the cluster), subscribed to every topic, and records publish-to-arrival latency.
* Reported per variant: publishes/s (all publishers), publish round-trip p50/p99, delivery p50/p99,
  events lost (published - received), Redis CPU per 1,000 publishes summed over its servers and the
  busiest server's share of events (from ``INFO``): Redis CPU per event is the planning figure, since on
  this 2-core machine the Python publishers, not Redis, set the throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from redis.asyncio import Redis  # noqa: E402
from redis.asyncio.cluster import RedisCluster  # noqa: E402

from app.config import Settings  # noqa: E402
from app.devredis import free_port  # noqa: E402
from realtime import history  # noqa: E402
from realtime.shards import ShardSet  # noqa: E402

SETTINGS = Settings(redis_prefix="bench:")
CLUSTER_LUA = history.APPEND_LUA.replace("redis.call('PUBLISH', ARGV[1]", "redis.call('SPUBLISH', ARGV[1]")
CONCURRENCY = 32


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found is None:
        sys.exit("redis-server 7 must be on PATH (apt-get install redis-server)")
    return found


class Servers:
    def __init__(self, count: int, cluster: bool, tmp: Path) -> None:
        self.ports = [free_port() for _ in range(count)]
        self.bus_ports = [free_port() for _ in range(count)]
        self.processes: list[subprocess.Popen[bytes]] = []
        for port, bus_port in zip(self.ports, self.bus_ports, strict=True):
            work = Path(tempfile.mkdtemp(prefix=f"{port}-", dir=tmp))
            args = [redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            args += ["--dir", str(work), "--loglevel", "warning"]
            if cluster:
                # The bus port is given: the default (port + 10000) does not exist above 55535.
                args += ["--cluster-enabled", "yes", "--cluster-config-file", str(work / "nodes.conf")]
                args += ["--cluster-port", str(bus_port)]
            self.processes.append(subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for port in self.ports:
            client = redis.Redis(host="127.0.0.1", port=port)
            for _ in range(200):
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    time.sleep(0.02)
            client.close()
        if cluster:
            try:
                self._form_cluster()
            except BaseException:
                self.stop()  # no servers left behind by a run that failed
                raise

    def _form_cluster(self) -> None:
        clients = [redis.Redis(host="127.0.0.1", port=p) for p in self.ports]
        step = 16384 // len(clients)
        for index, client in enumerate(clients):
            last = 16383 if index == len(clients) - 1 else (index + 1) * step - 1
            client.execute_command("CLUSTER", "ADDSLOTSRANGE", index * step, last)
        for client in clients[1:]:
            client.execute_command("CLUSTER", "MEET", "127.0.0.1", self.ports[0], self.bus_ports[0])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if all(c.execute_command("CLUSTER", "INFO").decode().count("cluster_state:ok") for c in clients):
                infos = [c.execute_command("CLUSTER", "NODES").decode().count("master") for c in clients]
                if all(n == len(clients) for n in infos):
                    break
            time.sleep(0.1)
        else:
            raise RuntimeError("the cluster did not form")
        for client in clients:
            client.close()

    def cpu_and_calls(self) -> list[tuple[float, int]]:
        """(CPU seconds, commands processed) per server."""
        found = []
        for port in self.ports:
            client = redis.Redis(host="127.0.0.1", port=port)
            cpu: dict[str, Any] = client.info("cpu")  # type: ignore[assignment]
            stats: dict[str, Any] = client.info("stats")  # type: ignore[assignment]
            found.append((cpu["used_cpu_sys"] + cpu["used_cpu_user"], int(stats["total_commands_processed"])))
            client.close()
        return found

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait()


def topic_names(count: int) -> list[str]:
    return [f"unit:{n:08x}-0000-4000-8000-{n:012x}" for n in range(count)]


# ---------------------------------------------------------------------------- one publisher process


async def _publish(
    variant: str, ports: list[int], topics: list[str], seconds: float, start_at: float
) -> dict[str, Any]:
    data = json.dumps({"visitor_id": "0" * 36, "name": "x" * 120}).encode()
    latencies: list[float] = []
    count = 0
    if variant == "cluster":
        cluster = RedisCluster(host="127.0.0.1", port=ports[0])
        await cluster.initialize()
        script = cluster.register_script(CLUSTER_LUA)

        async def append(topic: str, stamp: bytes) -> None:
            keys = [history.meta_key(SETTINGS, topic), history.history_key(SETTINGS, topic)]
            channel = f"{SETTINGS.redis_prefix}rt:{{{topic}}}:ch"
            await script(
                keys=keys, args=[channel, "e" * 16, json.dumps(topic), b'"bench.event"', stamp, 1000, 600000, 604800000]
            )

    else:
        default = Redis(host="127.0.0.1", port=ports[0])
        urls = ",".join(f"redis://127.0.0.1:{p}/0" for p in ports) if variant == "ring" else ""
        shards = ShardSet.from_settings(Settings(redis_prefix="bench:", realtime_redis_urls=urls), default)

        async def append(topic: str, stamp: bytes) -> None:
            await history.append(
                shards.for_topic(topic).redis,
                SETTINGS,
                topic,
                topic_json=json.dumps(topic).encode(),
                type_json=b'"bench.event"',
                data_json=stamp,
                max_len=1000,
                max_age_ms=600_000,
            )

    await asyncio.sleep(max(0.0, start_at - time.time()))
    deadline = time.monotonic() + seconds

    async def worker(offset: int) -> None:
        nonlocal count
        n = offset
        while time.monotonic() < deadline:
            topic = topics[n % len(topics)]
            n += CONCURRENCY
            stamp = data[:-1] + f',"sent":{time.time():.6f}}}'.encode()
            began = time.perf_counter()
            await append(topic, stamp)
            latencies.append(time.perf_counter() - began)
            count += 1

    await asyncio.gather(*(worker(i) for i in range(CONCURRENCY)))
    return {"count": count, "latencies": latencies}


def publisher_main(
    variant: str, ports: list[int], topics: list[str], seconds: float, start_at: float, out: Any
) -> None:
    out.put(asyncio.run(_publish(variant, ports, topics, seconds, start_at)))


# ---------------------------------------------------------------------------- the subscriber process


async def _subscribe(variant: str, ports: list[int], topics: list[str], until: float, ready: Any) -> dict[str, Any]:
    delays: list[float] = []
    received = 0
    connections = []
    for port in ports:
        client = Redis(host="127.0.0.1", port=port)
        connection = await client.connection_pool.get_connection("_")
        connections.append((client, connection))
    # One connection per server, subscribed to the topics that server owns (all of them for single).
    if variant == "cluster":
        from redis.cluster import key_slot

        step = 16384 // len(ports)
        for topic in topics:
            channel = f"{SETTINGS.redis_prefix}rt:{{{topic}}}:ch"
            owner = min(key_slot(channel.encode()) // step, len(ports) - 1)
            await connections[owner][1].send_command("SSUBSCRIBE", channel)
    else:
        default = Redis(host="127.0.0.1", port=ports[0])
        urls = ",".join(f"redis://127.0.0.1:{p}/0" for p in ports) if variant == "ring" else ""
        shards = ShardSet.from_settings(Settings(redis_prefix="bench:", realtime_redis_urls=urls), default)
        for topic in topics:
            index = shards.for_topic(topic).index
            await connections[index][1].send_command("SUBSCRIBE", history.channel(SETTINGS, topic))
    expected = len(topics)
    confirmed = 0

    async def read(connection: Any) -> None:
        nonlocal received, confirmed
        while True:
            response = await connection.read_response(timeout=None)
            kind = response[0]
            if kind in (b"message", b"smessage"):
                payload = response[2]
                sent = float(payload.rsplit(b'"sent":', 1)[1].split(b"}", 1)[0])
                delays.append(time.time() - sent)
                received += 1
            elif kind in (b"subscribe", b"ssubscribe"):
                confirmed += 1
                if confirmed == expected:
                    ready.set()

    readers = [asyncio.create_task(read(c)) for _, c in connections]
    await asyncio.sleep(max(0.0, until - time.time()))
    for task in readers:
        task.cancel()
    return {"received": received, "delays": delays}


def subscriber_main(variant: str, ports: list[int], topics: list[str], until: float, ready: Any, out: Any) -> None:
    out.put(asyncio.run(_subscribe(variant, ports, topics, until, ready)))


# ---------------------------------------------------------------------------- one variant


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_variant(variant: str, servers: int, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    cluster = variant == "cluster"
    running = Servers(servers, cluster, tmp)
    try:
        topics = topic_names(args.topics)
        context = multiprocessing.get_context("spawn")
        out = context.Queue()
        ready = context.Event()
        start_at = time.time() + 6.0
        until = start_at + args.seconds + 2.0
        subscriber = context.Process(target=subscriber_main, args=(variant, running.ports, topics, until, ready, out))
        subscriber.start()
        if not ready.wait(30):
            raise RuntimeError("the subscriber did not subscribe in time")
        before = running.cpu_and_calls()
        start_at = max(start_at, time.time() + 1.0)
        publishers = [
            context.Process(target=publisher_main, args=(variant, running.ports, topics, args.seconds, start_at, out))
            for _ in range(args.publishers)
        ]
        for process in publishers:
            process.start()
        results = [out.get() for _ in range(args.publishers + 1)]
        for process in [*publishers, subscriber]:
            process.join()
        after = running.cpu_and_calls()
    finally:
        running.stop()
    published = [r for r in results if "count" in r]
    seen = next(r for r in results if "received" in r)
    count = sum(r["count"] for r in published)
    latencies = [x for r in published for x in r["latencies"]]
    cpu = [a[0] - b[0] for a, b in zip(after, before, strict=True)]
    calls = [a[1] - b[1] for a, b in zip(after, before, strict=True)]
    return {
        "variant": variant,
        "servers": servers,
        "publishes_per_s": count / args.seconds,
        "publish_p50_ms": pct(latencies, 0.5) * 1000,
        "publish_p99_ms": pct(latencies, 0.99) * 1000,
        "delivery_p50_ms": pct(seen["delays"], 0.5) * 1000,
        "delivery_p99_ms": pct(seen["delays"], 0.99) * 1000,
        "lost": count - seen["received"],
        "redis_cpu_ms_per_1000": sum(cpu) / max(count, 1) * 1e6,
        "busiest_share": max(calls) / max(sum(calls), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--topics", type=int, default=3000)
    parser.add_argument("--publishers", type=int, default=2)
    parser.add_argument("--variants", default="single,ring,cluster")
    args = parser.parse_args()
    print(
        f"redis-server: {subprocess.run([redis_binary(), '--version'], capture_output=True, text=True).stdout.strip()}"
    )
    print(f"CPUs: {os.cpu_count()}, load average before: {os.getloadavg()[0]:.2f}")
    print(f"{args.publishers} publisher processes x {CONCURRENCY} tasks, {args.topics} topics, {args.seconds} s each\n")
    rows = []
    with tempfile.TemporaryDirectory(prefix="opshub-shards-") as directory:
        for variant in args.variants.split(","):
            servers = 1 if variant == "single" else 3
            rows.append(run_variant(variant, servers, args, Path(directory)))
            row = rows[-1]
            print(
                f"{row['variant']:8} {row['servers']} server(s): {row['publishes_per_s']:8.0f} publishes/s, "
                f"publish p50 {row['publish_p50_ms']:.2f} ms p99 {row['publish_p99_ms']:.2f} ms, "
                f"delivery p50 {row['delivery_p50_ms']:.2f} ms p99 {row['delivery_p99_ms']:.2f} ms, "
                f"lost {row['lost']}, "
                f"Redis CPU {row['redis_cpu_ms_per_1000']:.1f} ms per 1,000 publishes, "
                f"busiest server {row['busiest_share']:.0%} of commands"
            )
    baseline = rows[0]
    print("\nvs the single-Redis baseline (same run):")
    for row in rows:
        print(
            f"  {row['variant']:8} throughput {row['publishes_per_s'] / baseline['publishes_per_s']:.2f}x, "
            f"Redis CPU per publish {row['redis_cpu_ms_per_1000'] / baseline['redis_cpu_ms_per_1000']:.2f}x, "
            f"busiest server's CPU per publish "
            f"{row['redis_cpu_ms_per_1000'] * row['busiest_share'] / baseline['redis_cpu_ms_per_1000']:.2f}x"
        )


if __name__ == "__main__":
    main()
