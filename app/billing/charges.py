"""What a unit owes before it is invoiced: monthly maintenance, booking fees from SLOTS, one-off charges
and credits. Each is one ``Charge`` row with a ``source_key`` unique on the site, so preparing the same
month twice, or importing the same booking fee twice, adds nothing.

- Maintenance of a month: the unit's fixed amount when one is agreed for it (basis "fixed"), else its
  unit type's rate: per unit, or per square foot of the unit's area (rounded once, to the paisa).
- Booking fees: SLOTS writes a ``slot_charge`` (pending) for every paid booking and voids it on a free
  cancellation. A fee is imported once its booking has started (until then it can still be voided); the
  ``slot_charge`` is marked ``billed`` in the same transaction.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal
from uuid import UUID, uuid4

import msgspec
from piccolo.columns.combination import Combinable

from app.billing.money import QUANTITY_ONE, line_amount
from app.billing.setup import MAX_AMOUNT, charge_type_id, charge_types, now_utc, unit_label, valid_period
from app.db import bulk_insert, write_transaction
from app.pagination import Page, page_of
from app.text import ONE_LINE
from schema.billing import Charge, Rate, UnitProfile
from schema.slots import SlotBooking, SlotCharge
from schema.tables import Unit


class NewCharge(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A one-off charge (``kind: charge``) or a credit (``kind: credit``) on the unit's next invoice."""

    unit_id: UUID
    description: Annotated[str, msgspec.Meta(min_length=1, max_length=200), ONE_LINE]
    unit_price_minor: Annotated[int, msgspec.Meta(ge=1, le=MAX_AMOUNT)]
    quantity_milli: Annotated[int, msgspec.Meta(ge=1, le=10**7)] = QUANTITY_ONE
    kind: Literal["charge", "credit"] = "charge"
    charge_type: Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,31}$")] = "one_off"


class ChargeView(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    unit_id: UUID
    charge_type: str
    source: str
    description: str
    quantity_milli: int
    unit_price_minor: int
    amount_minor: int
    period: str | None
    status: str
    invoice_id: UUID | None
    created_at: dt.datetime


def _view(row: dict[str, Any]) -> ChargeView:
    return ChargeView(
        id=row["id"],
        unit_id=row["unit"],
        charge_type=row["code"],
        source=row["source"],
        description=row["description"],
        quantity_milli=row["quantity_milli"],
        unit_price_minor=row["unit_price_minor"],
        amount_minor=row["amount_minor"],
        period=row["period"],
        status=row["status"],
        invoice_id=row["invoice"],
        created_at=row["created_at"],
    )


async def add_charge(
    site_id: UUID, data: NewCharge, created_by: UUID | None = None, now: dt.datetime | None = None
) -> ChargeView:
    await unit_label(site_id, data.unit_id)
    type_id = await charge_type_id(site_id, data.charge_type)
    sign = -1 if data.kind == "credit" else 1
    price = sign * data.unit_price_minor
    row = Charge(
        site=site_id,
        unit=data.unit_id,
        charge_type=type_id,
        source="credit" if data.kind == "credit" else "one_off",
        source_key=f"{data.kind}:{uuid4()}",
        description=data.description,
        quantity_milli=data.quantity_milli,
        unit_price_minor=price,
        amount_minor=line_amount(data.quantity_milli, price),
        status="pending",
        created_by=created_by,
        created_at=now or now_utc(),
    )
    await row.save()
    return (await list_charges(site_id, unit_id=data.unit_id, charge_id=row.id, limit=1, offset=0)).items[0]


async def list_charges(
    site_id: UUID,
    *,
    unit_id: UUID | None = None,
    status: str | None = None,
    charge_id: UUID | None = None,
    limit: int,
    offset: int,
) -> Page[ChargeView]:
    where: Combinable = Charge.site == site_id
    if unit_id is not None:
        where &= Charge.unit == unit_id
    if status is not None:
        where &= Charge.status == status
    if charge_id is not None:
        where &= Charge.id == charge_id
    rows = (
        await Charge.select(*Charge.all_columns(), Charge.charge_type.code.as_alias("code"))
        .where(where)
        .order_by(Charge.created_at, ascending=False)
        .limit(limit)
        .offset(offset)
    )
    return page_of([_view(r) for r in rows], total=await Charge.count().where(where), limit=limit, offset=offset)


async def prepare_maintenance(site_id: UUID, period: str, now: dt.datetime | None = None) -> int:
    """One maintenance charge per unit for the month (where a rate or a fixed amount applies); returns how
    many units have one. Re-running it adds nothing."""
    valid_period(period)
    moment = now or now_utc()
    units = await Unit.select(Unit.id, Unit.kind).where(Unit.site == site_id)
    rates = {(r["unit_kind"], r["charge_type"]): r for r in await Rate.select().where(Rate.site == site_id)}
    profiles = {p["unit"]: p for p in await UnitProfile.select().where(UnitProfile.site == site_id)}
    maintenance = await charge_type_id(site_id, "maintenance")
    rows: list[tuple[Any, ...]] = []
    for unit in units:
        profile = profiles.get(unit["id"])
        for (kind, type_id), rate in rates.items():
            if kind != unit["kind"]:
                continue
            fixed = profile["fixed_minor"] if profile and type_id == maintenance else None
            if fixed is not None:
                quantity, price, description = QUANTITY_ONE, fixed, f"{rate['description']} {period}"
            elif rate["basis"] == "per_sqft":
                area = profile["area_sqft_centi"] if profile else 0
                if area <= 0:
                    continue  # no area recorded: nothing to charge by area
                quantity, price = area * 10, rate["amount_minor"]
                description = f"{rate['description']} {period} ({area / 100:g} sq ft)"
            else:
                quantity, price, description = QUANTITY_ONE, rate["amount_minor"], f"{rate['description']} {period}"
            rows.append(
                (
                    uuid4(),
                    site_id,
                    unit["id"],
                    type_id,
                    "maintenance",
                    f"maintenance:{unit['id']}:{type_id}:{period}",
                    description[:200],
                    quantity,
                    price,
                    line_amount(quantity, price),
                    period,
                    "pending",
                    moment,
                )
            )
        # A fixed amount agreed for a unit whose type has no maintenance rate.
        if profile and profile["fixed_minor"] is not None and (unit["kind"], maintenance) not in rates:
            rows.append(
                (
                    uuid4(),
                    site_id,
                    unit["id"],
                    maintenance,
                    "maintenance",
                    f"maintenance:{unit['id']}:{maintenance}:{period}",
                    f"Maintenance {period}",
                    QUANTITY_ONE,
                    profile["fixed_minor"],
                    profile["fixed_minor"],
                    period,
                    "pending",
                    moment,
                )
            )
    await bulk_insert(
        "billing_charge",
        (
            "id",
            "site",
            "unit",
            "charge_type",
            "source",
            "source_key",
            "description",
            "quantity_milli",
            "unit_price_minor",
            "amount_minor",
            "period",
            "status",
            "created_at",
        ),
        rows,
        ignore_conflicts=True,
    )
    return len({row[2] for row in rows})


async def import_booking_fees(site_id: UUID, started_before: dt.datetime, now: dt.datetime | None = None) -> int:
    """Turn SLOTS' pending booking fees whose booking started before ``started_before`` into charges."""
    moment = now or now_utc()
    booking_type = (await charge_types(site_id)).get("booking")
    if booking_type is None:
        return 0
    pending = await SlotCharge.select(
        SlotCharge.id, SlotCharge.unit, SlotCharge.amount_minor, SlotCharge.description
    ).where(
        (SlotCharge.site == site_id)
        & (SlotCharge.status == "pending")
        & SlotCharge.unit.is_not_null()
        & SlotCharge.booking.is_in(
            SlotBooking.select(SlotBooking.id).where(
                (SlotBooking.site == site_id) & (SlotBooking.starts_at < started_before)
            )
        )
    )
    imported = 0
    for fee in pending:
        async with write_transaction():
            marked = (
                await SlotCharge.update({SlotCharge.status: "billed", SlotCharge.updated_at: moment})
                .where((SlotCharge.id == fee["id"]) & (SlotCharge.status == "pending"))
                .returning(SlotCharge.id)
            )
            if not marked:
                continue  # voided or imported meanwhile
            await Charge.insert(
                Charge(
                    site=site_id,
                    unit=fee["unit"],
                    charge_type=booking_type["id"],
                    source="booking",
                    source_key=f"slot:{fee['id']}",
                    description=fee["description"][:200],
                    quantity_milli=QUANTITY_ONE,
                    unit_price_minor=fee["amount_minor"],
                    amount_minor=fee["amount_minor"],
                    status="pending",
                    created_at=moment,
                )
            ).on_conflict(action="DO NOTHING")
            imported += 1
    return imported
