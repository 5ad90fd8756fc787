"""Consent per person, channel and category (with its append-only history), and DND.

Every change appends a ``ConsentEvent`` (when, channel, category, granted or withdrawn,
source, policy version, who) and updates the current ``NotificationPreference`` in the
same transaction. Nothing here sends: the sender reads the current state at send time,
so a withdrawal takes effect for every message not yet sent.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from app.db import Row, any_of, fetch_rows, write_transaction
from app.errors import InvalidInput
from notifications.categories import DEFAULT_ENABLED, Category, Channel
from notifications.policy import DndSettings, QuietWindow
from schema.jsonvalue import as_list
from schema.notifications import ConsentEvent, DoNotDisturb, NotificationPreference

ConsentSource = Literal["app", "web", "keyword", "admin", "import", "provider"]


class ConsentChange(msgspec.Struct, frozen=True):
    channel: Channel
    category: Category
    granted: bool


class ConsentRecord(msgspec.Struct, frozen=True):
    channel: Channel
    category: Category
    granted: bool
    source: str
    policy_version: str
    at: dt.datetime
    actor_id: UUID | None = None


class PreferenceView(msgspec.Struct, frozen=True):
    channel: Channel
    category: Category
    enabled: bool
    is_default: bool


class QuietHours(msgspec.Struct, frozen=True):
    weekday: int  # 0 = Monday
    start: str  # "22:00"
    end: str  # "07:00"


class DndView(msgspec.Struct, frozen=True):
    timezone: str
    quiet_hours: list[QuietHours]
    snooze_until: dt.datetime | None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def change_consent(
    *,
    site_id: UUID,
    person_id: UUID,
    changes: Sequence[ConsentChange],
    source: ConsentSource,
    policy_version: str,
    actor_id: UUID | None = None,
) -> None:
    """Record each change in the history and make it the current preference, atomically."""
    now = _now()
    async with write_transaction():
        for change in changes:
            await ConsentEvent(
                site=site_id,
                person=person_id,
                channel=str(change.channel),
                category=str(change.category),
                granted=change.granted,
                source=source,
                policy_version=policy_version,
                actor=actor_id,
                created_at=now,
            ).save()
            updated = (
                await NotificationPreference.update(
                    {NotificationPreference.enabled: change.granted, NotificationPreference.updated_at: now}
                )
                .where(
                    (NotificationPreference.person == person_id)
                    & (NotificationPreference.channel == str(change.channel))
                    & (NotificationPreference.category == str(change.category))
                )
                .returning(NotificationPreference.id)
            )
            if not updated:
                await NotificationPreference(
                    site=site_id,
                    person=person_id,
                    channel=str(change.channel),
                    category=str(change.category),
                    enabled=change.granted,
                    updated_at=now,
                ).save()


async def withdraw_everywhere(
    *, site_id: UUID, person_id: UUID, channels: Iterable[Channel], source: ConsentSource, policy_version: str
) -> None:
    """A STOP keyword or 'unsubscribe from all': every category on the given channels."""
    changes = [ConsentChange(channel=ch, category=cat, granted=False) for ch in channels for cat in Category]
    await change_consent(
        site_id=site_id, person_id=person_id, changes=changes, source=source, policy_version=policy_version
    )


async def consent_matrix(person_ids: Sequence[UUID]) -> dict[UUID, dict[tuple[Channel, Category], bool]]:
    """The explicit choices of each person (absent pairs fall back to ``DEFAULT_ENABLED``)."""
    result: dict[UUID, dict[tuple[Channel, Category], bool]] = {p: {} for p in person_ids}
    if not person_ids:
        return result
    # As a set: the table of explicit choices is small beside a fan-out's batches (app.db.any_of).
    people, params = any_of("person", list(person_ids), as_set_of="uuid")
    rows = await fetch_rows(
        "notification_preference", ("person", "channel", "category", "enabled"), f"WHERE {people}", *params
    )
    for row in rows:
        result[row["person"]][(Channel(row["channel"]), Category(row["category"]))] = bool(row["enabled"])
    return result


def is_enabled(choices: dict[tuple[Channel, Category], bool], channel: Channel, category: Category) -> bool:
    return choices.get((channel, category), DEFAULT_ENABLED[category])


async def preferences_of(person_id: UUID) -> list[PreferenceView]:
    choices = (await consent_matrix([person_id]))[person_id]
    return [
        PreferenceView(
            channel=channel,
            category=category,
            enabled=is_enabled(choices, channel, category),
            is_default=(channel, category) not in choices,
        )
        for channel in Channel
        for category in Category
    ]


async def consent_history(person_id: UUID, *, limit: int = 500, offset: int = 0) -> list[ConsentRecord]:
    rows = (
        await ConsentEvent.select()
        .where(ConsentEvent.person == person_id)
        .order_by(ConsentEvent.created_at, ascending=False)
        .limit(limit)
        .offset(offset)
    )
    return [
        ConsentRecord(
            channel=Channel(r["channel"]),
            category=Category(r["category"]),
            granted=r["granted"],
            source=r["source"],
            policy_version=r["policy_version"],
            at=r["created_at"],
            actor_id=r["actor"],
        )
        for r in rows
    ]


def _parse_time(value: str, field: str) -> dt.time:
    try:
        return dt.time.fromisoformat(value)
    except ValueError:
        raise InvalidInput.for_field(field, f"'{value}' is not a time like 22:00") from None


def dnd_settings_from_row(row: Mapping[str, object] | Row, fallback_timezone: str) -> DndSettings:
    windows = msgspec.convert(as_list(row.get("windows")), list[QuietHours])
    return DndSettings(
        timezone=str(row.get("timezone") or fallback_timezone),
        windows=tuple(
            QuietWindow(weekday=w.weekday, start=dt.time.fromisoformat(w.start), end=dt.time.fromisoformat(w.end))
            for w in windows
        ),
        snooze_until=row.get("snooze_until"),  # type: ignore[arg-type]
    )


async def set_dnd(
    *,
    site_id: UUID,
    person_id: UUID,
    timezone: str,
    quiet_hours: Sequence[QuietHours],
    snooze_until: dt.datetime | None,
) -> DndView:
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput.for_field("timezone", f"unknown IANA timezone '{timezone}'") from None
    for position, window in enumerate(quiet_hours):
        if not 0 <= window.weekday <= 6:
            raise InvalidInput.for_field(f"quiet_hours[{position}].weekday", "must be 0 (Monday) to 6 (Sunday)")
        if _parse_time(window.start, f"quiet_hours[{position}].start") == _parse_time(
            window.end, f"quiet_hours[{position}].end"
        ):
            raise InvalidInput.for_field(f"quiet_hours[{position}]", "start and end must differ")
    if snooze_until is not None and snooze_until.tzinfo is None:
        raise InvalidInput.for_field("snooze_until", "must include a timezone offset")
    windows = [msgspec.to_builtins(w) for w in quiet_hours]
    now = _now()
    async with write_transaction():
        updated = (
            await DoNotDisturb.update(
                {
                    DoNotDisturb.timezone: timezone,
                    DoNotDisturb.windows: windows,
                    DoNotDisturb.snooze_until: snooze_until,
                    DoNotDisturb.updated_at: now,
                }
            )
            .where(DoNotDisturb.person == person_id)
            .returning(DoNotDisturb.id)
        )
        if not updated:
            await DoNotDisturb(
                site=site_id,
                person=person_id,
                timezone=timezone,
                windows=windows,
                snooze_until=snooze_until,
                updated_at=now,
            ).save()
    return DndView(timezone=timezone, quiet_hours=list(quiet_hours), snooze_until=snooze_until)


async def dnd_of(person_ids: Sequence[UUID], fallback_timezone: str) -> dict[UUID, DndSettings]:
    if not person_ids:
        return {}
    people, params = any_of("person", list(person_ids))
    rows = await fetch_rows(
        "do_not_disturb", ("person", "timezone", "windows", "snooze_until"), f"WHERE {people}", *params
    )
    return {row["person"]: dnd_settings_from_row(row, fallback_timezone) for row in rows}
