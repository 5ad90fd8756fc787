"""A report's rows as CSV or XLSX, written a batch at a time (bounded memory whatever the size).

CSV: UTF-8, a header row of column names, CRLF lines; dates and times ISO 8601 (UTC), booleans
``true``/``false``, blanks empty. XLSX (openpyxl's write-only mode, which streams rows to a temporary
file): typed cells (numbers, dates, times, booleans), the header frozen, each column as wide as its type.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, Literal

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from app.reports.framework import Column, ColumnType

Format = Literal["csv", "xlsx"]
XLSX: Final = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
Rows = AsyncIterator[Sequence[tuple[Any, ...]]]
Progress = Callable[[int], Awaitable[None]]


def csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat() if value.tzinfo else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def csv_header(columns: Sequence[Column]) -> bytes:
    return _csv_lines([[c.name for c in columns]])


def _csv_lines(rows: Sequence[Sequence[Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerows([[csv_cell(v) for v in row] for row in rows])
    return buffer.getvalue().encode()


async def csv_chunks(columns: Sequence[Column], batches: Rows) -> AsyncIterator[bytes]:
    """The CSV, one chunk per batch of rows."""
    yield csv_header(columns)
    async for batch in batches:
        yield _csv_lines(batch)


def csv_text(columns: Sequence[Column], rows: Sequence[tuple[Any, ...]]) -> str:
    return (csv_header(columns) + _csv_lines(rows)).decode()


def _xlsx_value(value: Any, kind: ColumnType) -> Any:
    if value is None:
        return None
    if kind is ColumnType.DATETIME and isinstance(value, dt.datetime):
        # Excel has no time zones: UTC wall-clock time, as the column's title says.
        return value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value
    if kind is ColumnType.DECIMAL and isinstance(value, Decimal):
        return float(value)
    return value


_FORMATS: Final = {
    ColumnType.DATE: "yyyy-mm-dd",
    ColumnType.DATETIME: "yyyy-mm-dd hh:mm:ss",
    ColumnType.DECIMAL: "#,##0.00",
    ColumnType.INTEGER: "0",
}


class XlsxWriter:
    """Rows in, one worksheet out; ``close`` saves it to ``path``."""

    def __init__(self, path: Path, columns: Sequence[Column], title: str) -> None:
        self.path = path
        self.columns = list(columns)
        self.workbook = Workbook(write_only=True)
        safe = "".join(" " if ch in "[]:*?/\\" else ch for ch in title).strip()
        # A write-only workbook's sheet, whose class openpyxl keeps private (its stubs say Worksheet).
        sheet: Any = self.workbook.create_sheet(title=safe[:31] or "Report")
        self.sheet = sheet
        sheet.freeze_panes = "A2"
        for index, column in enumerate(self.columns, start=1):
            sheet.column_dimensions[get_column_letter(index)].width = column.xlsx_width
        bold = Font(bold=True)
        header = []
        for column in self.columns:
            cell = WriteOnlyCell(sheet, value=column.label)
            cell.font = bold
            header.append(cell)
        sheet.append(header)

    def append(self, rows: Sequence[tuple[Any, ...]]) -> None:
        kinds = [c.type for c in self.columns]
        for row in rows:
            cells = []
            for value, kind in zip(row, kinds, strict=True):
                cell = WriteOnlyCell(self.sheet, value=_xlsx_value(value, kind))
                if kind in _FORMATS and value is not None:
                    cell.number_format = _FORMATS[kind]
                cells.append(cell)
            self.sheet.append(cells)

    def close(self) -> None:
        partial = self.path.with_name(self.path.name + ".part")
        self.workbook.save(partial)
        os.replace(partial, self.path)


async def write_file(
    path: Path,
    fmt: Format,
    columns: Sequence[Column],
    batches: Rows,
    *,
    title: str,
    progress: Progress | None = None,
) -> int:
    """Write the whole report to ``path``; returns the rows written. ``progress`` hears the running count."""
    written = 0
    if fmt == "xlsx":
        writer = XlsxWriter(path, columns, title)
        async for batch in batches:
            await asyncio.to_thread(writer.append, batch)
            written += len(batch)
            if progress is not None:
                await progress(written)
        await asyncio.to_thread(writer.close)
        return written
    partial = path.with_name(path.name + ".part")
    handle = await asyncio.to_thread(open, partial, "wb")
    try:
        await asyncio.to_thread(handle.write, csv_header(columns))
        async for batch in batches:
            await asyncio.to_thread(handle.write, _csv_lines(batch))
            written += len(batch)
            if progress is not None:
                await progress(written)
    finally:
        await asyncio.to_thread(handle.close)
    await asyncio.to_thread(os.replace, partial, path)
    return written


async def rows_once(rows: Sequence[tuple[Any, ...]]) -> AsyncIterator[Sequence[tuple[Any, ...]]]:
    yield rows
