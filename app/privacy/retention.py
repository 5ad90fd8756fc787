"""The retention engine: per site and per data class, one cron applies every registered class.

Each ``RetentionClass`` (registered by the module that owns the data) has a default period; a
site may set its own (``RetentionSetting``), never below the class's ``min_days``. ``apply_retention``
runs every class for every site and logs what it deleted in ``retention_run`` (counts, never
content). A class that fails is logged with its error and does not stop the others; the next
run tries again (every class deletes by cutoff, so re-running is harmless).

A purge can also be run now, for one site (``purge``): first a dry run, which deletes nothing and
counts per data class what would go; then the real run, which must name that dry run
(``preview_id``, valid ``PREVIEW_TTL_SECONDS`` and once) and is refused when a period changed since.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import secrets
from typing import Final
from uuid import UUID

import msgspec
from redis.asyncio import Redis

from app.config import Settings
from app.errors import Conflict, InvalidInput
from app.privacy.registry import RetentionRun, load_registries
from app.privacy.requests import now_utc
from schema.privacy import RetentionRunLog, RetentionSetting
from schema.tables import Site

logger = logging.getLogger("opshub.privacy.retention")
MAX_DAYS: Final = 36500
PREVIEW_TTL_SECONDS: Final = 600


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


class PurgeRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # True (the default): count only. False: delete, naming the dry run that was shown.
    dry_run: bool = True
    preview_id: str | None = None


class PurgeClass(msgspec.Struct, frozen=True, kw_only=True):
    class_name: str
    days: int
    cutoff: dt.datetime
    rows: int  # dry run: would be deleted; real run: deleted
    error: str | None = None


class PurgeView(msgspec.Struct, frozen=True, kw_only=True):
    dry_run: bool
    preview_id: str | None  # a dry run's id, to pass to the real run
    expires_at: dt.datetime | None
    classes: list[PurgeClass]
    total: int


def _preview_key(settings: Settings, site_id: UUID, preview_id: str) -> str:
    return f"{settings.redis_prefix}privacy:purge-preview:{site_id}:{preview_id}"


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


async def preview_purge(settings: Settings, redis: Redis, site_id: UUID, now: dt.datetime | None = None) -> PurgeView:
    """The dry run: per class, what a purge now would delete. Deletes nothing."""
    now = now or now_utc()
    _, classes = load_registries()
    periods = await site_periods(site_id)
    counted = []
    for name, cls in sorted(classes.items()):
        cutoff = now - dt.timedelta(days=periods[name])
        rows, error = 0, None
        if cls.count is None:
            error = "cannot be counted in advance"
        else:
            try:
                rows = await cls.count(RetentionRun(site_id=site_id, cutoff=cutoff, settings=settings, redis=redis))
            except Exception as exc:  # one failing count must not hide the others
                logger.exception("retention count %s failed on site %s", name, site_id)
                error = type(exc).__name__
        counted.append(PurgeClass(class_name=name, days=periods[name], cutoff=cutoff, rows=rows, error=error))
    preview_id = secrets.token_hex(16)
    await redis.set(_preview_key(settings, site_id, preview_id), json.dumps(periods), ex=PREVIEW_TTL_SECONDS)
    return PurgeView(
        dry_run=True,
        preview_id=preview_id,
        expires_at=now + dt.timedelta(seconds=PREVIEW_TTL_SECONDS),
        classes=counted,
        total=sum(c.rows for c in counted),
    )


async def purge(
    settings: Settings, redis: Redis, site_id: UUID, request: PurgeRequest, now: dt.datetime | None = None
) -> PurgeView:
    """A dry run, or the real purge of one site after one (409 naming the missing step otherwise)."""
    if request.dry_run:
        return await preview_purge(settings, redis, site_id, now)
    if not request.preview_id:
        raise Conflict(
            "run a dry run first (dry_run: true) and pass its preview_id",
            extra={"missing_step": "dry-run"},
        )
    shown = await redis.getdel(_preview_key(settings, site_id, request.preview_id))
    if shown is None:
        raise Conflict(
            "preview_id: unknown, used or expired; run a dry run again",
            extra={"missing_step": "dry-run"},
        )
    if json.loads(shown) != await site_periods(site_id):
        raise Conflict(
            "retention periods changed since the dry run; run it again",
            extra={"missing_step": "dry-run"},
        )
    ran = await apply_retention(settings, redis, now, site_ids=[site_id])
    classes = [
        PurgeClass(class_name=r.class_name, days=r.days, cutoff=r.cutoff, rows=r.deleted, error=r.error)
        for r in sorted(ran, key=lambda r: r.class_name)
    ]
    return PurgeView(
        dry_run=False, preview_id=None, expires_at=None, classes=classes, total=sum(c.rows for c in classes)
    )
