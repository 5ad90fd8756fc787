"""Database engine selection, start-up, health and migrations.

One data path for both databases: SQLite (embedded default, a file under var/) and
PostgreSQL (production, CI). Only what Piccolo's engines themselves differ in differs.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import sqlite3
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import urlparse
from uuid import UUID

import aiosqlite
import msgspec
from piccolo.engine.base import Engine
from piccolo.engine.finder import engine_finder
from piccolo.engine.postgres import PostgresEngine
from piccolo.engine.sqlite import SQLiteEngine, TransactionType, dict_factory
from piccolo.querystring import QueryString

from app.config import Settings, get_settings

if TYPE_CHECKING:
    import asyncpg  # the SQLite default never loads the PostgreSQL driver

SQLITE_BUSY_TIMEOUT_SECONDS = 30.0
T = TypeVar("T")


def sqlite_path_for(settings: Settings) -> Path:
    if settings.database_url and settings.database_url.startswith("sqlite://"):
        # sqlite:///relative/path or sqlite:////absolute/path
        return Path(urlparse(settings.database_url).path[1:] or settings.sqlite_path)
    return settings.sqlite_path


class LoopPooledPostgresEngine(PostgresEngine):
    """Piccolo's PostgreSQL engine with one connection pool per event loop.

    An asyncpg pool serves only the loop that created it. A server process has one loop, so this
    is Piccolo's own behaviour there; the test suite runs the app on a loop of its own beside the
    test's, and each of them gets a pool instead of a connection opened for every query. A loop
    with no pool started opens a connection per query or transaction, as Piccolo does.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        self._pools: dict[asyncio.AbstractEventLoop, asyncpg.Pool] = {}
        super().__init__(config=config)

    @property
    def pool(self) -> asyncpg.Pool | None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        return self._pools.get(loop)

    @pool.setter
    def pool(self, value: asyncpg.Pool | None) -> None:
        # Piccolo's __init__ assigns None; pools are only made by start_connection_pool.
        if value is not None:
            raise AttributeError("pools are started with start_connection_pool")

    async def start_connection_pool(self, **kwargs: Any) -> None:
        loop = asyncio.get_running_loop()
        # A loop closed without closing its pool leaves nothing to close it with: drop it.
        for closed in [other for other in self._pools if other.is_closed()]:
            del self._pools[closed]
        if loop not in self._pools:
            import asyncpg

            self._pools[loop] = await asyncpg.create_pool(**{"reset": _keep_session, **self.config, **kwargs})

    async def close_connection_pool(self) -> None:
        pool = self._pools.pop(asyncio.get_running_loop(), None)
        if pool is not None:
            await pool.close()


async def _keep_session(connection: asyncpg.Connection) -> None:
    """What a pooled connection is reset with when it goes back to the pool: nothing more than asyncpg's own
    step before this one, which rolls back a transaction left open and drops listeners.

    asyncpg's default also sends ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`` on every
    release: a second round trip for each of Piccolo's queries, which acquire and release a connection
    each. Nothing here leaves that state behind in a pooled session: advisory locks are transaction-scoped
    (``pg_advisory_xact_lock``; the migration lock has a connection of its own), no cursor is held past
    its transaction, nothing LISTENs (realtime runs on Redis), and nothing SETs a session variable."""


def build_engine(settings: Settings | None = None) -> Engine[Any]:
    settings = settings or get_settings()
    if settings.is_postgres:
        assert settings.database_url is not None
        return LoopPooledPostgresEngine(config={"dsn": settings.database_url})
    path = sqlite_path_for(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    # WAL lets readers proceed while one writer commits; it is a property of the file.
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
    return PooledSQLiteEngine(path=str(path), timeout=SQLITE_BUSY_TIMEOUT_SECONDS)


SQLITE_IDLE_CONNECTIONS = 8
_holding_write_turn: ContextVar[bool] = ContextVar("holding_sqlite_write_turn", default=False)


class PooledSQLiteConnection(aiosqlite.Connection):
    """An aiosqlite connection that goes back to its engine's idle list when closed."""

    def __init__(self, engine: PooledSQLiteEngine) -> None:
        kwargs = dict(engine.connection_kwargs)
        database = kwargs.pop("database")
        super().__init__(lambda: sqlite3.connect(database, **kwargs), iter_chunk_size=64)
        # An idle connection waits in the pool for good; its thread must never hold the process open at
        # exit (seen: a full test run hung after its summary, waiting to join one). SQLite's journal
        # makes a write cut off by exit roll back, as after a crash.
        self._thread.daemon = True
        self._engine = engine

    async def close(self) -> None:
        await self._engine.release(self)

    async def discard(self) -> None:
        if not self._running:  # stopped: its thread has ended and nothing would answer a close
            return
        await aiosqlite.Connection.close(self)


class PooledSQLiteEngine(SQLiteEngine):
    """Piccolo's SQLite engine, keeping a few open connections instead of opening one per query.

    Piccolo opens a connection (and its thread) for every query and transaction: about 3 ms each,
    against 0.4 ms for a query on an open connection. A connection is lent to one query or one
    transaction at a time and comes back outside any transaction; one whose work was cancelled is
    stopped, never lent again. aiosqlite's futures are bound to the caller's loop, not to the
    connection, so one idle list serves every loop (a lock guards it across their threads).
    """

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__(path=path, timeout=timeout)
        self._idle: list[PooledSQLiteConnection] = []
        self._idle_lock = threading.Lock()
        self._write_turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        stop_sqlite_connections_before_exit()  # idle connections' threads must not hold the process open

    @contextlib.asynccontextmanager
    async def write_turn(self) -> AsyncIterator[None]:
        """Wait for this process's turn to write, first come first served.

        SQLite has one writer at a time. Without this, writers that find the lock taken sleep in SQLite's
        busy handler (1, 2, 5 ... 100 ms at a time) and poll again, so a lock freed a moment later stays
        unused for most of a sleep, and a busy sender's batches queue behind those sleeps. Here they wait
        in line and each starts the moment the one before it commits. SQLite's own lock still decides
        between processes (web and worker); a turn already held by this task (a write inside a
        write transaction) is not waited for again."""
        if _holding_write_turn.get():
            yield
            return
        loop = asyncio.get_running_loop()
        turn = self._write_turns.get(loop)
        if turn is None:
            turn = self._write_turns[loop] = asyncio.Lock()
        async with turn:
            token = _holding_write_turn.set(True)
            try:
                yield
            finally:
                _holding_write_turn.reset(token)

    def idle_connections(self) -> list[PooledSQLiteConnection]:
        with self._idle_lock:
            return list(self._idle)

    async def get_connection(self) -> PooledSQLiteConnection:
        while True:
            with self._idle_lock:
                connection = self._idle.pop() if self._idle else None
            if connection is None:
                break
            if connection._running and connection._connection is not None:
                return connection
        connection = PooledSQLiteConnection(self)
        await connection
        connection.row_factory = dict_factory  # type: ignore[assignment]  # piccolo's own rows-as-dicts
        await connection.execute("PRAGMA foreign_keys = 1")
        return connection

    async def release(self, connection: PooledSQLiteConnection) -> None:
        if not connection._running or connection._connection is None:
            return
        try:
            if connection.in_transaction:  # left by a failed statement or a caller's own BEGIN
                await connection.rollback()
        except BaseException:
            connection.stop()
            raise
        with self._idle_lock:
            if len(self._idle) < SQLITE_IDLE_CONNECTIONS:
                self._idle.append(connection)
                return
        await connection.discard()

    async def close_idle_connections(self) -> None:
        with self._idle_lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            await connection.discard()

    async def run_on_connection(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` with a pooled connection's own ``sqlite3`` connection, on that connection's thread.

        One trip for what would be several: each ``await`` of a statement is a trip to the connection's
        thread and back, and each trip hands the GIL over and back. While the event loop's thread is busy (a
        fan-out's provider calls) each handover made the loop wait for its core, about a millisecond a
        trip. ``work`` runs outside the event loop: it must not touch asyncio objects."""
        async with self._lent() as connection:
            result: T = await connection._execute(work, connection._conn)
        return result

    @contextlib.asynccontextmanager
    async def _lent(self) -> AsyncIterator[PooledSQLiteConnection]:
        """A connection for one piece of work, back to the pool after it. Work that was cancelled may still
        be running on the connection's thread: that connection is stopped, never lent again."""
        connection = await self.get_connection()
        try:
            yield connection
        except asyncio.CancelledError:
            connection.stop()
            raise
        except BaseException:
            await connection.close()
            raise
        await connection.close()

    async def _run_in_existing_connection(
        self,
        connection: Any,
        query: str,
        args: list[Any] | None = None,
        query_type: str = "generic",
        table: Any = None,
    ) -> Any:
        """A statement and its rows in one trip to the connection's thread.

        Piccolo's own made four: ``PRAGMA foreign_keys`` again (every connection of this pool has it from the
        start), the statement, its rows, and closing the cursor. Each trip hands the GIL to that thread and
        back, and while the event loop's thread was busy (a fan-out's provider calls) every handover waited
        for the switch interval or for a core."""
        if query_type == "insert" and self.get_version_sync() < 3.35:  # no RETURNING before SQLite 3.35
            return await super()._run_in_existing_connection(connection, query, args, query_type, table)
        return await connection.execute_fetchall(query, args or [])

    async def _run_in_new_connection(
        self,
        query: str,
        args: list[Any] | None = None,
        query_type: str = "generic",
        table: Any = None,
    ) -> Any:
        async with self._lent() as connection:
            return await self._run_in_existing_connection(connection, query, args, query_type=query_type, table=table)


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
        async with write_turn():
            transaction = engine.transaction(transaction_type=TransactionType.immediate)
            try:
                async with transaction:
                    yield
            finally:
                _stop_if_left_open(transaction, engine)
    else:
        async with engine.transaction():
            yield


@contextlib.asynccontextmanager
async def write_turn() -> AsyncIterator[None]:
    """On SQLite, this process's writers take turns in order (:meth:`PooledSQLiteEngine.write_turn`); for a
    write that needs no transaction of its own. On PostgreSQL, which has row locks, nothing to wait for."""
    engine = current_engine()
    if isinstance(engine, PooledSQLiteEngine):
        async with engine.write_turn():
            yield
    else:
        yield


def _stop_if_left_open(transaction: Any, engine: SQLiteEngine) -> None:
    """Piccolo's SQLite transaction opens its connection before BEGIN and closes it only on a
    normal exit: a task cancelled while waiting for the write lock (an arq job timeout or a
    shutdown) would leave the connection and its non-daemon thread behind, and the process
    could never exit. Stopping an already closed connection does nothing."""
    connection = getattr(transaction, "connection", None)  # unset for a nested transaction
    if isinstance(connection, aiosqlite.Connection) and connection._running:
        # A transaction that ended normally gave its connection back to the pool: it is not left open, and
        # stopping it would leave a dead connection in the idle list (close_database then waited for ever).
        if isinstance(engine, PooledSQLiteEngine) and connection in engine.idle_connections():
            return
        connection.stop()


def stop_orphaned_sqlite_connections() -> int:
    """Stop every aiosqlite connection still running; for a process's last moments only, after
    its work has finished or been cancelled (cancelled work can leave connections that nothing
    refers to but a reference cycle). Returns how many were stopped."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        # At exit no loop runs and the last one may be closed: with none set, aiosqlite's stop()
        # asks no loop to hear back, where the closed one would make its thread raise.
        asyncio.set_event_loop(None)
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
    """Start this loop's connection pool where the engine has pools; returns whether we started it."""
    settings = settings or get_settings()
    engine = current_engine()
    if isinstance(engine, PostgresEngine) and engine.pool is None and settings.database_pool_size > 0:
        await engine.start_connection_pool(min_size=1, max_size=settings.database_pool_size)
        return True
    return False


async def close_database() -> None:
    """Close this loop's connection pool, if it has one (SQLite: the idle connections)."""
    engine = current_engine()
    if isinstance(engine, PostgresEngine) and engine.pool is not None:
        await engine.close_connection_pool()
    elif isinstance(engine, PooledSQLiteEngine):
        await engine.close_idle_connections()


async def database_is_reachable() -> bool:
    try:
        await current_engine().run_ddl("SELECT 1")
    except Exception:
        return False
    return True


# The advisory lock every `migrate` takes on PostgreSQL (an arbitrary constant: "opshub migrate").
MIGRATION_LOCK_KEY = 0x6F707368_75626D67


async def apply_migrations(settings: Settings | None = None) -> None:
    """Apply pending migrations. On PostgreSQL under a session advisory lock, so replicas that all run
    ``migrate`` at boot apply them once: the others wait, then find nothing left to do."""
    from piccolo.apps.migrations.commands.forwards import run_forwards

    settings = settings or get_settings()
    lock = None
    if settings.is_postgres:
        import asyncpg  # local: the SQLite default never loads the PostgreSQL driver

        assert settings.database_url is not None
        lock = await asyncpg.connect(settings.database_url)
        await lock.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        result = await run_forwards(app_name="all")
    finally:
        if lock is not None:
            # Closing the session releases the lock even if the unlock itself cannot be sent.
            with contextlib.suppress(Exception):
                await lock.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
            await lock.close()
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
    """Insert many rows in one transaction: on SQLite one INSERT ... SELECT from the rows as JSON; on
    PostgreSQL binary COPY where conflicts are ignored, else (or when a row exists) one INSERT ... SELECT
    FROM unnest(arrays), a column per array.

    For hot paths only (the delivery ledger's fan-out): building thousands of Piccolo
    objects and compiling one huge INSERT costs more than the database work itself.
    """
    if not rows:
        return
    names = ", ".join(f'"{c}"' for c in columns)
    conflict = " ON CONFLICT DO NOTHING" if ignore_conflicts else ""
    engine = current_engine()
    if isinstance(engine, SQLiteEngine):
        # WHERE true: without it SQLite would read ON CONFLICT as part of the SELECT's join (its documentation).
        select = _sqlite_json_rows_select(len(columns))
        await _sqlite_write_rows_as_json(engine, rows, f'INSERT INTO "{table}" ({names}) {select} WHERE true{conflict}')
        return
    assert isinstance(engine, PostgresEngine)
    import asyncpg  # local: the SQLite default never loads the PostgreSQL driver

    types = await _postgres_column_types(engine, table)
    arrays = ", ".join(f"${i}::{types[column]}[]" for i, column in enumerate(columns, start=1))
    statement = f'INSERT INTO "{table}" ({names}) SELECT * FROM unnest({arrays}){conflict}'
    async with _postgres_connection(engine) as connection:
        if ignore_conflicts:
            # COPY (binary) is the fast path, and all or nothing: a row that already exists (a part expanded
            # again while its first run was still writing) fails it whole, and the INSERT below skips it.
            try:
                await connection.copy_records_to_table(table, records=rows, columns=list(columns))
                return
            except asyncpg.UniqueViolationError:
                pass
        await connection.execute(statement, *[list(values) for values in zip(*rows, strict=True)])


async def _sqlite_write_rows_as_json(
    engine: SQLiteEngine, rows: Sequence[Sequence[Any]], sql: str, params: Sequence[Any] = ()
) -> None:
    """Write rows with one statement, in one write transaction, the rows bound as one JSON parameter (the
    statement's first; ``params`` after it).

    ``sql`` reads the rows as :func:`_sqlite_json_rows_select` does. Why one JSON parameter
    (:func:`sqlite_json_rows`):
    - ``executemany`` steps once per row, and the sqlite3 module lets go of the GIL around each step: while
      the event loop's thread was busy (a fan-out's provider calls), each step waited for the GIL again, up
      to the 5 ms switch interval, and a 3,000-row chunk of the ledger took seconds;
    - a parameter per value went through the sqlite3 module's adapters one by one (a UUID's ``str``, a
      datetime's text) on the database's thread, holding the GIL the event loop's thread waited for: a
      fan-out's 30,000 ledger rows are 200,000 of them. SQLite reads the JSON in C, without the GIL.
    """
    values = [sqlite_json_rows(rows), *params]

    def write(connection: sqlite3.Connection) -> None:
        connection.execute(sql, values)

    await sqlite_write_in_one_trip(engine, write)


def _sqlite_json_rows_select(width: int) -> str:
    """The rows of the JSON parameter, a column per value."""
    columns = ", ".join(f"json_extract(value, '$[{i}]')" for i in range(width))
    return f"SELECT {columns} FROM json_each(?)"


def _sqlite_update_sql(table: str, names: Sequence[str], assignments: str, condition: str, params: int) -> str:
    """:func:`update_each`'s statement on SQLite. MATERIALIZED keeps the rows the outer loop, each finding its
    row by id: unmaterialized, SQLite took the JSON's table function for cheap and, where the condition
    had an index (``site = ?``), read the table by it and the whole JSON again for each of those rows."""
    tail = f'UPDATE "{table}" SET {assignments} FROM o WHERE "{table}".id = o.id AND {condition}'
    select = _sqlite_json_rows_select(len(names))
    return f"WITH o({', '.join(names)}) AS MATERIALIZED ({select}) " + tail.format(*("?" for _ in range(params)))


# Types msgspec writes to JSON as the sqlite3 module binds them (a UUID as ``str(uuid)``, which is Piccolo's
# adapter); booleans are ints to both (JSON's true is 1 to SQLite).
_JSON_AS_BOUND = frozenset({str, int, float, bool, UUID, type(None)})


def sqlite_json_rows(rows: Sequence[Sequence[Any]]) -> str:
    """Rows as one JSON array of arrays, each value as the sqlite3 module would have bound it.

    msgspec encodes in C. A column holding another type (a datetime, whose stored text is Piccolo's, not
    JSON's) is first turned into what the registered adapter makes of each of its distinct values: a
    batch's timestamps are mostly one. The rows are looked at a column at a time, in C (``zip``, ``map``):
    this runs on the event loop's thread, which a fan-out's provider calls keep busy."""
    columns = list(zip(*rows, strict=True))
    adapted_any = False
    for i, column in enumerate(columns):
        if set(map(type, column)) <= _JSON_AS_BOUND:
            continue
        try:
            as_bound = {value: _sqlite_bound(value) for value in set(column)}
            columns[i] = tuple(map(as_bound.__getitem__, column))
        except TypeError:  # unhashable (a list for an array column): each value on its own
            columns[i] = tuple(map(_sqlite_bound, column))
        adapted_any = True
    return msgspec.json.encode(list(zip(*columns, strict=True)) if adapted_any else rows).decode()


def _sqlite_bound(value: Any) -> Any:
    if type(value) in _JSON_AS_BOUND:
        return value
    adapter = sqlite3.adapters.get((type(value), sqlite3.PrepareProtocol))
    if adapter is None:  # bytes, say: JSON has no blob, and sqlite3 refuses what it cannot bind
        raise ValueError(f"no SQLite adapter for a {type(value).__name__} in a JSON row")
    return adapter(value)


async def sqlite_write_in_one_trip(engine: Engine[Any], work: Callable[[sqlite3.Connection], T]) -> T:
    """``work`` in one write transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back if it raises), in
    this process's turn to write, in one trip to a connection's thread (:meth:`PooledSQLiteEngine.run_on_connection`):
    a transaction of two statements was four trips."""
    assert isinstance(engine, PooledSQLiteEngine)

    def in_transaction(connection: sqlite3.Connection) -> T:
        connection.execute("BEGIN IMMEDIATE")
        try:
            result = work(connection)
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
        return result

    async with engine.write_turn():
        return await engine.run_on_connection(in_transaction)


# Rows SQLite's ANALYZE reads of each index, as its documentation suggests for a quick, approximate sample.
SQLITE_ANALYSIS_LIMIT = 1000


async def refresh_statistics(tables: Sequence[str]) -> None:
    """Have the planner's statistics of these tables read again, after a bulk load changed them.

    Without statistics both databases guess, and both guessed wrong for the notification pipeline's reads
    of a batch of people (``site = ? AND person IN (...)``): they read every row of the site for every
    batch. PostgreSQL's autovacuum would analyze a freshly loaded table within a minute or so, SQLite never;
    an announcement to a township imported a moment ago should not wait for either."""
    if not tables:
        return
    engine = current_engine()
    names = [f'"{table}"' for table in tables]
    if isinstance(engine, SQLiteEngine):
        async with write_turn():  # ANALYZE writes its results to sqlite_stat1
            connection = await engine.get_connection()
            try:
                await connection.execute(f"PRAGMA analysis_limit = {SQLITE_ANALYSIS_LIMIT}")
                for name in names:  # each commits by itself: the pool's connections have no isolation level
                    await connection.execute(f"ANALYZE {name}")
            finally:
                await connection.close()
        return
    assert isinstance(engine, PostgresEngine)
    async with _postgres_connection(engine) as connection:
        await connection.execute(f"ANALYZE {', '.join(names)}")


@contextlib.asynccontextmanager
async def _postgres_connection(engine: PostgresEngine) -> AsyncIterator[Any]:
    """A connection of the pool, or a new one where the engine has no pool (a process's first moments)."""
    if engine.pool is not None:
        async with engine.pool.acquire() as connection:
            yield connection
        return
    connection = await engine.get_new_connection()
    try:
        yield connection
    finally:
        await connection.close()


_column_types: dict[str, dict[str, str]] = {}


async def _postgres_column_types(engine: PostgresEngine, table: str) -> dict[str, str]:
    """Each column's type name (``uuid``, ``varchar``, ``timestamptz``...), read once per process."""
    if table not in _column_types:
        rows = await engine.run_querystring(
            QueryString(
                "SELECT column_name, udt_name FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = {}",
                table,
            )
        )
        _column_types[table] = {row["column_name"]: row["udt_name"] for row in rows}
    return _column_types[table]


async def update_each(
    table: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    assignments: str,
    condition: str,
    *params: Any,
) -> None:
    """Update many rows by id in one statement, each with values of its own, in one transaction.

    ``rows`` are ``(id, *values)``, the values named by ``columns``; ``assignments`` and ``condition`` read
    them as ``o.<column>`` and mark their other parameters ``{}``, given in ``params`` (assignments' first).
    SQLite: ``WITH o(...) AS MATERIALIZED (SELECT ... FROM json_each(rows)) UPDATE ... FROM o``
    (:func:`_sqlite_update_sql`), one statement and one parameter for the batch
    (:func:`_sqlite_write_rows_as_json`); PostgreSQL: ``UPDATE ... FROM unnest(arrays)``, one statement for
    the batch instead of one execution per row.
    """
    if not rows:
        return
    names = ["id", *columns]
    engine = current_engine()
    if isinstance(engine, PostgresEngine):
        types = await _postgres_column_types(engine, table)
        arrays = ", ".join(f"${i}::{types[name]}[]" for i, name in enumerate(names, start=1))
        numbered = iter(range(len(names) + 1, len(names) + 1 + len(params)))
        template = (
            f'UPDATE "{table}" SET {assignments} FROM unnest({arrays}) AS o({", ".join(names)}) '
            f'WHERE "{table}".id = o.id AND {condition}'
        )
        statement = template.format(*(f"${next(numbered)}" for _ in params))
        async with _postgres_connection(engine) as connection:
            await connection.execute(statement, *[list(values) for values in zip(*rows, strict=True)], *params)
        return
    assert isinstance(engine, SQLiteEngine)
    await _sqlite_write_rows_as_json(
        engine, rows, _sqlite_update_sql(table, names, assignments, condition, len(params)), params
    )


def any_of(column: str, values: Sequence[Any], *, as_set_of: str | None = None) -> tuple[str, list[Any]]:
    """``column`` is one of ``values``, for :func:`fetch_rows`: one parameter whatever the list's length.

    PostgreSQL takes an array (``= ANY({})``) and plans it once. SQLite takes a JSON array (``IN (SELECT value
    FROM json_each({}))``), encoded here by msgspec: a parameter per value went through the sqlite3 module's
    adapters one by one on the database thread, holding the GIL that the event loop's thread was waiting for
    (a thousand UUIDs for each of a fan-out batch's reads). msgspec writes UUIDs as the adapter does,
    ``str(uuid)``.

    ``as_set_of`` (the values' PostgreSQL type, ``uuid``) hands PostgreSQL the values as a set it may hash
    (``IN (SELECT unnest(...))``), for a table small enough that it reads it whole: there ``= ANY`` compares
    every row with the values one by one (a fan-out's consent choices, 1,500 rows, for a batch of 500
    people: 3.3 ms, against 0.6 ms as a set). Where the table is large it is read by index either way."""
    if not values:
        return "1 = 0", []
    if isinstance(current_engine(), PostgresEngine):
        if as_set_of is not None:
            return f"{column} IN (SELECT unnest({{}}::{as_set_of}[]))", [list(values)]
        return f"{column} = ANY({{}})", [list(values)]
    return f"{column} IN (SELECT value FROM json_each({{}}))", [msgspec.json.encode(list(values)).decode()]


class Row(Protocol):
    """A row as the driver gives it, read by column name: a dict on SQLite, an ``asyncpg.Record``."""

    def __getitem__(self, column: str, /) -> Any: ...

    def get(self, column: str, default: Any = None, /) -> Any: ...


async def fetch_rows(table: str, columns: Sequence[str], where: str, *params: Any) -> list[Row]:
    """``SELECT columns FROM table where``, read through the driver itself, outside any caller's transaction.

    ``where`` (the conditions, and any ``GROUP BY``) marks its parameters ``{}``. For hot paths reading a
    batch of ids at once (the notification pipeline's facts): Piccolo's query builder cleans and binds each
    of a thousand ids in Python, which costs more than the query. Rows come in no particular order.

    On PostgreSQL the rows are asyncpg's records. On SQLite the whole result is one JSON array made by
    SQLite, turned back into rows here with the converters the driver would have applied: the sqlite3
    module lets go of the GIL around each step, a row is a step, and while the event loop's thread was busy
    (a fan-out's provider calls) each row waited for the GIL again, up to the 5 ms switch interval.
    """
    engine = current_engine()
    names = ", ".join(f'"{column}"' for column in columns)
    sql = f'SELECT {names} FROM "{table}" {where}'
    count = sql.count("{}")
    if isinstance(engine, SQLiteEngine):
        one_step = f"SELECT json_group_array(json_array({names})) AS rows FROM ({sql})"
        decoder, converting = _sqlite_rows_decoder(tuple(await _sqlite_declared_types(engine, table, columns)))
        connection = await engine.get_connection()
        try:
            (result,) = await connection.execute_fetchall(one_step.format(*("?" for _ in range(count))), params)
        finally:
            await connection.close()
        rows: list[tuple[Any, ...]] = decoder.decode(result["rows"])
        if not converting:
            return [dict(zip(columns, values, strict=True)) for values in rows]
        converted: list[Row] = []
        for values in rows:  # a batch's facts are tens of thousands of values: convert only those that need it
            row = dict(zip(columns, values, strict=True))
            for i, convert in converting:
                column = columns[i]
                if row[column] is not None:
                    row[column] = convert(row[column])
            converted.append(row)
        return converted
    assert isinstance(engine, PostgresEngine)
    statement = sql.format(*(f"${i}" for i in range(1, count + 1)))
    async with _postgres_connection(engine) as connection:
        records: list[Row] = await connection.fetch(statement, *params)
    return records


_sqlite_declared: dict[str, dict[str, str]] = {}


async def _sqlite_declared_types(engine: SQLiteEngine, table: str, columns: Sequence[str]) -> list[str]:
    """Each column's declared type as the sqlite3 module reads it (``TIMESTAMPTZ``, ``UUID``...), read once
    per process."""
    if table not in _sqlite_declared:
        rows = await engine.run_querystring(QueryString(f'PRAGMA table_info("{table}")'))
        _sqlite_declared[table] = {row["name"]: str(row["type"]).split("(")[0].split(" ")[0].upper() for row in rows}
    declared = _sqlite_declared[table]
    return [declared[column] for column in columns]


@functools.lru_cache(maxsize=256)
def _sqlite_rows_decoder(
    declared: tuple[str, ...],
) -> tuple[msgspec.json.Decoder[list[tuple[Any, ...]]], list[tuple[int, Callable[[Any], Any]]]]:
    """The decoder of a result's JSON rows, and the converters left to apply (by position).

    UUID columns are decoded by msgspec, in C: Piccolo's converter parsed each in Python, and a fan-out's
    batches read tens of thousands of them on the event loop's thread. The others go through their
    column's converter (:func:`_sqlite_converter`)."""
    types = tuple(UUID | None if kind == "UUID" else Any for kind in declared)
    decoder: msgspec.json.Decoder[list[tuple[Any, ...]]] = msgspec.json.Decoder(list[tuple[types]])  # type: ignore[valid-type]
    converting = [
        (i, convert)
        for i, convert in enumerate(map(_sqlite_converter, declared))
        if convert is not None and declared[i] != "UUID"
    ]
    return decoder, converting


def _sqlite_converter(declared: str) -> Callable[[Any], Any] | None:
    """A JSON value of a column, as the driver gives the column: through the converter registered for its
    declared type (Piccolo's, for UUIDs, timestamps and booleans); None where none is (the JSON value is the
    column's). The driver hands a converter the value's text as bytes."""
    convert = sqlite3.converters.get(declared)
    if convert is None:
        return None
    # Piccolo's converters also take the text itself (behind the wrapper that decodes bytes first).
    from_text = getattr(convert, "__wrapped__", None)
    if from_text is not None:
        return lambda value: from_text(value if isinstance(value, str) else str(value))
    return lambda value: convert(str(value).encode())
