"""HTTP routes of the notification pipeline. Thin: parse, call notifications/, shape the reply.

- Announcements (FM and site admins): create, list, view progress counters, cancel.
- Me (every role): consent per channel and category with its history, do-not-disturb, the feed.
- People (staff): a person's consent, changed on their behalf (source "admin", with the actor).
- NCPR (staff): the site's copy of the national do-not-call registry.

Every query is scoped by the caller's site: another site's id is a 404.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from litestar import Controller, Litestar, Response, delete, get, post, put
from litestar.datastructures import State, UploadFile
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, JSONBody, MultipartBody

from app.auth.roles import ALL_ROLES, STAFF, Role, allow
from app.config import Settings
from app.deps import Caller, DirectoryDep, RedisDep, SettingsDep
from app.errors import FieldError, InvalidInput, NotFound
from app.observability.jobs import deserialize_job, serialize_job
from app.pagination import DEFAULT_LIMIT, Limit, Offset, Page, window
from notifications import feed, ncpr, rates, site_settings
from notifications.audience import Audience
from notifications.categories import Category, Channel, Urgency
from notifications.ledger import now_utc
from notifications.preferences import (
    ConsentChange,
    ConsentRecord,
    DndView,
    PreferenceView,
    QuietHours,
    change_consent,
    consent_history,
    consent_matrix,
    preferences_of,
    set_dnd,
)
from notifications.service import (
    NotificationRequest,
    NotificationView,
    cancel_notification,
    create_notification,
    view_notification,
)
from schema.jsonvalue import as_list
from schema.notifications import ConsentEvent, DoNotDisturb, Notification
from schema.tables import Building, Person, Site, Unit

logger = logging.getLogger("opshub.notify.api")

ANNOUNCERS = allow(Role.FM_ADMIN, Role.SITE_ADMIN)
EVERYONE = allow(*ALL_ROLES)
STAFF_ONLY = allow(*STAFF)
PLATFORM_ONLY = allow(Role.PLATFORM_ADMIN)
JOB_QUEUE_STATE_KEY = "notify_job_queue"
MAX_SNOOZE_MINUTES = 7 * 24 * 60
NotificationStatus = Literal["draft", "scheduled", "expanding", "sending", "completed", "cancelled"]


# ------------------------------------------------------------------------------ the arq queue


class JobQueue:
    """The web process's arq pool, created on first use and kept on ``app.state``."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._pool: ArqRedis | None = None
        self._lock = asyncio.Lock()

    async def pool(self) -> ArqRedis:
        if self._pool is None:
            async with self._lock:
                if self._pool is None:
                    from workers.main import queue_name

                    if not self._settings.redis_url:
                        raise RuntimeError("REDIS_URL is not set")
                    self._pool = await create_pool(
                        RedisSettings.from_dsn(self._settings.redis_url),
                        default_queue_name=queue_name(self._settings),
                        # Jobs carry the enqueuing request's id into the worker's log lines.
                        job_serializer=serialize_job,
                        job_deserializer=deserialize_job,
                    )
        return self._pool

    async def enqueue_expand(self, notification_id: UUID) -> bool:
        """Ask a worker to expand now. The ledger is the truth and ``notify_tick`` finds every due
        notification within seconds, so a failure here only delays the send: log it, don't fail the request."""
        from workers.notify_jobs import enqueue_expand

        try:
            await enqueue_expand(await self.pool(), notification_id)
        except Exception:
            logger.warning("could not enqueue notify_expand for %s; the tick will pick it up", notification_id)
            return False
        return True

    async def aclose(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.aclose()


def provide_job_queue(state: State) -> JobQueue:
    queue: JobQueue | None = state.get(JOB_QUEUE_STATE_KEY)
    if queue is None:
        queue = JobQueue(state.settings)
        state[JOB_QUEUE_STATE_KEY] = queue
    return queue


JobQueueDep = NamedDependency[JobQueue]


@asynccontextmanager
async def job_queue_lifespan(app: Litestar) -> AsyncIterator[None]:
    """For the app factory's ``lifespan`` list: closes the arq pool if a request opened one."""
    try:
        yield
    finally:
        queue: JobQueue | None = app.state.get(JOB_QUEUE_STATE_KEY)
        if queue is not None:
            await queue.aclose()


# ------------------------------------------------------------------------------ shapes


class Created(msgspec.Struct, frozen=True):
    id: UUID


class AnnouncementSummary(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    kind: str
    title: str
    category: Category
    urgency: Urgency
    channels: list[Channel]
    status: str
    scheduled_at: dt.datetime | None
    created_at: dt.datetime
    created_by: UUID | None
    targeted: int


class AnnouncementPage(msgspec.Struct, frozen=True):
    items: list[AnnouncementSummary]
    total: int
    limit: int
    offset: int


class PreferenceChoice(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    channel: Channel
    category: Category
    enabled: bool


Choices = Annotated[list[PreferenceChoice], msgspec.Meta(max_length=len(Channel) * len(Category))]


class PreferencesUpdate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Any subset of the matrix; grants and withdrawals together. Only real changes are recorded."""

    preferences: Choices = msgspec.field(default_factory=list)
    source: Literal["app", "web"] = "app"


class StaffPreferencesUpdate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    preferences: Choices = msgspec.field(default_factory=list)


class ConsentHistoryPage(msgspec.Struct, frozen=True):
    items: list[ConsentRecord]
    total: int
    limit: int
    offset: int


class DndUpdate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    timezone: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    quiet_hours: Annotated[list[QuietHours], msgspec.Meta(max_length=28)] = msgspec.field(default_factory=list)
    snooze_until: dt.datetime | None = None


class Snooze(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Quiet for this many minutes from now; 0 ends a running snooze."""

    minutes: Annotated[int, msgspec.Meta(ge=0, le=MAX_SNOOZE_MINUTES)]


class NcprUpload(msgspec.Struct):
    file: UploadFile


# ------------------------------------------------------------------------------ helpers


async def _unknown_ids(table: Any, site_id: UUID, ids: Sequence[UUID]) -> list[UUID]:
    wanted = list(dict.fromkeys(ids))
    found: set[UUID] = set()
    for start in range(0, len(wanted), 500):
        rows = await table.select(table.id).where((table.site == site_id) & table.id.is_in(wanted[start : start + 500]))
        found |= {row["id"] for row in rows}
    return [i for i in wanted if i not in found]


async def check_audience(site_id: UUID, audience: Audience) -> None:
    """Every id in the audience must belong to the caller's site; the error names the field."""
    errors = []
    for field, table, ids in (
        ("audience.building_ids", Building, audience.building_ids),
        ("audience.unit_ids", Unit, audience.unit_ids),
        ("audience.person_ids", Person, audience.person_ids),
    ):
        if not ids:
            continue
        unknown = await _unknown_ids(table, site_id, ids)
        if unknown:
            shown = ", ".join(str(i) for i in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
            errors.append(FieldError(field=field, message=f"not on this site: {shown}", source="body"))
    if errors:
        raise InvalidInput("; ".join(f"{e.field}: {e.message}" for e in errors), errors=errors)


async def list_announcements(site_id: UUID, *, status: str | None, limit: int, offset: int) -> AnnouncementPage:
    condition = (Notification.site == site_id) & (Notification.kind == "announcement")
    if status is not None:
        condition &= Notification.status == status
    rows = (
        await Notification.select(
            Notification.id,
            Notification.kind,
            Notification.title,
            Notification.category,
            Notification.urgency,
            Notification.channels,
            Notification.status,
            Notification.scheduled_at,
            Notification.created_at,
            Notification.created_by,
            Notification.targeted,
        )
        .where(condition)
        .order_by(Notification.created_at, Notification.id, ascending=False)
        .limit(limit)
        .offset(offset)
    )
    total = await Notification.count().where(condition)
    items = [
        AnnouncementSummary(
            id=row["id"],
            kind=row["kind"],
            title=row["title"],
            category=Category(row["category"]),
            urgency=Urgency(row["urgency"]),
            channels=[Channel(c) for c in as_list(row["channels"])],
            status=row["status"],
            scheduled_at=row["scheduled_at"],
            created_at=row["created_at"],
            created_by=row["created_by"],
            targeted=row["targeted"],
        )
        for row in rows
    ]
    return AnnouncementPage(items=items, total=total, limit=limit, offset=offset)


async def _person_of_site(site_id: UUID, person_id: UUID) -> None:
    if not await Person.exists().where((Person.id == person_id) & (Person.site == site_id)):
        raise NotFound("person not found")


async def _apply_choices(
    *,
    site_id: UUID,
    person_id: UUID,
    choices: Sequence[PreferenceChoice],
    source: Literal["app", "web", "admin"],
    policy_version: str,
    actor_id: UUID | None,
) -> list[PreferenceView]:
    seen: dict[tuple[Channel, Category], int] = {}
    for position, choice in enumerate(choices):
        pair = (choice.channel, choice.category)
        if pair in seen:
            raise InvalidInput.for_field(
                f"preferences[{position}]", f"{choice.channel}/{choice.category} is also given at [{seen[pair]}]"
            )
        seen[pair] = position
    current = (await consent_matrix([person_id]))[person_id]
    # A choice equal to the person's explicit current one records nothing: PUT is idempotent.
    # Confirming a default is recorded (it becomes an explicit, dated choice).
    changes = [
        ConsentChange(channel=c.channel, category=c.category, granted=c.enabled)
        for c in choices
        if current.get((c.channel, c.category)) != c.enabled
    ]
    if changes:
        await change_consent(
            site_id=site_id,
            person_id=person_id,
            changes=changes,
            source=source,
            policy_version=policy_version,
            actor_id=actor_id,
        )
    return await preferences_of(person_id)


async def _history_page(person_id: UUID, limit: int, offset: int) -> ConsentHistoryPage:
    items = await consent_history(person_id, limit=limit, offset=offset)
    total = await ConsentEvent.count().where(ConsentEvent.person == person_id)
    return ConsentHistoryPage(items=items, total=total, limit=limit, offset=offset)


async def dnd_view(site_id: UUID, person_id: UUID) -> DndView:
    """The person's DND; without one yet, no quiet hours in their own (or the site's) timezone."""
    row = await DoNotDisturb.select().where(DoNotDisturb.person == person_id).first()
    if row is not None:
        return DndView(
            timezone=row["timezone"],
            quiet_hours=msgspec.convert(as_list(row["windows"]), list[QuietHours]),
            snooze_until=row["snooze_until"],
        )
    person = await Person.select(Person.timezone).where(Person.id == person_id).first()
    site = await Site.select(Site.timezone).where(Site.id == site_id).first()
    zone = (person or {}).get("timezone") or (site or {}).get("timezone") or "Asia/Kolkata"
    return DndView(timezone=str(zone), quiet_hours=[], snooze_until=None)


# ------------------------------------------------------------------------------ controllers


class AnnouncementController(Controller):
    path = "/api/announcements"
    tags = ["announcements"]
    dependencies = {"jobs": Provide(provide_job_queue, sync_to_thread=False)}

    @post("", opt=ANNOUNCERS, status_code=201)
    async def create(
        self, principal: Caller, jobs: JobQueueDep, data: JSONBody[NotificationRequest]
    ) -> Response[Created]:
        """201 with the new id; 200 with the first id when the idempotency key was seen before."""
        await check_audience(principal.site_id, data.audience)
        notification_id, created = await create_notification(
            site_id=principal.site_id, request=data, created_by=principal.person_id
        )
        if created and (data.scheduled_at is None or data.scheduled_at <= now_utc()):
            await jobs.enqueue_expand(notification_id)
        return Response(Created(id=notification_id), status_code=201 if created else 200)

    @get("", opt=ANNOUNCERS)
    async def list_all(
        self,
        principal: Caller,
        status: FromQuery[NotificationStatus | None] = None,
        limit: Limit = DEFAULT_LIMIT,
        offset: Offset = 0,
    ) -> AnnouncementPage:
        return await list_announcements(principal.site_id, status=status, limit=limit, offset=offset)

    @get("/{notification_id:uuid}", opt=ANNOUNCERS)
    async def read(self, principal: Caller, notification_id: FromPath[UUID]) -> NotificationView:
        return await view_notification(principal.site_id, notification_id)

    @post("/{notification_id:uuid}/cancel", opt=ANNOUNCERS, status_code=200)
    async def cancel(self, principal: Caller, notification_id: FromPath[UUID]) -> NotificationView:
        """409 when it already completed or was cancelled; what was sent stays recorded as sent."""
        await cancel_notification(principal.site_id, notification_id)
        return await view_notification(principal.site_id, notification_id)


class PreferenceController(Controller):
    tags = ["notification preferences"]

    @get("/api/me/notification-preferences", opt=EVERYONE)
    async def my_preferences(
        self, principal: Caller, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
    ) -> Page[PreferenceView]:
        """Every channel x category pair, the defaults filled in: the page is cut from that whole matrix."""
        return window(await preferences_of(principal.person_id), limit=limit, offset=offset)

    @put("/api/me/notification-preferences", opt=EVERYONE)
    async def change_my_preferences(
        self, principal: Caller, settings: SettingsDep, data: JSONBody[PreferencesUpdate]
    ) -> list[PreferenceView]:
        return await _apply_choices(
            site_id=principal.site_id,
            person_id=principal.person_id,
            choices=data.preferences,
            source=data.source,
            policy_version=settings.notify_policy_version,
            actor_id=None,
        )

    @get("/api/me/consent-history", opt=EVERYONE)
    async def my_consent_history(
        self, principal: Caller, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
    ) -> ConsentHistoryPage:
        return await _history_page(principal.person_id, limit, offset)

    @get("/api/me/dnd", opt=EVERYONE)
    async def my_dnd(self, principal: Caller) -> DndView:
        return await dnd_view(principal.site_id, principal.person_id)

    @put("/api/me/dnd", opt=EVERYONE)
    async def set_my_dnd(self, principal: Caller, data: JSONBody[DndUpdate]) -> DndView:
        return await set_dnd(
            site_id=principal.site_id,
            person_id=principal.person_id,
            timezone=data.timezone,
            quiet_hours=data.quiet_hours,
            snooze_until=data.snooze_until,
        )

    @post("/api/me/dnd/snooze", opt=EVERYONE, status_code=200)
    async def snooze(self, principal: Caller, data: JSONBody[Snooze]) -> DndView:
        current = await dnd_view(principal.site_id, principal.person_id)
        until = now_utc() + dt.timedelta(minutes=data.minutes) if data.minutes else None
        return await set_dnd(
            site_id=principal.site_id,
            person_id=principal.person_id,
            timezone=current.timezone,
            quiet_hours=current.quiet_hours,
            snooze_until=until,
        )

    @get("/api/people/{person_id:uuid}/notification-preferences", opt=STAFF_ONLY)
    async def person_preferences(
        self, principal: Caller, person_id: FromPath[UUID], limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
    ) -> Page[PreferenceView]:
        await _person_of_site(principal.site_id, person_id)
        return window(await preferences_of(person_id), limit=limit, offset=offset)

    @put("/api/people/{person_id:uuid}/notification-preferences", opt=STAFF_ONLY)
    async def change_person_preferences(
        self,
        principal: Caller,
        settings: SettingsDep,
        person_id: FromPath[UUID],
        data: JSONBody[StaffPreferencesUpdate],
    ) -> list[PreferenceView]:
        """On the person's behalf (e.g. asked at the desk): recorded as source "admin" with the staff member."""
        await _person_of_site(principal.site_id, person_id)
        return await _apply_choices(
            site_id=principal.site_id,
            person_id=person_id,
            choices=data.preferences,
            source="admin",
            policy_version=settings.notify_policy_version,
            actor_id=principal.person_id,
        )

    @get("/api/people/{person_id:uuid}/consent-history", opt=STAFF_ONLY)
    async def person_consent_history(
        self, principal: Caller, person_id: FromPath[UUID], limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
    ) -> ConsentHistoryPage:
        await _person_of_site(principal.site_id, person_id)
        return await _history_page(person_id, limit, offset)


class FeedController(Controller):
    path = "/api/me/notifications"
    tags = ["notification feed"]

    @get("", opt=EVERYONE)
    async def my_feed(
        self,
        principal: Caller,
        unread_only: FromQuery[bool] = False,
        limit: Limit = DEFAULT_LIMIT,
        offset: Offset = 0,
    ) -> feed.FeedPage:
        return await feed.list_feed(
            principal.site_id, principal.person_id, unread_only=unread_only, limit=limit, offset=offset
        )

    @post("/{delivery_id:uuid}/read", opt=EVERYONE, status_code=200)
    async def mark_read(
        self, principal: Caller, settings: SettingsDep, redis: RedisDep, delivery_id: FromPath[UUID]
    ) -> feed.ReadResult:
        result, changed = await feed.mark_read(principal.site_id, principal.person_id, delivery_id, now_utc())
        if changed:
            event = feed.FeedReadEvent(delivery_ids=[delivery_id], all=False, read_at=result.read_at)
            await feed.announce_read(redis, settings, principal.person_id, event)
        return result

    @post("/read-all", opt=EVERYONE, status_code=200)
    async def mark_all_read(self, principal: Caller, settings: SettingsDep, redis: RedisDep) -> feed.ReadAllResult:
        result = await feed.mark_all_read(principal.site_id, principal.person_id, now_utc())
        if result.marked:
            event = feed.FeedReadEvent(delivery_ids=[], all=True, read_at=result.read_at)
            await feed.announce_read(redis, settings, principal.person_id, event)
        return result


class NcprController(Controller):
    path = "/api/ncpr"
    tags = ["ncpr"]

    @get("", opt=STAFF_ONLY)
    async def summary(self, principal: Caller) -> ncpr.RegistrySummary:
        return await ncpr.registry_summary(principal.site_id)

    @post("/import", opt=STAFF_ONLY, status_code=200)
    async def import_registry(
        self, principal: Caller, directory: DirectoryDep, data: MultipartBody[NcprUpload]
    ) -> ncpr.ImportReport:
        """A CSV with a ``phone`` column, or one number per line; local numbers use the site's country."""
        content = await data.file.read()
        return await ncpr.import_registry(directory, principal.site_id, content)

    @delete("", opt=STAFF_ONLY, status_code=200)
    async def clear(self, principal: Caller) -> ncpr.Cleared:
        """Empties the site's list, before importing a new snapshot of the registry."""
        return await ncpr.clear_registry(principal.site_id)


class NotificationSettingsController(Controller):
    """The site's notification policy: critical categories, time to live, digests (FM and site admins)."""

    path = "/api/notifications/settings"

    @get("", opt=ANNOUNCERS)
    async def read(self, principal: Caller) -> site_settings.NotificationSettings:
        return await site_settings.read(principal.site_id)

    @put("", opt=ANNOUNCERS)
    async def write(
        self, principal: Caller, data: JSONBody[site_settings.NotificationSettings]
    ) -> site_settings.NotificationSettings:
        return await site_settings.write(principal.site_id, data)


class NotifyRatesController(Controller):
    """Providers' send rates in force for the whole deployment (platform operators): configured in the
    environment, replaced live when a provider grants more (or less) throughput."""

    path = "/api/platform/notify/rates"

    @get("", opt=PLATFORM_ONLY)
    async def read(
        self, settings: SettingsDep, redis: RedisDep, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
    ) -> Page[rates.ChannelRate]:
        """One row per channel with a provider rate: a page, like every list (a PUT answers them all)."""
        return window(await rates.current(redis, settings), limit=limit, offset=offset)

    @put("", opt=PLATFORM_ONLY)
    async def write(
        self, settings: SettingsDep, redis: RedisDep, data: JSONBody[rates.RateChanges]
    ) -> list[rates.ChannelRate]:
        return await rates.change(redis, settings, data)
