"""arq crons of the AMC tracker; `workers.main` collects FUNCTIONS and CRON_JOBS.

``amc_reminders`` re-derives from the database, every few minutes, which visit and expiry reminders
are due and which visits became overdue (``app.amc.reminders``): the reminder ledger's unique index
and NOTIFY's idempotency keys make a re-run (or a second worker) repeat nothing. The notifications
it creates are sent by NOTIFY's ``notify_tick``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from arq import cron

from app.amc import reminders


async def amc_reminders(ctx: dict[str, Any], now: dt.datetime | None = None) -> int:
    return await reminders.run(ctx["settings"], ctx["redis"], now=now)


FUNCTIONS: list[Any] = []
CRON_JOBS: list[Any] = [
    cron(amc_reminders, minute=set(range(0, 60, 5)), second={20}, run_at_startup=True, unique=True, timeout=600),
]
