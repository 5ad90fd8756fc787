"""arq worker settings: the jobs and crons, run by `python -m workers` (workers/process.py).

Jobs are thin: they build their dependencies from the worker context and call domain
functions elsewhere. arq runs a job at least once, so every job here is safe to re-run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any, ClassVar

from arq import cron, func
from arq.connections import RedisSettings
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.config import Settings, get_settings
from app.db import (
    close_database,
    open_database,
    stop_orphaned_sqlite_connections,
    stop_sqlite_connections_before_exit,
)
from app.observability.jobs import deserialize_job, on_job_start, serialize_job
from app.observability.logs import configure_logging
from workers import (
    amc_jobs,
    attendance_jobs,
    billing_jobs,
    complaint_jobs,
    maintenance,
    notify_jobs,
    privacy_jobs,
    report_jobs,
    slot_jobs,
    visitor_jobs,
)
from workers.gc_tuning import tune_garbage_collector

logger = logging.getLogger(__name__)

MODULE_JOBS = (
    visitor_jobs,
    complaint_jobs,
    slot_jobs,
    privacy_jobs,
    billing_jobs,
    attendance_jobs,
    amc_jobs,
    report_jobs,
)


def queue_name(settings: Settings) -> str:
    return f"{settings.redis_prefix}arq:queue"


def redis_settings(settings: Settings) -> RedisSettings:
    if not settings.redis_url:
        raise SystemExit("opshub worker: REDIS_URL is not set (use `make run`, which starts a private Redis)")
    # Ride out a Redis restart instead of exiting: arq lets a connection error out of its poll loop,
    # which ends the worker (and, under honcho, the whole hub). Each command retries for ~60 s;
    # work whose queue entry Redis lost is re-derived from the database by the crons.
    return dataclasses.replace(
        RedisSettings.from_dsn(settings.redis_url),
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=REDIS_RETRIES),
        # OSError: a refused connect reaches the retry as the socket error, before redis-py wraps it.
        retry_on_error=[RedisConnectionError, RedisTimeoutError, OSError],
    )


REDIS_RETRIES = 70


async def startup(ctx: dict[str, Any]) -> None:
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    stop_sqlite_connections_before_exit()
    ctx["settings"] = settings
    ctx["started_pool"] = await open_database()
    ctx["notify"] = build_notify_context(settings, ctx["redis"])
    ctx["parts_here"] = notify_jobs.PartsHere()  # shared by every job of this process (arq copies ctx per job)
    tune_garbage_collector()


async def shutdown(ctx: dict[str, Any]) -> None:
    # arq has cancelled and awaited its jobs; tasks they started (an availability flush, say) may
    # still be pending. End them as asyncio.run would, before anything is closed under them.
    await _cancel_other_tasks()
    notify = ctx.get("notify")
    if notify is not None:
        await notify.providers.aclose()
    if ctx.get("started_pool"):
        await close_database()
    # A connection left open keeps a non-daemon thread alive, and the process could never exit.
    stopped = stop_orphaned_sqlite_connections()
    if stopped:
        logger.warning("stopped %d SQLite connections left open by cancelled jobs", stopped)


async def _cancel_other_tasks() -> None:
    current = asyncio.current_task()
    others = [task for task in asyncio.all_tasks() if task is not current and not task.done()]
    for task in others:
        task.cancel()
    if others:
        await asyncio.wait(others, timeout=10)
        logger.info("cancelled %d tasks still running at shutdown", len(others))


def build_notify_context(settings: Settings, redis: Any) -> Any:
    from app.people.directory import directory_for
    from notifications.context import NotifyContext
    from notifications.live import feed_announcer, progress_sink
    from notifications.providers import build_providers

    return NotifyContext(
        settings=settings,
        redis=redis,
        directory=directory_for(settings),
        providers=build_providers(settings, redis, feed_announcer(redis, settings)),
        progress=progress_sink(redis, settings),
    )


_settings = get_settings()


class WorkerSettings:
    functions: ClassVar[list[Any]] = [
        maintenance.purge_expired_refresh_tokens,
        func(notify_jobs.notify_expand, timeout=600, keep_result=0, max_tries=1000),
        func(notify_jobs.notify_expand_part, timeout=600, keep_result=0, max_tries=1000),
        func(notify_jobs.notify_send, timeout=600, keep_result=0, max_tries=1000),
        *(job for module in MODULE_JOBS for job in module.FUNCTIONS),
    ]
    cron_jobs: ClassVar[list[Any]] = [
        cron(maintenance.purge_expired_refresh_tokens, hour={3}, minute={15}, run_at_startup=False, unique=True),
        # Every minute, one worker: the ledger's rows by status for every process's metrics scrape.
        cron(maintenance.count_ledger_statuses, second={0}, run_at_startup=True, unique=True),
        # Every 5 s: re-derive due, deferred, in-doubt and stalled work from the ledger.
        cron(notify_jobs.notify_tick, second=set(range(0, 60, 5)), run_at_startup=True, unique=True),
        *(job for module in MODULE_JOBS for job in module.CRON_JOBS),
    ]
    on_startup = startup
    on_shutdown = shutdown
    # Each job's log lines carry its id and the id of the request that enqueued it (app.observability.jobs).
    on_job_start = on_job_start
    job_serializer = serialize_job
    job_deserializer = deserialize_job
    queue_name = queue_name(_settings)
    redis_settings = redis_settings(_settings) if _settings.redis_url else RedisSettings()
    max_jobs = 50
    # How often an idle worker looks for jobs: a visitor alert is a few queue hops (expand, send, a
    # ladder rung), each waiting up to this long.
    poll_delay = 0.1
    job_timeout = 300
    keep_result = 3600
