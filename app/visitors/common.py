"""What every visitors service shares: its dependencies, personal-field encryption, occupants of a
unit, the blocklist check, publishing after commit, and event notifications through NOTIFY."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import msgspec
from redis.asyncio import Redis

from app.config import Settings
from app.errors import InvalidInput, NotFound
from app.people.directory import Directory, cipher_for
from app.people.normalise import normalise_phone, normalise_plate
from notifications.audience import Audience
from notifications.categories import Category, Channel, Urgency
from notifications.service import NotificationRequest, create_notification
from realtime.publish import publish
from realtime.topics import site_topic, unit_topic
from schema.tables import Occupancy, Person, Site, Unit
from schema.visitors import VisitorBlock

logger = logging.getLogger("opshub.visitors")

# Asks a worker to expand a notification now (the notify tick would find it within seconds anyway).
Kick = Callable[[UUID], Awaitable[object]]


@dataclass(frozen=True)
class VisitorDeps:
    settings: Settings
    redis: Redis
    directory: Directory
    kick: Kick | None = None
    # Enqueues an arq job of this module by name (web processes; None in tests and workers).
    enqueue_job: Callable[[str], Awaitable[object]] | None = None


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def aware(value: dt.datetime, field: str) -> dt.datetime:
    if value.tzinfo is None:
        raise InvalidInput.for_field(field, "must include a timezone offset")
    return value.astimezone(dt.UTC)


# ------------------------------------------------------------------------------ personal fields


@dataclass(frozen=True, slots=True)
class Sealed:
    """An encrypted personal value and its blind index (both None when the value is absent)."""

    encrypted: str | None = None
    index: str | None = None
    plain: str | None = None


async def site_region(site_id: UUID) -> str:
    row = await Site.select(Site.country_code).where(Site.id == site_id).first()
    return str(row["country_code"]) if row else "IN"


def seal_phone(settings: Settings, raw: str | None, region: str, field: str) -> Sealed:
    if raw is None or not raw.strip():
        return Sealed()
    try:
        e164 = normalise_phone(raw, region)
    except ValueError as exc:
        raise InvalidInput.for_field(field, str(exc)) from None
    cipher = cipher_for(settings)
    return Sealed(cipher.encrypt(e164), cipher.blind_index("mobile", e164), e164)


def seal_plate(settings: Settings, raw: str | None, field: str) -> Sealed:
    if raw is None or not raw.strip():
        return Sealed()
    try:
        plate = normalise_plate(raw)
    except ValueError as exc:
        raise InvalidInput.for_field(field, str(exc)) from None
    cipher = cipher_for(settings)
    return Sealed(cipher.encrypt(plate), cipher.blind_index("plate", plate), plate)


def plate_index_of(settings: Settings, raw: str) -> str | None:
    try:
        return cipher_for(settings).blind_index("plate", normalise_plate(raw))
    except ValueError:
        return None


def reveal(settings: Settings, encrypted: str | None) -> str | None:
    return cipher_for(settings).decrypt(encrypted) if encrypted else None


# ------------------------------------------------------------------------------ site facts


async def unit_of_site(site_id: UUID, unit_id: UUID, field: str = "unit_id") -> str:
    """The unit's label; a unit of another site (or none) is a 404."""
    row = await Unit.select(Unit.label).where((Unit.id == unit_id) & (Unit.site == site_id)).first()
    if row is None:
        raise NotFound(f"{field}: no such unit on this site")
    return str(row["label"])


async def unit_and_region(site_id: UUID, unit_id: UUID, field: str = "unit_id") -> tuple[str, str]:
    """The unit's label and its site's phone region, in one query; a unit of another site is a 404."""
    row = (
        await Unit.select(Unit.label, Unit.site._.country_code.as_alias("region"))
        .where((Unit.id == unit_id) & (Unit.site == site_id))
        .first()
    )
    if row is None:
        raise NotFound(f"{field}: no such unit on this site")
    return str(row["label"]), str(row["region"] or "IN")


async def unit_labels(site_id: UUID, unit_ids: Iterable[UUID]) -> dict[UUID, str]:
    ids = list(set(unit_ids))
    if not ids:
        return {}
    rows = await Unit.select(Unit.id, Unit.label).where((Unit.site == site_id) & Unit.id.is_in(ids))
    return {row["id"]: row["label"] for row in rows}


async def occupants_of(site_id: UUID, unit_id: UUID) -> list[UUID]:
    rows = await Occupancy.select(Occupancy.person).where(
        (Occupancy.site == site_id)
        & (Occupancy.unit == unit_id)
        & (Occupancy.is_active.eq(True))
        & (Occupancy.person._.is_active.eq(True))
    )
    return sorted({row["person"] for row in rows}, key=str)


async def is_occupant(site_id: UUID, unit_id: UUID, person_id: UUID) -> bool:
    return await Occupancy.exists().where(
        (Occupancy.site == site_id)
        & (Occupancy.unit == unit_id)
        & (Occupancy.person == person_id)
        & (Occupancy.is_active.eq(True))
    )


async def person_names(site_id: UUID, person_ids: Iterable[UUID]) -> dict[UUID, str]:
    ids = list(set(person_ids))
    if not ids:
        return {}
    rows = await Person.select(Person.id, Person.full_name).where((Person.site == site_id) & Person.id.is_in(ids))
    return {row["id"]: row["full_name"] for row in rows}


async def is_blocked(site_id: UUID, phone_index: str | None, plate_index: str | None) -> bool:
    """A visitor is blocked when the site's blocklist holds their phone or their plate."""
    condition: Any = None
    if phone_index:
        condition = VisitorBlock.phone_index == phone_index
    if plate_index:
        by_plate = VisitorBlock.plate_index == plate_index
        condition = by_plate if condition is None else condition | by_plate
    if condition is None:
        return False
    return await VisitorBlock.exists().where((VisitorBlock.site == site_id) & condition)


# ------------------------------------------------------------------------------ realtime and notify


def gate_topics(site_id: UUID, unit_id: UUID | None = None, *, control: bool = True) -> list[str]:
    topics = [site_topic(site_id, "gate")]
    if control:
        topics.append(site_topic(site_id, "control"))
    if unit_id is not None:
        topics.insert(0, unit_topic(unit_id))
    return topics


async def publish_all(deps: VisitorDeps, topics: Iterable[str], event_type: str, data: msgspec.Struct) -> None:
    """Publish after commit; a Redis failure is logged, the committed change stands (clients refetch)."""
    for topic in topics:
        try:
            await publish(deps.redis, deps.settings, topic, event_type, data)
        except Exception:
            logger.exception("could not publish %s on %s", event_type, topic)


async def notify(
    deps: VisitorDeps,
    *,
    site_id: UUID,
    audience: Audience,
    title: str,
    body: str,
    key: str,
    urgency: Urgency = Urgency.HIGH,
    channels: Iterable[Channel] = (Channel.PUSH, Channel.IN_APP),
    data: dict[str, Any] | None = None,
    collapse_key: str | None = None,
    category: Category = Category.VISITOR,
    now: dt.datetime | None = None,
    raise_errors: bool = False,
) -> UUID | None:
    """One event notification through NOTIFY (consent, DND and critical categories decided there).

    Idempotent by ``key``; returns the notification id (None when the audience is empty). A failure to
    create it is logged and swallowed (the event it tells of already happened), unless ``raise_errors``:
    a ladder rung must fail, to be run again, rather than finish having told nobody."""
    if audience.is_empty():
        return None
    try:
        notification_id, created = await create_notification(
            site_id=site_id,
            request=NotificationRequest(
                title=title[:200],
                body=body[:4000],
                category=category,
                audience=audience,
                channels=list(channels),
                urgency=urgency,
                idempotency_key=key[:128],
            ),
            kind="event",
            data={k: str(v) for k, v in (data or {}).items()},
            collapse_key=collapse_key,
            now=now,
        )
    except Exception:
        if raise_errors:
            raise
        logger.exception("could not create notification %s", key)
        return None
    if created and deps.kick is not None:
        try:
            await deps.kick(notification_id)
        except Exception:
            logger.warning("could not kick notification %s; the notify tick will send it", notification_id)
    return notification_id
