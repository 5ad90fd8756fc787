"""Data export (portability): one archive with everything held about a person.

A request creates a ``DataExport`` row (and a tracked ``export`` data-rights request); the arq job
``privacy_export`` calls ``build_export``, which asks every registered section for the person's
rows and writes a zip under ``settings.export_path``:

- ``data.json``: every section, ``{"sections": {name: {"description", "count", "rows"}}}``;
- ``sections/<name>.csv``: one CSV per section (nested values as JSON text);
- ``README.md``: what each section holds, from the registry's descriptions.

A person has at most one export being built: asking again while one is pending answers that one
(nothing new is filed or built). How often a person may ask at all is a rate limit
(``app.security.ratelimit``, rule ``privacy``).

The archive is downloaded through a signed link that expires (``LINK_TTL``); after that the link
answers 410 Gone. The cron ``privacy_expire_exports`` deletes the file of every export whose link
has expired and marks it ``expired``; the ``export_archives`` retention class later deletes the row.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import hashlib
import hmac
import io
import json
import logging
import os
import zipfile
from pathlib import Path
from typing import Any, Final
from uuid import UUID

import msgspec
from redis.asyncio import Redis

from app.config import Settings
from app.db import is_sqlite, write_transaction
from app.errors import AppError, NotFound
from app.pagination import Page, page_of
from app.people.directory import Directory
from app.privacy import audit
from app.privacy.registry import PersonScope, load_registries
from app.privacy.requests import create_request, now_utc
from app.security.compare import safe_equals
from schema.privacy import DataExport, DataRightsRequest
from schema.privacy_events import EXPORT_READY, ExportReady

logger = logging.getLogger("opshub.privacy.exports")

LINK_TTL: Final = dt.timedelta(hours=72)
OPEN_STATUSES: Final = ("pending",)  # still being built
DOWNLOAD_PATH: Final = "/api/privacy/exports/{export_id}/download"


class Gone(AppError):
    status = 410
    slug = "gone"
    title = "Gone"


class ExportView(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    request_id: UUID | None
    status: str
    created_at: dt.datetime
    completed_at: dt.datetime | None
    expires_at: dt.datetime | None
    size_bytes: int
    section_counts: dict[str, int]
    download_url: str | None  # signed; present while the archive is ready and not expired


def _counts(value: Any) -> dict[str, int]:
    if isinstance(value, str):
        value = json.loads(value or "{}")
    return {str(k): int(v) for k, v in (value or {}).items()}


def _link_key(settings: Settings, purpose: str) -> bytes:
    return hashlib.sha256(purpose.encode() + b"\x00" + settings.jwt_secret.encode()).digest()


def sign(settings: Settings, export_id: UUID, expires: int, purpose: str = "opshub-export-link") -> str:
    """The signature of a download link; ``purpose`` keeps one kind of link from opening another
    (report exports, ``app.reports.jobs``, sign with their own)."""
    return hmac.new(_link_key(settings, purpose), f"{export_id}:{expires}".encode(), hashlib.sha256).hexdigest()


def download_url(settings: Settings, export_id: UUID, expires_at: dt.datetime) -> str:
    expires = int(expires_at.timestamp())
    path = DOWNLOAD_PATH.format(export_id=export_id)
    return f"{settings.public_url.rstrip('/')}{path}?expires={expires}&signature={sign(settings, export_id, expires)}"


def export_view(settings: Settings, row: dict[str, Any], now: dt.datetime | None = None) -> ExportView:
    now = now or now_utc()
    ready = row["status"] == "ready" and row["expires_at"] is not None and row["expires_at"] > now
    return ExportView(
        id=row["id"],
        request_id=row["request_id"],
        status="expired" if row["status"] == "ready" and not ready else row["status"],
        created_at=row["created_at"],
        completed_at=row["completed_at"],
        expires_at=row["expires_at"],
        size_bytes=row["size_bytes"],
        section_counts=_counts(row["section_counts"]),
        download_url=download_url(settings, row["id"], row["expires_at"]) if ready else None,
    )


async def request_export(
    settings: Settings, *, site_id: UUID, person_id: UUID, created_by: UUID | None, now: dt.datetime | None = None
) -> ExportView:
    """The person's export being built, or a new one (see ``ask_for_export``)."""
    view, _ = await ask_for_export(settings, site_id=site_id, person_id=person_id, created_by=created_by, now=now)
    return view


async def ask_for_export(
    settings: Settings, *, site_id: UUID, person_id: UUID, created_by: UUID | None, now: dt.datetime | None = None
) -> tuple[ExportView, bool]:
    """(export, created): the person's export still being built if there is one (``created`` False:
    nothing new is filed), else a tracked export request (acknowledged at once: the system answers
    it) and its pending archive. One writer per person at a time, so two requests at once make one."""
    now = now or now_utc()
    async with write_transaction():
        if not is_sqlite():  # SQLite's write transaction already holds the whole database
            await DataExport.raw("SELECT pg_advisory_xact_lock(hashtextextended({}, 0))", f"privacy:export:{person_id}")
        building = (
            await DataExport.select(DataExport.id)
            .where(
                (DataExport.site == site_id)
                & (DataExport.person_id == person_id)
                & DataExport.status.is_in(list(OPEN_STATUSES))
            )
            .order_by(DataExport.created_at)
            .first()
        )
        if building is not None:
            return await get_export(settings, site_id, building["id"], now=now), False
        request = await create_request(
            site_id=site_id, person_id=person_id, kind="export", created_by=created_by, acknowledged=True, now=now
        )
        export = DataExport(site=site_id, person_id=person_id, request_id=request.id, status="pending", created_at=now)
        await export.save()
        await DataRightsRequest.update({DataRightsRequest.export_id: export.id}).where(
            DataRightsRequest.id == request.id
        )
    return await get_export(settings, site_id, export.id, now=now), True


async def get_export(
    settings: Settings, site_id: UUID, export_id: UUID, *, person_id: UUID | None = None, now: dt.datetime | None = None
) -> ExportView:
    condition = (DataExport.site == site_id) & (DataExport.id == export_id)
    if person_id is not None:
        condition &= DataExport.person_id == person_id
    row = await DataExport.select().where(condition).first()
    if row is None:
        raise NotFound("export not found")
    return export_view(settings, row, now)


async def list_exports(
    settings: Settings, site_id: UUID, person_id: UUID, *, limit: int, offset: int
) -> Page[ExportView]:
    """A person's exports, newest first, counted and paged in the query."""
    mine = (DataExport.site == site_id) & (DataExport.person_id == person_id)
    rows = (
        await DataExport.select()
        .where(mine)
        .order_by(DataExport.created_at, ascending=False)
        .order_by(DataExport.id)
        .limit(limit)
        .offset(offset)
    )
    total = await DataExport.count().where(mine)
    return page_of([export_view(settings, row) for row in rows], total=total, limit=limit, offset=offset)


# ------------------------------------------------------------------------------ building the archive


def _jsonable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    converted: list[dict[str, Any]] = msgspec.to_builtins(rows)
    return converted


def _csv(rows: list[dict[str, Any]]) -> bytes:
    columns: list[str] = []
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for row in rows:
        cells = []
        for column in columns:
            value = row.get(column)
            if value is None:
                cells.append("")
            elif isinstance(value, dict | list):
                cells.append(json.dumps(value, ensure_ascii=False, sort_keys=True))
            else:
                cells.append(str(value))
        writer.writerow(cells)
    return buffer.getvalue().encode()


def _readme(person_id: UUID, generated_at: dt.datetime, sections: dict[str, dict[str, Any]]) -> bytes:
    lines = [
        "# Your data held by opshub",
        "",
        f"Person: {person_id}",
        f"Generated: {generated_at.isoformat()}",
        "",
        "`data.json` holds every section below as `sections.<name>.rows` (a list of objects);",
        "`sections/<name>.csv` holds the same rows as CSV, one column per field (lists and objects",
        "as JSON text). Times are ISO 8601 in UTC; ids are UUIDs.",
        "",
        "## Sections",
        "",
    ]
    for name, section in sections.items():
        lines.append(f"### {name} ({section['count']} rows)")
        lines.append("")
        lines.append(section["description"])
        if section.get("legal_hold"):
            lines.append("")
            lines.append(f"Kept under a legal hold if you ask for erasure: {section['legal_hold']}")
        lines.append("")
    return "\n".join(lines).encode()


async def collect_sections(scope: PersonScope) -> dict[str, dict[str, Any]]:
    sections, _ = load_registries()
    collected: dict[str, dict[str, Any]] = {}
    for name, section in sections.items():
        rows = _jsonable(await section.export(scope))
        collected[name] = {
            "description": section.description,
            "legal_hold": section.legal_hold,
            "count": len(rows),
            "rows": rows,
        }
    return collected


def archive_path(settings: Settings, key: str) -> Path:
    root = settings.export_path.resolve()
    path = (root / key).resolve()
    if root not in path.parents:
        raise ValueError(f"export key {key!r} leaves the export directory")
    return path


def _write_archive(
    path: Path, document: dict[str, Any], sections: dict[str, dict[str, Any]], person_id: UUID, now: dt.datetime
) -> None:
    """Written under a temporary name, then renamed: a crash never leaves a half archive under the real name."""
    partial = path.with_suffix(".zip.part")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("data.json", json.dumps(document, ensure_ascii=False, indent=2))
        for name, section in sections.items():
            archive.writestr(f"sections/{name}.csv", _csv(section["rows"]))
        archive.writestr("README.md", _readme(person_id, now, sections))
    with open(partial, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(partial, path)


async def build_export(
    settings: Settings, redis: Redis, directory: Directory, export_id: UUID, now: dt.datetime | None = None
) -> ExportView | None:
    """Write the archive of a pending export; a no-op for one already built (the job may re-run)."""
    now = now or now_utc()
    row = await DataExport.select().where(DataExport.id == export_id).first()
    if row is None:
        return None
    if row["status"] != "pending":
        return export_view(settings, row, now)
    site_id, person_id = row["site"], row["person_id"]
    scope = PersonScope(site_id=site_id, person_id=person_id, settings=settings, directory=directory, redis=redis)
    with audit.acting_as(person_id, route="job:privacy_export"):
        sections = await collect_sections(scope)
        await audit.record(site_id, [person_id], "export", "archive", now=now)
    document = {
        "person_id": str(person_id),
        "site_id": str(site_id),
        "generated_at": now.isoformat(),
        "sections": sections,
    }
    key = f"{site_id}/{person_id}/{export_id}.zip"
    path = archive_path(settings, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    await asyncio.to_thread(_write_archive, path, document, sections, person_id, now)
    counts = {name: section["count"] for name, section in sections.items()}
    await DataExport.update(
        {
            DataExport.status: "ready",
            DataExport.file_key: key,
            DataExport.size_bytes: path.stat().st_size,
            DataExport.section_counts: counts,
            DataExport.completed_at: now,
            DataExport.expires_at: now + LINK_TTL,
        }
    ).where((DataExport.id == export_id) & (DataExport.status == "pending"))
    if row["request_id"] is not None:
        await DataRightsRequest.update(
            {
                DataRightsRequest.status: "completed",
                DataRightsRequest.completed_at: now,
                DataRightsRequest.outcome: {"sections": counts},
            }
        ).where((DataRightsRequest.id == row["request_id"]) & DataRightsRequest.completed_at.is_null())
    logger.info("export %s ready: %d sections", export_id, len(counts))
    view = await get_export(settings, site_id, export_id, now=now)
    if view.expires_at is not None:
        await announce(
            redis, settings, person_id, EXPORT_READY, ExportReady(export_id=export_id, expires_at=view.expires_at)
        )
    return view


async def announce(redis: Redis, settings: Settings, person_id: UUID, event_type: str, event: msgspec.Struct) -> None:
    """Tell the person's devices (after the change committed). The database is the truth: a lost
    event only means the app learns it on its next fetch."""
    from realtime.publish import publish
    from realtime.topics import user_topic

    try:
        await publish(redis, settings, user_topic(person_id), event_type, event)
    except Exception:
        logger.warning("could not publish %s for %s", event_type, person_id)


async def open_download(
    settings: Settings, export_id: UUID, expires: int, signature: str, now: dt.datetime | None = None
) -> tuple[Path, str]:
    """The archive's path and file name for a valid signed link; 404 for a wrong one, 410 once expired."""
    now = now or now_utc()
    if not safe_equals(sign(settings, export_id, expires), signature):
        raise NotFound("export not found")
    row = await DataExport.select().where(DataExport.id == export_id).first()
    if row is None:
        raise NotFound("export not found")
    if now.timestamp() >= expires or row["expires_at"] is None or row["expires_at"] <= now:
        raise Gone("this download link has expired; request a new export")
    if row["status"] != "ready" or not row["file_key"]:
        raise Gone("this export is no longer available")
    path = archive_path(settings, row["file_key"])
    if not path.exists():
        raise Gone("this export is no longer available")
    return path, f"opshub-data-{export_id}.zip"


async def expire_archives(settings: Settings, now: dt.datetime | None = None) -> int:
    """Delete the archive of every export whose link has expired, and mark it ``expired`` (the
    row stays, for the person's list, until the ``export_archives`` retention class deletes it).
    Safe to re-run: a missing file is already what we want."""
    now = now or now_utc()
    rows = await DataExport.select(DataExport.id, DataExport.file_key).where(
        (DataExport.status == "ready") & DataExport.expires_at.is_not_null() & (DataExport.expires_at <= now)
    )
    for row in rows:
        delete_archive(settings, row["file_key"])
        await DataExport.update({DataExport.status: "expired", DataExport.file_key: None}).where(
            (DataExport.id == row["id"]) & (DataExport.status == "ready")
        )
    if rows:
        logger.info("deleted %d expired export archives", len(rows))
    return len(rows)


def delete_archive(settings: Settings, key: str | None) -> bool:
    if not key:
        return False
    try:
        archive_path(settings, key).unlink()
    except FileNotFoundError:
        return False
    return True
