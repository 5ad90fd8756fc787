"""Queries through the hub's pooled engines against Piccolo's own engines (a connection per query).

    python -m bench.db_pool                      # SQLite, a file in a temporary directory
    python -m bench.db_pool --postgres postgresql://postgres@127.0.0.1:5432/test

Each engine runs the same work on the same database: single-row reads of a site by id, and
transactions that read a row and update it (the shape of most of the hub's writes), one after the
other and then from 8 tasks at once. Prints queries per second and the speed-up over the baseline,
which is Piccolo's engine as it comes, in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from piccolo.engine.base import Engine
from piccolo.engine.postgres import PostgresEngine
from piccolo.engine.sqlite import SQLiteEngine, TransactionType

from app.db import SQLITE_BUSY_TIMEOUT_SECONDS, LoopPooledPostgresEngine, PooledSQLiteEngine

TABLE = "bench_pool_site"
ROWS = 200


async def _prepare(engine: Engine[Any]) -> list[str]:
    await engine.run_ddl(f"DROP TABLE IF EXISTS {TABLE}")
    await engine.run_ddl(f"CREATE TABLE {TABLE} (id TEXT PRIMARY KEY, name TEXT NOT NULL, visits INTEGER NOT NULL)")
    ids = [str(uuid.uuid4()) for _ in range(ROWS)]
    for row_id in ids:
        await engine.run_ddl(f"INSERT INTO {TABLE} (id, name, visits) VALUES ('{row_id}', 'site', 0)")
    return ids


async def _read(engine: Engine[Any], row_id: str) -> None:
    from piccolo.querystring import QueryString

    await engine.run_querystring(QueryString(f"SELECT id, name, visits FROM {TABLE} WHERE id = {{}}", row_id))


async def _read_then_update(engine: Engine[Any], row_id: str) -> None:
    from piccolo.querystring import QueryString

    # As app.db.write_transaction: on SQLite a read-then-write takes the write lock up front.
    immediate = isinstance(engine, SQLiteEngine)
    transaction = engine.transaction(transaction_type=TransactionType.immediate) if immediate else engine.transaction()
    async with transaction:
        await engine.run_querystring(QueryString(f"SELECT visits FROM {TABLE} WHERE id = {{}}", row_id))
        await engine.run_querystring(QueryString(f"UPDATE {TABLE} SET visits = visits + 1 WHERE id = {{}}", row_id))


async def _rate(work: Callable[[str], Awaitable[None]], ids: list[str], count: int, tasks: int) -> float:
    per_task = count // tasks

    async def one(offset: int) -> None:
        for i in range(per_task):
            await work(ids[(offset + i) % len(ids)])

    started = time.perf_counter()
    await asyncio.gather(*(one(t * 7) for t in range(tasks)))
    return per_task * tasks / (time.perf_counter() - started)


async def measure(engine: Engine[Any], count: int) -> dict[str, float]:
    ids = await _prepare(engine)
    if isinstance(engine, LoopPooledPostgresEngine):
        await engine.start_connection_pool(min_size=1, max_size=8)
    try:
        figures = {
            "reads, 1 task": await _rate(lambda i: _read(engine, i), ids, count, 1),
            "reads, 8 tasks": await _rate(lambda i: _read(engine, i), ids, count, 8),
            "read+update transactions, 1 task": await _rate(lambda i: _read_then_update(engine, i), ids, count // 2, 1),
            "read+update transactions, 8 tasks": await _rate(
                lambda i: _read_then_update(engine, i), ids, count // 2, 8
            ),
        }
    finally:
        if isinstance(engine, LoopPooledPostgresEngine):
            await engine.close_connection_pool()
        if isinstance(engine, PooledSQLiteEngine):
            await engine.close_idle_connections()
        await engine.run_ddl(f"DROP TABLE IF EXISTS {TABLE}")
    return figures


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", help="a PostgreSQL DSN; SQLite when not given")
    parser.add_argument("--queries", type=int, default=2000)
    args = parser.parse_args()
    if args.postgres:
        engines: list[tuple[str, Engine[Any]]] = [
            ("Piccolo PostgresEngine, no pool (baseline)", PostgresEngine(config={"dsn": args.postgres})),
            ("LoopPooledPostgresEngine, pool of 8", LoopPooledPostgresEngine(config={"dsn": args.postgres})),
        ]
    else:
        path = str(Path(tempfile.mkdtemp(prefix="bench-pool-")) / "bench.sqlite")
        import sqlite3

        with sqlite3.connect(path) as connection:
            connection.execute("PRAGMA journal_mode=WAL")
        engines = [
            ("Piccolo SQLiteEngine (baseline)", SQLiteEngine(path=path, timeout=SQLITE_BUSY_TIMEOUT_SECONDS)),
            ("PooledSQLiteEngine", PooledSQLiteEngine(path=path, timeout=SQLITE_BUSY_TIMEOUT_SECONDS)),
        ]
    results = [(name, await measure(engine, args.queries)) for name, engine in engines]
    baseline = results[0][1]
    print(f"{'engine':45} {'work':36} {'per s':>9} {'vs baseline':>12}")
    for name, figures in results:
        for work, rate in figures.items():
            print(f"{name:45} {work:36} {rate:9.0f} {rate / baseline[work]:11.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
