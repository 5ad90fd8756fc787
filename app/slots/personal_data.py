"""Personal data this module holds: registered with `app.privacy.registry`.

Section ``bookings``: the person's bookings (with any fee), parking passes (plates decrypted
for the export) and valet requests. Erasure deletes passes, valet requests and bookings; a
booking that carries a fee is billing's record, so it is kept with the person detached and its
note cleared, and its charge row stays (without the person) for the accounts.
"""

from __future__ import annotations

from typing import Any

from app.people.directory import cipher_for
from app.privacy.registry import ErasureOutcome, PersonalDataSection, PersonScope, register_section
from schema.slots import ParkingPass, SlotBooking, SlotCharge, ValetRequest


async def _export(scope: PersonScope) -> list[dict[str, Any]]:
    cipher = cipher_for(scope.settings)
    out: list[dict[str, Any]] = []
    bookings = await SlotBooking.select(
        SlotBooking.id,
        SlotBooking.resource.code.as_alias("resource_code"),
        SlotBooking.resource.name.as_alias("resource_name"),
        SlotBooking.unit.label.as_alias("unit_label"),
        SlotBooking.starts_at,
        SlotBooking.ends_at,
        SlotBooking.status,
        SlotBooking.note,
        SlotBooking.checked_in_at,
        SlotBooking.cancelled_at,
        SlotBooking.cancel_reason,
        SlotBooking.created_at,
    ).where((SlotBooking.site == scope.site_id) & (SlotBooking.person == scope.person_id))
    out += [{"kind": "booking", **row} for row in bookings]
    charges = await SlotCharge.select(
        SlotCharge.booking, SlotCharge.amount_minor, SlotCharge.currency, SlotCharge.description, SlotCharge.status
    ).where((SlotCharge.site == scope.site_id) & (SlotCharge.person == scope.person_id))
    out += [{"kind": "booking_charge", **row} for row in charges]
    for row in await ParkingPass.select().where(
        (ParkingPass.site == scope.site_id) & (ParkingPass.person == scope.person_id)
    ):
        out.append(
            {
                "kind": "parking_pass",
                "id": row["id"],
                "plate": cipher.decrypt(row["plate_encrypted"]),
                "pass_kind": row["kind"],
                "valid_from": row["valid_from"],
                "valid_until": row["valid_until"],
                "status": row["status"],
                "renewals": row["renewals"],
            }
        )
    for row in await ValetRequest.select().where(
        (ValetRequest.site == scope.site_id) & (ValetRequest.person == scope.person_id)
    ):
        out.append(
            {
                "kind": "valet_request",
                "id": row["id"],
                "plate": cipher.decrypt(row["plate_encrypted"]),
                "status": row["status"],
                "bay": row["bay"],
                "created_at": row["created_at"],
            }
        )
    return out


async def _erase(scope: PersonScope) -> ErasureOutcome:
    mine_pass = (ParkingPass.site == scope.site_id) & (ParkingPass.person == scope.person_id)
    mine_valet = (ValetRequest.site == scope.site_id) & (ValetRequest.person == scope.person_id)
    mine_booking = (SlotBooking.site == scope.site_id) & (SlotBooking.person == scope.person_id)
    erased = len(await ParkingPass.delete().where(mine_pass).returning(ParkingPass.id))
    erased += len(await ValetRequest.delete().where(mine_valet).returning(ValetRequest.id))
    charged = {
        r["booking"]
        for r in await SlotCharge.select(SlotCharge.booking).where(
            (SlotCharge.site == scope.site_id) & (SlotCharge.person == scope.person_id)
        )
    }
    held: list[str] = []
    if charged:
        await SlotBooking.update({SlotBooking.person: None, SlotBooking.note: ""}).where(
            mine_booking & SlotBooking.id.is_in(list(charged))
        )
        await SlotCharge.update({SlotCharge.person: None}).where(SlotCharge.booking.is_in(list(charged)))
        erased += len(charged)
        held.append(f"{len(charged)} booking(s) with a fee are kept for billing, without the person")
    erased += len(await SlotBooking.delete().where(mine_booking).returning(SlotBooking.id))
    await SlotBooking.update({SlotBooking.decided_by: None}).where(
        (SlotBooking.site == scope.site_id) & (SlotBooking.decided_by == scope.person_id)
    )
    return ErasureOutcome(erased=erased, held=held)


SECTION = register_section(
    PersonalDataSection(
        name="bookings",
        description="Space, EV charging and parking bookings with their fees, parking passes (vehicle plates) "
        "and valet requests.",
        export=_export,
        erase=_erase,
        legal_hold="Bookings that carry a fee are kept, detached from the person, as billing records.",
    )
)
