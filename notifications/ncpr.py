"""The site's copy of the national do-not-call registry (NCPR), imported from a CSV file.

Only the keyed blind index of each number is stored (the same index contact points use),
so a listed number can be matched against residents without being readable here. Import
is idempotent: a number already listed for the site is counted, not added again.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
from collections.abc import Callable
from uuid import UUID

import msgspec

from app.db import is_sqlite, write_transaction
from app.errors import InvalidInput, NotFound
from app.people.directory import Directory
from app.people.normalise import normalise_phone
from schema.notifications import NationalDndEntry
from schema.tables import Site

HEADER_NAMES = frozenset({"phone", "phone_number", "mobile", "msisdn"})
MAX_REPORTED_INVALID = 1000
_CHUNK = 500


class InvalidLine(msgspec.Struct, frozen=True):
    line: int
    message: str


class ImportReport(msgspec.Struct, frozen=True, kw_only=True):
    added: int
    already_listed: int
    invalid: list[InvalidLine]  # the first MAX_REPORTED_INVALID of them
    invalid_count: int


class RegistrySummary(msgspec.Struct, frozen=True, kw_only=True):
    entries: int
    last_imported_at: dt.datetime | None


class Cleared(msgspec.Struct, frozen=True):
    removed: int


class _Parsed(msgspec.Struct):
    indexes: list[str]  # in file order, one per valid line (duplicates included)
    invalid: list[InvalidLine]


def parse_registry(content: bytes, region: str, index_of: Callable[[str], str]) -> _Parsed:
    """One number per line, or a CSV with a ``phone`` column. Pure; runs in a worker thread."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput.for_field("file", "must be UTF-8 text (CSV or one number per line)") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    column: int | None = None
    seen_first_row = False
    parsed = _Parsed(indexes=[], invalid=[])
    for row in reader:
        cells = [cell.strip() for cell in row]
        if not any(cells):
            continue
        if not seen_first_row:
            seen_first_row = True
            names = [cell.lower() for cell in cells]
            header = next((i for i, name in enumerate(names) if name in HEADER_NAMES), None)
            if header is not None:
                column = header
                continue
        position = column if column is not None else 0
        raw = cells[position] if position < len(cells) else ""
        if not raw:
            parsed.invalid.append(InvalidLine(reader.line_num, "no phone number on this line"))
            continue
        try:
            parsed.indexes.append(index_of(normalise_phone(raw, region)))
        except ValueError as exc:
            parsed.invalid.append(InvalidLine(reader.line_num, str(exc)))
    if not parsed.indexes and not parsed.invalid:
        raise InvalidInput.for_field("file", "the file holds no phone numbers")
    return parsed


async def _site_region(site_id: UUID) -> str:
    row = await Site.select(Site.country_code).where(Site.id == site_id).first()
    if row is None:
        raise NotFound("site not found")
    return str(row["country_code"] or "IN")


async def _listed(site_id: UUID, indexes: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(indexes), _CHUNK):
        rows = await NationalDndEntry.select(NationalDndEntry.phone_index).where(
            (NationalDndEntry.site == site_id) & NationalDndEntry.phone_index.is_in(indexes[start : start + _CHUNK])
        )
        found |= {row["phone_index"] for row in rows}
    return found


async def import_registry(
    directory: Directory, site_id: UUID, content: bytes, *, now: dt.datetime | None = None
) -> ImportReport:
    now = now or dt.datetime.now(dt.UTC)
    region = await _site_region(site_id)
    # Parsing and normalising a large registry is CPU work: keep it off the event loop.
    parsed = await asyncio.to_thread(
        parse_registry, content, region, lambda e164: directory.contact_index("mobile", e164)
    )
    unique = list(dict.fromkeys(parsed.indexes))
    async with write_transaction():
        if not is_sqlite():
            # Serialise imports of one site (SQLite's BEGIN IMMEDIATE already does), so two
            # concurrent uploads cannot both add the same number.
            await Site.raw("SELECT id FROM site WHERE id = {} FOR UPDATE", site_id)
        listed = await _listed(site_id, unique)
        new = [index for index in unique if index not in listed]
        for start in range(0, len(new), _CHUNK):
            await NationalDndEntry.insert(
                *[
                    NationalDndEntry(site=site_id, phone_index=index, imported_at=now)
                    for index in new[start : start + _CHUNK]
                ]
            )
    return ImportReport(
        added=len(new),
        already_listed=len(parsed.indexes) - len(new),
        invalid=parsed.invalid[:MAX_REPORTED_INVALID],
        invalid_count=len(parsed.invalid),
    )


async def clear_registry(site_id: UUID) -> Cleared:
    async with write_transaction():
        removed = await NationalDndEntry.count().where(NationalDndEntry.site == site_id)
        await NationalDndEntry.delete().where(NationalDndEntry.site == site_id)
    return Cleared(removed=removed)


async def registry_summary(site_id: UUID) -> RegistrySummary:
    entries = await NationalDndEntry.count().where(NationalDndEntry.site == site_id)
    latest = (
        await NationalDndEntry.select(NationalDndEntry.imported_at)
        .where(NationalDndEntry.site == site_id)
        .order_by(NationalDndEntry.imported_at, ascending=False)
        .first()
    )
    return RegistrySummary(entries=entries, last_imported_at=latest["imported_at"] if latest else None)
