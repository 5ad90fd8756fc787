"""Per-site configuration: categories (skill, sub-categories, SLA windows), site rules, technician shifts."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any
from uuid import UUID

import msgspec
from piccolo.columns import Column

from app.auth.roles import Role
from app.complaints import assignment
from app.complaints.sla import DEFAULT_WINDOWS, Priority, SiteRules, now_utc, site_rules
from app.db import write_transaction
from app.errors import InvalidInput, NotFound
from app.text import ONE_LINE
from schema.complaints import ComplaintCategory, ComplaintSiteConfig, ComplaintSlaRule, TechnicianShift
from schema.jsonvalue import as_list
from schema.tables import Person, PersonRole

Code = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200), ONE_LINE]
Minutes = Annotated[int, msgspec.Meta(ge=1, le=60 * 24 * 90)]
HHMM = Annotated[str, msgspec.Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]


class SlaWindow(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    priority: Priority
    response_minutes: Minutes
    resolution_minutes: Minutes


class CategoryInput(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Create or replace a category by ``code``; ``sla`` lists the windows per priority
    (a priority left out uses the defaults)."""

    code: Code
    name: Name
    skill: Code | None = None
    subcategories: list[Code] = msgspec.field(default_factory=list)
    sla: list[SlaWindow] = msgspec.field(default_factory=list)
    is_active: bool = True


class CategoryView(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    code: str
    name: str
    skill: str | None
    subcategories: list[str]
    sla: list[SlaWindow]
    is_active: bool


class SiteRulesInput(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    reopen_window_hours: Annotated[int, msgspec.Meta(ge=0, le=24 * 90)] = 72
    at_risk_percent: Annotated[int, msgspec.Meta(ge=1, le=100)] = 75
    escalation_step_minutes: Annotated[int, msgspec.Meta(ge=1, le=60 * 24 * 7)] = 60
    supervisor_id: UUID | None = None


class SiteRulesView(msgspec.Struct, frozen=True, kw_only=True):
    reopen_window_hours: int
    at_risk_percent: int
    escalation_step_minutes: int
    supervisor_id: UUID | None


class Shift(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    weekday: Annotated[int, msgspec.Meta(ge=0, le=6)]  # 0 = Monday
    start: HHMM
    end: HHMM


class ShiftsInput(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # Required (checked after the technician is found, so another site's id is a 404 whatever the body).
    shifts: Annotated[list[Shift], msgspec.Meta(max_length=50)] | None = None


class ShiftsView(msgspec.Struct, frozen=True, kw_only=True):
    technician_id: UUID
    timezone: str
    shifts: list[Shift]


async def list_categories(site_id: UUID) -> list[CategoryView]:
    rows = await ComplaintCategory.select().where(ComplaintCategory.site == site_id).order_by(ComplaintCategory.code)
    rules = await ComplaintSlaRule.select().where(ComplaintSlaRule.site == site_id)
    by_category: dict[UUID, dict[str, dict[str, Any]]] = {}
    for rule in rules:
        by_category.setdefault(rule["category"], {})[rule["priority"]] = rule
    result = []
    for row in rows:
        own: dict[str, dict[str, Any]] = by_category.get(row["id"], {})
        windows = []
        for priority in Priority:
            found = own.get(str(priority))
            response, resolution = (
                (found["response_minutes"], found["resolution_minutes"]) if found else DEFAULT_WINDOWS[priority]
            )
            windows.append(SlaWindow(priority=priority, response_minutes=response, resolution_minutes=resolution))
        result.append(
            CategoryView(
                id=row["id"],
                code=row["code"],
                name=row["name"],
                skill=row["skill"],
                subcategories=[str(s) for s in as_list(row["subcategories"])],
                sla=windows,
                is_active=row["is_active"],
            )
        )
    return result


async def put_category(site_id: UUID, data: CategoryInput) -> CategoryView:
    priorities = [w.priority for w in data.sla]
    if len(set(priorities)) != len(priorities):
        raise InvalidInput.for_field("sla", "one window per priority")
    for window in data.sla:
        if window.resolution_minutes < window.response_minutes:
            raise InvalidInput.for_field("sla", f"{window.priority}: resolution cannot come before response")
    async with write_transaction():
        existing = (
            await ComplaintCategory.select(ComplaintCategory.id)
            .where((ComplaintCategory.site == site_id) & (ComplaintCategory.code == data.code))
            .first()
        )
        values: dict[Column | str, Any] = {
            ComplaintCategory.name: data.name,
            ComplaintCategory.skill: data.skill,
            ComplaintCategory.subcategories: list(dict.fromkeys(data.subcategories)),
            ComplaintCategory.is_active: data.is_active,
        }
        if existing is None:
            category = ComplaintCategory(site=site_id, code=data.code)
            for column, value in values.items():
                assert isinstance(column, Column)
                setattr(category, column._meta.name, value)
            await category.save()
            category_id = category.id
        else:
            category_id = existing["id"]
            await ComplaintCategory.update(values).where(ComplaintCategory.id == category_id)
        await ComplaintSlaRule.delete().where(ComplaintSlaRule.category == category_id)
        if data.sla:
            await ComplaintSlaRule.insert(
                *[
                    ComplaintSlaRule(
                        site=site_id,
                        category=category_id,
                        priority=str(w.priority),
                        response_minutes=w.response_minutes,
                        resolution_minutes=w.resolution_minutes,
                    )
                    for w in data.sla
                ]
            )
    return next(c for c in await list_categories(site_id) if c.code == data.code)


def rules_view(rules: SiteRules) -> SiteRulesView:
    return SiteRulesView(
        reopen_window_hours=rules.reopen_window_hours,
        at_risk_percent=rules.at_risk_percent,
        escalation_step_minutes=rules.escalation_step_minutes,
        supervisor_id=rules.supervisor_id,
    )


async def get_rules(site_id: UUID) -> SiteRulesView:
    return rules_view(await site_rules(site_id))


async def put_rules(site_id: UUID, data: SiteRulesInput, now: dt.datetime | None = None) -> SiteRulesView:
    now = now or now_utc()
    if data.supervisor_id is not None:
        staff = await PersonRole.exists().where(
            (PersonRole.site == site_id)
            & (PersonRole.person == data.supervisor_id)
            & PersonRole.role.is_in([str(Role.FM_ADMIN), str(Role.SITE_ADMIN), str(Role.TECHNICIAN)])
        )
        if not staff:
            raise InvalidInput.for_field("supervisor_id", "must be FM staff or a technician of this site")
    values: dict[Column | str, Any] = {
        ComplaintSiteConfig.reopen_window_hours: data.reopen_window_hours,
        ComplaintSiteConfig.at_risk_percent: data.at_risk_percent,
        ComplaintSiteConfig.escalation_step_minutes: data.escalation_step_minutes,
        ComplaintSiteConfig.supervisor: data.supervisor_id,
        ComplaintSiteConfig.updated_at: now,
    }
    async with write_transaction():
        if await ComplaintSiteConfig.exists().where(ComplaintSiteConfig.site == site_id):
            await ComplaintSiteConfig.update(values).where(ComplaintSiteConfig.site == site_id)
        else:
            row = ComplaintSiteConfig(site=site_id)
            for column, value in values.items():
                assert isinstance(column, Column)
                setattr(row, column._meta.name, value)
            await row.save()
    return await get_rules(site_id)


async def _technician(site_id: UUID, technician_id: UUID) -> None:
    exists = await Person.exists().where((Person.id == technician_id) & (Person.site == site_id))
    if not exists or not await assignment.is_technician_of_site(site_id, technician_id):
        raise NotFound("technician not found")


async def get_shifts(site_id: UUID, technician_id: UUID) -> ShiftsView:
    await _technician(site_id, technician_id)
    rows = (
        await TechnicianShift.select()
        .where((TechnicianShift.site == site_id) & (TechnicianShift.technician == technician_id))
        .order_by(TechnicianShift.weekday)
        .order_by(TechnicianShift.start)
    )
    timezone = await assignment.site_timezone(site_id)
    return ShiftsView(
        technician_id=technician_id,
        timezone=str(timezone),
        shifts=[Shift(weekday=r["weekday"], start=r["start"], end=r["end"]) for r in rows],
    )


async def put_shifts(site_id: UUID, technician_id: UUID, data: ShiftsInput) -> ShiftsView:
    await _technician(site_id, technician_id)
    if data.shifts is None:
        raise InvalidInput.for_field("shifts", "is required (an empty list removes every shift)")
    shifts = data.shifts
    for index, shift in enumerate(shifts):
        if shift.start == shift.end:
            raise InvalidInput.for_field(f"shifts[{index}].end", "must differ from start")
    async with write_transaction():
        await TechnicianShift.delete().where(
            (TechnicianShift.site == site_id) & (TechnicianShift.technician == technician_id)
        )
        if shifts:
            await TechnicianShift.insert(
                *[
                    TechnicianShift(site=site_id, technician=technician_id, weekday=s.weekday, start=s.start, end=s.end)
                    for s in shifts
                ]
            )
    return await get_shifts(site_id, technician_id)
