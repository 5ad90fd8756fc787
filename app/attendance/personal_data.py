"""Personal data this module holds: registered with `app.privacy.registry`.

Section ``attendance``: a person's entry on the staff list (when it is linked to their account), their
check-ins and check-outs, the corrections made to them and the alerts sent about them; and, for a
supervisor or guard, the punches they recorded and the corrections they made. No position is held:
a phone check-in kept only whether it was inside the geofence, and the accuracy.

Erasure takes the person off the staff list (name and mobile removed, account unlinked) and their
name off what they recorded; the punches themselves stay, anonymised, as the employer's attendance
register (a muster roll the law asks to keep).
"""

from __future__ import annotations

from typing import Any

from app.db import write_transaction
from app.privacy.registry import ErasureOutcome, PersonalDataSection, PersonScope, register_section
from app.visitors.common import reveal
from schema.attendance import AttendanceAlert, Correction, Punch, StaffMember

ERASED_NAME = "[erased]"


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


async def export(scope: PersonScope) -> list[dict[str, Any]]:
    site, person = scope.site_id, scope.person_id
    items: list[dict[str, Any]] = []
    entries = await StaffMember.select().where((StaffMember.site == site) & (StaffMember.person == person))
    ids = [e["id"] for e in entries]
    for entry in entries:
        items.append(
            {
                "record": "staff_entry",
                "id": str(entry["id"]),
                "name": entry["name"],
                "category": entry["category"],
                "mobile": reveal(scope.settings, entry["phone_encrypted"]),
                "active": entry["is_active"],
                "created_at": _iso(entry["created_at"]),
            }
        )
    if ids:
        for punch in await Punch.select().where(Punch.staff.is_in(ids)).order_by(Punch.at):
            items.append(
                {
                    "record": "check_in" if punch["kind"] == "in" else "check_out",
                    "id": str(punch["id"]),
                    "at": _iso(punch["at"]),
                    "source": punch["source"],
                    "gate": punch["gate"],
                    "inside_geofence": punch["inside_geofence"],
                    "accuracy_m": punch["accuracy_m"],
                    "voided_at": _iso(punch["voided_at"]),
                }
            )
        for correction in await Correction.select().where(Correction.staff.is_in(ids)):
            items.append(
                {
                    "record": "correction_to_your_record",
                    "punch_id": str(correction["punch"]),
                    "action": correction["action"],
                    "reason": correction["reason"],
                    "at": _iso(correction["at"]),
                }
            )
        for alert in await AttendanceAlert.select().where(AttendanceAlert.staff.is_in(ids)):
            items.append(
                {"record": f"{alert['kind']}_alert", "day": _iso(alert["day"]), "shift_start": alert["shift_start"]}
            )
    made = await Correction.select().where((Correction.site == site) & (Correction.by == person))
    items += [
        {
            "record": "correction_you_made",
            "staff_id": str(c["staff"]),
            "action": c["action"],
            "reason": c["reason"],
            "at": _iso(c["at"]),
        }
        for c in made
    ]
    others: Any = (Punch.site == site) & (Punch.recorded_by == person)
    if ids:
        others = others & Punch.staff.not_in(ids)  # their own phone check-ins are above already
    recorded = await Punch.select(Punch.id, Punch.staff, Punch.kind, Punch.at).where(others)
    items += [
        {"record": "punch_you_recorded", "staff_id": str(p["staff"]), "kind": p["kind"], "at": _iso(p["at"])}
        for p in recorded
    ]
    return items


async def erase(scope: PersonScope) -> ErasureOutcome:
    site, person = scope.site_id, scope.person_id
    async with write_transaction():
        entries = (
            await StaffMember.update(
                {
                    StaffMember.name: ERASED_NAME,
                    StaffMember.person: None,
                    StaffMember.phone_encrypted: None,
                    StaffMember.phone_index: None,
                    StaffMember.is_active: False,
                }
            )
            .where((StaffMember.site == site) & (StaffMember.person == person))
            .returning(StaffMember.id)
        )
        recorded = (
            await Punch.update({Punch.recorded_by: None})
            .where((Punch.site == site) & (Punch.recorded_by == person))
            .returning(Punch.id)
        )
        corrections = (
            await Correction.update({Correction.by: None})
            .where((Correction.site == site) & (Correction.by == person))
            .returning(Correction.id)
        )
        supervised = (
            await StaffMember.update({StaffMember.supervisor: None})
            .where((StaffMember.site == site) & (StaffMember.supervisor == person))
            .returning(StaffMember.id)
        )
    return ErasureOutcome(
        erased=len(entries) + len(recorded) + len(corrections) + len(supervised),
        held=["check-ins and check-outs are kept without the name, as the employer's attendance register"]
        if entries
        else [],
    )


SECTION = register_section(
    PersonalDataSection(
        name="attendance",
        description=(
            "Your entry on the site's staff list, your check-ins and check-outs (whether a phone check-in was "
            "inside the site and its accuracy, never the position), corrections and alerts about them; "
            "check-ins you recorded and corrections you made as a guard or supervisor."
        ),
        export=export,
        erase=erase,
    )
)
