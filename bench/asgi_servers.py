"""Benchmark ASGI servers for opshub: uvicorn (uvloop+httptools), uvicorn (asyncio+h11), granian.

Run from the repository root::

    .venv/bin/python bench/asgi_servers.py            # ~70 s on a 2-core machine
    .venv/bin/python bench/asgi_servers.py --warmup 5 --duration 10   # ~2 min

Method
------
* The Litestar app under test is defined in this module (``app``) and handed to every server as the
  import string ``bench.asgi_servers:app``; the servers run as subprocesses on free loopback ports.
* Every server gets exactly one worker process.  On a machine with >= 2 CPUs the server process tree is
  pinned to CPU 0 and the load generator (this process) to CPU 1, so neither steals the other's core.
* The load generator is a closed loop: ``--connections`` HTTP/1.1 keep-alive connections, one request in
  flight each, driven by raw ``asyncio.Protocol`` transports on uvloop with a hand-written request
  writer and a minimal response reader (status line + ``Content-Length``).  Every response body is
  compared byte-for-byte with the expected body; a mismatch, an unexpected status or a dropped
  connection counts as an error.  Responses completing during the warm-up are not measured.
* After each route's load the server's RSS (sum of ``VmRSS`` over its process tree) is read from
  ``/proc``, and the CPU used by the server tree and by the client during the measured window is
  reported.  A client CPU close to 100 % would mean the client, not the server, is the bottleneck.
* Finally a websocket echo round-trip check (Litestar ``websocket_listener``) runs against each server.
* Ratios are taken against ``uvicorn-h11`` measured in the same run.  The winner is chosen among servers
  with zero errors and a working websocket echo: highest geometric mean over the routes of requests per
  server CPU-second (equal to req/s when the server had its core to itself, and robust to another
  process stealing it); scores within 5 % of the best are a tie, broken by the lowest p99.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TypeVar, cast

import msgspec
from litestar import Litestar, get, post, websocket_listener
from litestar.params import JSONBody

T = TypeVar("T")

# --------------------------------------------------------------------------------------------------
# The app under test (imported by the servers as ``bench.asgi_servers:app``)
# --------------------------------------------------------------------------------------------------


class Health(msgspec.Struct):
    status: str
    service: str
    version: str
    checks: dict[str, str]


class SensorReading(msgspec.Struct):
    site_id: str
    building: str
    unit: str
    sensor_id: str
    kind: str
    ts: int
    values: list[float]
    tags: dict[str, str]
    note: str


HEALTH = Health(status="ok", service="opshub", version="0.1.0", checks={"db": "ok", "redis": "ok", "queue": "ok"})


def sample_reading() -> SensorReading:
    """A ~1 KB sensor reading, the typical shape of an opshub POST body."""
    return SensorReading(
        site_id="site-7f3a9c2e-residential-north",
        building="B-12",
        unit="12-0407",
        sensor_id="tmp-hum-0042-a1b2c3d4",
        kind="environment",
        ts=1_795_305_600_000,
        values=[round(20.0 + i * 0.173, 3) for i in range(64)],
        tags={f"tag{i:02d}": f"value-{i:02d}-abcdef" for i in range(12)},
        note="Periodic reading from the hallway sensor; forwarded by gateway gw-03 after buffering.",
    )


@get("/health", sync_to_thread=False)
def health() -> Health:
    return HEALTH


@post("/echo", sync_to_thread=False)
def echo(data: JSONBody[SensorReading]) -> SensorReading:
    return data


@websocket_listener("/ws")
async def ws_echo(data: str) -> str:
    return data


app = Litestar(route_handlers=[health, echo, ws_echo], debug=False, logging_config=None)


# --------------------------------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------------------------------

REPO_ROOT = Path(__file__).resolve().parent.parent
APP_TARGET = "bench.asgi_servers:app"
BASELINE = "uvicorn-h11"
TIE_MARGIN = 0.05
SERVER_CPU = 0
CLIENT_CPU = 1


@dataclass(frozen=True)
class ServerSpec:
    name: str
    build: Callable[[int], list[str]]


def _venv_bin(tool: str) -> str:
    candidate = Path(sys.executable).parent / tool
    return str(candidate) if candidate.exists() else tool


def _uvicorn(loop: str, http: str) -> Callable[[int], list[str]]:
    def build(port: int) -> list[str]:
        return [
            _venv_bin("uvicorn"),
            APP_TARGET,
            "--host=127.0.0.1",
            f"--port={port}",
            "--workers=1",
            f"--loop={loop}",
            f"--http={http}",
            "--no-access-log",
            "--log-level=warning",
        ]

    return build


def _granian(extra: Sequence[str]) -> Callable[[int], list[str]]:
    def build(port: int) -> list[str]:
        return [
            _venv_bin("granian"),
            APP_TARGET,
            "--interface=asgi",
            "--host=127.0.0.1",
            f"--port={port}",
            "--workers=1",
            f"--working-dir={REPO_ROOT}",
            "--log-level=warning",
            *extra,
        ]

    return build


SERVERS: list[ServerSpec] = [
    ServerSpec(BASELINE, _uvicorn("asyncio", "h11")),
    ServerSpec("uvicorn-uvloop-httptools", _uvicorn("uvloop", "httptools")),
    ServerSpec("granian", _granian([])),
    ServerSpec("granian-uvloop", _granian(["--loop=uvloop"])),
]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def pinning_enabled() -> bool:
    cpus = os.sched_getaffinity(0)
    return SERVER_CPU in cpus and CLIENT_CPU in cpus


def _pin_to_server_cpu() -> None:
    os.sched_setaffinity(0, {SERVER_CPU})


@dataclass
class RunningServer:
    spec: ServerSpec
    port: int
    proc: subprocess.Popen[bytes]
    log: IO[bytes]

    def stop(self) -> None:
        if self.proc.poll() is None:
            # The server runs in its own session (start_new_session=True): signal exactly that group.
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.log.close()

    def log_tail(self, limit: int = 2000) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-limit:]


def start_server(spec: ServerSpec, pin: bool) -> RunningServer:
    port = free_port()
    log = tempfile.TemporaryFile()  # noqa: SIM115 - owned by RunningServer, closed in stop()
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        spec.build(port),
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_pin_to_server_cpu if pin else None,
    )
    return RunningServer(spec, port, proc, log)


def http_once(port: int, request: bytes, timeout: float = 2.0) -> tuple[int, bytes]:
    """One blocking HTTP/1.1 exchange, used for readiness and correctness checks."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        buf = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed before a full response")
            buf += chunk
            parsed = parse_response(buf)
            if parsed is not None:
                status, body, _ = parsed
                return status, body


def wait_ready(server: RunningServer, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    request = build_request("GET", "/health", b"")
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.spec.name} exited early:\n{server.log_tail()}")
        try:
            status, _ = http_once(server.port, request, timeout=1.0)
        except OSError:
            time.sleep(0.1)
            continue
        if status == 200:
            return
        time.sleep(0.1)
    raise TimeoutError(f"{server.spec.name} not ready after {timeout:.0f}s:\n{server.log_tail()}")


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(entry))
    return children


def process_tree(root: int) -> list[int]:
    children = _children_map()
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def rss_kib(pids: Sequence[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: Sequence[int]) -> float:
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])  # utime + stime (fields 14 and 15 of stat)
    return total / CLK_TCK


def self_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --------------------------------------------------------------------------------------------------
# Load generator: raw keep-alive HTTP/1.1 over asyncio.Protocol
# --------------------------------------------------------------------------------------------------


def build_request(method: str, path: str, body: bytes) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    if method != "GET":
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def parse_response(buf: bytes) -> tuple[int, bytes, int] | None:
    """Return (status, body, consumed bytes) once ``buf`` holds a full response, else None.

    Only ``Content-Length`` framing is supported; both routes answer with it on every server.
    """
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = buf[:end].lower()
    status = int(head[9:12])
    pos = head.find(b"\r\ncontent-length:")
    if pos < 0:
        raise ValueError("response without Content-Length")
    eol = head.find(b"\r\n", pos + 2)
    length = int(head[pos + 17 : eol if eol >= 0 else len(head)])
    total = end + 4 + length
    if len(buf) < total:
        return None
    return status, buf[end + 4 : total], total


@dataclass(frozen=True)
class Route:
    name: str
    request: bytes
    status: int
    body: bytes


@dataclass
class LoadStats:
    measure_from: float
    measure_to: float
    latencies_ns: list[int] = field(default_factory=list)
    errors: int = 0
    stopping: bool = False


class KeepAliveClient(asyncio.Protocol):
    """One connection, one request in flight; sends the next request as soon as a response completes."""

    def __init__(self, route: Route, stats: LoadStats, on_lost: Callable[[bool], None]) -> None:
        self.route = route
        self.stats = stats
        self.on_lost = on_lost
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.sent_at = 0
        self.failed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's TCPTransport is not a subclass
        self._send()

    def _send(self) -> None:
        assert self.transport is not None
        self.sent_at = time.perf_counter_ns()
        self.transport.write(self.route.request)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        try:
            parsed = parse_response(self.buf)
        except ValueError:
            self._fail()
            return
        if parsed is None:
            return
        now = time.perf_counter_ns()
        status, body, consumed = parsed
        self.buf = self.buf[consumed:]
        stats = self.stats
        if status != self.route.status or body != self.route.body or self.buf:
            self._fail()
            return
        if stats.measure_from <= now < stats.measure_to:
            stats.latencies_ns.append(now - self.sent_at)
        if not stats.stopping:
            self._send()

    def _fail(self) -> None:
        self.stats.errors += 1
        self.failed = True
        if self.transport is not None:
            self.transport.abort()  # connection_lost() reconnects

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.stats.stopping:
            self.on_lost(self.failed)


@dataclass
class LoadResult:
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    server_cpu_pct: float
    client_cpu_pct: float


def percentile(sorted_values: Sequence[int], q: float) -> float:
    if not sorted_values:
        return math.nan
    index = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return float(sorted_values[index])


async def run_load(
    port: int, route: Route, connections: int, warmup: float, duration: float, server_pids: Sequence[int]
) -> LoadResult:
    loop = asyncio.get_running_loop()
    stats = LoadStats(measure_from=math.inf, measure_to=math.inf)
    transports: list[asyncio.Transport] = []
    pending: set[asyncio.Task[None]] = set()

    async def connect() -> None:
        try:
            transport, _ = await loop.create_connection(
                lambda: KeepAliveClient(route, stats, reconnect), "127.0.0.1", port
            )
        except OSError:
            stats.errors += 1
            return
        transports.append(transport)

    def reconnect(already_counted: bool) -> None:
        if not already_counted:
            stats.errors += 1  # the server closed a keep-alive connection
        if not stats.stopping:
            task = loop.create_task(connect())
            pending.add(task)
            task.add_done_callback(pending.discard)

    await asyncio.gather(*(connect() for _ in range(connections)))
    start = time.perf_counter_ns()
    stats.measure_from = start + int(warmup * 1e9)
    stats.measure_to = stats.measure_from + int(duration * 1e9)
    await asyncio.sleep(warmup)
    cpu_srv0, cpu_cli0, wall0 = cpu_seconds(server_pids), self_cpu_seconds(), time.perf_counter()
    await asyncio.sleep(duration)
    cpu_srv1, cpu_cli1, wall1 = cpu_seconds(server_pids), self_cpu_seconds(), time.perf_counter()
    # Let responses that straddle the window boundary land (they are not counted), then stop.
    await asyncio.sleep(max(0.0, (stats.measure_to - time.perf_counter_ns()) / 1e9))
    stats.stopping = True
    for transport in transports:
        transport.abort()
    for task in list(pending):
        task.cancel()
    await asyncio.sleep(0.05)

    lat = sorted(stats.latencies_ns)
    wall = wall1 - wall0
    return LoadResult(
        requests=len(lat),
        rps=len(lat) / duration,
        p50_ms=percentile(lat, 0.50) / 1e6,
        p99_ms=percentile(lat, 0.99) / 1e6,
        errors=stats.errors,
        server_cpu_pct=100 * (cpu_srv1 - cpu_srv0) / wall,
        client_cpu_pct=100 * (cpu_cli1 - cpu_cli0) / wall,
    )


async def websocket_check(port: int, warmup: int = 200, messages: int = 2000) -> tuple[bool, float]:
    """Echo text frames over one websocket; returns (all echoed correctly, measured round-trips/s).

    A functional check (ASGI websocket support through Litestar), not a load test: one connection,
    one frame in flight.
    """
    from websockets.asyncio.client import connect

    try:
        async with asyncio.timeout(15), connect(f"ws://127.0.0.1:{port}/ws", compression=None) as ws:
            started = time.perf_counter()
            for i in range(warmup + messages):
                if i == warmup:
                    started = time.perf_counter()
                payload = f"ping-{i}-" + "x" * 200
                await ws.send(payload)
                if await ws.recv() != payload:
                    return False, 0.0
            return True, messages / (time.perf_counter() - started)
    except Exception as exc:  # any failure (refused upgrade, timeout, protocol error) fails the check
        print(f"  websocket check failed: {exc!r}")
        return False, 0.0


# --------------------------------------------------------------------------------------------------
# Orchestration and report
# --------------------------------------------------------------------------------------------------


@dataclass
class Row:
    server: str
    route: str
    result: LoadResult
    rss_mib: float
    procs: int


@dataclass
class ServerOutcome:
    name: str
    rows: list[Row]
    ws_ok: bool
    ws_msgs_per_s: float
    failure: str | None = None


def build_routes() -> list[Route]:
    reading = msgspec.json.encode(sample_reading())
    return [
        Route("GET /health", build_request("GET", "/health", b""), 200, msgspec.json.encode(HEALTH)),
        Route("POST /echo", build_request("POST", "/echo", reading), 201, reading),
    ]


def run_in_client_loop(coro: Coroutine[object, object, T]) -> T:
    """Run the load generator on uvloop when available (cheaper per request than the asyncio loop)."""
    factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:
        pass
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)


def bench_server(spec: ServerSpec, routes: Sequence[Route], args: argparse.Namespace, pin: bool) -> ServerOutcome:
    server = start_server(spec, pin)
    try:
        wait_ready(server)
        for route in routes:
            status, body = http_once(server.port, route.request)
            if (status, body) != (route.status, route.body):
                raise RuntimeError(f"{route.name}: unexpected reply {status} {body[:200]!r}")
        rows: list[Row] = []
        for route in routes:
            pids = process_tree(server.proc.pid)
            result = run_in_client_loop(
                run_load(server.port, route, args.connections, args.warmup, args.duration, pids)
            )
            pids = process_tree(server.proc.pid)
            rows.append(Row(spec.name, route.name, result, rss_kib(pids) / 1024, len(pids)))
            print(
                f"  {spec.name:<26} {route.name:<12} {result.rps:>9.0f} req/s"
                f"  p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms  errors {result.errors}"
                f"  srv CPU {result.server_cpu_pct:3.0f}%  client CPU {result.client_cpu_pct:3.0f}%",
                flush=True,
            )
        ws_ok, ws_rate = run_in_client_loop(websocket_check(server.port))
        print(f"  {spec.name:<26} websocket echo: {'ok' if ws_ok else 'FAILED'} ({ws_rate:.0f} msg/s)")
        return ServerOutcome(spec.name, rows, ws_ok, ws_rate)
    except Exception as exc:  # keep benchmarking the other servers
        print(f"  {spec.name}: FAILED: {exc}", flush=True)
        return ServerOutcome(spec.name, [], False, 0.0, failure=str(exc))
    finally:
        server.stop()


def _ratio(value: float, base: float | None) -> str:
    if base is None or not base or math.isnan(value) or math.isnan(base):
        return "   n/a"
    return f"{value / base:5.2f}x"


def geomean(values: Sequence[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values and min(values) > 0 else 0.0


def per_cpu(result: LoadResult) -> float:
    """Requests per CPU-second consumed by the server tree: robust to another process stealing its core."""
    return result.rps / (result.server_cpu_pct / 100) if result.server_cpu_pct > 0 else 0.0


def print_report(outcomes: Sequence[ServerOutcome], pinned: bool) -> str | None:
    rows = [row for outcome in outcomes for row in outcome.rows]
    base = {row.route: row for row in rows if row.server == BASELINE}
    header = (
        f"{'server':<26} {'route':<12} {'req/s':>7} {'vs h11':>6} {'p50 ms':>7} {'vs h11':>6} "
        f"{'p99 ms':>7} {'vs h11':>6} {'errors':>6} {'RSS MiB':>7} {'vs h11':>6} {'procs':>5} "
        f"{'srvCPU':>7} {'cliCPU':>6} {'req/CPU-s':>9} {'vs h11':>6}"
    )
    print()
    print(f"Results (ratios are value / {BASELINE} on the same route in this run; RSS = server process tree)")
    print(header)
    print("-" * len(header))
    starved = False
    for row in rows:
        r, b = row.result, base.get(row.route)
        br = b.result if b else None
        flag = " "
        if pinned and r.server_cpu_pct < 90:
            flag, starved = "!", True
        print(
            f"{row.server:<26} {row.route:<12} {r.rps:>7.0f} {_ratio(r.rps, br.rps if br else None):>6} "
            f"{r.p50_ms:>7.2f} {_ratio(r.p50_ms, br.p50_ms if br else None):>6} "
            f"{r.p99_ms:>7.2f} {_ratio(r.p99_ms, br.p99_ms if br else None):>6} {r.errors:>6} "
            f"{row.rss_mib:>7.1f} {_ratio(row.rss_mib, b.rss_mib if b else None):>6} {row.procs:>5} "
            f"{r.server_cpu_pct:>5.0f}%{flag} {r.client_cpu_pct:>5.0f}% "
            f"{per_cpu(r):>9.0f} {_ratio(per_cpu(r), per_cpu(br) if br else None):>6}"
        )
    if starved:
        print("! the server got <90% of its pinned core: another process competed for it; compare req/CPU-s")
    if any(row.result.client_cpu_pct > 90 for row in rows):
        print("warning: the client used >90% of its core on some runs; those figures may be client-bound")
    print()
    for outcome in outcomes:
        ws = f"ok, {outcome.ws_msgs_per_s:.0f} msg/s round-trip" if outcome.ws_ok else "FAILED"
        failure = f"  ({outcome.failure})" if outcome.failure else ""
        print(f"websocket echo  {outcome.name:<26} {ws}{failure}")

    # Winner, among servers with zero errors and a working websocket echo: the highest throughput score
    # (geometric mean over the routes of requests per server CPU-second, which equals req/s when the
    # server had its core to itself); scores within TIE_MARGIN of the best are a tie (run-to-run noise is
    # a few %), broken by the lower tail latency (geometric mean of p99 over the routes).
    eligible = [
        outcome
        for outcome in outcomes
        if not outcome.failure
        and outcome.ws_ok
        and outcome.rows
        and not any(row.result.errors or not row.result.requests for row in outcome.rows)
    ]
    if not eligible:
        print("\nno winner: every server failed a check")
        return None
    score = {o.name: geomean([per_cpu(row.result) for row in o.rows]) for o in eligible}
    rps = {o.name: geomean([row.result.rps for row in o.rows]) for o in eligible}
    p99 = {o.name: geomean([row.result.p99_ms for row in o.rows]) for o in eligible}
    ranking = sorted(score, key=lambda name: score[name], reverse=True)
    print("\nthroughput score = geometric mean over the routes (req/CPU-s; req/s; p99)")
    for name in ranking:
        print(
            f"  {name:<26} {score[name]:8.0f} req/CPU-s {_ratio(score[name], score.get(BASELINE))}"
            f"  {rps[name]:8.0f} req/s {_ratio(rps[name], rps.get(BASELINE))}  p99 {p99[name]:6.1f} ms"
        )
    best = score[ranking[0]]
    tied = [name for name in ranking if score[name] >= best * (1 - TIE_MARGIN)]
    winner = min(tied, key=lambda name: p99[name])
    if len(tied) > 1:
        print(f"throughput tie (within {TIE_MARGIN:.0%}): {', '.join(tied)}; the lowest p99 wins")
    print(f"\nWINNER: {winner}")
    return winner


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    parts = [f"python {sys.version.split()[0]}"]
    for dist in (
        "litestar",
        "msgspec",
        "uvicorn",
        "uvloop",
        "httptools",
        "h11",
        "granian",
        "rloop",
        "websockets",
    ):
        try:
            parts.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            parts.append(f"{dist} missing")
    return ", ".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=64, help="concurrent keep-alive connections")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of unmeasured load per route")
    parser.add_argument("--duration", type=float, default=6.0, help="measured seconds per route")
    parser.add_argument(
        "--servers", nargs="*", default=[spec.name for spec in SERVERS], choices=[s.name for s in SERVERS]
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin server and client to separate CPUs")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    pin = pinning_enabled() and not args.no_pin
    if pin:
        os.sched_setaffinity(0, {CLIENT_CPU})
    print(_versions())
    pinning = f"server->cpu{SERVER_CPU} client->cpu{CLIENT_CPU}" if pin else "off"
    print(
        f"cpus={os.cpu_count()} pinning={pinning}"
        f" connections={args.connections} warmup={args.warmup}s duration={args.duration}s per route",
        flush=True,
    )
    routes = build_routes()
    print(f"POST /echo body: {len(routes[1].body)} bytes; GET /health body: {len(routes[0].body)} bytes")
    outcomes = [bench_server(spec, routes, args, pin) for spec in SERVERS if spec.name in args.servers]
    winner = print_report(outcomes, pin)
    print(f"total time {time.perf_counter() - started:.0f}s")
    return 0 if winner else 1


if __name__ == "__main__":
    sys.exit(main())
