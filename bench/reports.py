"""A 100,000-row report export as a job, in bounded memory: peak RSS against baselines of the same run.

Run from the repository root::

    .venv/bin/python bench/reports.py                          # SQLite in a temporary directory
    .venv/bin/python bench/reports.py --rows 20000             # smaller
    .venv/bin/python bench/reports.py --database-url postgresql://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/reports.py --redis-url redis://127.0.0.1:6379/0   # with the progress events

Method
------
* Seed: one site, two towers, ``--rows`` complaints over a month (chunked inserts).
* Each measurement runs in a fresh child process on the same database, so each peak RSS
  (``ru_maxrss``) is its own:
  - **idle**: the child imports the app and opens the database, nothing else: the floor;
  - **job csv** / **job xlsx**: ``app.reports.jobs.build`` of an export job of the ``complaints``
    report, as the ``report_export`` worker runs it (keyset batches of 1,000, written as they come,
    with ``--redis-url`` its progress and ready events are published to the asker's topic and counted
    from the topic's history afterwards; without it they are skipped);
  - **in-memory xlsx**: the baseline: the same rows read whole into a list, then written by openpyxl's
    ordinary (not write-only) workbook, which is what a naive export does.
* Checked: the job's file has every row (``--rows`` + header).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=None, help="PostgreSQL server (default: SQLite in a temp dir)")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--redis-url", default=None, help="publish the job's progress events to this Redis")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--job", default=None, help=argparse.SUPPRESS)
    return parser.parse_args()


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def _seed(rows: int) -> tuple[Any, Any]:
    from schema.complaints import Complaint, ComplaintCategory
    from schema.tables import Building, Person, Site, Unit

    now = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    site = Site(name="Bench Residency", slug=f"bench-{secrets.token_hex(3)}", created_at=now)
    await site.save()
    units = []
    for code in ("A", "B"):
        building = Building(site=site.id, code=code, name=f"Tower {code}")
        await building.save()
        for n in range(50):
            unit = Unit(site=site.id, building=building.id, label=f"{code}-{n:03d}")
            await unit.save()
            units.append(unit.id)
    admin = Person(site=site.id, full_name="Bench Admin", created_at=now, updated_at=now)
    await admin.save()
    from schema.tables import PersonRole

    await PersonRole(site=site.id, person=admin.id, role="fm_admin").save()
    category = ComplaintCategory(site=site.id, code="plumbing", name="Plumbing")
    await category.save()
    step = dt.timedelta(seconds=30 * 24 * 3600 / rows)
    for start in range(0, rows, 1000):
        chunk = []
        for n in range(start, min(rows, start + 1000)):
            created = now + step * n
            chunk.append(
                Complaint(
                    site=site.id,
                    category=category.id,
                    unit=units[n % len(units)],
                    description="Leak under the sink",
                    status=("open", "resolved", "closed")[n % 3],
                    response_due_at=created + dt.timedelta(hours=1),
                    resolution_due_at=created + dt.timedelta(hours=24),
                    responded_at=created + dt.timedelta(minutes=n % 120) if n % 3 else None,
                    resolved_at=created + dt.timedelta(hours=n % 30) if n % 3 else None,
                    rating=(n % 5) + 1 if n % 3 else None,
                    created_at=created,
                    updated_at=created,
                )
            )
        await Complaint.insert(*chunk)
    return site.id, admin.id


async def _child(mode: str, job: str | None) -> dict[str, Any]:
    from app.config import get_settings
    from app.db import close_database, open_database

    await open_database()
    settings = get_settings()
    started = time.perf_counter()
    result: dict[str, Any] = {"mode": mode}
    try:
        if mode == "idle":
            from app.reports import jobs
        elif mode.startswith("job"):
            from uuid import UUID

            from app.reports import jobs

            redis: Any = None
            if settings.redis_url:
                from app.redis import create_redis
                from realtime import history
                from realtime.topics import user_topic
                from schema.reports import ReportExport

                redis = create_redis(settings)
                asker = await ReportExport.select(ReportExport.person).where(ReportExport.id == UUID(job)).first()
                assert asker is not None
                topic = user_topic(asker["person"])
                before = (await history.read_since(redis, settings, topic, None)).position.seq
            else:

                async def nothing(*args: Any) -> None:
                    return None

                jobs._tell = nothing  # type: ignore[assignment]  # no Redis: the events are skipped
            view = await jobs.build(settings, redis, UUID(job))
            assert view is not None and view.status == "ready", view
            result["rows"] = view.rows
            result["size_bytes"] = view.size_bytes
            if redis is not None:
                frames = (await history.read_since(redis, settings, topic, before)).entries
                result["events"] = sum('"report.export.progress"' in frame for _, frame in frames)
                await redis.aclose()
        else:  # in-memory baseline
            from openpyxl import Workbook

            from app.reports.catalogue import COMPLAINTS
            from app.reports.framework import Query, Scope, ScopeKind
            from schema.reports import ReportExport

            row = await ReportExport.select().where(ReportExport.id == job).first()
            assert row is not None
            query = Query(scope=Scope(kind=ScopeKind.SITE, site_id=row["site"], person_id=row["person"]))
            everything: list[tuple[Any, ...]] = []
            async for batch in COMPLAINTS.batches(query):
                everything.extend(batch)
            book = Workbook()
            sheet = book.active
            sheet.append([c.name for c in COMPLAINTS.columns])
            for values in everything:
                sheet.append([v.replace(tzinfo=None) if isinstance(v, dt.datetime) else v for v in values])
            path = Path(tempfile.mkdtemp()) / "all.xlsx"
            book.save(path)
            result["rows"] = len(everything)
            result["size_bytes"] = path.stat().st_size
    finally:
        await close_database()
    result["seconds"] = time.perf_counter() - started
    result["peak_rss_mib"] = peak_rss_mib()
    return result


async def _prepare(rows: int) -> tuple[str, str]:
    from app.db import apply_migrations, close_database, open_database
    from schema.reports import ReportExport

    await apply_migrations()
    await open_database()
    try:
        t0 = time.perf_counter()
        site_id, admin_id = await _seed(rows)
        print(f"seeded {rows} complaints in {time.perf_counter() - t0:.1f} s", flush=True)
        ids = []
        for fmt in ("csv", "xlsx"):
            job = ReportExport(
                site=site_id,
                person=admin_id,
                report="complaints",
                format=fmt,
                params={"format": fmt},
                status="pending",
                created_at=dt.datetime.now(dt.UTC),
            )
            await job.save()
            ids.append(str(job.id))
        return ids[0], ids[1]
    finally:
        await close_database()


def _run_child(mode: str, job: str) -> dict[str, Any]:
    output = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--job", job],
        check=True,
        capture_output=True,
        text=True,
        env=os.environ,
    ).stdout
    return dict(json.loads(output.strip().splitlines()[-1]))


def main() -> None:
    args = _parse()
    if args.child:
        print(json.dumps(asyncio.run(_child(args.child, args.job))))
        return
    created = None
    if args.database_url:
        parsed = urlparse(args.database_url)
        created = f"bench_reports_{secrets.token_hex(3)}"
        import asyncpg

        async def admin(statement: str) -> None:
            connection = await asyncpg.connect(args.database_url)
            try:
                await connection.execute(statement)
            finally:
                await connection.close()

        asyncio.run(admin(f'CREATE DATABASE "{created}"'))
        os.environ["DATABASE_URL"] = urlunparse(parsed._replace(path=f"/{created}"))
    else:
        os.environ.pop("DATABASE_URL", None)
    if args.redis_url:
        os.environ["REDIS_URL"] = args.redis_url
        os.environ["OPSHUB_REDIS_PREFIX"] = f"bench-reports-{secrets.token_hex(3)}:"
    os.environ["OPSHUB_VAR_DIR"] = tempfile.mkdtemp(prefix="opshub-bench-reports-")
    os.environ.setdefault("OPSHUB_LOG_LEVEL", "WARNING")
    try:
        csv_job, xlsx_job = asyncio.run(_prepare(args.rows))
        results = [
            _run_child("idle", csv_job),
            _run_child("job csv", csv_job),
            _run_child("job xlsx", xlsx_job),
            _run_child("in-memory xlsx", xlsx_job),
        ]
    finally:
        if created and args.database_url:
            import asyncpg

            async def drop() -> None:
                connection = await asyncpg.connect(args.database_url)
                try:
                    await connection.execute(f'DROP DATABASE IF EXISTS "{created}"')
                finally:
                    await connection.close()

            asyncio.run(drop())
    database = "PostgreSQL" if args.database_url else "SQLite (WAL)"
    idle = results[0]["peak_rss_mib"]
    print(f"report export bench on {database}: {args.rows} complaints")
    print("| what | rows | file | progress events | time | peak RSS | over idle |")
    print("|---|---|---|---|---|---|---|")
    for result in results:
        rows = result.get("rows", "")
        size = f"{result['size_bytes'] / 2**20:.1f} MiB" if "size_bytes" in result else ""
        print(
            f"| {result['mode']} | {rows} | {size} | {result.get('events', '')} | {result['seconds']:.1f} s | "
            f"{result['peak_rss_mib']:.0f} MiB | {result['peak_rss_mib'] - idle:+.0f} MiB |"
        )
    for result in results[1:3]:
        assert result["rows"] == args.rows, result


if __name__ == "__main__":
    main()
