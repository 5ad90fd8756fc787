"""Personal data this module holds: registered with `app.privacy.registry`.

Section ``permits``: the permits a person applied for (with the people and vehicles they named on
them), the files they attached, the decisions they took as an approver, and the vendors they let in
at the gate. Erasure deletes the people and vehicles they named and the files they uploaded, takes
their name off what remains, and removes their identifiers from the permits' free text; an approved
permit itself stays, anonymised, as the building's record of the works it allowed.

Retention class ``permit_people``: the names, phones and plates of the people and vehicles named on a
permit, and its gate entries, are deleted once the permit has been over for the period (180 days by
default, as visitor records): vendors are visitors who came under a permit.
"""

from __future__ import annotations

from typing import Any

from app.db import write_transaction
from app.privacy.redact import redact, redact_json
from app.privacy.registry import (
    ErasureOutcome,
    PersonalDataSection,
    PersonScope,
    RetentionClass,
    RetentionRun,
    register_retention,
    register_section,
)
from app.uploads import delete_upload
from app.visitors.common import reveal
from schema.jsonvalue import as_dict, as_list
from schema.permits import Permit, PermitAttachment, PermitEntrant, PermitEntry, PermitStep, PermitType

ERASED_TITLE = "[removed at the request of the applicant]"


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


async def export(scope: PersonScope) -> list[dict[str, Any]]:
    site, person = scope.site_id, scope.person_id
    permits = await Permit.select().where((Permit.site == site) & (Permit.applicant == person))
    type_names = {
        t["id"]: t["name"]
        for t in await PermitType.select(PermitType.id, PermitType.name).where(PermitType.site == site)
    }
    entrants = (
        await PermitEntrant.select().where(PermitEntrant.permit.is_in([p["id"] for p in permits])) if permits else []
    )
    items: list[dict[str, Any]] = []
    for permit in permits:
        named = [e for e in entrants if e["permit"] == permit["id"]]
        items.append(
            {
                "record": "permit",
                "id": str(permit["id"]),
                "reference": permit["reference"],
                "type": type_names.get(permit["permit_type"]),
                "title": permit["title"],
                "unit_id": str(permit["unit"]) if permit["unit"] else None,
                "location": permit["location"],
                "status": permit["status"],
                "valid_from": _iso(permit["valid_from"]),
                "valid_until": _iso(permit["valid_until"]),
                "values": as_dict(permit["values"]),
                "declarations_accepted": as_list(permit["declarations"]),
                "people_named": [
                    {"name": e["name"], "phone": reveal(scope.settings, e["phone_encrypted"])}
                    for e in named
                    if e["kind"] == "person"
                ],
                "vehicles_named": [
                    {"plate": reveal(scope.settings, e["plate_encrypted"]), "description": e["name"]}
                    for e in named
                    if e["kind"] == "vehicle"
                ],
                "created_at": _iso(permit["created_at"]),
            }
        )
    attachments = await PermitAttachment.select().where(
        (PermitAttachment.site == site) & (PermitAttachment.uploaded_by == person)
    )
    items += [
        {
            "record": "attachment",
            "id": str(a["id"]),
            "permit_id": str(a["permit"]),
            "slot": a["slot"],
            "media_type": a["media_type"],
            "size": a["size"],
            "created_at": _iso(a["created_at"]),
        }
        for a in attachments
    ]
    steps = await PermitStep.select().where((PermitStep.site == site) & (PermitStep.actor == person))
    items += [
        {
            "record": "permit_step",
            "permit_id": str(s["permit"]),
            "action": s["action"],
            "step": s["step_label"],
            "note": s["note"],
            "at": _iso(s["at"]),
        }
        for s in steps
    ]
    entries = await PermitEntry.select().where((PermitEntry.site == site) & (PermitEntry.let_in_by == person))
    items += [
        {"record": "vendor_let_in", "permit_id": str(e["permit"]), "gate": e["gate"], "at": _iso(e["checked_in_at"])}
        for e in entries
    ]
    return items


async def erase(scope: PersonScope) -> ErasureOutcome:
    site, person, needles = scope.site_id, scope.person_id, scope.identifiers
    permits = await Permit.select().where((Permit.site == site) & (Permit.applicant == person))
    permit_ids = [p["id"] for p in permits]
    # Their own uploads anywhere, and every file on their permits (a drawing of their home).
    theirs: Any = PermitAttachment.uploaded_by == person
    if permit_ids:
        theirs = theirs | PermitAttachment.permit.is_in(permit_ids)
    files = await PermitAttachment.select(PermitAttachment.id, PermitAttachment.key).where(
        (PermitAttachment.site == site) & theirs
    )
    erased = 0
    async with write_transaction():
        for permit in permits:
            await Permit.update(
                {
                    Permit.applicant: None,
                    Permit.title: ERASED_TITLE,
                    Permit.values: redact_json(as_dict(permit["values"]), needles),
                    Permit.decision_reason: redact(permit["decision_reason"], needles),
                }
            ).where(Permit.id == permit["id"])
            erased += 1
        if permit_ids:
            named = (
                await PermitEntrant.delete().where(PermitEntrant.permit.is_in(permit_ids)).returning(PermitEntrant.id)
            )
            erased += len(named)
        touched: Any = PermitStep.actor == person
        if permit_ids:
            touched = touched | PermitStep.permit.is_in(permit_ids)
        steps = await PermitStep.select(PermitStep.id, PermitStep.note, PermitStep.actor).where(
            (PermitStep.site == site) & touched
        )
        for step in steps:
            await PermitStep.update(
                {
                    PermitStep.actor: None if step["actor"] == person else step["actor"],
                    PermitStep.note: redact(step["note"], needles),
                }
            ).where(PermitStep.id == step["id"])
        erased += len(steps)
        let_in = (
            await PermitEntry.update({PermitEntry.let_in_by: None})
            .where((PermitEntry.site == site) & (PermitEntry.let_in_by == person))
            .returning(PermitEntry.id)
        )
        erased += len(let_in)
        if files:
            await PermitAttachment.delete().where(PermitAttachment.id.is_in([f["id"] for f in files]))
            erased += len(files)
    deleted = sum(1 for f in files if delete_upload(f["key"], scope.settings))
    return ErasureOutcome(
        erased=erased,
        files_deleted=deleted,
        held=["permits are kept without the applicant, as the building's record of the works they allowed"]
        if permits
        else [],
    )


SECTION = register_section(
    PersonalDataSection(
        name="permits",
        description=(
            "Permits you applied for (fit-out, hot work, moves, vendor access, work at height) with the people and "
            "vehicles you named on them; files you attached; decisions you took on permits; vendors you let in."
        ),
        export=export,
        erase=erase,
    )
)


# ------------------------------------------------------------------------------ retention

PERMIT_PEOPLE = "permit_people"


async def _expired_permit_ids(run: RetentionRun) -> list[Any]:
    rows = await Permit.select(Permit.id).where((Permit.site == run.site_id) & (Permit.valid_until < run.cutoff))
    return [row["id"] for row in rows]


async def apply_retention(run: RetentionRun) -> int:
    ids = await _expired_permit_ids(run)
    if not ids:
        return 0
    async with write_transaction():
        entrants = await PermitEntrant.delete().where(PermitEntrant.permit.is_in(ids)).returning(PermitEntrant.id)
        entries = await PermitEntry.delete().where(PermitEntry.permit.is_in(ids)).returning(PermitEntry.id)
    return len(entrants) + len(entries)


async def count_retention(run: RetentionRun) -> int:
    ids = await _expired_permit_ids(run)
    if not ids:
        return 0
    return await PermitEntrant.count().where(PermitEntrant.permit.is_in(ids)) + await PermitEntry.count().where(
        PermitEntry.permit.is_in(ids)
    )


RETENTION = register_retention(
    RetentionClass(
        name=PERMIT_PEOPLE,
        description=(
            "Names, phone numbers and plates of the people and vehicles named on permits, and their gate entries, "
            "once the permit has been over for the period."
        ),
        default_days=180,
        apply=apply_retention,
        count=count_retention,
    )
)
