"""Realtime event payloads of the privacy module (documented in docs/privacy.md).

Published on the person's own topic ``user:{person_id}``; they carry ids and states only,
never personal values, so a realtime history never becomes a copy of personal data.
"""

from __future__ import annotations

import datetime as dt
from typing import Final
from uuid import UUID

import msgspec

EXPORT_READY: Final = "privacy.export.ready"
REQUEST_UPDATED: Final = "privacy.request.updated"


class ExportReady(msgspec.Struct, frozen=True, kw_only=True):
    """Your data export can be downloaded (fetch GET /api/me/exports for the signed link)."""

    export_id: UUID
    expires_at: dt.datetime


class RequestUpdated(msgspec.Struct, frozen=True, kw_only=True):
    """One of your data-rights requests changed state (acknowledged, approved, completed, rejected)."""

    request_id: UUID
    kind: str
    status: str
