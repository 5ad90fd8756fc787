"""The monthly billing run for a demo-sized site, and one unit's statement, against a baseline.

Run from the repository root::

    .venv/bin/python bench/billing.py                                   # SQLite in a temporary directory
    .venv/bin/python bench/billing.py --database-url postgresql://postgres@127.0.0.1:5432/test

(PostgreSQL: a database is created for the run and dropped afterwards.)

Method
------
* Seed: one site with ``--units`` units (two towers), one owner each, a per-unit maintenance rate at
  18 % GST, and one booking fee from SLOTS (a ``slot_charge``) for every fifth unit; one unit gets
  ``--months`` months of history (an invoice and a payment a month) for the statement.
* **Run**: ``run_invoices`` for the month, as the cron does it: prepare every unit's maintenance charge,
  import the booking fees, and issue one invoice per unit, each in its own transaction under the unit's
  lock with a gap-free number, its lines, the charges marked, the ledger entry and the settlement cache.
  Checked after: one invoice per unit, numbers 1..N without a gap.
* **Baseline**: the same rows (invoices, their lines and ledger entries, already computed) written by a
  plain ``executemany`` in one transaction (``app.db.bulk_insert``): what writing the documents costs with
  no numbering, locking, idempotency or settlement. The run's time over the baseline's is their price.
* **Statement**: one unit's statement (``ledger.statement``) and its CSV export, median of ``--repeat``,
  against the baseline of a raw SQL ``SELECT`` of the same columns and rows (no statement built).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import secrets
import statistics
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
    parser.add_argument("--units", type=int, default=200)
    parser.add_argument("--months", type=int, default=36, help="history of the statement's unit")
    parser.add_argument("--repeat", type=int, default=20)
    return parser.parse_args()


async def _pg_admin(url: str, statement: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(url)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def _seed(units: int) -> tuple[Any, list[Any]]:
    from app.billing import setup
    from app.billing.setup import RateChange, SettingsChange
    from schema.slots import SlotBooking, SlotCharge
    from schema.tables import Building, Occupancy, Person, Resource, Site, Unit

    now = dt.datetime.now(dt.UTC)
    site = Site(name="Bench Residency", slug=f"bench-{secrets.token_hex(3)}", created_at=now)
    await site.save()
    unit_ids = []
    per_tower = units // 2
    for code in ("A", "B"):
        building = Building(site=site.id, code=code, name=f"Tower {code}")
        await building.save()
        rows = [
            Unit(site=site.id, building=building.id, label=f"{code}-{n:03d}", floor=n // 10) for n in range(per_tower)
        ]
        await Unit.insert(*rows)
        unit_ids += [u.id for u in rows]
    people = [
        Person(site=site.id, full_name=f"Owner {i}", created_at=now, updated_at=now) for i in range(len(unit_ids))
    ]
    await Person.insert(*people)
    await Occupancy.insert(
        *[Occupancy(site=site.id, person=p.id, unit=u, relation="owner") for p, u in zip(people, unit_ids, strict=True)]
    )
    await setup.ensure_site(site.id)
    await setup.change_settings(site.id, SettingsChange(legal_name="Bench Residency RWA", state_code="29"))
    await setup.set_rate(site.id, RateChange(unit_kind="residential", basis="per_unit", amount_minor=350_000))
    hall = Resource(site=site.id, kind="amenity", code="HALL", name="Party hall")
    await hall.save()
    for index, unit in enumerate(unit_ids[::5]):
        starts = now - dt.timedelta(days=3, hours=index)
        booking = SlotBooking(
            site=site.id,
            resource=hall.id,
            unit=unit,
            starts_at=starts,
            ends_at=starts + dt.timedelta(hours=1),
            blocks_until=starts + dt.timedelta(hours=1),
            status="completed",
            checkin_token=secrets.token_hex(8),
            created_at=now,
            updated_at=now,
        )
        await booking.save()
        await SlotCharge(
            site=site.id,
            booking=booking.id,
            unit=unit,
            amount_minor=50_000,
            currency="INR",
            description="Booking of Party hall",
            status="pending",
            created_at=now,
            updated_at=now,
        ).save()
    return site.id, unit_ids


async def _history(site_id: Any, unit_id: Any, months: int) -> None:
    from app.billing.charges import NewCharge, add_charge
    from app.billing.invoicing import issue_invoice
    from app.billing.payments import ProviderPayment, record_capture

    start = dt.date.today().replace(day=1) - dt.timedelta(days=31 * months)
    for month in range(months):
        day = (start + dt.timedelta(days=31 * month)).replace(day=1)
        await add_charge(
            site_id, NewCharge(unit_id=unit_id, description=f"Maintenance {day:%Y-%m}", unit_price_minor=350_000)
        )
        await issue_invoice(site_id, unit_id, day)
        await record_capture(
            "cash",
            ProviderPayment(
                id=f"manual:{secrets.token_hex(8)}",
                order_id=None,
                amount_minor=413_000,
                currency="INR",
                status="captured",
                method="cash",
                refunded_minor=0,
                created_at=0,
            ),
            site_id=site_id,
            unit_id=unit_id,
            method="cash",
            paid_on=day + dt.timedelta(days=10),
        )


async def _baseline_insert(site_id: Any) -> float:
    """The same invoices, lines and ledger entries as the run wrote, written by executemany in one go."""
    import uuid

    from app.db import bulk_insert
    from schema.billing import Invoice, InvoiceLine, LedgerEntry

    invoices = await Invoice.select().where(Invoice.site == site_id)
    lines = await InvoiceLine.select().where(InvoiceLine.site == site_id)
    entries = await LedgerEntry.select().where((LedgerEntry.site == site_id) & (LedgerEntry.kind == "invoice"))
    remap = {row["id"]: uuid.uuid4() for row in invoices}

    def rows(table_rows: list[dict[str, Any]], changes: Any) -> tuple[list[str], list[tuple[Any, ...]]]:
        columns = list(table_rows[0])
        return columns, [tuple(changes(dict(r)).values()) for r in table_rows]

    def invoice(row: dict[str, Any]) -> dict[str, Any]:
        return {**row, "id": remap[row["id"]], "number": "B" + row["number"][1:], "seq": row["seq"] + 10**6}

    def line(row: dict[str, Any]) -> dict[str, Any]:
        return {**row, "id": uuid.uuid4(), "invoice": remap[row["invoice"]]}

    def entry(row: dict[str, Any]) -> dict[str, Any]:
        return {**row, "id": uuid.uuid4(), "invoice": remap[row["invoice"]], "entry_key": "b" + row["entry_key"]}

    started = time.perf_counter()
    for table, source, change in (
        ("billing_invoice", invoices, invoice),
        ("billing_invoice_line", lines, line),
        ("billing_ledger_entry", entries, entry),
    ):
        columns, values = rows(source, change)
        await bulk_insert(table, columns, values)
    return time.perf_counter() - started


def _median(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


async def _main(args: argparse.Namespace) -> None:
    from app.billing import ledger
    from app.billing.invoicing import run_invoices
    from app.billing.views import statement_csv
    from app.db import apply_migrations, close_database, is_sqlite, open_database
    from schema.billing import Invoice, LedgerEntry

    await apply_migrations()
    await open_database()
    try:
        site_id, unit_ids = await _seed(args.units)
        history_unit = unit_ids[0]
        await _history(site_id, history_unit, args.months)
        period = dt.date.today().strftime("%Y-%m")

        started = time.perf_counter()
        result = await run_invoices(site_id, period)
        run_seconds = time.perf_counter() - started
        issued = len(result.issued)
        per_year: dict[str, list[int]] = {}
        for row in await Invoice.select(Invoice.fy, Invoice.seq).where(Invoice.site == site_id):
            per_year.setdefault(row["fy"], []).append(row["seq"])
        for seqs in per_year.values():
            assert sorted(seqs) == list(range(1, len(seqs) + 1)), "numbers have a gap"
        assert issued == len(unit_ids), (issued, len(unit_ids))

        label = "A-000"
        kinds: dict[str, int] = {}
        for row in await LedgerEntry.select(LedgerEntry.kind).where(LedgerEntry.unit == history_unit):
            kinds[row["kind"]] = kinds.get(row["kind"], 0) + 1
        entries = sum(kinds.values())
        statement_times, csv_times, select_times = [], [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            statement = await ledger.statement(site_id, history_unit, label)
            t1 = time.perf_counter()
            statement_csv(statement)
            t2 = time.perf_counter()
            await LedgerEntry.raw(
                "SELECT kind, amount_minor, entry_date, description, invoice, payment FROM billing_ledger_entry "
                "WHERE site = {} AND unit = {} ORDER BY entry_date, created_at",
                site_id,
                history_unit,
            )
            t3 = time.perf_counter()
            statement_times.append(t1 - t0)
            csv_times.append(t2 - t0)
            select_times.append(t3 - t2)
        baseline_seconds = await _baseline_insert(site_id)  # last: its copies must not join the statement
        database = "SQLite (WAL)" if is_sqlite() else "PostgreSQL"
        print(f"billing bench on {database}: {len(unit_ids)} units, {issued} invoices")
        print(f"statement of {entries} entries: {kinds}")
        print("| what | time | baseline | ratio |")
        print("|---|---|---|---|")
        print(
            f"| monthly run ({issued} invoices, {sum(i.total_minor for i in result.issued) / 100:,.2f} INR) | "
            f"{run_seconds:.2f} s ({run_seconds / issued * 1000:.1f} ms/invoice) | "
            f"{baseline_seconds:.3f} s (executemany of the same rows) | {run_seconds / baseline_seconds:.0f}x |"
        )
        statement_ms, select_ms = _median(statement_times), _median(select_times)
        print(
            f"| one unit's statement ({entries} entries), JSON | {statement_ms:.2f} ms | "
            f"{select_ms:.2f} ms (raw SELECT of the same columns) | {statement_ms / select_ms:.1f}x |"
        )
        print(f"| the same statement as CSV | {_median(csv_times):.2f} ms | | |")
    finally:
        await close_database()


def main() -> None:
    args = _parse()
    created = None
    if args.database_url:
        parsed = urlparse(args.database_url)
        created = f"bench_billing_{secrets.token_hex(3)}"
        asyncio.run(_pg_admin(args.database_url, f'CREATE DATABASE "{created}"'))
        os.environ["DATABASE_URL"] = urlunparse(parsed._replace(path=f"/{created}"))
    else:
        os.environ["OPSHUB_VAR_DIR"] = tempfile.mkdtemp(prefix="opshub-bench-billing-")
        os.environ.pop("DATABASE_URL", None)
    os.environ.setdefault("OPSHUB_LOG_LEVEL", "WARNING")
    try:
        asyncio.run(_main(args))
    finally:
        if created and args.database_url:
            asyncio.run(_pg_admin(args.database_url, f'DROP DATABASE IF EXISTS "{created}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
