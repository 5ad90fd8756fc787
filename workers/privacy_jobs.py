"""arq jobs and crons of the privacy module; `workers.main` collects FUNCTIONS and CRON_JOBS.

Thin: each builds its dependencies from the worker context and calls a domain function that is
safe to re-run (arq runs a job at least once). The database is the truth: ``privacy_tick`` finds
exports still pending and erasures approved but not completed, so a lost enqueue or a worker
killed mid-job only delays the work.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any
from uuid import UUID

from arq import cron, func

from app.config import Settings
from app.people.directory import directory_for
from app.privacy import erasure, exports, photo_sweep, requests, retention, rotation
from schema.privacy import DataExport, DataRightsRequest

logger = logging.getLogger("opshub.privacy.jobs")
# A pending export or approved erasure older than this was not picked up by its own job.
STALE_AFTER = dt.timedelta(minutes=2)


def _now(now: dt.datetime | None) -> dt.datetime:
    return now or dt.datetime.now(dt.UTC)


async def privacy_export(ctx: dict[str, Any], export_id: str, now: dt.datetime | None = None) -> str:
    settings: Settings = ctx["settings"]
    view = await exports.build_export(settings, ctx["redis"], directory_for(settings), UUID(export_id), _now(now))
    return view.status if view else "missing"


async def privacy_erase(ctx: dict[str, Any], request_id: str, now: dt.datetime | None = None) -> str:
    settings: Settings = ctx["settings"]
    view = await erasure.run_erasure(settings, ctx["redis"], directory_for(settings), UUID(request_id), _now(now))
    return view.status if view else "missing"


async def privacy_reencrypt(ctx: dict[str, Any], scope: str = "all") -> dict[str, int]:
    settings: Settings = ctx["settings"]
    site_id = None if scope == "all" else UUID(scope)
    return await rotation.reencrypt_all(directory_for(settings).cipher, site_id=site_id)


async def privacy_deadlines(ctx: dict[str, Any], now: dt.datetime | None = None) -> int:
    return len(await requests.check_deadlines(_now(now)))


async def privacy_retention(ctx: dict[str, Any], now: dt.datetime | None = None) -> int:
    runs = await retention.apply_retention(ctx["settings"], ctx["redis"], _now(now))
    return sum(run.deleted for run in runs)


async def privacy_expire_exports(ctx: dict[str, Any], now: dt.datetime | None = None) -> int:
    """Delete export archives whose download link has expired."""
    return await exports.expire_archives(ctx["settings"], _now(now))


PHOTO_SWEEP_DONE = "privacy:photo-sweep:v1"


async def privacy_photo_sweep(ctx: dict[str, Any], force: bool = False) -> dict[str, int]:
    """Strip what the camera wrote from photos stored before uploads were re-encoded, once per deployment.

    New uploads are clean when stored, so after one sweep there is nothing left to do (a file that is
    missing or no image is logged; sweeping again would not change it). The mark in Redis saves reading
    every photo at each start; a lost mark only costs one more harmless sweep."""
    settings: Settings = ctx["settings"]
    done_key = f"{settings.redis_prefix}{PHOTO_SWEEP_DONE}"
    if not force and await ctx["redis"].exists(done_key):
        return {"checked": 0, "cleaned": 0, "unreadable": 0}
    result = await photo_sweep.sweep_stored_photos(settings)
    await ctx["redis"].set(done_key, "1")
    if result.cleaned:
        logger.info("photo sweep: %d of %d stored photos re-encoded without metadata", result.cleaned, result.checked)
    return {"checked": result.checked, "cleaned": result.cleaned, "unreadable": result.unreadable}


async def privacy_tick(ctx: dict[str, Any], now: dt.datetime | None = None) -> dict[str, int]:
    """Run what should have run: exports still pending, approved erasures not yet completed."""
    now = _now(now)
    stale = now - STALE_AFTER
    pending = await DataExport.select(DataExport.id).where(
        (DataExport.status == "pending") & (DataExport.created_at < stale)
    )
    for row in pending:
        await privacy_export(ctx, str(row["id"]), now)
    approved = await DataRightsRequest.select(DataRightsRequest.id).where(
        (DataRightsRequest.kind == "erasure")
        & DataRightsRequest.status.is_in(["approved", "erasing"])
        & (DataRightsRequest.approved_at < stale)
    )
    for row in approved:
        await privacy_erase(ctx, str(row["id"]), now)
    return {"exports": len(pending), "erasures": len(approved)}


FUNCTIONS: list[Any] = [
    func(privacy_export, timeout=900, keep_result=0, max_tries=20),
    func(privacy_erase, timeout=1800, keep_result=0, max_tries=20),
    func(privacy_reencrypt, timeout=6 * 3600, keep_result=3600, max_tries=5),
]
CRON_JOBS: list[Any] = [
    cron(privacy_tick, minute=set(range(0, 60, 2)), run_at_startup=True, unique=True),
    cron(privacy_deadlines, minute=set(range(0, 60, 15)), run_at_startup=True, unique=True),
    cron(privacy_expire_exports, minute=set(range(7, 60, 15)), run_at_startup=True, unique=True),
    cron(privacy_retention, hour={2}, minute={30}, run_at_startup=False, unique=True),
    # At each start; a no-op once it has run (see privacy_photo_sweep). The nightly run only matters
    # if the first was cut short.
    cron(privacy_photo_sweep, hour={3}, minute={45}, run_at_startup=True, unique=True, timeout=6 * 3600),
]
