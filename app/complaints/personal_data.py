"""Personal data this module holds: registered with `app.privacy.registry`.

Section ``complaints``: the complaints a person raised (or that staff raised for them), the
comments and notes they wrote, the photos they uploaded, the moves they made.
Erasure removes what the person wrote and the photos they uploaded, and unlinks them from
the rest; the complaint itself stays, anonymised, as the site's operational record
(SLA reports and technicians' history).
"""

from __future__ import annotations

from typing import Any

from app.db import write_transaction
from app.privacy.registry import ErasureOutcome, PersonalDataSection, PersonScope, register_section
from app.uploads import delete_upload
from schema.complaints import Complaint, ComplaintCategory, ComplaintComment, ComplaintPhoto, ComplaintTransition

ERASED_TEXT = "[removed at the request of the person who wrote it]"


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


async def export(scope: PersonScope) -> list[dict[str, Any]]:
    person, site = scope.person_id, scope.site_id
    complaints = await Complaint.select().where(
        (Complaint.site == site) & ((Complaint.raised_by == person) | (Complaint.raised_for == person))
    )
    codes = {
        r["id"]: r["code"]
        for r in await ComplaintCategory.select(ComplaintCategory.id, ComplaintCategory.code).where(
            ComplaintCategory.site == site
        )
    }
    result: list[dict[str, Any]] = [
        {
            "record": "complaint",
            "id": str(c["id"]),
            "category": codes.get(c["category"]),
            "subcategory": c["subcategory"],
            "unit_id": str(c["unit"]) if c["unit"] else None,
            "location": c["location"],
            "description": c["description"],
            "priority": c["priority"],
            "status": c["status"],
            "raised_by_you": c["raised_by"] == person,
            "rating": c["rating"],
            "feedback": c["feedback"],
            "created_at": _iso(c["created_at"]),
        }
        for c in complaints
    ]
    comments = await ComplaintComment.select().where(
        (ComplaintComment.site == site) & (ComplaintComment.author == person)
    )
    result += [
        {
            "record": "comment",
            "id": str(c["id"]),
            "complaint_id": str(c["complaint"]),
            "internal": c["internal"],
            "body": c["body"],
            "created_at": _iso(c["created_at"]),
        }
        for c in comments
    ]
    photos = await ComplaintPhoto.select().where((ComplaintPhoto.site == site) & (ComplaintPhoto.uploaded_by == person))
    result += [
        {
            "record": "photo",
            "id": str(p["id"]),
            "complaint_id": str(p["complaint"]),
            "stage": p["stage"],
            "media_type": p["media_type"],
            "size": p["size"],
            "created_at": _iso(p["created_at"]),
        }
        for p in photos
    ]
    moves = await ComplaintTransition.select().where(
        (ComplaintTransition.site == site) & (ComplaintTransition.actor == person)
    )
    result += [
        {
            "record": "status_change",
            "complaint_id": str(t["complaint"]),
            "from": t["from_status"],
            "to": t["to_status"],
            "note": t["note"],
            "at": _iso(t["created_at"]),
        }
        for t in moves
    ]
    return result


async def erase(scope: PersonScope) -> ErasureOutcome:
    person, site = scope.person_id, scope.site_id
    photos = await ComplaintPhoto.select(ComplaintPhoto.id, ComplaintPhoto.key).where(
        (ComplaintPhoto.site == site) & (ComplaintPhoto.uploaded_by == person)
    )
    async with write_transaction():
        raised = (
            await Complaint.update(
                {Complaint.description: ERASED_TEXT, Complaint.feedback: None, Complaint.raised_by: None}
            )
            .where((Complaint.site == site) & (Complaint.raised_by == person))
            .returning(Complaint.id)
        )
        raised_for = (
            await Complaint.update(
                {Complaint.description: ERASED_TEXT, Complaint.feedback: None, Complaint.raised_for: None}
            )
            .where((Complaint.site == site) & (Complaint.raised_for == person))
            .returning(Complaint.id)
        )
        comments = (
            await ComplaintComment.update({ComplaintComment.body: ERASED_TEXT, ComplaintComment.author: None})
            .where((ComplaintComment.site == site) & (ComplaintComment.author == person))
            .returning(ComplaintComment.id)
        )
        moves = (
            await ComplaintTransition.update({ComplaintTransition.actor: None, ComplaintTransition.note: None})
            .where((ComplaintTransition.site == site) & (ComplaintTransition.actor == person))
            .returning(ComplaintTransition.id)
        )
        if photos:
            await ComplaintPhoto.delete().where(ComplaintPhoto.id.is_in([p["id"] for p in photos]))
    files = sum(1 for p in photos if delete_upload(p["key"], scope.settings))
    return ErasureOutcome(
        erased=len(raised) + len(raised_for) + len(comments) + len(moves) + len(photos),
        files_deleted=files,
        held=[
            "complaints are kept without the person's name or text, "
            "as the site's operational record (SLA and maintenance history)"
        ]
        if raised or raised_for
        else [],
    )


SECTION = register_section(
    PersonalDataSection(
        name="complaints",
        description=(
            "Complaints and service requests you raised (or that FM staff raised for you), with their "
            "ratings and feedback; comments you wrote; photos you uploaded; status changes you made."
        ),
        export=export,
        erase=erase,
        legal_hold=None,
    )
)
