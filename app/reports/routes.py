"""Every report's routes, made from its declaration: the same API for all of them.

- ``GET /api/reports``: the reports the caller may run, with their columns, filters and groupings;
- ``GET /api/reports/{name}``: the rows as JSON, a page (``?by=`` for the summary);
- ``GET /api/reports/{name}/export?format=csv|xlsx``: the same rows as a file, streamed;
- ``POST /api/reports/{name}/jobs``: the same file built by a worker, for large reports (``app.reports.jobs``).

No ``from __future__ import annotations`` here: the handlers are made in a function, and Litestar reads
their annotations at import, as objects.
"""

import asyncio
import datetime as dt
import logging
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from litestar import Response, delete, get, post
from litestar.di import Provide
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.spec import (
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Schema,
)
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.response import File, Stream

from app.auth.roles import ALL_ROLES, STAFF, allow, own_auth
from app.deps import Caller, SettingsDep
from app.errors import InvalidInput
from app.media import CSV
from app.pagination import DEFAULT_LIMIT, Limit, Offset, Page, Timestamp
from app.reports import export as files
from app.reports import jobs as report_jobs
from app.reports import schedules
from app.reports.framework import Filter, Query, Report, catalogue, make_query, scope_of, summarise
from notifications.api import JobQueue, JobQueueDep, provide_job_queue

logger = logging.getLogger("opshub.reports.routes")

# Read as text and parsed here, so a bad date's problem names ``from``/``to`` (Litestar's own check
# would name the Python parameter).
DateFrom = Annotated[
    str | None, QueryParameter(name="from", max_length=10, description="first day, inclusive (UTC), YYYY-MM-DD")
]
DateTo = Annotated[
    str | None, QueryParameter(name="to", max_length=10, description="last day, inclusive (UTC), YYYY-MM-DD")
]
Tower = Annotated[str | None, QueryParameter(max_length=16, description="a building's code")]
Category = Annotated[str | None, QueryParameter(max_length=64)]
Status = Annotated[str | None, QueryParameter(max_length=32)]
Person = Annotated[UUID | None, QueryParameter(description="a person's id")]
SiteId = Annotated[UUID | None, QueryParameter(description="platform admins: one site (default: all)")]
By = Annotated[str | None, QueryParameter(max_length=64, description="a column to summarise by")]
Format = Annotated[Literal["csv", "xlsx"], QueryParameter(name="format")]


class ColumnInfo(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    type: str
    title: str


class ReportInfo(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    title: str
    description: str
    columns: list[ColumnInfo]
    filters: dict[str, str]  # filter -> what it compares
    group_by: list[str]
    measures: list[ColumnInfo]
    default_by: str | None


class ReportList(msgspec.Struct, frozen=True, kw_only=True):
    items: list[ReportInfo]
    total: int
    limit: int
    offset: int


class ReportPage(msgspec.Struct, frozen=True, kw_only=True):
    report: str
    by: str | None
    columns: list[ColumnInfo]
    items: list[dict[str, Any]]
    total: int
    limit: int
    offset: int


def parse_day(name: str, value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidInput.for_query(name, "must be a date, YYYY-MM-DD") from None


def info(report: Report) -> ReportInfo:
    notes = {
        Filter.FROM: "first day, inclusive (UTC)",
        Filter.TO: "last day, inclusive (UTC)",
        Filter.TOWER: "building code",
        Filter.STATUS: "status",
        Filter.SITE: "site id (platform admins)",
        **report.filter_notes,
    }
    return ReportInfo(
        name=report.name,
        title=report.title,
        description=report.description,
        columns=[ColumnInfo(name=c.name, type=str(c.type), title=c.label) for c in report.columns],
        filters={str(f): notes.get(f, str(f)) for f in sorted(report.all_filters)},
        group_by=list(report.group_by),
        measures=[ColumnInfo(name=m.name, type=str(m.type), title=m.name) for m in report.measures],
        default_by=report.default_by,
    )


@get("/api/reports", opt=allow(*ALL_ROLES), tags=["reports"])
async def list_reports(principal: Caller, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0) -> ReportList:
    """The reports open to any of the caller's roles."""
    mine = [info(r) for r in catalogue().values() if principal.has_any(r.roles)]
    return ReportList(items=mine[offset : offset + limit], total=len(mine), limit=limit, offset=offset)


async def build_query(
    principal: Any,
    report: Report,
    *,
    date_from: str | None,
    date_to: str | None,
    tower: str | None,
    category: str | None,
    status: str | None,
    person: UUID | None,
    site: UUID | None,
) -> Query:
    scope = await scope_of(principal, report, site)
    return make_query(
        report,
        scope,
        date_from=parse_day("from", date_from),
        date_to=parse_day("to", date_to),
        tower=tower,
        category=category,
        status=status,
        person=person,
    )


async def page_of_rows(report: Report, query: Query, by: str | None, limit: int, offset: int) -> ReportPage:
    """One page, reading every row once for the total but keeping only the page."""
    if by is not None:
        columns = report.summary_columns(by)
        rows = await summarise(report, query, by)
        total, kept = len(rows), rows[offset : offset + limit]
    else:
        columns = report.columns
        total, kept = 0, []
        async for batch in report.batches(query):
            start = max(0, offset - total)
            if start < len(batch) and len(kept) < limit:
                kept.extend(batch[start : start + limit - len(kept)])
            total += len(batch)
    names = [c.name for c in columns]
    return ReportPage(
        report=report.name,
        by=by,
        columns=[ColumnInfo(name=c.name, type=str(c.type), title=c.label) for c in columns],
        items=[dict(zip(names, row, strict=True)) for row in kept],
        total=total,
        limit=limit,
        offset=offset,
    )


def export_name(report: Report, by: str | None, fmt: str) -> str:
    return f"{report.name}{f'-by-{by}' if by else ''}.{fmt}"


@dataclass
class _CsvOrXlsx(Operation):
    """The export's document: its 200 is CSV or, with ``format=xlsx``, an XLSX workbook."""

    def __post_init__(self) -> None:
        ok = (self.responses or {}).get("200")
        if isinstance(ok, OpenAPIResponse) and ok.content is not None:
            ok.content[files.XLSX] = OpenAPIMediaType(
                schema=Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)
            )


class _XlsxStream(Stream):
    """The route is documented (and answers by default) as CSV; this answer keeps its own type."""

    def to_asgi_response(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["media_type"] = files.XLSX
        return super().to_asgi_response(*args, **kwargs)


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    """The file's bytes, then the file is gone (it was only ever this answer's)."""
    handle = await asyncio.to_thread(open, path, "rb")
    try:
        while chunk := await asyncio.to_thread(handle.read, 256 * 1024):
            yield chunk
    finally:
        await asyncio.to_thread(handle.close)
        await asyncio.to_thread(path.unlink, missing_ok=True)


async def export_response(
    settings: Any, report: Report, query: Query, by: str | None, fmt: str
) -> Response[Any] | Stream:
    if by is not None:
        report.check_by(by)
        columns = report.summary_columns(by)
        summary = await summarise(report, query, by)
        batches: Any = files.rows_once(summary)
    else:
        columns = report.columns
        batches = report.batches(query)
    name = export_name(report, by, fmt)
    headers = {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "private, no-store"}
    if fmt == "csv":
        return Stream(files.csv_chunks(columns, batches), media_type=CSV, headers=headers)
    # XLSX is a zip: written whole to a temporary file (openpyxl streams rows to disk), then sent.
    directory = settings.export_path / "reports" / "tmp"
    await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
    handle, raw = tempfile.mkstemp(suffix=".xlsx", dir=directory)
    os.close(handle)
    path = Path(raw)
    try:
        await files.write_file(path, "xlsx", columns, batches, title=report.title)
    except BaseException:
        await asyncio.to_thread(path.unlink, missing_ok=True)
        raise
    return _XlsxStream(_file_chunks(path), media_type=files.XLSX, headers=headers)


def report_handlers(report: Report) -> list[HTTPRouteHandler]:
    access = allow(*report.roles)
    path = f"/api/reports/{report.name}"

    @get(
        path,
        opt=access,
        tags=["reports"],
        summary=report.title,
        description=report.description,
        operation_id=f"report_{report.name}",
    )
    async def read(
        principal: Caller,
        date_from: DateFrom = None,
        date_to: DateTo = None,
        tower: Tower = None,
        category: Category = None,
        status: Status = None,
        person: Person = None,
        site: SiteId = None,
        by: By = None,
        limit: Limit = DEFAULT_LIMIT,
        offset: Offset = 0,
    ) -> ReportPage:
        query = await build_query(
            principal,
            report,
            date_from=date_from,
            date_to=date_to,
            tower=tower,
            category=category,
            status=status,
            person=person,
            site=site,
        )
        report.check_by(by)
        return await page_of_rows(report, query, by, limit, offset)

    @get(
        f"{path}/export",
        opt=access,
        tags=["reports"],
        media_type=CSV,
        operation_class=_CsvOrXlsx,
        summary=f"{report.title}: CSV or XLSX",
        operation_id=f"report_{report.name}_export",
    )
    async def export(
        principal: Caller,
        settings: SettingsDep,
        date_from: DateFrom = None,
        date_to: DateTo = None,
        tower: Tower = None,
        category: Category = None,
        status: Status = None,
        person: Person = None,
        site: SiteId = None,
        by: By = None,
        fmt: Format = "csv",
    ) -> Response[Any] | Stream:
        query = await build_query(
            principal,
            report,
            date_from=date_from,
            date_to=date_to,
            tower=tower,
            category=category,
            status=status,
            person=person,
            site=site,
        )
        return await export_response(settings, report, query, by, fmt)

    @post(
        f"{path}/jobs",
        opt=access,
        tags=["reports"],
        status_code=202,
        summary=f"{report.title}: build the file in a worker",
        operation_id=f"report_{report.name}_job",
        dependencies={"jobs": Provide(provide_job_queue, sync_to_thread=False)},
    )
    async def start_job(
        principal: Caller, settings: SettingsDep, jobs: JobQueueDep, data: JSONBody[report_jobs.ExportRequest]
    ) -> report_jobs.JobView:
        """For large reports: progress and the download link arrive as realtime events (docs/reports.md)."""
        job = await report_jobs.request_export(settings, principal, report.name, data)
        await enqueue(jobs, job.id)
        return job

    return [read, export, start_job]


async def enqueue(jobs: JobQueue, job_id: UUID) -> None:
    """A job Redis lost stays ``pending``: asking again files another."""
    try:
        pool = await jobs.pool()
        await pool.enqueue_job("report_export", str(job_id), _job_id=f"report_export:{job_id}")
    except Exception:
        logger.warning("could not enqueue report export %s", job_id)


@get("/api/reports/jobs/{job_id:uuid}", opt=allow(*ALL_ROLES), tags=["reports"])
async def read_job(principal: Caller, settings: SettingsDep, job_id: FromPath[UUID]) -> report_jobs.JobView:
    """One of the caller's own export jobs (another person's is a 404)."""
    return await report_jobs.get_job(settings, principal, job_id)


@get(
    report_jobs.DOWNLOAD_PATH.replace("{job_id}", "{job_id:uuid}"),
    opt=own_auth("signed_link"),
    tags=["reports"],
)
async def download_job(
    settings: SettingsDep,
    job_id: FromPath[UUID],
    expires: Timestamp,
    signature: Annotated[str, QueryParameter(max_length=128)],
) -> File:
    """The signed link of a finished job: 410 once it has expired, 404 if the signature is wrong."""
    path, filename, media = await report_jobs.open_download(settings, job_id, expires, signature)
    return File(path=path, filename=filename, media_type=media)


MANAGERS = allow(*STAFF)


@get("/api/reports/subscriptions", opt=MANAGERS, tags=["reports"])
async def list_subscriptions(
    principal: Caller, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
) -> Page[schedules.SubscriptionView]:
    """The caller's own scheduled reports."""
    return await schedules.list_subscriptions(principal, limit=limit, offset=offset)


@post("/api/reports/subscriptions", opt=MANAGERS, tags=["reports"])
async def subscribe(principal: Caller, data: JSONBody[schedules.NewSubscription]) -> schedules.SubscriptionView:
    """Receive a report by e-mail every week or month (409 if already subscribed to it at that frequency)."""
    return await schedules.subscribe(principal, data)


@delete("/api/reports/subscriptions/{subscription_id:uuid}", opt=MANAGERS, tags=["reports"], status_code=204)
async def unsubscribe(principal: Caller, subscription_id: FromPath[UUID]) -> None:
    await schedules.unsubscribe(principal, subscription_id)


def routes() -> list[Any]:
    handlers: list[Any] = [list_reports, read_job, download_job, list_subscriptions, subscribe, unsubscribe]
    for report in catalogue().values():
        handlers.extend(report_handlers(report))
    return handlers
