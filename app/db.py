"""Database engine selection, start-up, health and migrations.

One data path for both databases: SQLite (embedded default, a file under var/) and
PostgreSQL (production, CI). Only what Piccolo's engines themselves differ in differs.
"""

from __future__ import annotations

import contextlib
import gc
import sqlite3
import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import aiosqlite
from piccolo.engine.base import Engine
from piccolo.engine.finder import engine_finder
from piccolo.engine.postgres import PostgresEngine
from piccolo.engine.sqlite import SQLiteEngine, TransactionType

from app.config import Settings, get_settings

SQLITE_BUSY_TIMEOUT_SECONDS = 30.0


def sqlite_path_for(settings: Settings) -> Path:
    if settings.database_url and settings.database_url.startswith("sqlite://"):
        # sqlite:///relative/path or sqlite:////absolute/path
        return Path(urlparse(settings.database_url).path[1:] or settings.sqlite_path)
    return settings.sqlite_path


def build_engine(settings: Settings | None = None) -> Engine[Any]:
    settings = settings or get_settings()
    if settings.is_postgres:
        assert settings.database_url is not None
        return PostgresEngine(config={"dsn": settings.database_url})
    path = sqlite_path_for(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    # WAL lets readers proceed while one writer commits; it is a property of the file.
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
    return SQLiteEngine(path=str(path), timeout=SQLITE_BUSY_TIMEOUT_SECONDS)


def current_engine() -> Engine[Any]:
    engine = engine_finder()
    if engine is None:
        raise RuntimeError("no Piccolo engine configured (piccolo_conf.DB)")
    return engine


def is_sqlite(engine: Engine[Any] | None = None) -> bool:
    return (engine or current_engine()).engine_type == "sqlite"


@contextlib.asynccontextmanager
async def write_transaction() -> AsyncIterator[None]:
    """A transaction for read-then-write work.

    On SQLite it takes the write lock up front (BEGIN IMMEDIATE), which serialises
    writers instead of failing one of them when both upgrade from read to write.
    """
    engine = current_engine()
    if isinstance(engine, SQLiteEngine):
        transaction = engine.transaction(transaction_type=TransactionType.immediate)
        try:
            async with transaction:
                yield
        finally:
            _stop_if_left_open(transaction)
    else:
        async with engine.transaction():
            yield


def _stop_if_left_open(transaction: Any) -> None:
    """Piccolo's SQLite transaction opens its connection before BEGIN and closes it only on a
    normal exit: a task cancelled while waiting for the write lock (an arq job timeout or a
    shutdown) would leave the connection and its non-daemon thread behind, and the process
    could never exit. Stopping an already closed connection does nothing."""
    connection = getattr(transaction, "connection", None)  # unset for a nested transaction
    if isinstance(connection, aiosqlite.Connection) and connection._running:
        connection.stop()


def stop_orphaned_sqlite_connections() -> int:
    """Stop every aiosqlite connection still running; for a process's last moments only, after
    its work has finished or been cancelled (cancelled work can leave connections that nothing
    refers to but a reference cycle). Returns how many were stopped."""
    gc.collect()
    orphans = [o for o in gc.get_objects() if isinstance(o, aiosqlite.Connection) and o._running]
    for connection in orphans:
        connection.stop()
    return len(orphans)


def stop_sqlite_connections_before_exit() -> None:
    """Make the interpreter stop leftover aiosqlite connections before it waits for their threads.

    A process waits at exit for every non-daemon thread, and each aiosqlite connection runs one
    until it is closed. The worker's shutdown hook stops leftovers, but arq does not reach that
    hook when a job cancelled during its set-up re-raises the cancellation out of ``Worker.close``,
    and the process then hung at exit (seen in CI). ``atexit`` would run too late: it runs after
    those threads are joined. ``threading._register_atexit`` runs before, and is what
    ``concurrent.futures`` uses to stop its own worker threads.
    """
    global _stop_registered
    if not _stop_registered:
        threading._register_atexit(stop_orphaned_sqlite_connections)  # type: ignore[attr-defined]
        _stop_registered = True


_stop_registered = False


async def open_database(settings: Settings | None = None) -> bool:
    """Start the connection pool where the engine has one; returns whether we started it."""
    settings = settings or get_settings()
    engine = current_engine()
    if isinstance(engine, PostgresEngine) and engine.pool is None and settings.database_pool_size > 0:
        await engine.start_connection_pool(min_size=1, max_size=settings.database_pool_size)
        return True
    return False


async def close_database() -> None:
    engine = current_engine()
    if isinstance(engine, PostgresEngine) and engine.pool is not None:
        await engine.close_connection_pool()


async def database_is_reachable() -> bool:
    try:
        await current_engine().run_ddl("SELECT 1")
    except Exception:
        return False
    return True


async def apply_migrations() -> None:
    from piccolo.apps.migrations.commands.forwards import run_forwards

    result = await run_forwards(app_name="all")
    if not result.success:
        raise RuntimeError(f"migrations failed: {result.message}")


def is_unique_violation(error: BaseException) -> bool:
    """Whether a failed write broke a unique constraint (both drivers), e.g. two requests racing one key."""
    if isinstance(error, sqlite3.IntegrityError):
        return "UNIQUE constraint failed" in str(error)
    import asyncpg  # local: the SQLite default never loads the PostgreSQL driver

    return isinstance(error, asyncpg.UniqueViolationError)


async def bulk_insert(
    table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, ignore_conflicts: bool = False
) -> None:
    """Insert many rows with the driver's executemany, in one transaction.

    For hot paths only (the delivery ledger's fan-out): building thousands of Piccolo
    objects and compiling one huge INSERT costs more than the database work itself. The
    engines differ only in their placeholder style.
    """
    if not rows:
        return
    engine = current_engine()
    names = ", ".join(f'"{c}"' for c in columns)
    conflict = " ON CONFLICT DO NOTHING" if ignore_conflicts else ""
    if isinstance(engine, SQLiteEngine):
        placeholders = ", ".join("?" for _ in columns)
        sql = f'INSERT INTO "{table}" ({names}) VALUES ({placeholders}){conflict}'
        connection = await engine.get_connection()
        try:
            await connection.execute("BEGIN IMMEDIATE")
            await connection.executemany(sql, rows)
            await connection.execute("COMMIT")
        finally:
            await connection.close()
        return
    assert isinstance(engine, PostgresEngine)
    placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    sql = f'INSERT INTO "{table}" ({names}) VALUES ({placeholders}){conflict}'
    if engine.pool is not None:
        async with engine.pool.acquire() as connection, connection.transaction():
            await connection.executemany(sql, rows)
    else:
        connection = await engine.get_new_connection()
        try:
            async with connection.transaction():
                await connection.executemany(sql, rows)
        finally:
            await connection.close()
