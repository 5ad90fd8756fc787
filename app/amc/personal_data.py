"""Personal data the AMC tracker holds: registered with `app.privacy.registry`.

The tracker is about machines, not people. What it holds of a person is who did things: the service
visits they recorded, the photos they attached, the contracts they entered. Erasure removes the
person from those rows and keeps the rows (notes, checklists, photos of a machine), which are the
site's maintenance record; the vendor is a company, not a person.
"""

from __future__ import annotations

from typing import Any

from app.db import write_transaction
from app.privacy.registry import ErasureOutcome, PersonalDataSection, PersonScope, register_section
from schema.amc import MaintenanceContract, ServiceVisit, VisitAttachment


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


async def export(scope: PersonScope) -> list[dict[str, Any]]:
    site, person = scope.site_id, scope.person_id
    rows: list[dict[str, Any]] = []
    for visit in await ServiceVisit.select(
        ServiceVisit.id, ServiceVisit.due_on, ServiceVisit.completed_on, ServiceVisit.notes, ServiceVisit.checklist
    ).where((ServiceVisit.site == site) & (ServiceVisit.completed_by == person)):
        rows.append({"record": "service_visit_recorded", **{k: _iso(v) for k, v in visit.items()}})
    for attachment in await VisitAttachment.select(
        VisitAttachment.id, VisitAttachment.visit, VisitAttachment.media_type, VisitAttachment.created_at
    ).where((VisitAttachment.site == site) & (VisitAttachment.uploaded_by == person)):
        rows.append({"record": "visit_photo_uploaded", **{k: _iso(v) for k, v in attachment.items()}})
    for contract in await MaintenanceContract.select(
        MaintenanceContract.id, MaintenanceContract.vendor, MaintenanceContract.created_at
    ).where((MaintenanceContract.site == site) & (MaintenanceContract.created_by == person)):
        rows.append({"record": "contract_entered", **{k: _iso(v) for k, v in contract.items()}})
    return rows


async def erase(scope: PersonScope) -> ErasureOutcome:
    site, person = scope.site_id, scope.person_id
    async with write_transaction():
        visits = (
            await ServiceVisit.update({ServiceVisit.completed_by: None})
            .where((ServiceVisit.site == site) & (ServiceVisit.completed_by == person))
            .returning(ServiceVisit.id)
        )
        photos = (
            await VisitAttachment.update({VisitAttachment.uploaded_by: None})
            .where((VisitAttachment.site == site) & (VisitAttachment.uploaded_by == person))
            .returning(VisitAttachment.id)
        )
        entered = (
            await MaintenanceContract.update({MaintenanceContract.created_by: None})
            .where((MaintenanceContract.site == site) & (MaintenanceContract.created_by == person))
            .returning(MaintenanceContract.id)
        )
    erased = len(visits) + len(photos) + len(entered)
    return ErasureOutcome(
        erased=erased,
        held=["service visits are kept without the person's name, as the site's maintenance record"] if visits else [],
    )


SECTION = register_section(
    PersonalDataSection(
        name="maintenance_records",
        description=(
            "Service visits you recorded (their notes and checklists), photos you attached to them, and "
            "maintenance contracts you entered."
        ),
        export=export,
        erase=erase,
        legal_hold=None,
    )
)
