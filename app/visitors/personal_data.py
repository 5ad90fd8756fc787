"""Personal data this module holds: registered with `app.privacy.registry`.

About a *person of the site*: the passes they issued for their visitors, the walk-ins they
registered (guards), and the approval requests they answered. Visitors' own data (names,
phones, photos, plates) is not a person's: it goes by retention (``visitor_records``).
"""

from __future__ import annotations

from typing import Any

from app.privacy.registry import ErasureOutcome, PersonalDataSection, PersonScope, register_retention, register_section
from app.visitors.retention import VISITOR_RECORDS
from schema.jsonvalue import as_list
from schema.visitors import Visit, VisitorApproval, VisitorBlock, VisitorPass


async def export(scope: PersonScope) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    passes = await VisitorPass.select().where(
        (VisitorPass.site == scope.site_id) & (VisitorPass.created_by == scope.person_id)
    )
    for row in passes:
        items.append(
            {
                "record": "visitor_pass_issued",
                "id": str(row["id"]),
                "unit_id": str(row["unit"]),
                "kind": row["kind"],
                "visitor_name": row["visitor_name"],
                "schedule": row["schedule"],
                "valid_from": row["valid_from"].isoformat(),
                "valid_until": row["valid_until"].isoformat(),
                "days": as_list(row["days"]),
                "status": row["status"],
                "created_at": row["created_at"].isoformat(),
            }
        )
    answered = await VisitorApproval.select().where(
        (VisitorApproval.site == scope.site_id) & (VisitorApproval.decided_by == scope.person_id)
    )
    for row in answered:
        items.append(
            {
                "record": "visitor_request_answered",
                "id": str(row["id"]),
                "unit_id": str(row["unit"]),
                "decision": row["status"],
                "via": row["decided_via"],
                "decided_at": row["decided_at"].isoformat() if row["decided_at"] else None,
            }
        )
    registered = await Visit.select(Visit.id, Visit.unit, Visit.created_at).where(
        (Visit.site == scope.site_id) & (Visit.registered_by == scope.person_id)
    )
    for row in registered:
        items.append(
            {
                "record": "visit_registered_at_gate",
                "id": str(row["id"]),
                "unit_id": str(row["unit"]),
                "created_at": row["created_at"].isoformat(),
            }
        )
    return items


async def erase(scope: PersonScope) -> ErasureOutcome:
    """Delete the passes the person issued; unlink them from requests they answered and visits they logged."""
    site, person = scope.site_id, scope.person_id
    passes = (
        await VisitorPass.delete()
        .where((VisitorPass.site == site) & (VisitorPass.created_by == person))
        .returning(VisitorPass.id)
    )
    answered = (
        await VisitorApproval.update({VisitorApproval.decided_by: None})
        .where((VisitorApproval.site == site) & (VisitorApproval.decided_by == person))
        .returning(VisitorApproval.id)
    )
    registered = (
        await Visit.update({Visit.registered_by: None})
        .where((Visit.site == site) & (Visit.registered_by == person))
        .returning(Visit.id)
    )
    blocks = (
        await VisitorBlock.update({VisitorBlock.created_by: None})
        .where((VisitorBlock.site == site) & (VisitorBlock.created_by == person))
        .returning(VisitorBlock.id)
    )
    return ErasureOutcome(erased=len(passes) + len(answered) + len(registered) + len(blocks))


SECTION = register_section(
    PersonalDataSection(
        name="visitors",
        description="Visitor passes you issued, walk-in requests you answered, visits you registered at the gate.",
        export=export,
        erase=erase,
    )
)
RETENTION = register_retention(VISITOR_RECORDS)
