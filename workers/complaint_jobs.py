"""arq jobs and crons of the complaints module; `workers.main` collects FUNCTIONS and CRON_JOBS.

``complaint_escalate`` runs every minute: it climbs breached complaints through the
escalation levels (technician, supervisor, FM manager). Re-running it is harmless: each
level is notified and recorded once per complaint (see app.complaints.sla).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from arq import cron

from app.complaints.sla import escalate_breaches


async def complaint_escalate(ctx: dict[str, Any], now: dt.datetime | None = None) -> int:
    escalated = await escalate_breaches(now, settings=ctx["settings"], redis=ctx["redis"])
    return len(escalated)


FUNCTIONS: list[Any] = [complaint_escalate]
CRON_JOBS: list[Any] = [cron(complaint_escalate, second={30}, run_at_startup=True, unique=True)]
