"""Bookable resources per site and their rules: amenities, EV connectors, parking slots, valet.

A resource is a core ``Resource`` row plus a ``SlotResource`` row with its rules and attributes.
EV chargers are ``SlotDevice`` rows (kind ``charger``) with a secret token for status ingest;
their connectors are bookable resources of category ``ev_connector``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
import time
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from piccolo.columns.combination import Combinable
from piccolo.query.methods.select import Select

from app.errors import Conflict, InvalidInput, NotFound
from app.pagination import Page, page_of
from app.text import ONE_LINE
from schema.jsonvalue import as_dict
from schema.slots import SlotDevice, SlotResource
from schema.tables import Resource, Site

Category = Literal["amenity", "ev_connector", "parking_slot", "valet"]
Allocation = Literal["reserved", "visitor"]
ConnectorType = Literal["CCS2", "Type2", "CHAdeMO", "GBT", "15A"]
Code = Annotated[str, msgspec.Meta(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200), ONE_LINE]
Minutes = Annotated[int, msgspec.Meta(ge=1, le=7 * 24 * 60)]
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")
DEFAULT_HOURS: dict[str, list[list[str]]] = {str(day): [["06:00", "22:00"]] for day in range(7)}
ALWAYS_OPEN: dict[str, list[list[str]]] = {str(day): [["00:00", "24:00"]] for day in range(7)}
DEFAULT_CANCEL_FREE_HOURS = 2


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Rules(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Booking rules of a resource. Opening hours by weekday (0 = Monday) in the site's timezone."""

    opening_hours: dict[str, list[list[str]]] | None = None  # None: category default
    slot_minutes: Minutes = 60
    min_minutes: Minutes = 30
    max_minutes: Minutes = 120
    buffer_minutes: Annotated[int, msgspec.Meta(ge=0, le=24 * 60)] = 0
    advance_days: Annotated[int, msgspec.Meta(ge=0, le=366)] = 14
    quota_per_day: Annotated[int, msgspec.Meta(ge=1, le=100)] | None = None
    quota_per_week: Annotated[int, msgspec.Meta(ge=1, le=500)] | None = None
    fee_minor: Annotated[int, msgspec.Meta(ge=0, le=10_000_000)] = 0
    currency: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")] = "INR"
    needs_approval: bool = False
    cancel_free_hours: Annotated[int, msgspec.Meta(ge=0, le=24 * 30)] | None = None
    checkin_grace_minutes: Annotated[int, msgspec.Meta(ge=1, le=24 * 60)] = 15
    reminder_minutes: Annotated[int, msgspec.Meta(ge=0, le=7 * 24 * 60)] = 30


class NewResource(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    category: Category
    code: Code
    name: Name
    rules: Rules | None = None  # None: the defaults
    covered: bool | None = None
    ev_capable: bool | None = None
    allocation: Allocation | None = None
    power_kw: Annotated[float, msgspec.Meta(gt=0, le=1000)] | None = None
    connector_type: ConnectorType | None = None


class NewConnector(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    connector_no: Annotated[int, msgspec.Meta(ge=1, le=16)]
    power_kw: Annotated[float, msgspec.Meta(gt=0, le=1000)]
    connector_type: ConnectorType


class NewCharger(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    code: Code
    name: Name
    connectors: Annotated[list[NewConnector], msgspec.Meta(min_length=1, max_length=16)]
    rules: Rules | None = None  # None: the defaults


class NewSensorGateway(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Name


class ResourceView(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    category: str
    code: str
    name: str
    is_active: bool
    rules: Rules
    covered: bool | None
    ev_capable: bool | None
    allocation: str | None
    power_kw: float | None
    connector_type: str | None
    charger_id: UUID | None
    connector_no: int | None
    live_status: str | None
    checkin_code: str | None = None  # staff only: the code shown at the resource


class DeviceCredentials(msgspec.Struct, frozen=True, kw_only=True):
    device_id: UUID
    token: str  # shown once; send as X-Device-Token with X-Device-Id
    connectors: list[ResourceView] = []


def validate_hours(hours: dict[str, list[list[str]]]) -> dict[str, list[list[str]]]:
    clean: dict[str, list[list[str]]] = {}
    for day, spans in hours.items():
        if day not in {str(d) for d in range(7)}:
            raise InvalidInput.for_field("rules.opening_hours", f"weekday {day!r} must be 0 (Monday) to 6 (Sunday)")
        for span in spans:
            if len(span) != 2 or not all(_HHMM.match(t) for t in span) or span[0] >= span[1]:
                raise InvalidInput.for_field(
                    "rules.opening_hours", f'{span!r} on weekday {day} must be ["HH:MM", "HH:MM"] with start < end'
                )
        clean[day] = sorted([list(s) for s in spans])
    return clean


def check_rules(rules: Rules, category: str) -> dict[str, Any]:
    if rules.min_minutes > rules.max_minutes:
        raise InvalidInput.for_field("rules.min_minutes", "must not exceed max_minutes")
    if rules.slot_minutes > rules.max_minutes:
        raise InvalidInput.for_field("rules.slot_minutes", "must not exceed max_minutes")
    default = ALWAYS_OPEN if category in ("ev_connector", "parking_slot") else DEFAULT_HOURS
    hours = validate_hours(rules.opening_hours if rules.opening_hours is not None else default)
    values = msgspec.to_builtins(rules)
    values["opening_hours"] = hours
    return values


def rules_of(row: dict[str, Any]) -> Rules:
    return Rules(
        opening_hours=as_dict(row["opening_hours"]),
        slot_minutes=row["slot_minutes"],
        min_minutes=row["min_minutes"],
        max_minutes=row["max_minutes"],
        buffer_minutes=row["buffer_minutes"],
        advance_days=row["advance_days"],
        quota_per_day=row["quota_per_day"],
        quota_per_week=row["quota_per_week"],
        fee_minor=row["fee_minor"],
        currency=row["currency"],
        needs_approval=row["needs_approval"],
        cancel_free_hours=row["cancel_free_hours"],
        checkin_grace_minutes=row["checkin_grace_minutes"],
        reminder_minutes=row["reminder_minutes"],
    )


SLOT_COLUMNS = (
    SlotResource.resource,
    SlotResource.category,
    SlotResource.opening_hours,
    SlotResource.slot_minutes,
    SlotResource.min_minutes,
    SlotResource.max_minutes,
    SlotResource.buffer_minutes,
    SlotResource.advance_days,
    SlotResource.quota_per_day,
    SlotResource.quota_per_week,
    SlotResource.fee_minor,
    SlotResource.currency,
    SlotResource.needs_approval,
    SlotResource.cancel_free_hours,
    SlotResource.checkin_grace_minutes,
    SlotResource.reminder_minutes,
    SlotResource.checkin_code,
    SlotResource.covered,
    SlotResource.ev_capable,
    SlotResource.allocation,
    SlotResource.power_kw,
    SlotResource.connector_type,
    SlotResource.charger,
    SlotResource.connector_no,
    SlotResource.live_status,
    SlotResource.live_status_at,
    SlotResource.resource.code.as_alias("code"),
    SlotResource.resource.name.as_alias("name"),
    SlotResource.resource.is_active.as_alias("is_active"),
)


def view_of(row: dict[str, Any], *, staff: bool = False) -> ResourceView:
    return ResourceView(
        id=row["resource"],
        category=row["category"],
        code=row["code"],
        name=row["name"],
        is_active=row["is_active"],
        rules=rules_of(row),
        covered=row["covered"],
        ev_capable=row["ev_capable"],
        allocation=row["allocation"],
        power_kw=row["power_kw"],
        connector_type=row["connector_type"],
        charger_id=row["charger"],
        connector_no=row["connector_no"],
        live_status=row["live_status"],
        checkin_code=row["checkin_code"] if staff else None,
    )


async def load(site_id: UUID, resource_id: UUID) -> dict[str, Any]:
    """The resource's rules and attributes; NotFound when it is not a bookable resource of this site."""
    row = (
        await SlotResource.select(*SLOT_COLUMNS)
        .where((SlotResource.site == site_id) & (SlotResource.resource == resource_id))
        .first()
    )
    if row is None:
        raise NotFound("resource not found")
    return row


def _resource_filter(site_id: UUID, category: str | None) -> list[Combinable]:
    where: list[Combinable] = [SlotResource.site == site_id]
    if category is not None:
        where.append(SlotResource.category == category)
    return where


def _by_category_and_code(query: Select) -> Select:
    return query.order_by(SlotResource.category).order_by(SlotResource.resource.code).order_by(SlotResource.resource)


async def list_resources(site_id: UUID, category: str | None = None, *, staff: bool = False) -> list[ResourceView]:
    """Every resource of the site (or of one category), by category and code."""
    query = SlotResource.select(*SLOT_COLUMNS).where(*_resource_filter(site_id, category))
    return [view_of(r, staff=staff) for r in await _by_category_and_code(query)]


async def page_resources(
    site_id: UUID, category: str | None = None, *, staff: bool = False, limit: int, offset: int
) -> Page[ResourceView]:
    """One page of the site's resources, by category and code."""
    where = _resource_filter(site_id, category)
    total = await SlotResource.count().where(*where)
    query = SlotResource.select(*SLOT_COLUMNS).where(*where)
    rows = await _by_category_and_code(query).limit(limit).offset(offset)
    return page_of([view_of(r, staff=staff) for r in rows], total=total, limit=limit, offset=offset)


async def _insert_resource(site_id: UUID, kind: str, code: str, name: str) -> Resource:
    if await Resource.exists().where((Resource.site == site_id) & (Resource.code == code)):
        raise Conflict(f"code: a resource with code {code!r} already exists on this site")
    resource = Resource(site=site_id, kind=kind, code=code, name=name, details={})
    await resource.save()
    return resource


async def create_resource(site_id: UUID, data: NewResource) -> ResourceView:
    if data.category == "ev_connector":
        raise InvalidInput.for_field(
            "category", "EV connectors are created with their charger (POST /api/slots/chargers)"
        )
    values = check_rules(data.rules or Rules(), data.category)
    resource = await _insert_resource(site_id, data.category, data.code, data.name)
    await SlotResource(
        site=site_id,
        resource=resource.id,
        category=data.category,
        checkin_code=f"{secrets.randbelow(10**6):06d}",
        covered=data.covered,
        ev_capable=data.ev_capable,
        allocation=data.allocation,
        power_kw=data.power_kw,
        connector_type=data.connector_type,
        **values,
    ).save()
    return view_of(await load(site_id, resource.id), staff=True)


async def update_rules(site_id: UUID, resource_id: UUID, rules: Rules) -> ResourceView:
    row = await load(site_id, resource_id)
    values = check_rules(rules, row["category"])
    await SlotResource.update({getattr(SlotResource, k): v for k, v in values.items()}).where(
        (SlotResource.site == site_id) & (SlotResource.resource == resource_id)
    )
    return view_of(await load(site_id, resource_id), staff=True)


async def create_charger(site_id: UUID, data: NewCharger) -> DeviceCredentials:
    numbers = [c.connector_no for c in data.connectors]
    if len(set(numbers)) != len(numbers):
        raise InvalidInput.for_field("connectors", "connector numbers must be unique")
    values = check_rules(data.rules or Rules(), "ev_connector")
    charger_resource = await _insert_resource(site_id, "ev_charger", data.code, data.name)
    token = secrets.token_urlsafe(32)
    device = SlotDevice(
        site=site_id, kind="charger", resource=charger_resource.id, name=data.name, token_hash=hash_token(token)
    )
    device.created_at = now_utc()
    await device.save()
    views = []
    for connector in data.connectors:
        code = f"{data.code}-{connector.connector_no}"
        resource = await _insert_resource(
            site_id, "ev_connector", code, f"{data.name} #{connector.connector_no} ({connector.connector_type})"
        )
        await SlotResource(
            site=site_id,
            resource=resource.id,
            category="ev_connector",
            checkin_code=f"{secrets.randbelow(10**6):06d}",
            ev_capable=True,
            power_kw=connector.power_kw,
            connector_type=connector.connector_type,
            charger=device.id,
            connector_no=connector.connector_no,
            live_status="Available",
            **values,
        ).save()
        views.append(view_of(await load(site_id, resource.id), staff=True))
    return DeviceCredentials(device_id=device.id, token=token, connectors=views)


async def create_sensor_gateway(site_id: UUID, data: NewSensorGateway) -> DeviceCredentials:
    token = secrets.token_urlsafe(32)
    device = SlotDevice(site=site_id, kind="sensor_gateway", name=data.name, token_hash=hash_token(token))
    device.created_at = now_utc()
    await device.save()
    return DeviceCredentials(device_id=device.id, token=token)


_SITE_CACHE: dict[UUID, tuple[float, tuple[str, int]]] = {}
SITE_CACHE_SECONDS = 10.0


async def site_settings(site_id: UUID) -> tuple[str, int]:
    """The site's timezone and its cancellation rule (free until N hours before the start).

    Read on every booking request, changed almost never: kept for a few seconds per process.
    """
    cached = _SITE_CACHE.get(site_id)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    row = await Site.select(Site.timezone, Site.settings).where(Site.id == site_id).first()
    if row is None:
        raise NotFound("site not found")
    slots = as_dict(row["settings"]).get("slots")
    hours = DEFAULT_CANCEL_FREE_HOURS
    if isinstance(slots, dict) and isinstance(slots.get("cancel_free_hours"), int):
        hours = int(slots["cancel_free_hours"])
    value = (str(row["timezone"]), hours)
    if len(_SITE_CACHE) > 10_000:
        _SITE_CACHE.clear()
    _SITE_CACHE[site_id] = (time.monotonic() + SITE_CACHE_SECONDS, value)
    return value
