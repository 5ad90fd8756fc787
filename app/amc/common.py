"""What the AMC modules share: field types, the site's clock and calendar, and its reminder settings."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Final
from uuid import UUID
from zoneinfo import ZoneInfo

import msgspec

from app.errors import InvalidInput
from app.text import MULTI_LINE, ONE_LINE
from schema.amc import AmcSiteConfig
from schema.jsonvalue import as_list
from schema.tables import Building, Site

Code = Annotated[str, msgspec.Meta(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200), ONE_LINE]
Floor = Annotated[str, msgspec.Meta(min_length=1, max_length=16), ONE_LINE]
Where = Annotated[str, msgspec.Meta(max_length=300), ONE_LINE]
Short = Annotated[str, msgspec.Meta(max_length=100), ONE_LINE]
Notes = Annotated[str, msgspec.Meta(max_length=4000), MULTI_LINE]
LeadDays = Annotated[list[Annotated[int, msgspec.Meta(ge=0, le=365)]], msgspec.Meta(max_length=6)]

DEFAULT_VISIT_LEAD_DAYS: Final = (7, 1)
DEFAULT_EXPIRY_LEAD_DAYS: Final = (60, 30, 7)
DEFAULT_REMINDER_HOUR: Final = 9


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def site_zone(site_id: UUID) -> ZoneInfo:
    row = await Site.select(Site.timezone).where(Site.id == site_id).first()
    return ZoneInfo(str((row or {}).get("timezone") or "Asia/Kolkata"))


def local_day(now: dt.datetime, zone: ZoneInfo) -> dt.date:
    """Today on the site's calendar: a visit "on the 31st" is the site's 31st, not UTC's."""
    return now.astimezone(zone).date()


def local_moment(day: dt.date, hour: int, zone: ZoneInfo) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, tzinfo=zone)


class ReminderSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """When reminders go out: days before each service visit, days before a contract ends, at which hour."""

    visit_lead_days: LeadDays = msgspec.field(default_factory=lambda: list(DEFAULT_VISIT_LEAD_DAYS))
    expiry_lead_days: LeadDays = msgspec.field(default_factory=lambda: list(DEFAULT_EXPIRY_LEAD_DAYS))
    reminder_hour: Annotated[int, msgspec.Meta(ge=0, le=23)] = DEFAULT_REMINDER_HOUR


async def reminder_settings(site_id: UUID) -> ReminderSettings:
    row = await AmcSiteConfig.select().where(AmcSiteConfig.site == site_id).first()
    if row is None:
        return ReminderSettings()
    return ReminderSettings(
        visit_lead_days=sorted({int(d) for d in as_list(row["visit_lead_days"])}, reverse=True),
        expiry_lead_days=sorted({int(d) for d in as_list(row["expiry_lead_days"])}, reverse=True),
        reminder_hour=int(row["reminder_hour"]),
    )


async def put_reminder_settings(
    site_id: UUID, data: ReminderSettings, now: dt.datetime | None = None
) -> ReminderSettings:
    now = now or now_utc()
    visit = sorted(set(data.visit_lead_days), reverse=True)
    expiry = sorted(set(data.expiry_lead_days), reverse=True)
    if await AmcSiteConfig.exists().where(AmcSiteConfig.site == site_id):
        await AmcSiteConfig.update(
            {
                AmcSiteConfig.visit_lead_days: visit,
                AmcSiteConfig.expiry_lead_days: expiry,
                AmcSiteConfig.reminder_hour: data.reminder_hour,
                AmcSiteConfig.updated_at: now,
            }
        ).where(AmcSiteConfig.site == site_id)
    else:
        await AmcSiteConfig.insert(
            AmcSiteConfig(
                site=site_id,
                visit_lead_days=visit,
                expiry_lead_days=expiry,
                reminder_hour=data.reminder_hour,
                updated_at=now,
            )
        )
    return await reminder_settings(site_id)


async def check_building(site_id: UUID, building_id: UUID | None, field: str = "building_id") -> None:
    if building_id is not None and not await Building.exists().where(
        (Building.id == building_id) & (Building.site == site_id)
    ):
        raise InvalidInput.for_field(field, "no such building on this site")


async def building_names(site_id: UUID) -> dict[UUID, str]:
    rows = await Building.select(Building.id, Building.name).where(Building.site == site_id)
    return {row["id"]: row["name"] for row in rows}
