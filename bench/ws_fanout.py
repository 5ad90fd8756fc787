"""Websocket fan-out: the opshub realtime gateway against a bare ``websockets`` broadcast server.

Run from the repository root::

    .venv/bin/python bench/ws_fanout.py                     # 1,000 and 10,000 connections, ~3 min
    .venv/bin/python bench/ws_fanout.py --sizes 1000 --seconds 3

Method
------
* A private redis-server is started. Each server under test runs as its own process:
  - **hub**: ``uvicorn app.main:create_app --factory --ws realtime.server_protocol:LeanWebSocketProtocol
    --ws-per-message-deflate false`` (as in the Procfile),
    the real app; events go through ``realtime.publish`` (Lua: sequence, history, PUBLISH), the hub's
    pub/sub fan-out, per-connection queues and writers. Clients are guards (personal topics
    ``user:{id}`` and ``site:{id}:gate`` are subscribed on connect, as in production) that also
    subscribe to ``site:{id}:slots``, the topic the bench publishes on.
  - **baseline**: this file with ``--role baseline``: ``websockets.asyncio.server.serve`` plus one Redis
    pub/sub subscriber that calls ``websockets.broadcast(server.connections, message)``; the bench
    PUBLISHes frames of the same shape and size to it. No auth, topics, history or back-pressure.
* On a machine with two or more CPUs the server is pinned to CPU 0; Redis, the publisher and the load
  generators share the other CPUs, the same for both servers.
* Load generators (``--role load``, two processes) open raw websocket connections with a minimal
  frame parser on asyncio transports (the ``websockets`` client would cost more CPU than the server
  under test). They count events per frame (the hub may batch several queued events into one frame,
  a JSON array) and, on every 10th connection, the latency of each event: arrival time minus the
  event's ``ts`` (set when it was published, i.e. right after the commit it reports).
* Per size N: memory per connection = (server RSS with N idle connections - RSS after a warm-up with
  none) / N. After 2 s of unmeasured warm-up traffic, events are published at a fixed rate (200/s at
  1,000 connections; 10/s at 10,000) for ``--seconds``: delivered events/s and latency percentiles.
  Then the fan-out rate: the publish rate starts at a quarter of that and doubles step by step; the
  highest *sustained* delivery rate is kept (a step counts when at least 97% of the events expected,
  rate x N x seconds, arrived and no connection was lost). Before each step the bench waits until no
  events arrive any more, so a backlog left by an overloaded step is not counted in the next.
  Ratio = hub fan-out rate / baseline fan-out rate.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from uuid import UUID, uuid4

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from realtime.server_protocol import UVICORN_WS  # noqa: E402

SERVER_CPU = 0
PAYLOAD_PAD = "x" * 120  # brings an event frame to ~330 bytes, a typical slot/visitor update
BASELINE_CHANNEL = "bench:baseline"
_EVENT_MARK = b'"op":"event"'
_TS = re.compile(rb'"ts":([0-9.]+)')


def hub_command(port: int, *, ws: str = UVICORN_WS, extra: Sequence[str] = ()) -> list[str]:
    """The hub's web process as the Procfile runs it: uvicorn with uvloop, httptools, no deflate."""
    return [
        *(sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory", "--port", str(port)),
        *("--loop", "uvloop", "--http", "httptools", "--ws", ws, "--ws-per-message-deflate", "false"),
        *extra,
        *("--backlog", "4096", "--no-access-log", "--log-level", "warning"),
    ]


def raise_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port() -> int:
    from app.devredis import free_port as _free_port

    return _free_port()


def pinning() -> bool:
    return hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2


def process_tree(pid: int) -> list[int]:
    """The server process and its descendants (granian serves from a child process)."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        for children in Path(f"/proc/{current}/task").glob("*/children"):
            pending += [int(child) for child in children.read_text().split()]
    return found


def rss_kib(pid: int) -> int:
    total = 0
    for member in process_tree(pid):
        with open(f"/proc/{member}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def cpu_seconds(pid: int) -> float:
    total = 0
    for member in process_tree(pid):
        with open(f"/proc/{member}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --------------------------------------------------------------------------------------------------
# Load generator: raw websocket clients on asyncio transports
# --------------------------------------------------------------------------------------------------


@dataclass
class LoadStats:
    events: int = 0
    frames: int = 0
    ready: int = 0
    lost: int = 0
    latencies: list[float] = field(default_factory=list)
    close_codes: dict[int, int] = field(default_factory=dict)  # close frames received, by code


def masked_text_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """A client-to-server frame, text unless told (clients must mask; a fixed zero mask is valid and cheap)."""
    header = bytes([0x80 | opcode])
    length = len(payload)
    if length < 126:
        header += bytes([0x80 | length])
    else:
        header += bytes([0x80 | 126]) + length.to_bytes(2, "big")
    return header + b"\x00\x00\x00\x00" + payload


class RawClient(asyncio.Protocol):
    """One websocket connection that counts events; ``probe`` connections also time them."""

    def __init__(
        self, path: str, stats: LoadStats, probe: bool, subscribe: bytes | None, opened: asyncio.Future[None]
    ) -> None:
        self.path = path
        self.opened = opened
        self.stats = stats
        self.probe = probe
        self.subscribe = subscribe
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.open = False
        self.ready = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses
        key = base64.b64encode(os.urandom(16)).decode()
        self.transport.write(
            f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        if not self.open:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buffer
                return
            if not buffer.startswith(b"HTTP/1.1 101"):
                self.stats.lost += 1
                self._opened()
                assert self.transport is not None
                self.transport.close()
                return
            self.open = True
            buffer = buffer[end + 4 :]
            if self.subscribe is None:
                self._ready()
            else:
                assert self.transport is not None
                self.transport.write(masked_text_frame(self.subscribe))
        position, size = 0, len(buffer)
        stats = self.stats
        while size - position >= 2:
            opcode = buffer[position] & 0x0F
            length = buffer[position + 1] & 0x7F
            start = position + 2
            if length == 126:
                if size - position < 4:
                    break
                length = int.from_bytes(buffer[position + 2 : position + 4], "big")
                start = position + 4
            elif length == 127:
                if size - position < 10:
                    break
                length = int.from_bytes(buffer[position + 2 : position + 10], "big")
                start = position + 10
            end = start + length
            if end > size:
                break
            payload = buffer[start:end]
            position = end
            if opcode == 1:
                stats.frames += 1
                count = payload.count(_EVENT_MARK)
                if count:
                    stats.events += count
                    if self.probe:
                        now = time.time()
                        stats.latencies.extend(now - float(ts) for ts in _TS.findall(payload))
                elif not self.ready and b'"subscribed"' in payload and b':slots"' in payload:
                    self._ready()
                if b'{"op":"ping"}' in payload:  # alone, or joined with events into one frame
                    assert self.transport is not None
                    self.transport.write(masked_text_frame(b'{"op":"pong"}'))
            elif opcode == 9:  # the server's protocol-level keepalive ping: answer it, as any client does
                assert self.transport is not None
                self.transport.write(masked_text_frame(payload, opcode=0xA))
            elif opcode == 8:
                stats.lost += 1
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                stats.close_codes[code] = stats.close_codes.get(code, 0) + 1
        self.buffer = buffer[position:]

    def _ready(self) -> None:
        self.ready = True
        self.stats.ready += 1
        self._opened()

    def _opened(self) -> None:
        if not self.opened.done():
            self.opened.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.open:
            self.stats.lost += 1
        self._opened()


async def run_load(args: argparse.Namespace) -> None:
    """``--role load``: open the connections, then answer ``measure <s>`` / ``quit`` lines on stdin."""
    raise_fd_limit()
    stats = LoadStats()
    loop = asyncio.get_running_loop()
    paths: list[str] = []
    subscribe = None
    if args.kind == "hub":
        from app.auth.roles import Role
        from app.auth.tokens import issue_access_token
        from app.config import load_settings

        settings = load_settings()
        site_id = UUID(args.site)
        subscribe = json.dumps({"op": "subscribe", "topic": f"site:{site_id}:slots"}).encode()
        for _ in range(args.connections):
            token, _ = issue_access_token(settings, person_id=uuid4(), site_id=site_id, roles=frozenset({Role.GUARD}))
            paths.append(f"/ws?token={token}")
    else:
        paths = ["/"] * args.connections
    # A bounded number of handshakes in flight keeps the server's accept queue sane while connecting.
    gate = asyncio.Semaphore(200)
    transports: list[asyncio.Transport] = []

    async def open_one(index: int) -> None:
        async with gate:
            opened: asyncio.Future[None] = loop.create_future()
            transport, _ = await loop.create_connection(
                lambda: RawClient(paths[index], stats, index % 10 == 0, subscribe, opened), "127.0.0.1", args.port
            )
            transports.append(transport)
            await asyncio.wait_for(opened, 60)

    started = time.monotonic()
    await asyncio.gather(*(open_one(i) for i in range(args.connections)), return_exceptions=True)
    report({"ready": stats.ready, "lost": stats.lost, "seconds": round(time.monotonic() - started, 2)})
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode().strip():
        if line == "quit":
            break
        seconds = float(line.split()[1])
        stats.events, stats.frames, stats.latencies, lost_before = 0, 0, [], stats.lost
        cpu_before = time.process_time()
        await asyncio.sleep(seconds)
        report(
            {
                "events": stats.events,
                "frames": stats.frames,
                "lost": stats.lost - lost_before,
                "close_codes": {str(code): n for code, n in stats.close_codes.items()},
                "cpu": round(time.process_time() - cpu_before, 3),
                "latencies": [round(x, 6) for x in stats.latencies],
            }
        )
        # Let the tail of this step drain before the next one starts counting.
    for transport in transports:
        transport.abort()


def report(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


# --------------------------------------------------------------------------------------------------
# Baseline server: bare websockets + Redis pub/sub + broadcast()
# --------------------------------------------------------------------------------------------------


async def run_baseline(args: argparse.Namespace) -> None:
    """``--role baseline``: every message on the Redis channel is broadcast to every connection."""
    import redis.asyncio as aioredis
    from websockets.asyncio.server import ServerConnection, broadcast, serve

    raise_fd_limit()

    async def handler(connection: ServerConnection) -> None:
        await connection.wait_closed()

    redis = aioredis.Redis.from_url(args.redis)
    pubsub = redis.pubsub()
    await pubsub.subscribe(BASELINE_CHANNEL)
    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
    async with serve(handler, "127.0.0.1", args.port, compression=None, ping_interval=None, backlog=4096) as server:

        async def forward() -> None:
            async for message in pubsub.listen():
                if message["type"] == "message":
                    broadcast(server.connections, message["data"].decode())

        task = asyncio.create_task(forward())
        await stop
        task.cancel()


# --------------------------------------------------------------------------------------------------
# Orchestration
# --------------------------------------------------------------------------------------------------


@dataclass
class Result:
    server: str
    connections: int
    connect_seconds: float = 0.0
    ready: int = 0
    kib_per_connection: float = 0.0
    fixed_rate: float = 0.0
    fixed_delivered: float = 0.0
    fixed_expected: float = 0.0
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    fanout: float = 0.0
    fanout_rate: float = 0.0
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    drained: float = 0.0  # seconds spent waiting for backlogs to drain between steps
    steps: list[str] = field(default_factory=list)


class Loader:
    def __init__(self, kind: str, port: int, connections: int, site: str, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--role",
                "load",
                "--kind",
                kind,
                "--port",
                str(port),
                "--connections",
                str(connections),
                "--site",
                site,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=ROOT,
            env=env,
            text=True,
        )

    def read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("load generator exited")
        result: dict[str, Any] = json.loads(line)
        return result

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                self.send("quit")
                self.process.wait(timeout=10)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.process.kill()


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="opshub-wsbench-"))
        self.site = str(uuid4())
        self.pin = pinning()
        self.env: dict[str, str] = {}

    def start_server(self, kind: str, port: int, redis_url: str) -> subprocess.Popen[bytes]:
        if kind == "hub" and self.args.hub_server == "granian":
            command = [
                str(Path(sys.executable).parent / "granian"),
                "--interface",
                "asgi",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--loop",
                "uvloop",
                "--runtime-mode",
                "st",
                "--backlog",
                "4096",
                "--no-access-log",
                "--log-level",
                "warning",
                "app.main:create_app",
            ]
        elif kind == "hub":
            # The gateway's own heartbeat is used (and tuned out below), not uvicorn's pings.
            command = hub_command(port, ws=self.args.hub_ws, extra=("--ws-ping-interval", "0"))
        else:
            command = [sys.executable, __file__, "--role", "baseline", "--port", str(port), "--redis", redis_url]

        def prepare() -> None:
            raise_fd_limit()
            if self.pin:
                os.sched_setaffinity(0, {SERVER_CPU})

        process = subprocess.Popen(command, cwd=ROOT, env=self.env, preexec_fn=prepare)
        deadline = time.monotonic() + 30
        import socket

        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return process
            except OSError:
                time.sleep(0.1)
        process.kill()
        raise RuntimeError(f"{kind} server did not start")

    async def run_one(self, kind: str, size: int, redis_url: str) -> Result:
        import redis.asyncio as aioredis

        from app.config import load_settings
        from realtime.publish import Publisher

        result = Result(server=kind, connections=size)
        port = free_port()
        server = self.start_server(kind, port, redis_url)
        redis = aioredis.Redis.from_url(redis_url)
        publisher = Publisher(redis, load_settings()) if kind == "hub" else None
        loaders: list[Loader] = []
        try:
            # Warm-up: a few connections so lazily built state exists before the baseline RSS.
            warm = Loader(kind, port, 10, self.site, self.env)
            warm.read()
            warm.stop()
            await asyncio.sleep(1.0)
            rss_before = rss_kib(server.pid)
            started = time.monotonic()
            per_loader = [size // 2, size - size // 2]
            loaders = [Loader(kind, port, n, self.site, self.env) for n in per_loader]
            ready = [loader.read() for loader in loaders]
            result.connect_seconds = round(time.monotonic() - started, 1)
            result.ready = sum(r["ready"] for r in ready)
            await asyncio.sleep(2.0)
            result.kib_per_connection = (rss_kib(server.pid) - rss_before) / max(1, result.ready)

            async def publish_at(rate: float, seconds: float) -> int:
                """Publish at a fixed rate; returns how many were published."""
                sent = 0
                interval = 1.0 / rate
                begin = asyncio.get_running_loop().time()
                while (elapsed := asyncio.get_running_loop().time() - begin) < seconds:
                    due = int(elapsed / interval) + 1
                    while sent < due:
                        data = {"slot": f"P1-{sent % 500:03d}", "free": sent % 97, "of": 120, "pad": PAYLOAD_PAD}
                        if publisher is not None:
                            await publisher.publish(f"site:{self.site}:slots", "slot.availability_changed", data)
                        else:
                            frame = json.dumps(
                                {
                                    "op": "event",
                                    "topic": f"site:{self.site}:slots",
                                    "epoch": "0123456789abcdef",
                                    "seq": sent + 1,
                                    "type": "slot.availability_changed",
                                    "ts": time.time(),
                                    "data": data,
                                },
                                separators=(",", ":"),
                            )
                            await redis.publish(BASELINE_CHANNEL, frame)
                        sent += 1
                    await asyncio.sleep(min(interval, 0.002))
                return sent

            async def measured(rate: float, seconds: float) -> tuple[int, list[dict[str, Any]], float]:
                for loader in loaders:
                    loader.send(f"measure {seconds + 0.5}")
                cpu_before = cpu_seconds(server.pid)
                published = await publish_at(rate, seconds)
                await asyncio.sleep(0.5)  # in-flight events still count
                reports = [await asyncio.to_thread(loader.read) for loader in loaders]
                return published, reports, cpu_seconds(server.pid) - cpu_before

            async def drain() -> float:
                """Wait until no more events arrive, so a backlog is not counted in the next step."""
                started = time.monotonic()
                while time.monotonic() - started < 20:
                    for loader in loaders:
                        loader.send("measure 0.5")
                    reports = [await asyncio.to_thread(loader.read) for loader in loaders]
                    if sum(r["events"] for r in reports) == 0:
                        break
                return time.monotonic() - started

            seconds = self.args.seconds
            rate = 200.0 if size <= 1000 else 10.0
            # Warm-up, not measured: the first traffic after a connection surge triggers a full
            # garbage collection (all the new connections' objects are scanned once).
            await measured(rate, 2.0)
            result.drained += await drain()
            published, reports, server_cpu = await measured(rate, seconds)
            latencies = [x for r in reports for x in r["latencies"]]
            delivered = sum(r["events"] for r in reports)
            result.fixed_rate = rate
            result.fixed_expected = published * result.ready / (seconds + 0.5)
            result.fixed_delivered = delivered / (seconds + 0.5)
            result.p50_ms = percentile(latencies, 0.50) * 1000
            result.p99_ms = percentile(latencies, 0.99) * 1000
            result.server_cpu = server_cpu / (seconds + 0.5)
            result.client_cpu = sum(r["cpu"] for r in reports) / (seconds + 0.5)

            # Fan-out rate: double the publish rate from rate/4 until delivery no longer keeps up.
            step_rate = rate / 4
            for _ in range(self.args.steps):
                result.drained += await drain()
                published, reports, server_cpu = await measured(step_rate, self.args.step_seconds)
                delivered = sum(r["events"] for r in reports)
                lost = sum(r["lost"] for r in reports)
                expected = published * result.ready
                per_second = delivered / (self.args.step_seconds + 0.5)
                ok = delivered >= 0.97 * expected and lost == 0
                step_latencies = [x for r in reports for x in r["latencies"]]
                result.steps.append(
                    f"{step_rate:g}/s: {per_second:,.0f} ev/s ({delivered / max(1, expected):.0%}, lost {lost},"
                    f" p99 {percentile(step_latencies, 0.99) * 1000:.0f} ms)"
                )
                if not ok:
                    break
                result.fanout, result.fanout_rate = per_second, step_rate
                step_rate *= 2
        finally:
            for loader in loaders:
                loader.stop()
            await redis.aclose()
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
        return result

    async def run(self) -> list[Result]:
        from app.devredis import PrivateRedis

        raise_fd_limit()
        redis_server = PrivateRedis(self.tmp / "redis")
        redis_url = redis_server.start()
        self.env = {
            **os.environ,
            "OPSHUB_ENV": "dev",
            "REDIS_URL": redis_url,
            "DATABASE_URL": f"sqlite:///{self.tmp / 'bench.sqlite'}",
            "OPSHUB_VAR_DIR": str(self.tmp / "var"),
            "OPSHUB_REDIS_PREFIX": "wsbench:",
            # Bench clients are raw sockets that do not answer pings: keep them from being reaped.
            "OPSHUB_RT_HEARTBEAT_SECONDS": "600",
            "OPSHUB_RT_IDLE_TIMEOUT_SECONDS": "3600",
            "OPSHUB_RT_HISTORY_MAX_LEN": "1000",
        }
        os.environ.update({k: self.env[k] for k in ("REDIS_URL", "DATABASE_URL", "OPSHUB_REDIS_PREFIX")})
        if self.pin:
            os.sched_setaffinity(0, set(range(os.cpu_count() or 2)) - {SERVER_CPU})
        results = []
        try:
            for size in self.args.sizes:
                for kind in ("hub", "baseline"):
                    print(f"... {kind}, {size:,} connections", file=sys.stderr, flush=True)
                    results.append(await self.run_one(kind, size, redis_url))
        finally:
            redis_server.stop()
            shutil.rmtree(self.tmp, ignore_errors=True)
        return results


def render(results: Sequence[Result], pinned: bool, elapsed: float, load: float) -> str:
    lines = [
        f"opshub realtime fan-out: {os.cpu_count()} CPUs, server {'pinned to CPU 0' if pinned else 'not pinned'},"
        f" load average before the run {load:.2f}, run took {elapsed:.0f} s",
        "",
        "| server | conns | connect s | KiB/conn | fixed rate | delivered ev/s | p50 ms | p99 ms"
        " | server CPU | fan-out ev/s (at publish rate) | vs baseline |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    baseline = {r.connections: r.fanout for r in results if r.server == "baseline"}
    for r in results:
        ratio = r.fanout / baseline[r.connections] if baseline.get(r.connections) else float("nan")
        lines.append(
            f"| {r.server} | {r.ready:,} | {r.connect_seconds:.1f} | {r.kib_per_connection:.1f} | {r.fixed_rate:g}/s"
            f" | {r.fixed_delivered:,.0f} of {r.fixed_expected:,.0f} | {r.p50_ms:.1f} | {r.p99_ms:.1f}"
            f" | {r.server_cpu:.0%} | {r.fanout:,.0f} ({r.fanout_rate:g}/s) | {ratio:.0%} |"
        )
    lines.append("")
    for r in results:
        lines.append(f"- {r.server} {r.connections:,} fan-out steps: " + "; ".join(r.steps))
        lines.append(
            f"  load generators' CPU during the fixed-rate step: {r.client_cpu:.0%} of one core;"
            f" waited {r.drained:.1f} s for backlogs to drain between steps"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--role", choices=["bench", "load", "baseline"], default="bench")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--seconds", type=float, default=5.0, help="fixed-rate measurement")
    parser.add_argument("--step-seconds", type=float, default=3.0, help="each fan-out step")
    parser.add_argument("--steps", type=int, default=6, help="fan-out rate doublings to try")
    parser.add_argument(
        "--hub-ws",
        default=UVICORN_WS,
        help="uvicorn --ws for the hub (websockets-sansio for uvicorn's own, which it extends)",
    )
    parser.add_argument(
        "--hub-server", choices=["uvicorn", "granian"], default="uvicorn", help="ASGI server for the hub"
    )
    parser.add_argument("--kind", choices=["hub", "baseline"], default="hub")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--connections", type=int, default=0)
    parser.add_argument("--site", default="")
    parser.add_argument("--redis", default="")
    args = parser.parse_args(argv)
    if args.role in ("load", "baseline"):
        import uvloop  # the hub runs on uvloop too

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(run_load(args) if args.role == "load" else run_baseline(args))
        return 0
    started = time.monotonic()
    load = os.getloadavg()[0]  # other work on the machine skews every figure: check it is near 0
    bench = Bench(args)
    results = asyncio.run(bench.run())
    print(render(results, bench.pin, time.monotonic() - started, load))
    return 0


if __name__ == "__main__":
    sys.exit(main())
