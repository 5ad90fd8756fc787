"""A seeded month (November 2026, fixed seed) behind every report, written straight into the tables.

The rows are what the modules would have recorded; the report tests count them back independently.
"""

from __future__ import annotations

import datetime as dt
import random
import secrets
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from app.auth.roles import Role
from schema.amc import Asset, MaintenanceContract, ServiceVisit
from schema.attendance import Punch, RosterEntry, Shift, StaffMember
from schema.billing import Invoice
from schema.complaints import Complaint, ComplaintCategory
from schema.notifications import Delivery, Notification
from schema.permits import Permit, PermitStep, PermitType
from schema.slots import SlotBooking
from schema.tables import Resource
from schema.visitors import Visit, VisitorApproval, VisitorApprovalStep
from tests.support.world import World

SEED = 20261206
MONTH_START = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
MONTH_DAYS = 30
# The controlled "now" of the report tests: after the seeded month.
NOW = dt.datetime(2026, 12, 6, 9, 0, tzinfo=dt.UTC)


@dataclass
class Seeded:
    visits: list[dict[str, Any]] = field(default_factory=list)
    complaints: list[dict[str, Any]] = field(default_factory=list)
    bookings: list[dict[str, Any]] = field(default_factory=list)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    invoices: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    amc_visits: list[dict[str, Any]] = field(default_factory=list)
    staff: list[dict[str, Any]] = field(default_factory=list)


def _moment(rng: random.Random) -> dt.datetime:
    return MONTH_START + dt.timedelta(seconds=rng.randrange(MONTH_DAYS * 24 * 3600))


async def seed_month(world: World, size: int = 24) -> Seeded:
    """``size`` rows or so per report, spread over the month, both towers, two of each person."""
    rng = random.Random(SEED)
    seeded = Seeded()
    site = world.site_id
    if "neighbour" not in world.people:
        await world.add_person("neighbour", frozenset({Role.OCCUPANT}), units=[(world.unit_ids[5], "tenant")])
        await world.add_person("technician_two", frozenset({Role.TECHNICIAN}), skills=("electrical",))
    units = world.unit_ids
    technicians = [world.people["technician"], world.people["technician_two"]]

    # visitors
    for _ in range(size):
        created = _moment(rng)
        visit = Visit(
            site=site,
            unit=rng.choice(units),
            kind=rng.choice(["guest", "delivery", "daily_help"]),
            source=rng.choice(["walk_in", "pass"]),
            name="Visitor",
            status=rng.choice(["inside", "left", "denied", "pending"]),
            registered_by=world.people["guard"],
            created_at=created,
            overstay_alerted_at=created + dt.timedelta(hours=5) if rng.random() < 0.25 else None,
        )
        await visit.save()
        facts: dict[str, Any] = {"id": visit.id, "unit": visit.unit, "kind": visit.kind, "status": visit.status}
        facts["created_at"], facts["overstay"] = created, visit.overstay_alerted_at is not None
        facts["ms"], facts["rung"] = None, None
        if visit.source == "walk_in":
            ms = rng.randrange(5_000, 600_000)
            approval = VisitorApproval(
                site=site,
                visit=visit.id,
                unit=visit.unit,
                status="approved",
                requested_at=created,
                decided_at=created + dt.timedelta(milliseconds=ms),
                time_to_decision_ms=ms,
            )
            await approval.save()
            rung = rng.randrange(0, 4)
            for step in range(1, rung + 1):
                await VisitorApprovalStep(
                    site=site, approval=approval.id, step=step, action="push", at=created, state="done"
                ).save()
            await VisitorApprovalStep(
                site=site, approval=approval.id, step=rung + 1, action="decided", at=created, state="done"
            ).save()
            facts["ms"], facts["rung"] = ms, rung
        seeded.visits.append(facts)

    # complaints
    categories = {}
    for code in ("plumbing", "electrical"):
        category = ComplaintCategory(site=site, code=f"{code}", name=code.title())
        await category.save()
        categories[code] = category.id
    for _ in range(size):
        created = _moment(rng)
        code = rng.choice(list(categories))
        status = rng.choice(["open", "assigned", "in_progress", "resolved", "closed", "cancelled"])
        assignee = rng.choice([*technicians, None]) if status != "open" else None
        responded = (
            created + dt.timedelta(minutes=rng.randrange(5, 180)) if status not in ("open", "assigned") else None
        )
        resolved = created + dt.timedelta(minutes=rng.randrange(60, 3000)) if status in ("resolved", "closed") else None
        complaint = Complaint(
            site=site,
            category=categories[code],
            unit=rng.choice([*units, None]),
            description="Leak",
            priority=rng.choice(["normal", "urgent"]),
            status=status,
            raised_by=world.people["occupant"],
            assignee=assignee,
            response_due_at=created + dt.timedelta(minutes=60),
            resolution_due_at=created + dt.timedelta(hours=24),
            responded_at=responded,
            resolved_at=resolved,
            escalation_level=rng.randrange(0, 3),
            rating=rng.randrange(1, 6) if resolved is not None else None,
            created_at=created,
            updated_at=created,
        )
        await complaint.save()
        seeded.complaints.append(
            {
                "id": complaint.id,
                "unit": complaint.unit,
                "category": code,
                "status": status,
                "assignee": assignee,
                "created_at": created,
                "responded": responded,
                "resolved": resolved,
                "rating": complaint.rating,
                "escalation_level": complaint.escalation_level,
            }
        )

    # bookings
    resources = []
    for code in ("gym", "pool"):
        resource = Resource(site=site, kind="amenity", code=f"{code}", name=code.title())
        await resource.save()
        resources.append(resource)
    for _ in range(size):
        starts = _moment(rng).replace(minute=0, second=0)
        resource = rng.choice(resources)
        status = rng.choice(["confirmed", "completed", "cancelled", "no_show"])
        length = rng.choice([30, 60, 90])
        unit = rng.choice(units)
        booking = SlotBooking(
            site=site,
            resource=resource.id,
            unit=unit,
            person=world.people["occupant"] if unit == units[0] else world.people["neighbour"],
            starts_at=starts,
            ends_at=starts + dt.timedelta(minutes=length),
            blocks_until=starts + dt.timedelta(minutes=length),
            status=status,
            checkin_token=secrets.token_hex(8),
            created_at=starts - dt.timedelta(days=1),
            updated_at=starts,
        )
        await booking.save()
        seeded.bookings.append(
            {"unit": unit, "resource": resource.code, "status": status, "minutes": length, "starts_at": starts}
        )

    # notifications
    notification = Notification(site=site, kind="announcement", category="announcement", title="Water", body="Off")
    await notification.save()
    people = [world.people[name] for name in ("occupant", "neighbour", "guard", "technician", "fm_admin")]
    for person in people:
        for channel in ("push", "sms", "email", "in_app", "whatsapp"):
            status = rng.choice(["sent", "delivered", "failed", "suppressed", "deferred", "digested"])
            created = _moment(rng)
            await Delivery(
                site=site,
                notification=notification.id,
                person=person,
                channel=channel,
                status=status,
                reason="consent" if status == "suppressed" else None,
                provider_code="30006" if status == "failed" else None,
                created_at=created,
                updated_at=created,
            ).save()
            seeded.deliveries.append({"person": person, "channel": channel, "status": status, "created_at": created})

    # billing
    for number in range(size):
        issue = (MONTH_START + dt.timedelta(days=rng.randrange(MONTH_DAYS))).date()
        total = rng.randrange(1000, 500000)
        settled = rng.choice([0, total, total // 2])
        unit = rng.choice(units)
        invoice = Invoice(
            site=site,
            unit=unit,
            number=f"INV/{number:04d}",
            fy="2026-27",
            seq=number + 1,
            issue_date=issue,
            due_date=issue + dt.timedelta(days=15),
            period="2026-11",
            subtotal_minor=total,
            total_minor=total,
            settled_minor=settled,
            status="paid" if settled == total else ("partially_paid" if settled else "open"),
        )
        await invoice.save()
        seeded.invoices.append(
            {
                "unit": unit,
                "issue_date": issue,
                "due_date": invoice.due_date,
                "total": total,
                "settled": settled,
                "status": invoice.status,
            }
        )

    # permits: each submitted, then one or two decisions
    kinds = []
    for code in ("fit-out", "hot-work"):
        permit_type = PermitType(site=site, code=code, kind="fit_out", name=code)
        await permit_type.save()
        kinds.append(permit_type)
    for number in range(size // 3):
        submitted = _moment(rng)
        permit_type = rng.choice(kinds)
        unit = rng.choice(units)
        permit = Permit(
            site=site,
            permit_type=permit_type.id,
            reference=f"P-{number:05d}",
            unit=unit,
            title="Work",
            applicant=world.people["occupant"],
            status="approved",
            valid_from=submitted,
            valid_until=submitted + dt.timedelta(days=3),
            submitted_at=submitted,
            created_at=submitted,
            updated_at=submitted,
        )
        await permit.save()
        at = submitted
        for index, (action, label) in enumerate([("submitted", None), ("approved", "FM"), ("approved", "Security")]):
            gap = 0 if index == 0 else rng.randrange(10, 2000)
            at = at + dt.timedelta(minutes=gap)
            actor = world.people["occupant"] if index == 0 else world.people["fm_admin"]
            await PermitStep(
                site=site,
                permit=permit.id,
                round=1,
                step=index or None,
                step_label=label,
                action=action,
                actor=actor,
                version=index + 1,
                at=at,
            ).save()
            seeded.steps.append(
                {
                    "unit": unit,
                    "type": permit_type.code,
                    "action": action,
                    "label": label or "submission",
                    "at": at,
                    "turnaround": gap if index else None,
                    "actor": actor,
                }
            )

    # AMC: one contract per asset, visits due through the month
    for code, building in (("LIFT-A", world.building_ids[0]), ("DG-B", world.building_ids[1])):
        asset = Asset(site=site, code=code, name=code, kind="lift" if code.startswith("LIFT") else "dg_set")
        asset.building = building
        await asset.save()
        contract = MaintenanceContract(
            site=site,
            asset=asset.id,
            vendor=f"Vendor {code}",
            starts_on=dt.date(2026, 1, 1),
            ends_on=dt.date(2026, 12, 20),
            frequency="monthly",
            first_visit_on=dt.date(2026, 1, 1),
            sla_visit_grace_days=3,
        )
        await contract.save()
        for _ in range(size // 4):
            due = (MONTH_START + dt.timedelta(days=rng.randrange(MONTH_DAYS))).date()
            status = rng.choice(["scheduled", "done", "done"])
            completed = due + dt.timedelta(days=rng.randrange(0, 7)) if status == "done" else None
            by = rng.choice(technicians) if status == "done" else None
            await ServiceVisit(
                site=site,
                contract=contract.id,
                asset=asset.id,
                due_on=due,
                status=status,
                completed_on=completed,
                completed_by=by,
            ).save()
            seeded.amc_visits.append(
                {
                    "kind": asset.kind,
                    "building": building,
                    "status": status,
                    "due_on": due,
                    "on_time": completed is not None and completed <= due + dt.timedelta(days=3),
                    "by": by,
                }
            )

    # attendance: two technicians on a morning shift every weekday, punches on some days
    shift = Shift(site=site, code="morning", name="Morning", start="09:00", end="17:00")
    await shift.save()
    for name, person in (("Technician", technicians[0]), ("Technician Two", technicians[1])):
        member = StaffMember(site=site, name=name, category="technician", person=person)
        await member.save()
        for weekday in range(5):
            await RosterEntry(site=site, staff=member.id, shift=shift.id, weekday=weekday).save()
        days = []
        for offset in range(MONTH_DAYS):
            day = (MONTH_START + dt.timedelta(days=offset)).date()
            if day.weekday() >= 5:
                continue
            # Asia/Kolkata 09:00 is 03:30 UTC; arrive on time, late, or not at all.
            choice = rng.choice(["present", "late", "absent"])
            if choice != "absent":
                minutes_after = rng.randrange(-20, 10) if choice == "present" else rng.randrange(40, 120)
                at = dt.datetime.combine(day, dt.time(3, 30), tzinfo=dt.UTC) + dt.timedelta(minutes=minutes_after)
                await Punch(site=site, staff=member.id, kind="in", at=at, source="gate").save()
            days.append((day, choice))
        seeded.staff.append({"id": member.id, "person": person, "name": name, "days": days})
    return seeded


def ids(values: list[UUID]) -> list[str]:
    return [str(v) for v in values]
