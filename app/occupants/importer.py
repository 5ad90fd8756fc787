"""Bulk import of occupants from CSV or XLSX, and the CSV export in the same format.

The format is documented in docs/occupant-import.md. The pipeline:

1. ``read_table``: bytes -> header + rows with their line numbers; a file-level problem
   (not CSV/XLSX, too large, unknown columns, too many rows) is one 4xx problem.
2. ``check_rows``: every row validated on its own (E.164 phones, units, relation, role)
   and against earlier rows (the same phone or email twice). CPU-bound: runs in a thread.
3. ``_plan``: rows matched to existing people by primary mobile or email (blind index),
   diffed against what is stored: create, update, unchanged, or a row error.
4. The plan is written in one transaction with bulk statements; bad rows are reported,
   good rows applied. ``dry_run`` stops after step 3.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import functools
import io
import re
import zipfile
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar
from uuid import UUID

import anyio.to_thread
import msgspec
import openpyxl

from app.auth.roles import Role
from app.db import current_engine
from app.errors import AppError, FieldError, InvalidInput
from app.occupants import service
from app.occupants.service import EMAIL, PRIMARY_MOBILE, SECONDARY_MOBILE, SLOT_FIELDS, Slot
from app.people.directory import Directory
from app.people.normalise import normalise_email, normalise_phone
from app.people.service import NewPerson, UnitLink, refresh_people_statistics
from schema.tables import Unit

COLUMNS: tuple[str, ...] = (
    "full_name",
    "unit",
    "relation",
    "primary_mobile",
    "secondary_mobile",
    "email",
    "vehicle_plates",
    "role",
)
REQUIRED_COLUMNS: tuple[str, ...] = ("full_name", "unit", "relation")
MAX_ROWS = 10_000
# A small XLSX can inflate enormously (zip bomb); refuse before openpyxl reads it.
MAX_XLSX_EXPANDED_BYTES = 64 * 1024 * 1024
LIST_SEPARATOR = ";"
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_PHONE = re.compile(r"^\+\d{6,15}$")
T = TypeVar("T")
_COLUMN_ORDER = {name: position for position, name in enumerate((*COLUMNS, "row"))}


class UnsupportedFile(AppError):
    status = 415
    slug = "unsupported-file"
    title = "Unsupported file"


class FileTooLarge(AppError):
    status = 413
    slug = "file-too-large"
    title = "File too large"


def _file_problem(kind: type[AppError], message: str) -> AppError:
    return kind(f"file: {message}", errors=[FieldError(field="file", message=message, source="body")])


class RowError(msgspec.Struct, frozen=True):
    line: int  # 1-based, as in the file; the header is line 1
    field: str  # the column at fault ("row" for the row as a whole)
    message: str


class ImportResult(msgspec.Struct, frozen=True):
    dry_run: bool
    rows: int
    created: int
    updated: int
    unchanged: int
    failed: int
    errors: list[RowError]


# ---------------------------------------------------------------- 1. bytes -> table


@dataclass(frozen=True)
class SourceRow:
    line: int
    cells: dict[str, str]  # column -> text (stripped)
    stray_cells: int  # non-empty cells under no heading


@dataclass(frozen=True)
class SourceTable:
    columns: frozenset[str]
    rows: list[SourceRow]


def read_table(content: bytes, *, max_bytes: int) -> SourceTable:
    if len(content) > max_bytes:
        raise _file_problem(FileTooLarge, f"is larger than {max_bytes} bytes; split it")
    if not content.strip():
        raise _file_problem(InvalidInput, "is empty")
    if content.startswith(b"PK\x03\x04"):
        lines = _xlsx_lines(content)
    elif content.startswith(b"\xd0\xcf\x11\xe0") or b"\x00" in content[:4096]:
        raise _file_problem(UnsupportedFile, "is not CSV or XLSX (old .xls workbooks: save as .xlsx)")
    else:
        lines = _csv_lines(content)
    return _tabulate(lines)


def _csv_lines(content: bytes) -> Iterator[tuple[int, list[str]]]:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _file_problem(UnsupportedFile, "is not UTF-8 CSV text; save it as 'CSV UTF-8' or .xlsx") from None
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text))
    previous = 0
    try:
        for cells in reader:
            # A quoted cell may span lines: report the line the record starts on.
            yield previous + 1, cells
            previous = reader.line_num
    except csv.Error as exc:
        raise _file_problem(InvalidInput, f"line {previous + 1}: {exc}") from None


def _delimiter(text: str) -> str:
    """Comma, or what the header uses instead (Excel writes ';' where ',' is the decimal mark)."""
    header = text.split("\n", 1)[0]
    counts = {candidate: header.count(candidate) for candidate in (",", ";", "\t")}
    best = max(counts, key=lambda candidate: counts[candidate])
    return best if counts[best] else ","


def _xlsx_lines(content: bytes) -> Iterator[tuple[int, list[str]]]:
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            expanded = sum(info.file_size for info in archive.infolist())
    except zipfile.BadZipFile:
        raise _file_problem(UnsupportedFile, "is not a readable XLSX workbook") from None
    if expanded > MAX_XLSX_EXPANDED_BYTES:
        raise _file_problem(FileTooLarge, "expands to too much data; split it")
    try:
        workbook = openpyxl.load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except Exception:  # openpyxl raises many types for a damaged or foreign archive
        raise _file_problem(UnsupportedFile, "is not a readable XLSX workbook") from None
    try:
        sheet = workbook.worksheets[0]
        # Some writers record a wrong sheet size; without this, read-only mode trusts it and cuts rows.
        sheet.reset_dimensions()
        for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            yield number, [_cell_text(value) for value in values]
    except AppError:
        raise
    except Exception:
        raise _file_problem(UnsupportedFile, "is not a readable XLSX workbook") from None
    finally:
        workbook.close()


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a mobile typed into Excel comes back as 9876543210.0
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


def _tabulate(lines: Iterable[tuple[int, list[str]]]) -> SourceTable:
    header: list[tuple[int, str]] | None = None
    rows: list[SourceRow] = []
    for line, cells in lines:
        if not any(cell.strip() for cell in cells):
            continue  # blank lines, and the empty rows spreadsheets leave at the end
        if header is None:
            header = _header(cells)
            continue
        if len(rows) == MAX_ROWS:
            raise _file_problem(InvalidInput, f"has more than {MAX_ROWS} rows; split it")
        rows.append(_source_row(line, cells, header))
    if header is None:
        raise _file_problem(InvalidInput, "has no header row")
    return SourceTable(columns=frozenset(name for _, name in header), rows=rows)


def _source_row(line: int, cells: list[str], header: list[tuple[int, str]]) -> SourceRow:
    named = {position for position, _ in header}
    values = {name: _unguard(cells[position].strip()) if position < len(cells) else "" for position, name in header}
    stray = sum(1 for position, cell in enumerate(cells) if position not in named and cell.strip())
    return SourceRow(line=line, cells=values, stray_cells=stray)


def _column_name(raw: str) -> str:
    return re.sub(r"[\s\-]+", "_", raw.strip().lower())


def _header(cells: list[str]) -> list[tuple[int, str]]:
    header = [(position, _column_name(cell)) for position, cell in enumerate(cells) if cell.strip()]
    names = [name for _, name in header]
    errors = [FieldError(field=name, message="unknown column", source="body") for name in names if name not in COLUMNS]
    errors += [
        FieldError(field=name, message="appears more than once", source="body")
        for name in sorted({n for n in names if names.count(n) > 1})
    ]
    errors += [
        FieldError(field=name, message="required column is missing", source="body")
        for name in REQUIRED_COLUMNS
        if name not in names
    ]
    if "primary_mobile" not in names and "email" not in names:
        message = "give a primary_mobile or an email column"
        errors.append(FieldError(field="primary_mobile", message=message, source="body"))
    if errors:
        summary = "; ".join(f"{e.field}: {e.message}" for e in errors)
        raise InvalidInput(f"the header row is not valid ({summary}); columns: {', '.join(COLUMNS)}", errors=errors)
    return header


def _guard(cell: str) -> str:
    """Keep a spreadsheet from running a cell as a formula (CSV injection); E.164 numbers are left as they are."""
    if cell.startswith(_FORMULA_START) and not _PLAIN_PHONE.match(cell):
        return "'" + cell
    return cell


def _unguard(cell: str) -> str:
    return cell[1:] if cell.startswith("'") and cell[1:2] in _FORMULA_START else cell


def _split(cell: str) -> list[str]:
    return [part.strip() for part in cell.split(LIST_SEPARATOR) if part.strip()]


# ---------------------------------------------------------------- 2. rows -> checked rows


@dataclass(frozen=True)
class ValidRow:
    line: int
    full_name: str
    links: dict[UUID, str]  # unit id -> relation
    contacts: dict[Slot, str | None]  # only the columns present in the file
    plates: frozenset[str] | None  # None: no vehicle_plates column

    def desired(self) -> service.Desired:
        return service.Desired(full_name=self.full_name, contacts=self.contacts, plates=self.plates, links=self.links)

    def new_person(self) -> NewPerson:
        return NewPerson(
            full_name=self.full_name,
            roles=frozenset({Role.OCCUPANT}),
            primary_mobile=self.contacts.get(PRIMARY_MOBILE),
            secondary_mobile=self.contacts.get(SECONDARY_MOBILE),
            email=self.contacts.get(EMAIL),
            unit_links=[UnitLink(unit_id=unit_id, relation=relation) for unit_id, relation in self.links.items()],
            plates=sorted(self.plates or ()),
        )


@dataclass
class CheckedRow:
    line: int
    valid: ValidRow | None
    errors: list[RowError]
    identifiers: dict[Slot, str]  # primary mobile / email that parsed, even when another cell did not


@dataclass
class _Row:
    """One row being checked: its cells, and the errors found so far."""

    source: SourceRow
    errors: list[RowError] = field(default_factory=list)

    def fail(self, column: str, message: str) -> None:
        self.errors.append(RowError(line=self.source.line, field=column, message=message))

    def cell(self, column: str) -> str:
        return self.source.cells.get(column, "")


def check_rows(table: SourceTable, units: Mapping[str, UUID], region: str) -> list[CheckedRow]:
    """Validate every row, then flag rows repeating an earlier row's primary mobile or email."""
    checked = [_check_row(row, table.columns, units, region) for row in table.rows]
    first_line: dict[tuple[Slot, str], int] = {}
    for row in checked:
        for slot, value in row.identifiers.items():
            earlier = first_line.setdefault((slot, value), row.line)
            if earlier != row.line:
                row.errors.append(RowError(row.line, SLOT_FIELDS[slot], f"is the same as on line {earlier}"))
                row.valid = None
    return checked


def _check_row(source: SourceRow, columns: frozenset[str], units: Mapping[str, UUID], region: str) -> CheckedRow:
    row = _Row(source)
    if source.stray_cells:
        row.fail("row", "has values in columns without a heading")
    full_name = _attempt(row, "full_name", service.clean_name, row.cell("full_name"))
    _check_role(row)
    links = _links(row, units)
    contacts = _contacts(row, columns, region)
    plates = _attempt(row, "vehicle_plates", service.clean_plates, _split(row.cell("vehicle_plates")))
    # A contact that failed to parse is already reported; "give a mobile or email" would only repeat it.
    if not any(error.field in SLOT_FIELDS.values() for error in row.errors):
        problem = service.contact_rule_error(contacts)
        if problem is not None:
            row.fail(*problem)
    identifiers = {slot: value for slot in service.IDENTIFYING_SLOTS if (value := contacts.get(slot))}
    valid = None
    if not row.errors and full_name is not None and links is not None:
        valid = ValidRow(
            line=source.line,
            full_name=full_name,
            links=links,
            contacts=contacts,
            plates=plates if "vehicle_plates" in columns else None,
        )
    return CheckedRow(line=source.line, valid=valid, errors=row.errors, identifiers=identifiers)


def _attempt(row: _Row, column: str, fn: Callable[..., T], *args: object) -> T | None:
    try:
        return fn(*args)
    except ValueError as exc:
        row.fail(column, str(exc))
        return None


def _check_role(row: _Row) -> None:
    role = row.cell("role").lower()
    if not role or role == Role.OCCUPANT.value:
        return
    if role in {r.value for r in Role}:
        row.fail("role", f"the file may only add occupants, not '{role}'")
    else:
        row.fail("role", f"'{role}' is not a role; leave it empty or write 'occupant'")


def _links(row: _Row, units: Mapping[str, UUID]) -> dict[UUID, str] | None:
    """Unit labels (';'-separated) with one relation for all, or one per unit in the same order."""
    labels, relations = _split(row.cell("unit")), [r.lower() for r in _split(row.cell("relation"))]
    errors_before = len(row.errors)
    if not labels:
        row.fail("unit", "is required (a unit label such as A-1204)")
    unit_ids: list[UUID] = []
    for label in labels:
        unit_id = units.get(label.casefold())
        if unit_id is None:
            row.fail("unit", f"there is no unit '{label}' on this site")
        elif unit_id in unit_ids:
            row.fail("unit", f"lists '{label}' twice")
        else:
            unit_ids.append(unit_id)
    wrong = [r for r in relations if r not in service.RELATIONS]
    if not relations:
        row.fail("relation", f"is required ({', '.join(service.RELATIONS)})")
    elif wrong:
        row.fail("relation", f"'{wrong[0]}' is not one of {', '.join(service.RELATIONS)}")
    elif len(relations) not in (1, len(labels)):
        row.fail("relation", "give one relation, or one per unit in the same order")
    if len(row.errors) > errors_before:
        return None
    return {unit_id: relations[0 if len(relations) == 1 else i] for i, unit_id in enumerate(unit_ids)}


def _contacts(row: _Row, columns: frozenset[str], region: str) -> dict[Slot, str | None]:
    parsers: dict[Slot, Callable[[str], str]] = {
        PRIMARY_MOBILE: functools.partial(normalise_phone, default_region=region),
        SECONDARY_MOBILE: functools.partial(normalise_phone, default_region=region),
        EMAIL: normalise_email,
    }
    contacts: dict[Slot, str | None] = {}
    for slot, parse in parsers.items():
        column = SLOT_FIELDS[slot]
        if column not in columns:
            continue  # an absent column leaves that contact as it is
        text = row.cell(column)
        contacts[slot] = _attempt(row, column, parse, text) if text else None
    return contacts


# ---------------------------------------------------------------- 3. checked rows -> plan


@dataclass
class _Plan:
    rows: int
    creates: list[ValidRow] = field(default_factory=list)
    changes: list[service.Change] = field(default_factory=list)
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)

    def result(self, dry_run: bool) -> ImportResult:
        errors = sorted(self.errors, key=lambda e: (e.line, _COLUMN_ORDER.get(e.field, len(_COLUMN_ORDER))))
        return ImportResult(
            dry_run=dry_run,
            rows=self.rows,
            created=len(self.creates),
            updated=len(self.changes),
            unchanged=self.unchanged,
            failed=len({e.line for e in errors}),
            errors=errors,
        )


async def _plan(directory: Directory, site_id: UUID, checked: list[CheckedRow]) -> _Plan:
    plan = _Plan(rows=len(checked), errors=[error for row in checked for error in row.errors])
    valid = [row.valid for row in checked if row.valid is not None]
    matches = await _matches(directory, site_id, valid)
    states = await service.load_states(directory, site_id, {pid for m in matches.values() for pid in m.people})
    claimed: dict[UUID, int] = {}
    for row in valid:
        try:
            person_id = _resolve(row, matches[row.line], states, claimed)
        except _Rejected as rejected:
            plan.errors.append(rejected.error)
            continue
        if person_id is None:
            plan.creates.append(row)
            continue
        change = service.diff(states[person_id], row.desired())
        if change.is_empty():
            plan.unchanged += 1
        else:
            plan.changes.append(change)
    return plan


@dataclass(frozen=True)
class _Match:
    by_mobile: frozenset[UUID]
    by_email: frozenset[UUID]

    @property
    def people(self) -> frozenset[UUID]:
        return self.by_mobile | self.by_email


class _Rejected(Exception):
    def __init__(self, row: ValidRow, column: str, message: str) -> None:
        super().__init__(message)
        self.error = RowError(line=row.line, field=column, message=message)


async def _matches(directory: Directory, site_id: UUID, rows: Sequence[ValidRow]) -> dict[int, _Match]:
    """For each row, the people already holding its primary mobile and its email: two bulk lookups."""
    found: dict[Slot, dict[str, set[UUID]]] = {}
    for slot in service.IDENTIFYING_SLOTS:
        values = {value for row in rows if (value := row.contacts.get(slot))}
        found[slot] = await directory.people_by_contacts(site_id, slot[0], values, label=slot[1]) if values else {}
    empty: set[UUID] = set()
    return {
        row.line: _Match(
            by_mobile=frozenset(found[PRIMARY_MOBILE].get(row.contacts.get(PRIMARY_MOBILE) or "", empty)),
            by_email=frozenset(found[EMAIL].get(row.contacts.get(EMAIL) or "", empty)),
        )
        for row in rows
    }


def _resolve(
    row: ValidRow, match: _Match, states: Mapping[UUID, service.OccupantState], claimed: dict[UUID, int]
) -> UUID | None:
    """The person this row updates, or None to create one; raises _Rejected."""
    for column, people in (("primary_mobile", match.by_mobile), ("email", match.by_email)):
        if len(people) > 1:
            raise _Rejected(row, column, "already identifies several people here; correct them in the listing first")
    if match.by_mobile and match.by_email and match.by_mobile != match.by_email:
        raise _Rejected(row, "email", "belongs to a different person than primary_mobile")
    if not match.people:
        return None
    [person_id] = match.people
    column = "primary_mobile" if match.by_mobile else "email"
    state = states[person_id]
    if not state.is_occupant:
        raise _Rejected(row, column, "belongs to a staff account, not an occupant")
    if not state.is_active:
        # Re-importing an old spreadsheet must not quietly bring back someone who moved out.
        raise _Rejected(row, column, "belongs to a deactivated occupant; reactivate them first or remove the row")
    if person_id in claimed:
        raise _Rejected(row, column, f"is the same occupant as on line {claimed[person_id]}")
    claimed[person_id] = row.line
    return person_id


# ---------------------------------------------------------------- 4. the whole import


async def import_occupants(
    directory: Directory, site_id: UUID, content: bytes, *, max_bytes: int, dry_run: bool = False
) -> ImportResult:
    """Validate every row; unless ``dry_run``, apply the good rows in one transaction."""
    site = await service.site_context(site_id)
    units = await _units_by_label(site_id)
    # Parsing and phone validation are CPU work: keep them off the event loop (the gate is waiting).
    checked = await anyio.to_thread.run_sync(functools.partial(_read_and_check, content, max_bytes, units, site.region))
    async with _transaction(site_id, dry_run):
        await _drop_vanished_units(site_id, checked)
        plan = await _plan(directory, site_id, checked)
        if not dry_run:
            await _write(directory, site, plan)
    result = plan.result(dry_run)
    if not dry_run:
        await refresh_people_statistics(result.created)
    return result


async def _write(directory: Directory, site: service.SiteContext, plan: _Plan) -> None:
    # Building rows (encryption, Piccolo objects) is CPU work: in batches, so the event loop
    # serves other requests between them while a 10,000-row file is written in one transaction.
    for start in range(0, len(plan.creates), service.CHUNK):
        batch = plan.creates[start : start + service.CHUNK]
        await service.create_occupants(directory, site, [row.new_person() for row in batch])
    for start in range(0, len(plan.changes), service.CHUNK):
        await service.apply_changes(directory, site, plan.changes[start : start + service.CHUNK])


def _read_and_check(content: bytes, max_bytes: int, units: Mapping[str, UUID], region: str) -> list[CheckedRow]:
    return check_rows(read_table(content, max_bytes=max_bytes), units, region)


async def _units_by_label(site_id: UUID) -> dict[str, UUID]:
    rows = await Unit.select(Unit.id, Unit.label).where(Unit.site == site_id)
    return {row["label"].casefold(): row["id"] for row in rows}


@contextlib.asynccontextmanager
async def _transaction(site_id: UUID, dry_run: bool) -> AsyncIterator[None]:
    if dry_run:
        # A read transaction: one consistent snapshot, and no write lock taken.
        async with current_engine().transaction():
            yield
    else:
        async with service.people_write_lock(site_id):
            yield


async def _drop_vanished_units(site_id: UUID, checked: list[CheckedRow]) -> None:
    """Units were read before the transaction; one deleted meanwhile becomes a row error, not a crash."""
    wanted = {unit_id for row in checked if row.valid for unit_id in row.valid.links}
    if not wanted:
        return
    present: set[UUID] = set()
    ids = sorted(wanted, key=str)
    for start in range(0, len(ids), service.CHUNK):
        rows = await Unit.select(Unit.id).where(
            (Unit.site == site_id) & Unit.id.is_in(ids[start : start + service.CHUNK])
        )
        present |= {row["id"] for row in rows}
    for row in checked:
        if row.valid and not set(row.valid.links) <= present:
            row.errors.append(RowError(row.line, "unit", "the unit was deleted during the import"))
            row.valid = None


# ---------------------------------------------------------------- export


def export_row(view: service.OccupantView) -> list[str]:
    """One occupant as a row of the import format, so an export re-imports as 'unchanged'."""
    links = sorted((link for link in view.units if link.is_active), key=lambda link: link.unit_label)
    relations = [link.relation for link in links]
    relation = relations[0] if len(set(relations)) == 1 else LIST_SEPARATOR.join(relations)
    cells = [
        view.full_name,
        LIST_SEPARATOR.join(link.unit_label for link in links),
        relation,
        view.primary_mobile or "",
        view.secondary_mobile or "",
        view.email or "",
        LIST_SEPARATOR.join(sorted(view.vehicle_plates)),
        Role.OCCUPANT.value,
    ]
    return [_guard(cell) for cell in cells]


def _csv_text(rows: Iterable[Sequence[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue().encode("utf-8")


async def export_csv(directory: Directory, site_id: UUID, person_ids: Sequence[UUID]) -> AsyncIterator[bytes]:
    """The CSV in chunks of 500 occupants; the BOM makes Excel read it as UTF-8."""
    yield "\ufeff".encode() + _csv_text([COLUMNS])
    for start in range(0, len(person_ids), service.CHUNK):
        views = await service.load_views(directory, site_id, person_ids[start : start + service.CHUNK])
        yield _csv_text(export_row(view) for view in views)
