"""Booking under contention on PostgreSQL, with live availability to connected websocket clients.

Run from the repository root (PostgreSQL reachable at --database-url; a database is created for the
run and dropped afterwards; a private redis-server is started)::

    .venv/bin/python bench/booking.py                                  # full: 1,000 clients, 20 s per phase
    .venv/bin/python bench/booking.py --clients 200 --seconds 3        # a quick look

Method
------
* One web process: ``uvicorn app.main:create_app --factory`` (uvloop, httptools, sans-io websockets),
  PostgreSQL pool of ``--pool`` connections. On a machine with two or more CPUs it is pinned to CPU 0;
  PostgreSQL, Redis, the load generators and this driver share the rest.
* ``--clients`` websocket clients (the raw load generators of ``bench/ws_fanout.py``, two processes)
  subscribe to ``site:{id}:slots`` and count every event and its latency (arrival minus publish time)
  on every 10th connection.
* Seed: ``--units`` units with one occupant each, ``--resources`` amenities with 60-minute slots.
* **Contended** phase: ``--concurrency`` requests in flight at all times for ``--seconds``; each picks a
  random occupant and one of only ``--slots`` slots (per resource) for tomorrow, so most requests lose:
  exactly one booking per slot may succeed (checked at the end against the database) and the rest get
  409 with the next free times. Requests from the same unit race too.
* **Baseline** phase (same run, same server, same concurrency): every request books a slot nobody else
  asks for (a distinct resource-day-hour among ``--spare`` other resources), so nothing conflicts: the
  cost of booking itself.
* Figures: requests/s, bookings made, p50/p99 latency of each phase; availability events published on
  the site's topic (coalesced: several bookings of one resource within 250 ms give one event) and
  delivered to the clients, with delivery latency p50/p99.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.ws_fanout import Loader, hub_command, percentile, pinning, raise_fd_limit  # noqa: E402

SERVER_CPU = 0


@dataclass
class Phase:
    name: str
    seconds: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)  # the first few answers other than 201 and 409
    latencies: list[float] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    def others(self) -> str:
        rest = {code: n for code, n in sorted(self.statuses.items()) if code not in (201, 409)}
        return ", ".join(f"{n} x {code}" for code, n in rest.items()) or "0"

    def line(self) -> str:
        made = self.statuses.get(201, 0)
        lost = self.statuses.get(409, 0)
        return (
            f"| {self.name} | {self.requests:,} | {self.requests / self.seconds:,.0f} | {made:,} | {lost:,} | "
            f"{self.others()} | {percentile(self.latencies, 0.50) * 1000:.1f} ms | "
            f"{percentile(self.latencies, 0.99) * 1000:.1f} ms |"
        )


async def _pg(dsn: str, statement: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def seed(units: int, resources: int, spare: int) -> dict[str, Any]:
    """Site, units, one occupant per unit and the amenities; returns ids and tokens."""
    from app.auth.roles import Role
    from app.auth.tokens import issue_access_token
    from app.config import get_settings
    from app.people.directory import directory_for
    from app.people.service import NewPerson, UnitLink, create_people
    from app.slots import resources as slot_resources
    from schema.tables import Building, Site, Unit

    settings = get_settings()
    site = Site(name="Bench", slug=f"bench-{secrets.token_hex(3)}")
    await site.save()
    building = Building(site=site.id, code="A", name="Tower A")
    await building.save()
    unit_rows = [Unit(site=site.id, building=building.id, label=f"A-{1000 + i}") for i in range(units)]
    for start in range(0, units, 500):
        await Unit.insert(*unit_rows[start : start + 500])
    people = await create_people(
        directory_for(settings),
        site.id,
        [
            NewPerson(
                full_name=f"Occupant {i}",
                roles=frozenset({Role.OCCUPANT}),
                unit_links=[UnitLink(unit_id=unit.id, relation="owner")],
            )
            for i, unit in enumerate(unit_rows)
        ],
    )
    tokens = [
        issue_access_token(settings, person_id=p, site_id=site.id, roles=frozenset({Role.OCCUPANT}))[0] for p in people
    ]
    always = {str(d): [["00:00", "24:00"]] for d in range(7)}
    made: dict[str, list[str]] = {"ROOM": [], "SPARE": []}
    for prefix, count in (("ROOM", resources), ("SPARE", spare)):
        for i in range(count):
            view = await slot_resources.create_resource(
                site.id,
                slot_resources.NewResource(
                    category="amenity",
                    code=f"{prefix}-{i}",
                    name=f"{prefix.title()} {i}",
                    rules=slot_resources.Rules(opening_hours=always, slot_minutes=60, min_minutes=60, advance_days=31),
                ),
            )
            made[prefix].append(str(view.id))
    return {"site": str(site.id), "tokens": tokens, "resources": made["ROOM"], "spare": made["SPARE"]}


async def drive(
    base_url: str, phase: Phase, seconds: float, concurrency: int, pick: Any, tokens: Sequence[str]
) -> None:
    import httpx

    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as http:

        async def worker() -> None:
            while time.monotonic() < deadline:
                resource, start, end = pick()
                token = random.choice(tokens)
                began = time.perf_counter()
                try:
                    response = await http.post(
                        f"/api/slots/resources/{resource}/bookings",
                        json={"starts_at": start, "ends_at": end},
                        headers={"Authorization": f"Bearer {token}"},
                    )
                    status = response.status_code
                    if status not in (201, 409) and len(phase.unexpected) < 3:
                        phase.unexpected.append(f"{status} {response.text[:300]}")
                except httpx.HTTPError as exc:
                    status = 0
                    if len(phase.unexpected) < 3:
                        into = time.monotonic() - (deadline - seconds)
                        phase.unexpected.append(
                            f"transport error {into:.1f} s into the phase, after {time.perf_counter() - began:.2f} s "
                            f"at {time.time():.3f}: {exc!r}"
                        )
                phase.latencies.append(time.perf_counter() - began)
                phase.statuses[status] = phase.statuses.get(status, 0) + 1

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        phase.seconds = time.monotonic() - started


async def run(args: argparse.Namespace) -> str:
    import datetime as dt
    from zoneinfo import ZoneInfo

    from app.devredis import PrivateRedis, free_port

    tmp = Path(tempfile.mkdtemp(prefix="opshub-bookbench-"))
    database = f"opshub_bench_{secrets.token_hex(4)}"
    admin_dsn = args.database_url
    dsn = urlunparse(urlparse(admin_dsn)._replace(path=f"/{database}"))
    await _pg(admin_dsn, f'CREATE DATABASE "{database}"')
    private_redis = PrivateRedis(tmp / "redis")
    redis_url = private_redis.start()
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "REDIS_URL": redis_url,
        "OPSHUB_ENV": "dev",
        "OPSHUB_VAR_DIR": str(tmp / "var"),
        "OPSHUB_DATABASE_POOL_SIZE": str(args.pool),
        "OPSHUB_JWT_SECRET": "bench-" + "x" * 40,
        "OPSHUB_LOG_LEVEL": "WARNING",
        "OPSHUB_RT_HEARTBEAT_SECONDS": "30",
        "OPSHUB_RT_IDLE_TIMEOUT_SECONDS": "120",
    }
    os.environ.update({k: env[k] for k in ("DATABASE_URL", "REDIS_URL", "OPSHUB_JWT_SECRET", "OPSHUB_VAR_DIR")})
    server: subprocess.Popen[bytes] | None = None
    loaders: list[Loader] = []
    try:
        subprocess.run(  # noqa: ASYNC221 - set-up, before anything is measured
            [sys.executable, "-m", "app.launcher", "migrate"], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL
        )
        from app.config import get_settings
        from app.redis import create_redis
        from realtime.history import read_since
        from realtime.topics import site_topic

        seeded = await seed(args.units, args.resources, args.spare)
        port = free_port()

        def prepare() -> None:
            raise_fd_limit()
            if pinning():
                os.sched_setaffinity(0, {SERVER_CPU})

        server = subprocess.Popen(  # noqa: ASYNC220 - returns at once; readiness is awaited below
            hub_command(port),
            cwd=ROOT,
            env=env,
            preexec_fn=prepare,
        )
        for _ in range(200):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            except OSError:
                await asyncio.sleep(0.1)
        halves = [args.clients // 2, args.clients - args.clients // 2]
        loaders = [Loader("hub", port, n, seeded["site"], env) for n in halves if n]
        ready = [loader.read() for loader in loaders]
        connected = sum(r["ready"] for r in ready)

        settings = get_settings()
        redis = create_redis(settings)
        topic = site_topic(__import__("uuid").UUID(seeded["site"]), "slots")

        async def published() -> int:
            return (await read_since(redis, settings, topic, None)).position.seq

        tz = ZoneInfo("Asia/Kolkata")
        tomorrow = dt.datetime.now(tz).date() + dt.timedelta(days=1)

        def at(day: int, hour: int) -> tuple[str, str]:
            start = dt.datetime.combine(tomorrow + dt.timedelta(days=day), dt.time(hour), tzinfo=tz)
            return start.isoformat(), (start + dt.timedelta(hours=1)).isoformat()

        resources = seeded["resources"]

        def contended() -> tuple[str, str, str]:
            return (random.choice(resources), *at(0, 8 + random.randrange(args.slots)))

        fresh = iter(
            (resource, *at(day, hour)) for day in range(1, 29) for hour in range(24) for resource in seeded["spare"]
        )

        def uncontended() -> tuple[str, str, str]:
            return next(fresh)

        base = f"http://127.0.0.1:{port}"
        phases = []
        events: dict[str, dict[str, Any]] = {}
        for name, pick in (("contended", contended), ("baseline (no conflicts)", uncontended)):
            before = await published()
            for loader in loaders:
                loader.send(f"measure {args.seconds + 2.0}")
            phase = Phase(name)
            await drive(base, phase, args.seconds, args.concurrency, pick, seeded["tokens"])
            reports = [loader.read() for loader in loaders]
            latencies = [x for r in reports for x in r["latencies"]]
            events[name] = {
                "published": await published() - before,
                "delivered": sum(r["events"] for r in reports),
                "lost": sum(r["lost"] for r in reports),
                "close_codes": [r.get("close_codes", {}) for r in reports],
                "p50": percentile(latencies, 0.50) * 1000 if latencies else 0.0,
                "p99": percentile(latencies, 0.99) * 1000 if latencies else 0.0,
            }
            phases.append(phase)
        from schema.slots import SlotBooking

        rows = await SlotBooking.select(SlotBooking.resource, SlotBooking.starts_at).where(
            SlotBooking.status == "confirmed"
        )
        keys = [(r["resource"], r["starts_at"]) for r in rows]
        double = len(keys) - len(set(keys))
        await redis.aclose()
    finally:
        for loader in loaders:
            loader.stop()
        if server is not None:
            server.terminate()
            server.wait(timeout=20)
        private_redis.stop()
        await _pg(admin_dsn, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    lines = [
        f"booking bench: PostgreSQL, {args.units} units, {args.resources} resources x {args.slots} contended slots, "
        f"{args.concurrency} requests in flight, {args.seconds:g} s per phase, {connected}/{args.clients} "
        f"websocket clients connected, server pinned: {pinning()}, load avg at start {args.load:.2f}",
        "",
        "| phase | requests | req/s | 201 booked | 409 conflict | other | p50 | p99 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        *(p.line() for p in phases),
        "",
        "| phase | availability events published | delivered to clients | per client | lost conns | "
        "delivery p50 | delivery p99 |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {name} | {e['published']:,} | {e['delivered']:,} | {e['delivered'] / max(connected, 1):,.1f} | "
            f"{e['lost']} | {e['p50']:.1f} ms | {e['p99']:.1f} ms |"
            for name, e in events.items()
        ),
        "",
        f"double bookings found in the database afterwards: {double}",
        *(f"unexpected answer ({p.name}): {text}" for p in phases for text in p.unexpected),
        *(f"close codes received ({name}): {e['close_codes']}" for name, e in events.items() if e["lost"]),
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--units", type=int, default=500)
    parser.add_argument("--resources", type=int, default=4)
    parser.add_argument("--slots", type=int, default=6, help="contended slots per resource")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--pool", type=int, default=20)
    parser.add_argument("--spare", type=int, default=20, help="resources for the no-conflict baseline")
    args = parser.parse_args(argv)
    args.load = os.getloadavg()[0]
    if not args.database_url.startswith("postgres"):
        parser.error("--database-url must be a PostgreSQL URL (the bench measures the exclusion constraint)")
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        print(runner.run(run(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
