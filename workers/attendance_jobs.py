"""arq jobs and crons of the staff attendance module; `workers.main` collects FUNCTIONS and CRON_JOBS.

``attendance_alerts`` runs every minute: late and absent alerts for rostered staff who have not checked
in. Re-running it is harmless: each alert is claimed once (a unique row per staff, day, shift and kind).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from arq import cron

from app.attendance.alerts import check_attendance


async def attendance_alerts(ctx: dict[str, Any], now: dt.datetime | None = None) -> int:
    raised = await check_attendance(ctx["settings"], ctx["redis"], now)
    return len(raised)


FUNCTIONS: list[Any] = [attendance_alerts]
CRON_JOBS: list[Any] = [cron(attendance_alerts, second={45}, run_at_startup=True, unique=True)]
