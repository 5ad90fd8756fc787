"""Gate latency: a guard's walk-in request to the occupants' websockets, and an occupant's answer
to the guard's websocket, with many connected clients.

Run from the repository root::

    .venv/bin/python bench/gate.py                       # 1,000 connected clients, 200 rounds
    .venv/bin/python bench/gate.py --clients 200 --rounds 50

Method
------
* A private redis-server and a fresh SQLite database (migrated by ``app.launcher migrate``, as the
  release step does); the real app under ``uvicorn app.main:create_app --factory`` (uvloop, httptools,
  the lean websocket protocol, no per-message deflate) as its own process, as in production.
* One site: ``--clients`` websocket connections in total. One is the measuring guard console
  (``gate=main``); 10% are other guards and staff (they receive every gate event too); the rest are
  occupants, two per unit. ``--targets`` units have their two occupants' connections parsed and timed;
  every other connection is drained by a reader that only counts frames (a slow reader would be cut
  off by the gateway and skew nothing but itself).
* Each round: the guard POSTs a walk-in (multipart, as a console does) for a target unit; **request ->
  occupant** is the time from just before that POST to the arrival of ``visitor.approval_requested``
  on each of the unit's two occupant connections. Then one occupant POSTs ``approved``; **answer ->
  guard** is the time from just before that POST to the arrival of ``visitor.approval_resolved`` on
  the guard's connection. Rounds run one after another, with keep-alive HTTP connections.
* Baseline, in the same run: each round also times ``GET /ready`` on the same server and
  connections, the floor that any request -> websocket path sits on.
* The load generator and the server share the machine (2 cores here); no worker runs, so the
  push notifications created by each walk-in wait in the queue and cost the server nothing more.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.ws_fanout import free_port, hub_command, percentile, raise_fd_limit  # noqa: E402


@dataclass
class Site:
    site_id: UUID
    guard_token: str
    staff_tokens: list[str]
    # unit id -> the tokens of its two occupants
    units: dict[UUID, list[tuple[UUID, str]]]


@dataclass
class Waiter:
    """Futures keyed by (approval id, event type) that a parsing reader resolves with the arrival time."""

    pending: dict[tuple[str, str], asyncio.Future[float]] = field(default_factory=dict)

    def expect(self, approval_id: str, event_type: str) -> asyncio.Future[float]:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.pending[(approval_id, event_type)] = future
        return future

    def seen(self, message: dict[str, Any], now: float) -> None:
        if message.get("op") != "event":
            return
        key = (str(message["data"].get("approval_id")), str(message["type"]))
        future = self.pending.pop(key, None)
        if future is not None and not future.done():
            future.set_result(now)


async def seed(clients: int) -> Site:
    """One site with enough occupants, guards and staff for `clients` connections (runs in this process)."""
    from app.auth.roles import Role
    from app.auth.tokens import issue_access_token
    from app.config import load_settings
    from app.people.directory import directory_for
    from app.people.service import NewPerson, UnitLink, create_people
    from schema.tables import Building, Unit
    from schema.tables import Site as SiteRow

    settings = load_settings()
    unit_count = max(1, (clients - 1 - max(1, clients // 10)) // 2)
    staff_count = max(1, clients - 1 - 2 * unit_count)  # the rest, so the total is exactly `clients`
    site = SiteRow(name="Gate bench", slug=f"gate-bench-{os.getpid()}")
    await site.save()
    building = Building(site=site.id, code="A", name="Tower A")
    await building.save()
    units = [Unit(site=site.id, building=building.id, label=f"A-{1000 + i}", floor=1) for i in range(unit_count)]
    for start in range(0, len(units), 500):
        await Unit.insert(*units[start : start + 500])
    people = [
        NewPerson(
            full_name=f"Occupant {i}",
            roles=frozenset({Role.OCCUPANT}),
            unit_links=[UnitLink(unit_id=units[i // 2].id, relation="owner" if i % 2 == 0 else "tenant")],
        )
        for i in range(unit_count * 2)
    ]
    people += [NewPerson(full_name=f"Guard {i}", roles=frozenset({Role.GUARD})) for i in range(staff_count + 1)]
    ids = await create_people(directory_for(settings), site.id, people)

    def token(person_id: UUID, role: Role) -> str:
        issued, _ = issue_access_token(settings, person_id=person_id, site_id=site.id, roles=frozenset({role}))
        return issued

    by_unit: dict[UUID, list[tuple[UUID, str]]] = {}
    for i in range(unit_count * 2):
        by_unit.setdefault(units[i // 2].id, []).append((ids[i], token(ids[i], Role.OCCUPANT)))
    guards = ids[unit_count * 2 :]
    return Site(
        site_id=site.id,
        guard_token=token(guards[0], Role.GUARD),
        staff_tokens=[token(g, Role.GUARD) for g in guards[1:]],
        units=by_unit,
    )


async def connect(url: str, token: str, gate: str | None = None) -> Any:
    import websockets

    query = f"?token={token}" + (f"&gate={gate}" if gate else "")
    ws = await websockets.connect(url + query, compression=None, max_queue=None, open_timeout=60)
    # welcome, then one "subscribed" per personal topic
    # A frame holds one message or several (a JSON array): the welcome may share its frame with
    # the "subscribed" replies that follow it.
    messages: list[dict[str, Any]] = []
    while not messages or sum(1 for m in messages if m.get("op") == "subscribed") < len(messages[0]["personal_topics"]):
        frame = json.loads(await ws.recv())
        messages += frame if isinstance(frame, list) else [frame]
    return ws


async def drain(ws: Any, counter: list[int]) -> None:
    try:
        async for _ in ws:
            counter[0] += 1
    except Exception:
        return


async def parse(ws: Any, waiter: Waiter) -> None:
    try:
        async for frame in ws:
            now = time.perf_counter()
            decoded = json.loads(frame)
            for message in decoded if isinstance(decoded, list) else [decoded]:
                if message.get("op") == "ping":
                    await ws.send('{"op":"pong"}')
                waiter.seen(message, now)
    except Exception:
        return


async def run_rounds(args: argparse.Namespace, site: Site, http_url: str, ws_url: str) -> dict[str, Any]:
    import httpx

    guard_waiter = Waiter()
    occupant_waiter = EarlyWaiter()
    tasks: list[asyncio.Task[None]] = []
    counter = [0]
    targets = list(site.units)[: args.targets]
    started = time.perf_counter()
    guard = await connect(ws_url, site.guard_token, gate="main")
    tasks.append(asyncio.create_task(parse(guard, guard_waiter)))
    sockets = [guard]
    semaphore = asyncio.Semaphore(64)

    async def open_one(token: str, parsed: bool) -> None:
        async with semaphore:
            ws = await connect(ws_url, token)
        sockets.append(ws)
        tasks.append(asyncio.create_task(parse(ws, occupant_waiter) if parsed else drain(ws, counter)))

    opening = [open_one(token, False) for token in site.staff_tokens]
    for unit_id, occupants in site.units.items():
        opening += [open_one(token, unit_id in targets) for _, token in occupants]
    await asyncio.gather(*opening)
    connect_seconds = time.perf_counter() - started
    to_occupant: list[float] = []
    to_guard: list[float] = []
    baseline: list[float] = []
    guard_headers = {"Authorization": f"Bearer {site.guard_token}"}
    limits = httpx.Limits(max_connections=4, max_keepalive_connections=4)
    async with httpx.AsyncClient(base_url=http_url, limits=limits, timeout=30) as http:
        for round_number in range(args.rounds + args.warmup):
            unit_id = targets[round_number % len(targets)]
            (_, answer_token), _ = site.units[unit_id]
            # Baseline: the cheapest round trip the same server gives under the same connections.
            floor_started = time.perf_counter()
            (await http.get("/ready")).raise_for_status()
            floor = time.perf_counter() - floor_started
            sent = time.perf_counter()
            response = await http.post(
                "/api/visitors/walk-ins",
                files={
                    "unit_id": (None, str(unit_id)),
                    "name": (None, f"Visitor {round_number}"),
                    "gate": (None, "main"),
                },
                headers=guard_headers,
            )
            response.raise_for_status()
            approval_id = response.json()["approval_id"]
            # The event may arrive before the POST's response: the readers record it by approval id.
            arrivals = await wait_both(occupant_waiter, approval_id)
            resolved = guard_waiter.expect(approval_id, "visitor.approval_resolved")
            answered = time.perf_counter()
            reply = await http.post(
                f"/api/visitors/approvals/{approval_id}/answer",
                json={"decision": "approved"},
                headers={"Authorization": f"Bearer {answer_token}"},
            )
            reply.raise_for_status()
            async with asyncio.timeout(10):
                at = await resolved
            if round_number >= args.warmup:
                to_occupant.extend(arrival - sent for arrival in arrivals)
                to_guard.append(at - answered)
                baseline.append(floor)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return {
        "connections": len(sockets),
        "connect_seconds": connect_seconds,
        "to_occupant": to_occupant,
        "to_guard": to_guard,
        "baseline": baseline,
        "background_frames": counter[0],
    }


class EarlyWaiter(Waiter):
    """Also records every approval_requested arrival by approval id, since it may arrive before the
    guard's POST returns (the event is published before the response is written)."""

    def __init__(self) -> None:
        super().__init__()
        self.early: dict[str, list[float]] = {}

    def seen(self, message: dict[str, Any], now: float) -> None:
        if message.get("op") == "event" and message.get("type") == "visitor.approval_requested":
            self.early.setdefault(str(message["data"]["approval_id"]), []).append(now)
            return
        super().seen(message, now)


async def wait_both(waiter: EarlyWaiter, approval_id: str) -> list[float]:
    """The two occupants' arrival times of the request."""
    deadline = time.perf_counter() + 10
    while time.perf_counter() < deadline:
        arrivals = waiter.early.get(approval_id, [])
        if len(arrivals) >= 2:
            del waiter.early[approval_id]
            return arrivals[:2]
        await asyncio.sleep(0.0002)
    raise TimeoutError(f"approval {approval_id} did not reach both occupants")


def prepare(tmp: Path, redis_url: str) -> dict[str, str]:
    """The environment of the web process (and of this one, for seeding), migrated like a release."""
    env = {
        **os.environ,
        "OPSHUB_ENV": "dev",
        "REDIS_URL": redis_url,
        "DATABASE_URL": f"sqlite:///{tmp / 'bench.sqlite'}",
        "OPSHUB_VAR_DIR": str(tmp / "var"),
        "OPSHUB_REDIS_PREFIX": "gatebench:",
        # Drained bench connections do not answer pings: keep them from being reaped.
        "OPSHUB_RT_HEARTBEAT_SECONDS": "600",
        "OPSHUB_RT_IDLE_TIMEOUT_SECONDS": "3600",
    }
    os.environ.update(env)
    subprocess.run([sys.executable, "-m", "app.launcher", "migrate"], cwd=ROOT, env=env, check=True)
    return env


async def bench(args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    site = await seed(args.clients)
    port = free_port()
    server = subprocess.Popen(hub_command(port), cwd=ROOT, env=env)  # noqa: ASYNC220 - returns at once; readiness below
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the web process did not start") from None
                await asyncio.sleep(0.1)
        return await run_rounds(args, site, f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/ws")
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()


def render(result: dict[str, Any], args: argparse.Namespace, elapsed: float, load: float) -> str:
    def ms(values: list[float], q: float) -> str:
        return f"{percentile(values, q / 100) * 1000:.1f}"

    occ, grd, floor = result["to_occupant"], result["to_guard"], result["baseline"]
    return "\n".join(
        [
            f"opshub gate latency: {os.cpu_count()} CPUs, load average before the run {load:.2f},"
            f" run took {elapsed:.0f} s",
            f"{result['connections']:,} websocket connections (connected in {result['connect_seconds']:.1f} s),"
            f" {args.rounds} rounds after {args.warmup} warm-up rounds, {args.targets} target units",
            "",
            "| path | samples | p50 ms | p90 ms | p99 ms | max ms |",
            "|---|---:|---:|---:|---:|---:|",
            f"| walk-in request -> occupant websocket | {len(occ)} | {ms(occ, 50)} | {ms(occ, 90)} | {ms(occ, 99)}"
            f" | {max(occ) * 1000:.1f} |",
            f"| answer -> guard websocket | {len(grd)} | {ms(grd, 50)} | {ms(grd, 90)} | {ms(grd, 99)}"
            f" | {max(grd) * 1000:.1f} |",
            f"| baseline: GET /ready round trip | {len(floor)} | {ms(floor, 50)} | {ms(floor, 90)}"
            f" | {ms(floor, 99)} | {max(floor) * 1000:.1f} |",
            "",
            "target: p99 under 100 ms on both paths",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=1000, help="websocket connections in total")
    parser.add_argument("--rounds", type=int, default=200, help="measured walk-in + answer rounds")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--targets", type=int, default=20, help="units whose occupants' connections are timed")
    args = parser.parse_args(argv)
    started = time.monotonic()
    load = os.getloadavg()[0]
    from app.devredis import PrivateRedis

    raise_fd_limit()
    tmp = Path(tempfile.mkdtemp(prefix="opshub-gate-bench-"))
    redis_server = PrivateRedis(tmp / "redis")
    try:
        env = prepare(tmp, redis_server.start())
        result = asyncio.run(bench(args, env))
    finally:
        redis_server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(render(result, args, time.monotonic() - started, load))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
