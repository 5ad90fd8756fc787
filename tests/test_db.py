"""The database layer's own promises: a cancelled write never leaves a connection (and its
non-daemon thread) behind, so a worker whose jobs were cancelled can still exit."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from app.db import (
    PooledSQLiteEngine,
    current_engine,
    is_sqlite,
    sqlite_path_for,
    stop_orphaned_sqlite_connections,
    write_transaction,
)
from schema.tables import Site

ROOT = Path(__file__).resolve().parents[1]


def _sqlite_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if "_connection_worker_thread" in t.name}


def _leaked_sqlite_threads(before: set[threading.Thread]) -> set[threading.Thread]:
    """Connection threads started since `before` that the engine's idle list does not hold."""
    engine = current_engine()
    assert isinstance(engine, PooledSQLiteEngine)
    pooled = {connection._thread for connection in engine.idle_connections()}
    return _sqlite_threads() - before - pooled


async def _until(predicate: Any, seconds: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_a_write_cancelled_while_waiting_for_the_lock_leaves_no_connection(settings: Any) -> None:
    if not is_sqlite():
        pytest.skip("PostgreSQL connections come from a pool that closes them")
    before = _sqlite_threads()
    # The write lock is held by a connection of its own, as by another process (the web beside a worker):
    # this process's waiters then wait inside SQLite's BEGIN IMMEDIATE, not for their turn in line.
    other_process = await aiosqlite.connect(str(sqlite_path_for(settings)))
    await other_process.execute("BEGIN IMMEDIATE")

    async def wait_for_the_lock() -> None:
        async with write_transaction():
            await Site.count()

    waiters = [asyncio.create_task(wait_for_the_lock()) for _ in range(3)]
    await asyncio.sleep(0.3)  # the first is inside BEGIN IMMEDIATE, waiting for the lock; the others for their turn
    for waiter in waiters:
        waiter.cancel()
    await asyncio.gather(*waiters, return_exceptions=True)
    await other_process.execute("ROLLBACK")
    await other_process.close()
    # Without the guard, a cancelled waiter's connection thread stays alive for good.
    await _until(lambda: not _leaked_sqlite_threads(before))
    assert await Site.count() >= 0  # the database is usable afterwards


async def test_a_process_s_sqlite_writers_take_turns_in_the_order_they_came(settings: Any) -> None:
    """Writers that find the write lock taken go in the order they asked. SQLite's busy handler alone lets
    whichever waiter polls first go next: the latest to come, whose sleeps between polls are shortest."""
    if not is_sqlite():
        pytest.skip("PostgreSQL writers take row locks, not one database lock")
    order: list[int] = []
    holding, release = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with write_transaction():
            await Site.count()
            holding.set()
            await release.wait()

    async def write(number: int) -> None:
        async with write_transaction():
            await Site.count()
            order.append(number)

    holder = asyncio.create_task(hold())
    await holding.wait()
    writers = []
    for number in range(6):
        writers.append(asyncio.create_task(write(number)))
        await asyncio.sleep(0.15)  # each has waited a while, so its sleeps between polls have grown
    release.set()
    await asyncio.gather(holder, *writers)
    assert order == list(range(6))


async def test_orphaned_connections_are_stopped_at_shutdown(settings: Any) -> None:
    if not is_sqlite():
        pytest.skip("SQLite only")
    engine = current_engine()
    assert isinstance(engine, PooledSQLiteEngine)
    await engine.close_idle_connections()  # so the connection below is a new one
    before = _sqlite_threads()
    # Opened and never closed, and still referred to (as by a cancelled job's lingering frame).
    lingering = [await engine.get_connection()]
    assert isinstance(lingering[0], aiosqlite.Connection)
    thread = lingering[0]._thread
    assert thread.is_alive() and thread not in before
    assert stop_orphaned_sqlite_connections() >= 1
    await _until(lambda: not thread.is_alive())


_EXIT_SCRIPT = """
import asyncio, sys
import aiosqlite
from app.db import stop_sqlite_connections_before_exit

async def main():
    if sys.argv[1] == "hook":
        stop_sqlite_connections_before_exit()
    connection = await aiosqlite.connect(":memory:")  # never closed, as after a cancelled job
    await connection.execute("SELECT 1")
    raise asyncio.CancelledError  # leave as arq's Worker.close did, past the shutdown hook

asyncio.run(main())
"""


@pytest.mark.parametrize("hook", [True, False])
def test_a_process_exits_even_when_its_shutdown_hook_was_skipped(hook: bool) -> None:
    """With the hook the process exits at once; without it, it waits for the connection's thread."""
    process = subprocess.Popen([sys.executable, "-c", _EXIT_SCRIPT, "hook" if hook else "none"], cwd=ROOT)
    try:
        process.wait(timeout=15 if hook else 3)
        exited = True
    except subprocess.TimeoutExpired:
        exited = False
    finally:
        process.kill()
        process.wait()
    assert exited is hook


async def test_a_lent_sqlite_connection_comes_back_outside_any_transaction(settings: Any) -> None:
    if not is_sqlite():
        pytest.skip("SQLite only")
    engine = current_engine()
    assert isinstance(engine, PooledSQLiteEngine)
    await engine.close_idle_connections()
    connection = await engine.get_connection()
    await connection.execute("BEGIN IMMEDIATE")
    await connection.execute(
        "INSERT INTO site (id, name, slug) VALUES ('00000000-0000-4000-8000-00000000db01', 'x', 'x-db01')"
    )
    await connection.close()  # back to the idle list, the write undone
    again = await engine.get_connection()
    assert again is connection and not again.in_transaction
    await again.close()
    assert not await Site.exists().where(Site.slug == "x-db01")


async def test_a_finished_write_transaction_gives_a_live_connection_back_to_the_pool(settings: Any) -> None:
    """The connection a write transaction used goes back to the idle list alive, and closing the idle
    connections ends (a stopped one left in the list made close_database wait for ever)."""
    if not is_sqlite():
        pytest.skip("SQLite only")
    engine = current_engine()
    assert isinstance(engine, PooledSQLiteEngine)
    await engine.close_idle_connections()
    async with write_transaction():
        await Site.exists()
    idle = engine.idle_connections()
    assert idle and all(c._running for c in idle)
    async with asyncio.timeout(10):
        await engine.close_idle_connections()


async def test_a_cancelled_sqlite_query_never_lends_its_connection_again(settings: Any) -> None:
    if not is_sqlite():
        pytest.skip("SQLite only")
    engine = current_engine()
    assert isinstance(engine, PooledSQLiteEngine)
    await engine.close_idle_connections()
    before = _sqlite_threads()
    slow = asyncio.create_task(
        engine._run_in_new_connection(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000000) SELECT count(*) FROM n"
        )
    )
    await asyncio.sleep(0.05)
    slow.cancel()
    with pytest.raises(asyncio.CancelledError):
        await slow
    assert engine.idle_connections() == []
    await _until(lambda: not (_sqlite_threads() - before))  # stopped: its thread ends after the query
    assert await Site.count() >= 0


def test_each_event_loop_has_its_own_postgres_pool(settings: Any) -> None:
    if is_sqlite():
        pytest.skip("PostgreSQL only")
    from app.db import close_database, open_database

    engine = current_engine()

    async def on_a_loop_of_its_own() -> tuple[bool, bool, int]:
        without = engine.pool is None
        assert await Site.count() >= 0  # a connection of its own, no pool needed
        await open_database(settings)
        pool = engine.pool
        assert await Site.count() >= 0
        await close_database()
        return without, pool is not None, id(pool)

    results: list[tuple[bool, bool, int]] = []
    thread = threading.Thread(target=lambda: results.append(asyncio.run(on_a_loop_of_its_own())))
    thread.start()
    thread.join(30)
    [(had_none, got_one, pool_id)] = results
    assert had_none and got_one
    assert engine.pool is None or id(engine.pool) != pool_id  # the tests' loop keeps its own


async def test_the_tests_loop_queries_through_its_pool(settings: Any) -> None:
    if is_sqlite():
        pytest.skip("PostgreSQL only")
    engine = current_engine()
    assert engine.pool is not None  # tests/conftest.py started it, as a server's lifespan does
    assert await Site.count() >= 0


async def test_a_pooled_postgres_connection_goes_back_in_one_round_trip_less_with_its_transaction_ended(
    settings: Any,
) -> None:
    """Releasing a connection sends no reset query (asyncpg's default sent one per release, so per Piccolo
    query), and a transaction a caller left open is still rolled back before anyone else gets it."""
    if is_sqlite():
        pytest.skip("PostgreSQL only")
    engine = current_engine()
    assert engine.pool is not None
    seen: list[str] = []
    async with engine.pool.acquire() as connection:
        connection.add_query_logger(lambda record: seen.append(record.query))
        backend = await connection.fetchval("SELECT pg_backend_pid()")
        await connection.execute("BEGIN")
        await connection.execute("CREATE TEMPORARY TABLE left_open (n int)")
    assert seen == ["SELECT pg_backend_pid()", "BEGIN", "CREATE TEMPORARY TABLE left_open (n int)", "ROLLBACK"]
    async with engine.pool.acquire() as connection:  # the pool lends the connection it got back last
        assert await connection.fetchval("SELECT pg_backend_pid()") == backend
        assert not connection.is_in_transaction()
        assert await connection.fetchval("SELECT to_regclass('pg_temp.left_open') IS NULL")


_IDLE_POOL_SCRIPT = """
import asyncio, sys, threading
from app.db import PooledSQLiteEngine

ENGINE = PooledSQLiteEngine(path=sys.argv[1], timeout=5)  # module-wide, as piccolo_conf's DB is
threading._threading_atexits.clear()  # as if the shutdown hook never ran (it did not, in a hung run)

async def main():
    await ENGINE.run_ddl("SELECT 1")  # its connection goes back to the idle list, open
    assert len(ENGINE.idle_connections()) == 1

asyncio.run(main())
"""


def test_a_process_with_idle_pooled_connections_exits(tmp_dir: Path) -> None:
    """A full run once hung after its summary, joining an idle pooled connection's thread."""
    process = subprocess.Popen([sys.executable, "-c", _IDLE_POOL_SCRIPT, str(tmp_dir / "idle.sqlite")], cwd=ROOT)
    try:
        assert process.wait(timeout=15) == 0
    finally:
        process.kill()
        process.wait()


async def test_a_bulk_insert_that_ignores_conflicts_writes_each_new_row_once() -> None:
    """On PostgreSQL the rows go by COPY, which a single existing row fails whole: the INSERT that follows
    must still write the new rows and skip the existing one (a part of an audience expanded again)."""
    import datetime as dt
    import secrets
    from uuid import uuid4

    from app.db import bulk_insert

    columns = ("id", "name", "slug", "timezone", "country_code", "settings", "created_at")
    now = dt.datetime.now(dt.UTC)
    tag = secrets.token_hex(4)

    def site(n: int) -> tuple[Any, ...]:
        return (uuid4(), f"bulk {n}", f"bulk-{tag}-{n}", "Asia/Kolkata", "IN", "{}", now)

    first = [site(n) for n in range(3)]
    await bulk_insert("site", columns, first, ignore_conflicts=True)
    again = [first[1], *(site(n) for n in range(3, 6))]  # one already written, three new
    await bulk_insert("site", columns, again, ignore_conflicts=True)
    rows = await Site.select(Site.slug).where(Site.slug.like(f"bulk-{tag}-%"))
    assert sorted(r["slug"] for r in rows) == [f"bulk-{tag}-{n}" for n in range(6)]
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
        await bulk_insert("site", columns, [site(9), first[0]])  # without ignore_conflicts it is an error


async def test_a_large_bulk_insert_writes_every_row_once() -> None:
    """20,000 rows in one write (on SQLite one statement, the rows one JSON parameter; on PostgreSQL a
    COPY). Re-inserting them all, 15,000 of them existing, skips only the existing rows."""
    import datetime as dt
    import secrets
    from uuid import uuid4

    from app.db import bulk_insert
    from schema.notifications import NationalDndEntry

    site = Site(name="Bulk", slug=f"bulk-{secrets.token_hex(4)}")
    await site.save()
    now = dt.datetime.now(dt.UTC)
    rows = [(uuid4(), site.id, f"index-{n:05d}", now) for n in range(20_000)]
    columns = ("id", "site", "phone_index", "imported_at")
    try:
        await bulk_insert("national_dnd_entry", columns, rows[:15_000], ignore_conflicts=True)
        # Rows 0-14,999 exist: each statement of this one meets some, and 5,000 are new.
        await bulk_insert("national_dnd_entry", columns, rows[::-1], ignore_conflicts=True)
        written = await NationalDndEntry.select(NationalDndEntry.phone_index).where(NationalDndEntry.site == site.id)
        assert sorted(r["phone_index"] for r in written) == [f"index-{n:05d}" for n in range(20_000)]
    finally:
        await Site.delete().where(Site.id == site.id)


async def test_rows_written_in_bulk_are_stored_as_piccolo_stores_them() -> None:
    """bulk_insert and update_each hand SQLite a batch's rows as JSON (made by msgspec, not by the sqlite3
    module's adapters): each value must still be stored as Piccolo stores it, in the same text and type,
    or later reads and comparisons (timestamps compared as text, UUIDs matched as text) would miss rows."""
    import datetime as dt
    import secrets
    from uuid import uuid4

    from app.db import bulk_insert, update_each
    from schema.tables import Person

    site = Site(name="Stored", slug=f"stored-{secrets.token_hex(4)}")
    await site.save()
    now = dt.datetime(2026, 12, 7, 21, 5, 9, 4321, tzinfo=dt.UTC)
    # The same moment in another zone: stored in UTC by both paths.
    later = dt.datetime(2026, 12, 8, 3, 0, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30)))
    saved = Person(site=site.id, full_name="Saved", is_active=False, timezone=None, created_at=now, updated_at=now)
    await saved.save()
    await Person.update({Person.deactivated_at: later, Person.timezone: "Asia/Kolkata"}).where(Person.id == saved.id)
    written = uuid4()
    columns = ("id", "site", "full_name", "is_active", "timezone", "locale", "created_at", "updated_at")
    await bulk_insert("person", columns, [(written, site.id, "Written", False, None, "en-IN", now, now)])
    await update_each(
        "person",
        ("deactivated_at", "timezone"),
        [(written, later, "Asia/Kolkata")],
        "deactivated_at = o.deactivated_at, timezone = o.timezone",
        "site = {}",
        site.id,
    )
    stored = "is_active, timezone, locale, created_at, updated_at, deactivated_at"
    as_text = ", ".join(f"CAST({c} AS TEXT) AS {c}" for c in stored.split(", "))
    rows = await Person.raw(
        f"SELECT full_name, CAST(site AS TEXT) AS site, {as_text} FROM person WHERE site = {{}} ORDER BY full_name",
        site.id,
    )
    assert [row["full_name"] for row in rows] == ["Saved", "Written"]
    assert {k: v for k, v in rows[0].items() if k != "full_name"} == {
        k: v for k, v in rows[1].items() if k != "full_name"
    }
    read = await Person.select().where(Person.site == site.id).order_by(Person.full_name)
    assert read[1]["id"] == written and read[1]["deactivated_at"] == later and read[1]["is_active"] is False


async def _site_with_dnd_rows(name: str, count: int) -> tuple[Site, list[tuple[Any, ...]]]:
    """A new site, and ``count`` rows of national_dnd_entry for it (id, site, phone_index, imported_at), unwritten."""
    import datetime as dt
    import secrets
    from uuid import uuid4

    site = Site(name=name, slug=f"{name.lower()}-{secrets.token_hex(4)}")
    await site.save()
    now = dt.datetime.now(dt.UTC)
    return site, [(uuid4(), site.id, f"index-{n:05d}", now) for n in range(count)]


async def test_a_bulk_write_on_sqlite_hands_over_its_rows_as_one_parameter() -> None:
    """A fan-out's ledger is 200,000 values a 10,000-person announcement. Bound one by one, each went through
    the sqlite3 module's adapter in Python (a UUID's str, a timestamp's text) on the database's thread,
    holding the GIL that the provider calls on the event loop's thread waited for. As one JSON parameter,
    made in C, only the statement's own parameters are adapted."""
    if not is_sqlite():
        pytest.skip("PostgreSQL binds through asyncpg's codecs, in C")
    import sqlite3
    from uuid import UUID

    from app.db import bulk_insert, update_each
    from schema.notifications import NationalDndEntry

    site, rows = await _site_with_dnd_rows("Adapters", 3000)
    key = (UUID, sqlite3.PrepareProtocol)
    adapt = sqlite3.adapters[key]
    adapted: list[UUID] = []

    def counting(value: UUID) -> Any:
        adapted.append(value)
        return adapt(value)

    sqlite3.adapters[key] = counting
    try:
        await bulk_insert("national_dnd_entry", ("id", "site", "phone_index", "imported_at"), rows)
        await update_each(
            "national_dnd_entry",
            ("phone_index",),
            [(r[0], r[2] + "-x") for r in rows],
            "phone_index = o.phone_index",
            "site = {}",
            site.id,
        )
    finally:
        sqlite3.adapters[key] = adapt
    assert adapted == [site.id]  # the update's own parameter; none of the rows' 9,000 UUIDs
    stored = await NationalDndEntry.select(NationalDndEntry.phone_index).where(NationalDndEntry.site == site.id)
    assert sorted(r["phone_index"] for r in stored) == [f"index-{n:05d}-x" for n in range(3000)]
    await Site.delete().where(Site.id == site.id)


async def test_rows_read_through_the_driver_have_the_types_piccolo_gives_them() -> None:
    """fetch_rows on SQLite reads a whole result as one JSON array (one step of the statement) and converts
    each value back as the driver would have: UUIDs, booleans, timestamps and NULLs come out as Piccolo's own
    select gives them, on either database."""
    import datetime as dt
    import secrets

    from app.db import any_of, fetch_rows
    from schema.tables import Person

    site = Site(name="Types", slug=f"types-{secrets.token_hex(4)}")
    await site.save()
    now = dt.datetime(2026, 12, 6, 21, 30, 15, 123456, tzinfo=dt.UTC)
    people = [
        Person(site=site.id, full_name="Active", is_active=True, timezone=None, created_at=now, updated_at=now),
        Person(
            site=site.id,
            full_name="Gone",
            is_active=False,
            timezone="Europe/Berlin",
            created_at=now,
            updated_at=now,
            deactivated_at=now + dt.timedelta(days=1),
        ),
    ]
    for person in people:
        await person.save()
    columns = ("id", "site", "full_name", "is_active", "timezone", "created_at", "deactivated_at")
    ids, params = any_of("id", [p.id for p in people])
    read = await fetch_rows("person", columns, f"WHERE site = {{}} AND {ids}", site.id, *params)
    expected = await Person.select(*(getattr(Person, c) for c in columns)).where(Person.site == site.id)
    as_dicts = sorted(({c: row[c] for c in columns} for row in read), key=lambda row: row["full_name"])
    assert as_dicts == sorted(expected, key=lambda row: row["full_name"])
    assert [type(as_dicts[1][c]).__name__ for c in columns] == [
        "UUID",
        "UUID",
        "str",
        "bool",
        "str",
        "datetime",
        "datetime",
    ]
    assert (as_dicts[0]["timezone"], as_dicts[0]["deactivated_at"], as_dicts[0]["is_active"]) == (None, None, True)
    # Grouped, and nothing found.
    grouped = await fetch_rows("person", ("site",), "WHERE site = {} GROUP BY site", site.id)
    assert [row["site"] for row in grouped] == [site.id]
    assert await fetch_rows("person", ("id",), "WHERE site = {} AND 1 = 0", site.id) == []


async def test_every_pooled_connection_enforces_foreign_keys_for_queries_and_transactions() -> None:
    """SQLite checks foreign keys only on connections that ask for it: each of the pool's connections asks
    once, when it is opened (Piccolo asked again before every statement, a trip to the connection's thread
    each). Erasure relies on it: deleting a site deletes its buildings."""
    import secrets

    from schema.tables import Building

    sites = [Site(name="FK", slug=f"fk-{secrets.token_hex(4)}") for _ in range(3)]
    for site in sites:
        await site.save()
        await Building(site=site.id, code="A", name="A").save()
    # Enough concurrent queries to take several of the pool's connections, then one inside a transaction.
    await asyncio.gather(*(Site.delete().where(Site.id == site.id) for site in sites[:2]))
    async with write_transaction():
        await Site.delete().where(Site.id == sites[2].id)
    assert await Building.count().where(Building.site.is_in([s.id for s in sites])) == 0
    with pytest.raises(Exception, match=r"(?i)foreign key"):
        await Building(site=sites[0].id, code="B", name="B").save()


class _Trips:
    """Counts trips to aiosqlite connections' threads (each a GIL handover there and back)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        original = aiosqlite.Connection._execute

        async def counted(connection: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return await original(connection, fn, *args, **kwargs)

        monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)


async def test_a_write_of_several_statements_is_one_trip_and_is_undone_whole_when_one_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bulk write's BEGIN IMMEDIATE, its statements and COMMIT go to the connection's thread together: one
    trip where they were several. A write that fails part-way (an existing row, after 5,000 new ones) leaves
    nothing of it, and its connection goes back outside any transaction."""
    if not is_sqlite():
        pytest.skip("SQLite only: PostgreSQL writes go through asyncpg")
    from app.db import bulk_insert
    from schema.notifications import NationalDndEntry

    site, rows = await _site_with_dnd_rows("Trips", 20_000)
    columns = ("id", "site", "phone_index", "imported_at")
    engine = current_engine()
    assert isinstance(engine, PooledSQLiteEngine)
    try:
        await Site.exists()  # an idle connection to lend: opening one is trips of its own
        trips = _Trips(monkeypatch)
        await bulk_insert("national_dnd_entry", columns, rows[:15_000])
        assert trips.count == 1
        # 5,000 new rows, then rows that exist: the write fails, whole.
        with pytest.raises(Exception, match=r"(?i)unique"):
            await bulk_insert("national_dnd_entry", columns, [*rows[15_000:], *([rows[0]] * 9_000)])
        assert await NationalDndEntry.count().where(NationalDndEntry.site == site.id) == 15_000
        assert all(not connection.in_transaction for connection in engine.idle_connections())
    finally:
        await NationalDndEntry.delete().where(NationalDndEntry.site == site.id)
        await Site.delete().where(Site.id == site.id)
