"""A site's billing set-up: supplier details and rules, charge types with their tax, maintenance rates,
and each unit's billing profile (area, a fixed amount agreed for it, a customer GSTIN).

A site gets its settings row and three charge types (maintenance, booking, one_off) the first time
billing touches it (``ensure_site``); FM staff then change them.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Final, Literal
from uuid import UUID
from zoneinfo import ZoneInfo

import msgspec

from app.billing.money import Rounding, TaxKind, document_number
from app.errors import InvalidInput, NotFound
from app.pagination import Page, page_of
from app.text import MULTI_LINE, ONE_LINE
from schema.billing import BillingSettings, ChargeType, Rate, UnitProfile
from schema.jsonvalue import as_list
from schema.tables import Site, Unit

# GSTIN: 2-digit state code, 10-character PAN, entity number, 'Z', check character.
GSTIN_PATTERN: Final = r"^$|^[0-9]{2}[A-Z]{5}[0-9]{4}[A-Z][0-9A-Z]Z[0-9A-Z]$"
MAX_AMOUNT: Final = 10**11  # paise: one thousand crore, far beyond any charge
DEFAULT_CHARGE_TYPES: Final = (
    ("maintenance", "Maintenance", "999598", 1800),
    ("booking", "Amenity booking", "999652", 1800),
    ("one_off", "Other charges", "999599", 1800),
)

Gstin = Annotated[str, msgspec.Meta(pattern=GSTIN_PATTERN, max_length=15)]
StateCode = Annotated[str, msgspec.Meta(pattern=r"^$|^[0-9]{2}$")]
Days = Annotated[int, msgspec.Meta(ge=0, le=365)]
Amount = Annotated[int, msgspec.Meta(ge=0, le=MAX_AMOUNT)]
Code = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
HsnSac = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{0,8}$")]
RateBp = Annotated[int, msgspec.Meta(ge=0, le=10_000)]
UnitKind = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,15}$")]


class SettingsView(msgspec.Struct, frozen=True, kw_only=True):
    legal_name: str
    address: str
    gstin: str
    state_code: str
    invoice_prefix: str
    fy_start_month: int
    due_days: int
    rounding: Rounding
    late_fee_kind: Literal["none", "flat", "percent"]
    late_fee_value: int
    late_fee_grace_days: int
    reminder_days_before: list[int]
    reminder_days_after: list[int]
    run_day: int
    timezone: str


class SettingsChange(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Fields left out keep their value."""

    legal_name: Annotated[str, msgspec.Meta(max_length=200), ONE_LINE] | None = None
    address: Annotated[str, msgspec.Meta(max_length=500), MULTI_LINE] | None = None
    gstin: Gstin | None = None
    state_code: StateCode | None = None
    invoice_prefix: Annotated[str, msgspec.Meta(pattern=r"^[A-Z0-9]{1,4}$")] | None = None
    fy_start_month: Annotated[int, msgspec.Meta(ge=1, le=12)] | None = None
    due_days: Days | None = None
    rounding: Rounding | None = None
    late_fee_kind: Literal["none", "flat", "percent"] | None = None
    late_fee_value: Amount | None = None  # flat: paise; percent: basis points (200 = 2 %)
    late_fee_grace_days: Days | None = None
    reminder_days_before: Annotated[list[Days], msgspec.Meta(max_length=10)] | None = None
    reminder_days_after: Annotated[list[Days], msgspec.Meta(max_length=10)] | None = None
    run_day: Annotated[int, msgspec.Meta(ge=1, le=28)] | None = None


class ChargeTypeView(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    code: str
    name: str
    hsn_sac: str
    tax_rate_bp: int
    tax_kind: TaxKind


class NewChargeType(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    code: Code
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100), ONE_LINE]
    hsn_sac: HsnSac = ""
    tax_rate_bp: RateBp = 0
    tax_kind: TaxKind = TaxKind.CGST_SGST


class ChargeTypeChange(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100), ONE_LINE] | None = None
    hsn_sac: HsnSac | None = None
    tax_rate_bp: RateBp | None = None
    tax_kind: TaxKind | None = None


class RateView(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    unit_kind: str
    charge_type: str
    basis: Literal["per_unit", "per_sqft"]
    amount_minor: int
    description: str


class RateChange(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The monthly maintenance of one unit type (replaces the rate of that type and charge type)."""

    unit_kind: UnitKind
    basis: Literal["per_unit", "per_sqft"]
    amount_minor: Amount  # per unit per month, or per square foot per month
    charge_type: Code = "maintenance"
    description: Annotated[str, msgspec.Meta(min_length=1, max_length=200), ONE_LINE] = "Maintenance"


class UnitProfileView(msgspec.Struct, frozen=True, kw_only=True):
    unit_id: UUID
    area_sqft_centi: int
    fixed_minor: int | None
    customer_gstin: str


class UnitProfileChange(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    area_sqft_centi: Annotated[int, msgspec.Meta(ge=0, le=10**9)] | None = None
    fixed_minor: Amount | None = None  # basis "fixed": this amount every month instead of the type's rate
    clear_fixed: bool = False
    customer_gstin: Gstin | None = None


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def site_zone(site_id: UUID) -> ZoneInfo:
    row = await Site.select(Site.timezone).where(Site.id == site_id).first()
    return ZoneInfo((row or {}).get("timezone") or "Asia/Kolkata")


async def site_today(site_id: UUID, now: dt.datetime | None = None) -> dt.date:
    return (now or now_utc()).astimezone(await site_zone(site_id)).date()


async def ensure_site(site_id: UUID, now: dt.datetime | None = None) -> dict[str, Any]:
    """The site's settings row, made with defaults (and the default charge types) the first time."""
    row = await BillingSettings.select().where(BillingSettings.site == site_id).first()
    if row is not None:
        return dict(row)
    site = await Site.select(Site.name).where(Site.id == site_id).first()
    if site is None:
        raise NotFound("site not found")
    moment = now or now_utc()
    await BillingSettings.insert(BillingSettings(site=site_id, legal_name=site["name"], updated_at=moment)).on_conflict(
        action="DO NOTHING"
    )
    existing = {r["code"] for r in await ChargeType.select(ChargeType.code).where(ChargeType.site == site_id)}
    for code, name, sac, rate in DEFAULT_CHARGE_TYPES:
        if code not in existing:
            await ChargeType.insert(
                ChargeType(site=site_id, code=code, name=name, hsn_sac=sac, tax_rate_bp=rate, created_at=moment)
            ).on_conflict(action="DO NOTHING")
    row = await BillingSettings.select().where(BillingSettings.site == site_id).first()
    assert row is not None
    return dict(row)


def _settings_view(row: dict[str, Any], timezone: str) -> SettingsView:
    return SettingsView(
        legal_name=row["legal_name"],
        address=row["address"],
        gstin=row["gstin"],
        state_code=row["state_code"],
        invoice_prefix=row["invoice_prefix"],
        fy_start_month=row["fy_start_month"],
        due_days=row["due_days"],
        rounding=Rounding(row["rounding"]),
        late_fee_kind=row["late_fee_kind"],
        late_fee_value=row["late_fee_value"],
        late_fee_grace_days=row["late_fee_grace_days"],
        reminder_days_before=sorted(int(d) for d in as_list(row["reminder_days_before"])),
        reminder_days_after=sorted(int(d) for d in as_list(row["reminder_days_after"])),
        run_day=row["run_day"],
        timezone=timezone,
    )


async def get_settings(site_id: UUID) -> SettingsView:
    row = await ensure_site(site_id)
    return _settings_view(row, str(await site_zone(site_id)))


async def change_settings(site_id: UUID, change: SettingsChange, now: dt.datetime | None = None) -> SettingsView:
    await ensure_site(site_id)
    values = {k: v for k, v in msgspec.structs.asdict(change).items() if v is not None}
    if "invoice_prefix" in values:
        document_number(values["invoice_prefix"], "2026-27", 99999)  # fits the 16 characters
    if values.get("late_fee_kind") == "percent" and values.get("late_fee_value", 0) > 10_000:
        raise InvalidInput.for_field("late_fee_value", "a percentage is in basis points, at most 10000 (100 %)")
    for key in ("reminder_days_before", "reminder_days_after"):
        if key in values:
            values[key] = sorted(set(values[key]))
    if "rounding" in values:
        values["rounding"] = str(values["rounding"])
    if values:
        await BillingSettings.update(
            {
                **{getattr(BillingSettings, k): v for k, v in values.items()},
                BillingSettings.updated_at: now or now_utc(),
            }
        ).where(BillingSettings.site == site_id)
    return await get_settings(site_id)


# ------------------------------------------------------------------------------ charge types


def _charge_type_view(row: dict[str, Any]) -> ChargeTypeView:
    return ChargeTypeView(
        id=row["id"],
        code=row["code"],
        name=row["name"],
        hsn_sac=row["hsn_sac"],
        tax_rate_bp=row["tax_rate_bp"],
        tax_kind=TaxKind(row["tax_kind"]),
    )


async def charge_types(site_id: UUID) -> dict[str, dict[str, Any]]:
    await ensure_site(site_id)
    rows = await ChargeType.select().where(ChargeType.site == site_id)
    return {row["code"]: dict(row) for row in rows}


async def list_charge_types(site_id: UUID, *, limit: int, offset: int) -> Page[ChargeTypeView]:
    types = sorted((await charge_types(site_id)).values(), key=lambda r: r["code"])
    return page_of(
        [_charge_type_view(r) for r in types[offset : offset + limit]], total=len(types), limit=limit, offset=offset
    )


async def create_charge_type(site_id: UUID, data: NewChargeType, now: dt.datetime | None = None) -> ChargeTypeView:
    if data.code in await charge_types(site_id):
        raise InvalidInput.for_field("code", "a charge type with this code exists on the site")
    row = ChargeType(
        site=site_id,
        code=data.code,
        name=data.name,
        hsn_sac=data.hsn_sac,
        tax_rate_bp=data.tax_rate_bp,
        tax_kind=str(data.tax_kind),
        created_at=now or now_utc(),
    )
    await row.save()
    return _charge_type_view(row.to_dict())


async def change_charge_type(site_id: UUID, charge_type_id: UUID, change: ChargeTypeChange) -> ChargeTypeView:
    """New rates apply to invoices issued from now on; issued invoices keep theirs."""
    await ensure_site(site_id)
    values = {k: v for k, v in msgspec.structs.asdict(change).items() if v is not None}
    if "tax_kind" in values:
        values["tax_kind"] = str(values["tax_kind"])
    where = (ChargeType.site == site_id) & (ChargeType.id == charge_type_id)
    if values:
        await ChargeType.update({getattr(ChargeType, k): v for k, v in values.items()}).where(where)
    row = await ChargeType.select().where(where).first()
    if row is None:
        raise NotFound("charge type not found")
    return _charge_type_view(row)


async def charge_type_id(site_id: UUID, code: str, field: str = "charge_type") -> UUID:
    row = (await charge_types(site_id)).get(code)
    if row is None:
        raise InvalidInput.for_field(field, f"no charge type {code!r} on this site")
    return UUID(str(row["id"]))


# ------------------------------------------------------------------------------ maintenance rates


async def list_rates(site_id: UUID, *, limit: int, offset: int) -> Page[RateView]:
    where = Rate.site == site_id
    rows = (
        await Rate.select(*Rate.all_columns(), Rate.charge_type.code.as_alias("code"))
        .where(where)
        .order_by(Rate.unit_kind)
        .limit(limit)
        .offset(offset)
    )
    total = await Rate.count().where(where)
    return page_of([_rate_view(r) for r in rows], total=total, limit=limit, offset=offset)


def _rate_view(row: dict[str, Any]) -> RateView:
    return RateView(
        id=row["id"],
        unit_kind=row["unit_kind"],
        charge_type=row["code"],
        basis=row["basis"],
        amount_minor=row["amount_minor"],
        description=row["description"],
    )


async def set_rate(site_id: UUID, change: RateChange, now: dt.datetime | None = None) -> RateView:
    type_id = await charge_type_id(site_id, change.charge_type)
    moment = now or now_utc()
    where = (Rate.site == site_id) & (Rate.unit_kind == change.unit_kind) & (Rate.charge_type == type_id)
    updated = (
        await Rate.update(
            {
                Rate.basis: change.basis,
                Rate.amount_minor: change.amount_minor,
                Rate.description: change.description,
                Rate.updated_at: moment,
            }
        )
        .where(where)
        .returning(Rate.id)
    )
    if not updated:
        await Rate(
            site=site_id,
            unit_kind=change.unit_kind,
            charge_type=type_id,
            basis=change.basis,
            amount_minor=change.amount_minor,
            description=change.description,
            updated_at=moment,
        ).save()
    row = await Rate.select(*Rate.all_columns(), Rate.charge_type.code.as_alias("code")).where(where).first()
    assert row is not None
    return _rate_view(row)


# ------------------------------------------------------------------------------ unit profiles


async def unit_label(site_id: UUID, unit_id: UUID) -> str:
    row = await Unit.select(Unit.label).where((Unit.site == site_id) & (Unit.id == unit_id)).first()
    if row is None:
        raise NotFound("unit not found")
    return str(row["label"])


async def get_unit_profile(site_id: UUID, unit_id: UUID) -> UnitProfileView:
    await unit_label(site_id, unit_id)
    row = await UnitProfile.select().where(UnitProfile.unit == unit_id).first()
    if row is None:
        return UnitProfileView(unit_id=unit_id, area_sqft_centi=0, fixed_minor=None, customer_gstin="")
    return UnitProfileView(
        unit_id=unit_id,
        area_sqft_centi=row["area_sqft_centi"],
        fixed_minor=row["fixed_minor"],
        customer_gstin=row["customer_gstin"],
    )


async def set_unit_profile(
    site_id: UUID, unit_id: UUID, change: UnitProfileChange, now: dt.datetime | None = None
) -> UnitProfileView:
    current = await get_unit_profile(site_id, unit_id)
    merged = UnitProfileView(
        unit_id=unit_id,
        area_sqft_centi=change.area_sqft_centi if change.area_sqft_centi is not None else current.area_sqft_centi,
        fixed_minor=None
        if change.clear_fixed
        else (change.fixed_minor if change.fixed_minor is not None else current.fixed_minor),
        customer_gstin=change.customer_gstin if change.customer_gstin is not None else current.customer_gstin,
    )
    moment = now or now_utc()
    updated = (
        await UnitProfile.update(
            {
                UnitProfile.area_sqft_centi: merged.area_sqft_centi,
                UnitProfile.fixed_minor: merged.fixed_minor,
                UnitProfile.customer_gstin: merged.customer_gstin,
                UnitProfile.updated_at: moment,
            }
        )
        .where(UnitProfile.unit == unit_id)
        .returning(UnitProfile.id)
    )
    if not updated:
        await UnitProfile(
            site=site_id,
            unit=unit_id,
            area_sqft_centi=merged.area_sqft_centi,
            fixed_minor=merged.fixed_minor,
            customer_gstin=merged.customer_gstin,
            updated_at=moment,
        ).save()
    return merged


def valid_period(period: str) -> tuple[dt.date, dt.date]:
    """'2026-12' -> its first and last day; anything else is a 422 naming ``period``."""
    if not re.fullmatch(r"2[0-9]{3}-(0[1-9]|1[0-2])", period):
        raise InvalidInput.for_field("period", "must be a month, YYYY-MM, from 2000 on")
    year, month = int(period[:4]), int(period[5:])
    first = dt.date(year, month, 1)
    following = dt.date(year + (month == 12), month % 12 + 1, 1)
    return first, following - dt.timedelta(days=1)
