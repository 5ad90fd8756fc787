"""Realtime events of report export jobs (documented in docs/reports.md), on the asker's ``user:{person_id}``."""

from __future__ import annotations

import datetime as dt
from typing import Final
from uuid import UUID

import msgspec

EXPORT_PROGRESS: Final = "report.export.progress"
EXPORT_READY: Final = "report.export.ready"
EXPORT_FAILED: Final = "report.export.failed"


class ExportProgress(msgspec.Struct, frozen=True, kw_only=True):
    """Rows written so far (sent every ``PROGRESS_EVERY`` rows)."""

    job_id: UUID
    report: str
    rows: int


class ExportReady(msgspec.Struct, frozen=True, kw_only=True):
    """The file is ready: the signed link works until ``expires_at``, then the file is deleted."""

    job_id: UUID
    report: str
    rows: int
    download_url: str
    expires_at: dt.datetime


class ExportFailed(msgspec.Struct, frozen=True, kw_only=True):
    job_id: UUID
    report: str
