"""The retention engine: per site and per data class, one cron applies every registered class.

Each ``RetentionClass`` (registered by the module that owns the data) has a default period; a
site may set its own (``RetentionSetting``), never below the class's ``min_days``. ``apply_retention``
runs every class for every site and logs what it deleted in ``retention_run`` (counts, never
content). A class that fails is logged with its error and does not stop the others; the next
run tries again (every class deletes by cutoff, so re-running is harmless).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Final
from uuid import UUID

import msgspec
from redis.asyncio import Redis

from app.config import Settings
from app.errors import InvalidInput
from app.privacy.registry import RetentionRun, load_registries
from app.privacy.requests import now_utc
from schema.privacy import RetentionRunLog, RetentionSetting
from schema.tables import Site

logger = logging.getLogger("opshub.privacy.retention")
MAX_DAYS: Final = 36500


class RetentionClassView(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    description: str
    default_days: int
    min_days: int
    days: int  # in effect for this site
    is_default: bool


class RetentionChange(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    class_name: str
    days: int | None  # None: back to the default


class RetentionRunView(msgspec.Struct, frozen=True, kw_only=True):
    class_name: str
    days: int
    cutoff: dt.datetime
    deleted: int
    error: str | None
    ran_at: dt.datetime


class RetentionRunPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[RetentionRunView]
    total: int
    limit: int
    offset: int


async def site_periods(site_id: UUID) -> dict[str, int]:
    _, classes = load_registries()
    rows = await RetentionSetting.select(RetentionSetting.class_name, RetentionSetting.days).where(
        RetentionSetting.site == site_id
    )
    overrides = {row["class_name"]: row["days"] for row in rows}
    return {name: max(cls.min_days, overrides.get(name, cls.default_days)) for name, cls in classes.items()}


async def list_classes(site_id: UUID) -> list[RetentionClassView]:
    _, classes = load_registries()
    rows = await RetentionSetting.select(RetentionSetting.class_name, RetentionSetting.days).where(
        RetentionSetting.site == site_id
    )
    overrides = {row["class_name"]: row["days"] for row in rows}
    return [
        RetentionClassView(
            name=name,
            description=cls.description,
            default_days=cls.default_days,
            min_days=cls.min_days,
            days=max(cls.min_days, overrides.get(name, cls.default_days)),
            is_default=name not in overrides,
        )
        for name, cls in sorted(classes.items())
    ]


async def set_period(
    site_id: UUID, change: RetentionChange, actor_id: UUID | None, now: dt.datetime | None = None
) -> list[RetentionClassView]:
    _, classes = load_registries()
    cls = classes.get(change.class_name)
    if cls is None:
        raise InvalidInput.for_field("class_name", f"unknown data class; one of {', '.join(sorted(classes))}")
    if change.days is not None and not cls.min_days <= change.days <= MAX_DAYS:
        raise InvalidInput.for_field("days", f"must be between {cls.min_days} and {MAX_DAYS} for {cls.name}")
    condition = (RetentionSetting.site == site_id) & (RetentionSetting.class_name == change.class_name)
    if change.days is None:
        await RetentionSetting.delete().where(condition)
    else:
        updated = (
            await RetentionSetting.update(
                {
                    RetentionSetting.days: change.days,
                    RetentionSetting.updated_at: now or now_utc(),
                    RetentionSetting.updated_by: actor_id,
                }
            )
            .where(condition)
            .returning(RetentionSetting.id)
        )
        if not updated:
            await RetentionSetting(
                site=site_id,
                class_name=change.class_name,
                days=change.days,
                updated_at=now or now_utc(),
                updated_by=actor_id,
            ).save()
    return await list_classes(site_id)


async def apply_retention(
    settings: Settings, redis: Redis, now: dt.datetime | None = None, *, site_ids: list[UUID] | None = None
) -> list[RetentionRunView]:
    """Run every registered class for every site (or the given ones); returns what was logged."""
    now = now or now_utc()
    _, classes = load_registries()
    if site_ids is None:
        site_ids = [row["id"] for row in await Site.select(Site.id)]
    logged: list[RetentionRunView] = []
    for site_id in site_ids:
        periods = await site_periods(site_id)
        for name, cls in classes.items():
            days = periods[name]
            cutoff = now - dt.timedelta(days=days)
            error: str | None = None
            deleted = 0
            try:
                deleted = await cls.apply(RetentionRun(site_id=site_id, cutoff=cutoff, settings=settings, redis=redis))
            except Exception as exc:  # one failing class must not stop the others
                logger.exception("retention class %s failed on site %s", name, site_id)
                error = type(exc).__name__
            await RetentionRunLog(
                site=site_id, class_name=name, days=days, cutoff=cutoff, deleted=deleted, error=error, ran_at=now
            ).save()
            logger.info("retention %s on site %s: %d deleted (cutoff %s)", name, site_id, deleted, cutoff.isoformat())
            logged.append(
                RetentionRunView(class_name=name, days=days, cutoff=cutoff, deleted=deleted, error=error, ran_at=now)
            )
    return logged


async def list_runs(site_id: UUID, *, limit: int = 50, offset: int = 0) -> RetentionRunPage:
    condition = RetentionRunLog.site == site_id
    rows = (
        await RetentionRunLog.select()
        .where(condition)
        .order_by(RetentionRunLog.ran_at, RetentionRunLog.class_name, ascending=False)
        .limit(limit)
        .offset(offset)
    )
    total = await RetentionRunLog.count().where(condition)
    return RetentionRunPage(
        items=[
            RetentionRunView(
                class_name=r["class_name"],
                days=r["days"],
                cutoff=r["cutoff"],
                deleted=r["deleted"],
                error=r["error"],
                ran_at=r["ran_at"],
            )
            for r in rows
        ],
        total=total,
        limit=limit,
        offset=offset,
    )
