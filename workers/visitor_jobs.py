"""arq jobs and crons of the visitors module; `workers.main` collects FUNCTIONS and CRON_JOBS.

Every job re-derives its work from the database (due ladder rungs, pending pass messages, visitors
past their limit, records past retention), so a re-run or a dead worker loses and repeats nothing.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from uuid import UUID

from arq import cron

from app.privacy.registry import RetentionRun
from app.visitors import alerts, ladder, messaging, retention
from app.visitors.common import VisitorDeps
from notifications.voice import VoiceCaller
from schema.tables import Site


def deps_from(ctx: dict[str, Any]) -> VisitorDeps:
    from workers.notify_jobs import enqueue_expand

    redis = ctx["redis"]

    async def kick(notification_id: UUID) -> None:
        await enqueue_expand(redis, notification_id)

    return VisitorDeps(settings=ctx["settings"], redis=redis, directory=ctx["notify"].directory, kick=kick)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def visitor_ladder_tick(ctx: dict[str, Any], now: dt.datetime | None = None) -> int:
    """Take every due rung of every pending walk-in request (one rung per request per tick), and
    run again any rung a dead worker left unfinished."""
    now = now or _now()
    if not await ladder.work_due(now):
        return 0
    deps = deps_from(ctx)
    voice = VoiceCaller.from_settings(deps.settings)
    try:
        return len(await ladder.advance_ladders(deps, voice, now))
    finally:
        await voice.aclose()


async def visitor_send_pass_messages(ctx: dict[str, Any], now: dt.datetime | None = None) -> int:
    now = now or _now()
    deps = deps_from(ctx)
    sent = 0
    for message_id in await messaging.due_messages(now):
        status = await messaging.send_pass_message(deps, ctx["notify"].providers, message_id, now)
        sent += status in ("sent", "via_notify")
    return sent


async def visitor_overstay_tick(ctx: dict[str, Any], now: dt.datetime | None = None) -> int:
    return len(await alerts.check_overstays(deps_from(ctx), now))


async def visitor_retention(ctx: dict[str, Any], now: dt.datetime | None = None) -> int:
    """Apply ``visitor_records`` to every site with the site's own period. Safe to run twice."""
    now = now or _now()
    removed = 0
    for row in await Site.select(Site.id):
        cutoff = await retention.site_cutoff(row["id"], now)
        removed += await retention.apply(
            RetentionRun(site_id=row["id"], cutoff=cutoff, settings=ctx["settings"], redis=ctx["redis"])
        )
    return removed


# The ladder tick is also a job: a walk-in whose first rung is due at once asks for it straight away.
FUNCTIONS: list[Any] = [visitor_send_pass_messages, visitor_ladder_tick]
CRON_JOBS: list[Any] = [
    # Every 3 s: the ladder's rungs are tens of seconds apart, so a rung is at most 3 s late.
    cron(visitor_ladder_tick, second=set(range(0, 60, 3)), run_at_startup=True, unique=True, timeout=60),
    cron(visitor_send_pass_messages, second={7, 22, 37, 52}, unique=True, timeout=120),
    cron(visitor_overstay_tick, second={30}, unique=True, timeout=120),
    cron(visitor_retention, hour={2}, minute={40}, unique=True, timeout=3600),
]
