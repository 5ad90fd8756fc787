"""Export jobs: a report's file built by a worker, for reports too large to wait for in one request.

``POST /api/reports/{name}/jobs`` files a ``ReportExport`` (the caller's scope is worked out again by the
worker from the same person, so a job sees no more than its asker could) and enqueues ``report_export``.
The worker writes the file a batch at a time (bounded memory), telling the asker's ``user:{id}`` topic
its progress every ``PROGRESS_EVERY`` rows, then ``report.export.ready`` with a signed download link.

Links, files and their deletion follow the personal-data exports (``app.privacy.exports``): the link is
signed (its own purpose, so it opens no other kind of file), answers 410 once expired, and the cron
``report_expire_files`` deletes every file whose link has expired (``OPSHUB_REPORT_FILE_TTL_SECONDS``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
from pathlib import Path
from typing import Annotated, Any, Final
from uuid import UUID

import msgspec
from redis.asyncio import Redis

from app.auth.principal import Principal
from app.auth.roles import Role
from app.config import Settings
from app.errors import NotFound
from app.privacy.exports import Gone, archive_path, delete_archive, sign
from app.reports import export as files
from app.reports.framework import get_report, make_query, scope_of, summarise
from app.security.compare import safe_equals
from app.text import ONE_LINE
from schema.jsonvalue import as_dict
from schema.reports import ReportExport
from schema.reports_events import (
    EXPORT_FAILED,
    EXPORT_PROGRESS,
    EXPORT_READY,
    ExportFailed,
    ExportProgress,
    ExportReady,
)
from schema.tables import PersonRole

logger = logging.getLogger("opshub.reports.jobs")

PURPOSE: Final = "opshub-report-link"
DOWNLOAD_PATH: Final = "/api/reports/jobs/{job_id}/download"
PROGRESS_EVERY: Final = 10_000


# A filter's value or a column's name: one line, as a person could type it into the control room's form.
FilterText = Annotated[str, msgspec.Meta(max_length=100), ONE_LINE]


class ExportRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    format: files.Format = "csv"
    by: FilterText | None = None
    date_from: dt.date | None = msgspec.field(default=None, name="from")
    date_to: dt.date | None = msgspec.field(default=None, name="to")
    tower: FilterText | None = None
    category: FilterText | None = None
    status: FilterText | None = None
    person: UUID | None = None
    site: UUID | None = None


class JobView(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    report: str
    format: str
    status: str  # pending | running | ready | failed | expired
    rows: int
    size_bytes: int
    created_at: dt.datetime
    completed_at: dt.datetime | None
    expires_at: dt.datetime | None
    download_url: str | None  # signed; while ready and not expired


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    return value if value is None or value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def download_url(settings: Settings, job_id: UUID, expires_at: dt.datetime) -> str:
    expires = int(expires_at.timestamp())
    path = DOWNLOAD_PATH.format(job_id=job_id)
    return settings.public_link(f"{path}?expires={expires}&signature={sign(settings, job_id, expires, PURPOSE)}")


def view(settings: Settings, row: dict[str, Any], now: dt.datetime | None = None) -> JobView:
    now = now or now_utc()
    expires_at = _aware(row["expires_at"])
    ready = row["status"] == "ready" and expires_at is not None and expires_at > now
    return JobView(
        id=row["id"],
        report=row["report"],
        format=row["format"],
        status="expired" if row["status"] == "ready" and not ready else row["status"],
        rows=row["rows"],
        size_bytes=row["size_bytes"],
        created_at=row["created_at"],
        completed_at=row["completed_at"],
        expires_at=expires_at,
        download_url=download_url(settings, row["id"], expires_at) if ready and expires_at else None,
    )


async def request_export(
    settings: Settings, principal: Principal, name: str, ask: ExportRequest, now: dt.datetime | None = None
) -> JobView:
    """File the job after checking, as the export route would, that the caller may run it with these filters."""
    report = get_report(name)
    scope = await scope_of(principal, report, ask.site)
    make_query(
        report,
        scope,
        date_from=ask.date_from,
        date_to=ask.date_to,
        tower=ask.tower,
        category=ask.category,
        status=ask.status,
        person=ask.person,
    )
    report.check_by(ask.by)
    job = ReportExport(
        site=principal.site_id,
        person=principal.person_id,
        report=name,
        format=ask.format,
        params=msgspec.to_builtins(ask),
        status="pending",
        created_at=now or now_utc(),
    )
    await job.save()
    row = await ReportExport.select().where(ReportExport.id == job.id).first()
    assert row is not None
    return view(settings, row, now)


async def get_job(settings: Settings, principal: Principal, job_id: UUID) -> JobView:
    row = (
        await ReportExport.select()
        .where(
            (ReportExport.id == job_id)
            & (ReportExport.site == principal.site_id)
            & (ReportExport.person == principal.person_id)
        )
        .first()
    )
    if row is None:
        raise NotFound("export job not found")
    return view(settings, row)


async def principal_of(row: dict[str, Any]) -> Principal:
    """The asker as they are now: a role withdrawn since they asked no longer reports."""
    roles = await PersonRole.select(PersonRole.role).where(
        (PersonRole.person == row["person"]) & (PersonRole.site == row["site"])
    )
    return Principal(
        person_id=row["person"],
        site_id=row["site"],
        roles=frozenset(Role(r["role"]) for r in roles if r["role"] in Role.__members__.values()),
        token_id="job",
        expires_at=0,
    )


async def _tell(redis: Redis, settings: Settings, person_id: UUID, event_type: str, event: msgspec.Struct) -> None:
    from app.privacy.exports import announce

    await announce(redis, settings, person_id, event_type, event)


async def build(
    settings: Settings,
    redis: Redis,
    job_id: UUID,
    now: dt.datetime | None = None,
    batch: int | None = None,
    progress_every: int = PROGRESS_EVERY,
) -> JobView | None:
    """Write the job's file; a no-op for a job already built (arq may run a job twice)."""
    row = await ReportExport.select().where(ReportExport.id == job_id).first()
    if row is None:
        return None
    if row["status"] not in ("pending", "running"):
        return view(settings, row, now)
    await ReportExport.update({ReportExport.status: "running"}).where(ReportExport.id == job_id)
    report = get_report(row["report"])
    ask = msgspec.convert(as_dict(row["params"]), ExportRequest)
    key = f"reports/{row['site']}/{job_id}.{row['format']}"
    path = archive_path(settings, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        scope = await scope_of(await principal_of(row), report, ask.site)
        query = make_query(
            report,
            scope,
            date_from=ask.date_from,
            date_to=ask.date_to,
            tower=ask.tower,
            category=ask.category,
            status=ask.status,
            person=ask.person,
            now=now,
        )
        if batch is not None:
            query = dataclasses.replace(query, batch=batch)
        told = 0

        async def progress(rows: int) -> None:
            nonlocal told
            if rows - told >= progress_every:
                told = rows
                event = ExportProgress(job_id=job_id, report=report.name, rows=rows)
                await _tell(redis, settings, row["person"], EXPORT_PROGRESS, event)

        if ask.by is not None:
            columns = report.summary_columns(ask.by)
            batches: Any = files.rows_once(await summarise(report, query, ask.by))
        else:
            columns = report.columns
            batches = report.batches(query)
        written = await files.write_file(path, ask.format, columns, batches, title=report.title, progress=progress)
    except Exception as error:
        logger.exception("report export %s failed", job_id)
        await asyncio.to_thread(Path(str(path) + ".part").unlink, missing_ok=True)
        await ReportExport.update(
            {ReportExport.status: "failed", ReportExport.error: str(error)[:200], ReportExport.completed_at: now_utc()}
        ).where(ReportExport.id == job_id)
        await _tell(redis, settings, row["person"], EXPORT_FAILED, ExportFailed(job_id=job_id, report=report.name))
        return None
    finished = now or now_utc()
    expires_at = finished + dt.timedelta(seconds=settings.report_file_ttl_seconds)
    await ReportExport.update(
        {
            ReportExport.status: "ready",
            ReportExport.rows: written,
            ReportExport.size_bytes: path.stat().st_size,
            ReportExport.file_key: key,
            ReportExport.completed_at: finished,
            ReportExport.expires_at: expires_at,
        }
    ).where(ReportExport.id == job_id)
    done = await ReportExport.select().where(ReportExport.id == job_id).first()
    assert done is not None
    result = view(settings, done, finished)
    await _tell(
        redis,
        settings,
        row["person"],
        EXPORT_READY,
        ExportReady(
            job_id=job_id,
            report=report.name,
            rows=written,
            download_url=result.download_url or "",
            expires_at=expires_at,
        ),
    )
    return result


async def open_download(
    settings: Settings, job_id: UUID, expires: int, signature: str, now: dt.datetime | None = None
) -> tuple[Path, str, str]:
    """The file, its download name and media type for a valid signed link; 404 if wrong, 410 once expired."""
    now = now or now_utc()
    if not safe_equals(sign(settings, job_id, expires, PURPOSE), signature):
        raise NotFound("export not found")
    row = await ReportExport.select().where(ReportExport.id == job_id).first()
    if row is None:
        raise NotFound("export not found")
    expires_at = _aware(row["expires_at"])
    if now.timestamp() >= expires or expires_at is None or expires_at <= now:
        raise Gone("this download link has expired; export the report again")
    if row["status"] != "ready" or not row["file_key"]:
        raise Gone("this export is no longer available")
    path = archive_path(settings, row["file_key"])
    if not path.exists():
        raise Gone("this export is no longer available")
    media = files.XLSX if row["format"] == "xlsx" else "text/csv"
    return path, f"{row['report']}.{row['format']}", media


async def expire_files(settings: Settings, now: dt.datetime | None = None) -> int:
    """Delete every report file whose link has expired and mark its job ``expired``. Safe to re-run."""
    now = now or now_utc()
    rows = await ReportExport.select(ReportExport.id, ReportExport.file_key).where(
        (ReportExport.status == "ready") & ReportExport.expires_at.is_not_null() & (ReportExport.expires_at <= now)
    )
    for row in rows:
        delete_archive(settings, row["file_key"])
        await ReportExport.update({ReportExport.status: "expired", ReportExport.file_key: None}).where(
            (ReportExport.id == row["id"]) & (ReportExport.status == "ready")
        )
    if rows:
        logger.info("deleted %d expired report files", len(rows))
    return len(rows)
