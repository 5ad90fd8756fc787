"""Housekeeping jobs."""

from __future__ import annotations

import datetime as dt
from typing import Any

from app.observability.metrics import record_ledger_counts
from schema.tables import RefreshToken

# Rotated or revoked tokens are kept a while so reuse can still be detected.
REUSE_DETECTION_GRACE = dt.timedelta(days=7)


async def purge_expired_refresh_tokens(ctx: dict[str, Any], now: dt.datetime | None = None) -> int:
    """Delete refresh tokens that expired more than the grace period ago; returns how many."""
    cutoff = (now or dt.datetime.now(dt.UTC)) - REUSE_DETECTION_GRACE
    deleted = await RefreshToken.delete().where(RefreshToken.expires_at < cutoff).returning(RefreshToken.id)
    return len(deleted)


async def count_ledger_statuses(ctx: dict[str, Any]) -> dict[str, int]:
    """Count the delivery ledger's rows by status for the metrics scrape (``app.observability.metrics``)."""
    return await record_ledger_counts(ctx["redis"], ctx["settings"])
