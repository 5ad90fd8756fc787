"""arq jobs of the report framework; `workers.main` collects FUNCTIONS and CRON_JOBS.

- ``report_export``: build one export job's file (``app.reports.jobs.build``; a re-run of a built job is a no-op).
- ``report_expire_files``: every few minutes, delete the files whose signed link has expired.
- ``report_subscriptions``: hourly, e-mail every scheduled report whose period has ended
  (``app.reports.schedules``; a period is sent once).
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from uuid import UUID

from arq import cron, func

from app.reports import jobs, schedules


async def report_export(ctx: dict[str, Any], job_id: str) -> str | None:
    view = await jobs.build(ctx["settings"], ctx["redis"], UUID(job_id))
    return None if view is None else view.status


async def report_expire_files(ctx: dict[str, Any], now: dt.datetime | None = None) -> int:
    return await jobs.expire_files(ctx["settings"], now=now)


async def report_subscriptions(ctx: dict[str, Any], now: dt.datetime | None = None) -> int:
    return await schedules.run(ctx["settings"], now=now)


FUNCTIONS: list[Any] = [func(report_export, timeout=1800, keep_result=0, max_tries=3)]
CRON_JOBS: list[Any] = [
    cron(report_expire_files, minute=set(range(0, 60, 10)), second={40}, run_at_startup=True, unique=True),
    cron(report_subscriptions, minute={7}, second={10}, run_at_startup=True, unique=True, timeout=1800),
]
