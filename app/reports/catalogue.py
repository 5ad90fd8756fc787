"""Every report of the hub, declared on the framework (``app.reports.framework``).

Each detail row is one thing that happened (a visit, a complaint, a booking, a ledger row, an invoice,
a permit's step, an AMC visit, a staff member's duty); the summaries (``?by=``) are computed from these
rows by the framework. Times are UTC; "hour" columns are the site's wall-clock hour.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any, Final
from uuid import UUID
from zoneinfo import ZoneInfo

from app.auth.roles import STAFF, Role
from app.billing.collections import bucket_of
from app.complaints.sla import SlaState, sla_state
from app.reports.framework import (
    Column,
    ColumnType,
    Filter,
    Measure,
    Query,
    Report,
    ScopeKind,
    Source,
    register,
)
from schema.amc import ServiceVisit
from schema.attendance import Punch, StaffMember
from schema.billing import Invoice
from schema.complaints import Complaint
from schema.notifications import Delivery
from schema.permits import PermitStep
from schema.slots import SlotBooking
from schema.tables import Site
from schema.visitors import Visit, VisitorApproval, VisitorApprovalStep

T, INT, DEC, DATE, TIME, BOOL = (
    ColumnType.TEXT,
    ColumnType.INTEGER,
    ColumnType.DECIMAL,
    ColumnType.DATE,
    ColumnType.DATETIME,
    ColumnType.BOOLEAN,
)
PLATFORM: Final = Role.PLATFORM_ADMIN
MANAGERS: Final = frozenset({*STAFF, PLATFORM})


def utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def minutes(start: dt.datetime | None, end: dt.datetime | None) -> int | None:
    if start is None or end is None:
        return None
    return int((utc(end) - utc(start)).total_seconds() // 60)  # type: ignore[operator]


_ZONES: dict[UUID, ZoneInfo] = {}


async def zone_of(site_id: UUID) -> ZoneInfo:
    zone = _ZONES.get(site_id)
    if zone is None:
        row = await Site.select(Site.timezone).where(Site.id == site_id).first()
        zone = _ZONES[site_id] = ZoneInfo(row["timezone"] if row else "UTC")
    return zone


async def local_hour(site_id: UUID, moment: dt.datetime | None) -> int | None:
    if moment is None:
        return None
    return utc(moment).astimezone(await zone_of(site_id)).hour  # type: ignore[union-attr]


def money(minor: int | None) -> Decimal | None:
    return None if minor is None else (Decimal(minor) / 100).quantize(Decimal("0.01"))


# ------------------------------------------------------------------------------ complaints and SLA


async def _complaint_rows(query: Query, rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    out = []
    now = query.now
    for row in rows:
        cancelled = row["status"] == "cancelled"
        response_due, resolution_due = utc(row["response_due_at"]), utc(row["resolution_due_at"])
        responded = utc(row["responded_at"] or row["resolved_at"])
        resolved = utc(row["resolved_at"] or row["closed_at"])
        response_met: bool | None = None
        resolution_met: bool | None = None
        if not cancelled:
            if responded is not None:
                response_met = responded <= response_due  # type: ignore[operator]
            elif now > response_due:  # type: ignore[operator]
                response_met = False
            if resolved is not None:
                resolution_met = resolved <= resolution_due  # type: ignore[operator]
            elif now > resolution_due:  # type: ignore[operator]
                resolution_met = False
        out.append(
            (
                str(row["_id"]),
                utc(row["_time"]),
                row["category_code"],
                row["tower"] or "common areas",
                row["unit_label"],
                row["priority"],
                row["status"],
                row["technician"] or "unassigned",
                row["escalation_level"],
                minutes(row["_time"], responded),
                minutes(row["_time"], resolved),
                resolved is not None and not cancelled,
                response_met is True,
                response_met is False,
                resolution_met is True,
                resolution_met is False,
                row["rating"],
                SLA_OUTCOME[sla_state({**row, "created_at": row["_time"]}, now)],
            )
        )
    return out


# The complaint's SLA as the control room's trend counts it: met only if both deadlines were; an open one
# is breached once either deadline passed. At risk and on track are both still open.
SLA_OUTCOME: Final = {
    SlaState.MET: "met",
    SlaState.BREACHED: "breached",
    SlaState.CANCELLED: "cancelled",
    SlaState.AT_RISK: "open",
    SlaState.ON_TRACK: "open",
}


COMPLAINTS = register(
    Report(
        name="complaints",
        title="Complaints and SLA",
        description=(
            "One row per complaint raised in the period: first-response and resolution minutes, whether each "
            "deadline was met or breached (an open one past its deadline counts as breached; cancelled ones "
            "are neither), escalation level reached, technician, rating, and the SLA as the control room "
            "counts it (met only if both deadlines were; open, breached or cancelled otherwise)."
        ),
        columns=(
            Column("id", T, width=38),
            Column("created_at", TIME),
            Column("category", T),
            Column("tower", T),
            Column("unit", T),
            Column("priority", T),
            Column("status", T),
            Column("technician", T, width=24),
            Column("escalation_level", INT),
            Column("first_response_minutes", INT),
            Column("resolution_minutes", INT),
            Column("resolved", BOOL),
            Column("response_met", BOOL),
            Column("response_breached", BOOL),
            Column("resolution_met", BOOL),
            Column("resolution_breached", BOOL),
            Column("rating", INT),
            Column("sla", T),
        ),
        roles=frozenset({Role.OCCUPANT, Role.TECHNICIAN, *MANAGERS}),
        source=Source(
            table=Complaint,
            time=Complaint.created_at,
            select=(
                Complaint.category.code.as_alias("category_code"),
                Complaint.unit.building.code.as_alias("tower"),  # type: ignore[union-attr]
                Complaint.unit.label.as_alias("unit_label"),
                Complaint.priority,
                Complaint.status,
                Complaint.assignee.full_name.as_alias("technician"),
                Complaint.escalation_level,
                Complaint.response_due_at,
                Complaint.resolution_due_at,
                Complaint.responded_at,
                Complaint.resolved_at,
                Complaint.closed_at,
                Complaint.rating,
            ),
            shape=_complaint_rows,
            unit=Complaint.unit,
            own_work=Complaint.assignee,
            tower=Complaint.unit.building.code,  # type: ignore[union-attr]
            category=Complaint.category.code,
            status=Complaint.status,
            person=Complaint.assignee,
        ),
        filters=frozenset({Filter.TOWER, Filter.CATEGORY, Filter.STATUS, Filter.PERSON}),
        filter_notes={Filter.CATEGORY: "category code", Filter.PERSON: "the assigned technician"},
        group_by=("category", "technician", "tower", "status", "priority", "escalation_level", "sla"),
        measures=(
            Measure("complaints", "count"),
            Measure("resolved", "count_true", "resolved"),
            Measure("response_p50_minutes", "p50", "first_response_minutes"),
            Measure("response_p90_minutes", "p90", "first_response_minutes"),
            Measure("resolution_p50_minutes", "p50", "resolution_minutes"),
            Measure("resolution_p90_minutes", "p90", "resolution_minutes"),
            Measure("response_breached", "count_true", "response_breached"),
            Measure("resolution_met", "count_true", "resolution_met"),
            Measure("resolution_breached", "count_true", "resolution_breached"),
            Measure("average_rating", "avg", "rating", type=DEC),
            Measure("ratings", "count_present", "rating"),
        ),
        default_by="category",
    )
)


# ------------------------------------------------------------------------------ visitors


async def _visitor_rows(query: Query, rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    ids = [row["_id"] for row in rows]
    approvals = {
        a["visit"]: a
        for a in await VisitorApproval.select(
            VisitorApproval.id, VisitorApproval.visit, VisitorApproval.status, VisitorApproval.time_to_decision_ms
        ).where(VisitorApproval.visit.is_in(ids))
    }
    rungs: dict[UUID, int] = defaultdict(int)
    if approvals:
        for step in await VisitorApprovalStep.select(VisitorApprovalStep.approval, VisitorApprovalStep.step).where(
            VisitorApprovalStep.approval.is_in([a["id"] for a in approvals.values()])
            & (VisitorApprovalStep.action != "decided")
        ):
            rungs[step["approval"]] = max(rungs[step["approval"]], int(step["step"]))
    out = []
    for row in rows:
        approval = approvals.get(row["_id"])
        ms = approval["time_to_decision_ms"] if approval else None
        out.append(
            (
                str(row["_id"]),
                utc(row["_time"]),
                await local_hour(row["site"], row["_time"]),
                row["kind"],
                row["source"],
                row["tower"],
                row["unit_label"],
                row["status"],
                approval["status"] if approval else None,
                (Decimal(ms) / 1000).quantize(Decimal("0.001")) if ms is not None else None,
                rungs.get(approval["id"], 0) if approval else None,
                utc(row["checked_in_at"]),
                utc(row["checked_out_at"]),
                row["overstay_alerted_at"] is not None,
            )
        )
    return out


VISITORS = register(
    Report(
        name="visitors",
        title="Visitors",
        description=(
            "One row per visit registered in the period: type, the site's hour, approval outcome and time to "
            "decision, the ladder rung reached (highest escalation step taken; 0 when answered on the first), "
            "and whether an overstay alert was raised."
        ),
        columns=(
            Column("id", T, width=38),
            Column("created_at", TIME),
            Column("hour", INT),
            Column("type", T),
            Column("source", T),
            Column("tower", T),
            Column("unit", T),
            Column("status", T),
            Column("approval", T),
            Column("approval_seconds", DEC),
            Column("rung", INT),
            Column("checked_in_at", TIME),
            Column("checked_out_at", TIME),
            Column("overstay", BOOL),
        ),
        roles=frozenset({Role.OCCUPANT, Role.GUARD, *MANAGERS}),
        source=Source(
            table=Visit,
            time=Visit.created_at,
            select=(
                Visit.site,
                Visit.kind,
                Visit.source,
                Visit.unit.building.code.as_alias("tower"),  # type: ignore[union-attr]
                Visit.unit.label.as_alias("unit_label"),
                Visit.status,
                Visit.checked_in_at,
                Visit.checked_out_at,
                Visit.overstay_alerted_at,
            ),
            shape=_visitor_rows,
            unit=Visit.unit,
            own_work=Visit.registered_by,
            tower=Visit.unit.building.code,  # type: ignore[union-attr]
            category=Visit.kind,
            status=Visit.status,
            person=Visit.registered_by,
        ),
        filters=frozenset({Filter.TOWER, Filter.CATEGORY, Filter.STATUS, Filter.PERSON}),
        filter_notes={
            Filter.CATEGORY: "visitor type (guest, delivery, daily_help, ...)",
            Filter.PERSON: "registered by",
        },
        group_by=("type", "hour", "tower", "status", "approval", "rung"),
        measures=(
            Measure("visits", "count"),
            Measure("approval_p50_seconds", "p50", "approval_seconds", type=DEC),
            Measure("approval_p90_seconds", "p90", "approval_seconds", type=DEC),
            Measure("overstays", "count_true", "overstay"),
        ),
        default_by="type",
    )
)


# ------------------------------------------------------------------------------ bookings and utilisation


async def _booking_rows(query: Query, rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    out = []
    for row in rows:
        length = minutes(row["_time"], row["ends_at"]) or 0
        out.append(
            (
                str(row["_id"]),
                utc(row["_time"]),
                await local_hour(row["site"], row["_time"]),
                row["resource_code"],
                row["resource_kind"],
                row["tower"],
                row["unit_label"],
                row["status"],
                length,
                (Decimal(length) / 60).quantize(Decimal("0.01")) if row["status"] in USED else Decimal("0.00"),
                row["status"] == "no_show",
            )
        )
    return out


USED: Final = frozenset({"confirmed", "checked_in", "completed", "no_show"})  # the resource was held

BOOKINGS = register(
    Report(
        name="bookings",
        title="Bookings and utilisation",
        description=(
            "One row per booking starting in the period: resource, the site's hour it starts, minutes booked, "
            "hours the resource was held (confirmed, checked in, completed or no-show) and no-shows."
        ),
        columns=(
            Column("id", T, width=38),
            Column("starts_at", TIME),
            Column("hour", INT),
            Column("resource", T),
            Column("kind", T),
            Column("tower", T),
            Column("unit", T),
            Column("status", T),
            Column("minutes", INT),
            Column("held_hours", DEC),
            Column("no_show", BOOL),
        ),
        roles=frozenset({Role.OCCUPANT, *MANAGERS}),
        source=Source(
            table=SlotBooking,
            time=SlotBooking.starts_at,
            select=(
                SlotBooking.site,
                SlotBooking.ends_at,
                SlotBooking.resource.code.as_alias("resource_code"),
                SlotBooking.resource.kind.as_alias("resource_kind"),
                SlotBooking.unit.building.code.as_alias("tower"),  # type: ignore[union-attr]
                SlotBooking.unit.label.as_alias("unit_label"),
                SlotBooking.status,
            ),
            shape=_booking_rows,
            unit=SlotBooking.unit,
            tower=SlotBooking.unit.building.code,  # type: ignore[union-attr]
            category=SlotBooking.resource.code,
            status=SlotBooking.status,
            person=SlotBooking.person,
        ),
        filters=frozenset({Filter.TOWER, Filter.CATEGORY, Filter.STATUS, Filter.PERSON}),
        filter_notes={Filter.CATEGORY: "resource code", Filter.PERSON: "the booker"},
        group_by=("resource", "hour", "kind", "status", "tower"),
        measures=(
            Measure("bookings", "count"),
            Measure("held_hours", "sum", "held_hours", type=DEC),
            Measure("no_shows", "count_true", "no_show"),
            Measure("cancelled", "count_eq", "status", values=("cancelled",)),
        ),
        default_by="resource",
    )
)


# ------------------------------------------------------------------------------ notifications and delivery


async def _delivery_rows(query: Query, rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (
            str(row["_id"]),
            utc(row["_time"]),
            row["channel"],
            row["category"],
            row["status"],
            row["reason"],
            row["provider_code"],
            row["attempts"],
            row["status"] in SENT,
            row["status"] in DELIVERED,
            None,  # cost: none of the providers reports one in its delivery callbacks yet
        )
        for row in rows
    ]


SENT: Final = frozenset({"sent", "delivered", "read"})
DELIVERED: Final = frozenset({"delivered", "read"})

NOTIFICATIONS = register(
    Report(
        name="notifications",
        title="Notifications and delivery",
        description=(
            "One row per ledger row (person, notification, channel) created in the period, where it is now: "
            "sent, delivered, failed (with the provider's code), suppressed (with the reason), deferred or "
            "digested. Cost is blank: no provider reports it in its callbacks."
        ),
        columns=(
            Column("id", T, width=38),
            Column("created_at", TIME),
            Column("channel", T),
            Column("category", T),
            Column("status", T),
            Column("reason", T),
            Column("provider_code", T),
            Column("attempts", INT),
            Column("sent", BOOL),
            Column("delivered", BOOL),
            Column("cost", DEC),
        ),
        roles=MANAGERS,
        source=Source(
            table=Delivery,
            time=Delivery.created_at,
            select=(
                Delivery.channel,
                Delivery.notification.category.as_alias("category"),
                Delivery.status,
                Delivery.reason,
                Delivery.provider_code,
                Delivery.attempts,
            ),
            shape=_delivery_rows,
            category=Delivery.channel,
            status=Delivery.status,
            person=Delivery.person,
        ),
        filters=frozenset({Filter.CATEGORY, Filter.STATUS, Filter.PERSON}),
        filter_notes={Filter.CATEGORY: "channel (push, sms, whatsapp, email, in_app)", Filter.PERSON: "recipient"},
        group_by=("channel", "status", "reason", "provider_code", "category"),
        measures=(
            Measure("rows", "count"),
            Measure("sent", "count_true", "sent"),
            Measure("delivered", "count_true", "delivered"),
            Measure("failed", "count_eq", "status", values=("failed",)),
            Measure("suppressed", "count_eq", "status", values=("suppressed",)),
            Measure("deferred", "count_eq", "status", values=("deferred",)),
            Measure("digested", "count_eq", "status", values=("digested",)),
            Measure("pending", "count_eq", "status", values=("pending", "sending")),
            Measure("cost", "sum", "cost", type=DEC),
        ),
        default_by="channel",
    )
)


# ------------------------------------------------------------------------------ billing and collections


async def _invoice_rows(query: Query, rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    today = query.now.date()
    out = []
    for row in rows:
        outstanding = max(0, row["total_minor"] - row["settled_minor"] - row["credited_minor"])
        out.append(
            (
                row["number"],
                row["_time"],
                row["due_date"],
                row["period"],
                row["tower"],
                row["unit_label"],
                row["status"],
                money(row["total_minor"]),
                money(row["settled_minor"]),
                money(row["credited_minor"]),
                money(outstanding),
                bucket_of((today - row["due_date"]).days) if outstanding else "settled",
            )
        )
    return out


BILLING = register(
    Report(
        name="billing",
        title="Billing and collections",
        description=(
            "One row per invoice issued in the period: billed, collected, credited and outstanding (in rupees), "
            "and the age of what is outstanding by its due date as of today (not_due, 0-30, 31-60, 61-90, 90+)."
        ),
        columns=(
            Column("number", T),
            Column("issue_date", DATE),
            Column("due_date", DATE),
            Column("period", T),
            Column("tower", T),
            Column("unit", T),
            Column("status", T),
            Column("billed", DEC),
            Column("collected", DEC),
            Column("credited", DEC),
            Column("outstanding", DEC),
            Column("ageing", T),
        ),
        roles=frozenset({Role.OCCUPANT, *MANAGERS}),
        source=Source(
            table=Invoice,
            time=Invoice.issue_date,
            select=(
                Invoice.number,
                Invoice.due_date,
                Invoice.period,
                Invoice.unit.building.code.as_alias("tower"),  # type: ignore[union-attr]
                Invoice.unit.label.as_alias("unit_label"),
                Invoice.status,
                Invoice.total_minor,
                Invoice.settled_minor,
                Invoice.credited_minor,
            ),
            shape=_invoice_rows,
            unit=Invoice.unit,
            tower=Invoice.unit.building.code,  # type: ignore[union-attr]
            category=Invoice.period,
            status=Invoice.status,
        ),
        filters=frozenset({Filter.TOWER, Filter.CATEGORY, Filter.STATUS}),
        filter_notes={Filter.CATEGORY: "billing period, YYYY-MM"},
        group_by=("ageing", "tower", "status", "period", "unit"),
        measures=(
            Measure("invoices", "count"),
            Measure("billed", "sum", "billed", type=DEC),
            Measure("collected", "sum", "collected", type=DEC),
            Measure("credited", "sum", "credited", type=DEC),
            Measure("outstanding", "sum", "outstanding", type=DEC),
            Measure("collected_percent", "percent", values=("collected", "billed"), type=DEC),
        ),
        default_by="ageing",
    )
)


# ------------------------------------------------------------------------------ permits


async def _step_rows(query: Query, rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Turnaround of a step: from the permit's previous step (its submission, for the first decision)."""
    permits = list({row["permit"] for row in rows})
    history: dict[UUID, list[tuple[dt.datetime, UUID]]] = defaultdict(list)
    for step in await PermitStep.select(PermitStep.permit, PermitStep.at, PermitStep.id).where(
        PermitStep.permit.is_in(permits)
    ):
        history[step["permit"]].append((utc(step["at"]), step["id"]))  # type: ignore[arg-type]
    for steps in history.values():
        steps.sort()
    out = []
    for row in rows:
        at = utc(row["_time"])
        earlier = [t for t, i in history[row["permit"]] if (t, i) < (at, row["_id"])]
        out.append(
            (
                str(row["_id"]),
                str(row["permit"]),
                at,
                row["type_code"],
                row["tower"],
                row["unit_label"],
                row["action"],
                row["step_label"] or ("submission" if row["action"] in ("submitted", "resubmitted") else ""),
                row["permit_status"],
                minutes(earlier[-1], at) if earlier else None,
            )
        )
    return out


PERMITS = register(
    Report(
        name="permits",
        title="Permits: turnaround per step",
        description=(
            "One row per step taken on a permit in the period (submitted, approved at a step, rejected, sent "
            "back...), with the minutes since the permit's previous step: the turnaround of that step."
        ),
        columns=(
            Column("id", T, width=38),
            Column("permit", T, width=38),
            Column("at", TIME),
            Column("type", T),
            Column("tower", T),
            Column("unit", T),
            Column("action", T),
            Column("step", T, width=24),
            Column("permit_status", T),
            Column("turnaround_minutes", INT),
        ),
        roles=frozenset({Role.OCCUPANT, *MANAGERS}),
        source=Source(
            table=PermitStep,
            time=PermitStep.at,
            select=(
                PermitStep.permit,
                PermitStep.permit.permit_type.code.as_alias("type_code"),  # type: ignore[union-attr]
                PermitStep.permit.unit.building.code.as_alias("tower"),  # type: ignore[union-attr]
                PermitStep.permit.unit.label.as_alias("unit_label"),  # type: ignore[union-attr]
                PermitStep.action,
                PermitStep.step_label,
                PermitStep.permit.status.as_alias("permit_status"),
            ),
            shape=_step_rows,
            unit=PermitStep.permit.unit,
            tower=PermitStep.permit.unit.building.code,  # type: ignore[union-attr]
            category=PermitStep.permit.permit_type.code,  # type: ignore[union-attr]
            status=PermitStep.action,
            person=PermitStep.actor,
        ),
        filters=frozenset({Filter.TOWER, Filter.CATEGORY, Filter.STATUS, Filter.PERSON}),
        filter_notes={
            Filter.CATEGORY: "permit type code",
            Filter.STATUS: "the step's action",
            Filter.PERSON: "who took the step",
        },
        group_by=("step", "type", "action", "tower"),
        measures=(
            Measure("steps", "count"),
            Measure("turnaround_p50_minutes", "p50", "turnaround_minutes"),
            Measure("turnaround_p90_minutes", "p90", "turnaround_minutes"),
            Measure("turnaround_average_minutes", "avg", "turnaround_minutes", type=DEC),
        ),
        default_by="step",
    )
)


# ------------------------------------------------------------------------------ AMC


async def _amc_rows(query: Query, rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    today = query.now.date()
    out = []
    for row in rows:
        due = row["_time"]
        grace = dt.timedelta(days=row["grace_days"] or 0)
        done = row["status"] == "done"
        on_time = done and row["completed_on"] is not None and row["completed_on"] <= due + grace
        overdue = row["status"] == "scheduled" and today > due + grace
        ends = row["contract_ends_on"]
        out.append(
            (
                str(row["_id"]),
                due,
                row["asset_code"],
                row["asset_kind"],
                row["tower"],
                row["vendor"],
                row["status"],
                row["completed_on"],
                on_time,
                overdue,
                ends,
                0 <= (ends - today).days <= EXPIRING_DAYS and row["contract_status"] == "active",
            )
        )
    return out


EXPIRING_DAYS: Final = 30

AMC = register(
    Report(
        name="amc",
        title="AMC: service visits and contracts",
        description=(
            "One row per service visit due in the period: done on time (within the contract's grace days), "
            "overdue (still scheduled past its grace), and whether its contract (active) ends within "
            f"{EXPIRING_DAYS} days of today."
        ),
        columns=(
            Column("id", T, width=38),
            Column("due_on", DATE),
            Column("asset", T),
            Column("category", T),
            Column("tower", T),
            Column("vendor", T, width=24),
            Column("status", T),
            Column("completed_on", DATE),
            Column("on_time", BOOL),
            Column("overdue", BOOL),
            Column("contract_ends_on", DATE),
            Column("contract_expiring", BOOL),
        ),
        roles=frozenset({Role.TECHNICIAN, *MANAGERS}),
        source=Source(
            table=ServiceVisit,
            time=ServiceVisit.due_on,
            select=(
                ServiceVisit.asset.code.as_alias("asset_code"),
                ServiceVisit.asset.kind.as_alias("asset_kind"),
                ServiceVisit.asset.building.code.as_alias("tower"),  # type: ignore[union-attr]
                ServiceVisit.contract.vendor.as_alias("vendor"),
                ServiceVisit.contract.sla_visit_grace_days.as_alias("grace_days"),
                ServiceVisit.contract.ends_on.as_alias("contract_ends_on"),
                ServiceVisit.contract.status.as_alias("contract_status"),
                ServiceVisit.status,
                ServiceVisit.completed_on,
            ),
            shape=_amc_rows,
            own_work=ServiceVisit.completed_by,
            tower=ServiceVisit.asset.building.code,  # type: ignore[union-attr]
            category=ServiceVisit.asset.kind,
            status=ServiceVisit.status,
            person=ServiceVisit.completed_by,
        ),
        filters=frozenset({Filter.TOWER, Filter.CATEGORY, Filter.STATUS, Filter.PERSON}),
        filter_notes={
            Filter.CATEGORY: "asset kind (lift, dg_set, pump, ...)",
            Filter.PERSON: "who completed the visit",
        },
        group_by=("category", "vendor", "asset", "status", "tower"),
        measures=(
            Measure("visits", "count"),
            Measure("done", "count_eq", "status", values=("done",)),
            Measure("on_time", "count_true", "on_time"),
            Measure("overdue", "count_true", "overdue"),
            Measure("contract_expiring", "count_true", "contract_expiring"),
        ),
        default_by="category",
    )
)

# ------------------------------------------------------------------------------ attendance


async def _attendance(query: Query) -> AsyncIterator[list[tuple[Any, ...]]]:
    """One row per duty (staff member, day, shift) in the period, judged as the monthly sheet judges it."""
    from app.attendance import config as cfg
    from app.attendance.duties import arrival, duties_on, state_of

    scope = query.scope
    condition: Any = StaffMember.id.is_not_null()
    if scope.site_id is not None:
        condition &= StaffMember.site == scope.site_id
    if scope.kind is ScopeKind.OWN_WORK:
        condition &= StaffMember.person == scope.person_id
    elif scope.kind is ScopeKind.OWN_UNITS:
        return
    if query.category is not None:
        condition &= StaffMember.category == query.category
    if query.person is not None:
        condition &= StaffMember.person == query.person
    staff = await StaffMember.select().where(condition).order_by(StaffMember.name).order_by(StaffMember.id)
    today = query.now.date()
    first = query.date_from or today.replace(day=1)
    last = query.date_to or today
    for start in range(0, len(staff), 50):
        members = staff[start : start + 50]
        slots = await cfg.weekly_slots(members)
        batch: list[tuple[Any, ...]] = []
        for member in members:
            zone = await zone_of(member["site"])
            config = await cfg.load(member["site"])
            since = dt.datetime.combine(first, dt.time(), tzinfo=zone) - dt.timedelta(days=1)
            until = dt.datetime.combine(last + dt.timedelta(days=2), dt.time(), tzinfo=zone)
            ins = [
                utc(p["at"])
                for p in await Punch.select(Punch.at).where(
                    (Punch.staff == member["id"])
                    & (Punch.kind == "in")
                    & Punch.voided_at.is_null()
                    & (Punch.at >= since)
                    & (Punch.at < until)
                )
            ]
            day = first
            while day <= last:
                for duty in duties_on(member["id"], slots[member["id"]], day, zone):
                    state, late = state_of(duty, arrival(duty, ins), query.now, config)  # type: ignore[arg-type]
                    if query.status is not None and state != query.status:
                        continue
                    batch.append(
                        (day, member["name"], member["category"], duty.name, f"{duty.start}-{duty.end}", state, late)
                    )
                day += dt.timedelta(days=1)
        if batch:
            yield batch


ATTENDANCE = register(
    Report(
        name="attendance",
        title="Staff attendance",
        description=(
            "One row per duty (staff member, day, shift) in the period, default the month so far: present, "
            "late (with minutes), absent, or not yet judged (upcoming, due, not_arrived), as the monthly sheet "
            "judges it. Days are the site's calendar days."
        ),
        columns=(
            Column("day", DATE),
            Column("person", T, width=24),
            Column("category", T),
            Column("shift", T),
            Column("hours", T),
            Column("status", T),
            Column("late_minutes", INT),
        ),
        roles=frozenset({Role.TECHNICIAN, Role.GUARD, *MANAGERS}),
        produce=_attendance,
        filters=frozenset({Filter.CATEGORY, Filter.STATUS, Filter.PERSON}),
        filter_notes={Filter.CATEGORY: "staff category", Filter.PERSON: "the staff member's account"},
        group_by=("person", "shift", "category", "status", "day"),
        measures=(
            Measure("duties", "count"),
            Measure("present", "count_eq", "status", values=("present",)),
            Measure("late", "count_eq", "status", values=("late",)),
            Measure("absent", "count_eq", "status", values=("absent",)),
            Measure("late_minutes", "sum", "late_minutes"),
        ),
        default_by="person",
    )
)
