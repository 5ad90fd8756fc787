"""Answering a walk-in request: the first answer wins, everyone sees the decision at once."""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import Any, Literal
from uuid import UUID

import msgspec

from app.auth.principal import Principal
from app.auth.roles import STAFF, Role
from app.errors import Conflict, Forbidden, InvalidInput, NotFound
from app.pagination import Page, page_of
from app.visitors.common import VisitorDeps, is_occupant, now_utc, person_names, publish_all, unit_labels
from realtime.topics import site_topic, unit_topic
from schema import visitors_events as ev
from schema.tables import Occupancy
from schema.visitors import Visit, VisitorApproval, VisitorApprovalStep

Decision = Literal["approved", "denied", "leave_at_gate"]
Via = Literal["app", "link", "voice", "guard"]
DECIDED_STEP = 1000  # the step number recording the decision itself
# How long an answered request stays on the occupants' home screen (so a late look shows who answered).
RECENT_FOR_OCCUPANTS = dt.timedelta(hours=2)


class AnswerInput(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # Optional in the schema so that a request for another site's approval is a 404 whatever its body;
    # a missing decision is then a 422 naming the field.
    decision: Decision | None = None


class StepView(msgspec.Struct, frozen=True, kw_only=True):
    step: int
    action: str
    at: dt.datetime
    detail: dict[str, Any]


class ApprovalView(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    visit_id: UUID
    unit_id: UUID
    unit_label: str
    visitor_name: str
    kind: str
    purpose: str | None
    has_photo: bool
    status: str
    requested_at: dt.datetime
    decided_at: dt.datetime | None
    decided_by: UUID | None
    decided_via: str | None
    time_to_decision_ms: int | None
    steps: list[StepView]
    decided_by_name: str | None = None  # who answered, for the unit's other occupants and the gate


async def _approval(site_id: UUID, approval_id: UUID) -> dict[str, Any]:
    row = (
        await VisitorApproval.select()
        .where((VisitorApproval.site == site_id) & (VisitorApproval.id == approval_id))
        .first()
    )
    if row is None:
        raise NotFound("approval request not found")
    return row


async def may_see(principal: Principal, unit_id: UUID) -> None:
    if principal.has_any(STAFF | {Role.GUARD}):
        return
    if Role.OCCUPANT in principal.roles and await is_occupant(principal.site_id, unit_id, principal.person_id):
        return
    raise Forbidden("only the unit's occupants, guards and staff may see or answer this request")


async def view(site_id: UUID, approval_id: UUID) -> ApprovalView:
    from schema.jsonvalue import as_dict

    row = await _approval(site_id, approval_id)
    visit = await Visit.select().where(Visit.id == row["visit"]).first()
    assert visit is not None
    steps = (
        await VisitorApprovalStep.select()
        .where(VisitorApprovalStep.approval == approval_id)
        .order_by(VisitorApprovalStep.step)
    )
    labels = await unit_labels(site_id, [row["unit"]])
    names = await person_names(site_id, [row["decided_by"]] if row["decided_by"] else [])
    return ApprovalView(
        id=row["id"],
        visit_id=row["visit"],
        unit_id=row["unit"],
        unit_label=labels.get(row["unit"], ""),
        visitor_name=visit["name"],
        kind=visit["kind"],
        purpose=visit["purpose"],
        has_photo=visit["photo_key"] is not None,
        status=row["status"],
        requested_at=row["requested_at"],
        decided_at=row["decided_at"],
        decided_by=row["decided_by"],
        decided_via=row["decided_via"],
        time_to_decision_ms=row["time_to_decision_ms"],
        steps=[StepView(step=s["step"], action=s["action"], at=s["at"], detail=as_dict(s["detail"])) for s in steps],
        decided_by_name=names.get(row["decided_by"]) if row["decided_by"] else None,
    )


async def answer(
    deps: VisitorDeps,
    site_id: UUID,
    approval_id: UUID,
    decision: Decision,
    *,
    person_id: UUID | None,
    via: Via,
    now: dt.datetime | None = None,
    known: dict[str, Any] | None = None,
) -> ApprovalView:
    """Apply the first answer; any later one is a 409 carrying the decision that won.

    Only the winning conditional UPDATE runs before the decision is published: the guard is waiting."""
    now = now or now_utc()
    row = known if known is not None else await _approval(site_id, approval_id)
    elapsed_ms = max(0, int((now - row["requested_at"]).total_seconds() * 1000))
    won = (
        await VisitorApproval.update(
            {
                VisitorApproval.status: decision,
                VisitorApproval.decided_by: person_id,
                VisitorApproval.decided_via: via,
                VisitorApproval.decided_at: now,
                VisitorApproval.time_to_decision_ms: elapsed_ms,
                VisitorApproval.next_step_at: None,
            }
        )
        .where((VisitorApproval.id == approval_id) & (VisitorApproval.status == "pending"))
        .returning(VisitorApproval.id)
    )
    if not won:
        current = await _approval(site_id, approval_id)
        raise Conflict(
            f"already answered: {current['status']}",
            extra={
                "decision": current["status"],
                "decided_at": current["decided_at"].isoformat() if current["decided_at"] else None,
                "decided_via": current["decided_via"],
                "decided_by": str(current["decided_by"]) if current["decided_by"] else None,
            },
        )
    event = ev.ApprovalResolved(
        approval_id=approval_id,
        visit_id=row["visit"],
        unit_id=row["unit"],
        decision=decision,
        decided_by=person_id,
        decided_via=via,
        decided_at=now,
        time_to_decision_ms=elapsed_ms,
    )
    # The guard's console first (it is the one waiting), then the unit, then the control room.
    topics = [site_topic(site_id, "gate"), unit_topic(row["unit"]), site_topic(site_id, "control")]
    await publish_all(deps, topics, ev.APPROVAL_RESOLVED, event)
    await Visit.update({Visit.status: decision}).where((Visit.id == row["visit"]) & (Visit.status == "pending"))
    with contextlib.suppress(Exception):  # the unique index: recorded already
        await VisitorApprovalStep(
            site=site_id,
            approval=approval_id,
            step=DECIDED_STEP,
            action="decided",
            at=now,
            detail={"decision": decision, "via": via, "by": str(person_id) if person_id else None},
        ).save()
    return await view(site_id, approval_id)


async def answer_as(
    deps: VisitorDeps,
    principal: Principal,
    approval_id: UUID,
    decision: Decision | None,
    now: dt.datetime | None = None,
) -> ApprovalView:
    row = await _approval(principal.site_id, approval_id)
    is_unit_occupant = Role.OCCUPANT in principal.roles and await is_occupant(
        principal.site_id, row["unit"], principal.person_id
    )
    if not is_unit_occupant:
        await may_see(principal, row["unit"])
    if decision is None:
        raise InvalidInput.for_field("decision", "is required: approved, denied or leave_at_gate")
    via: Via = "app" if is_unit_occupant else "guard"
    return await answer(
        deps, principal.site_id, approval_id, decision, person_id=principal.person_id, via=via, now=now, known=row
    )


async def pending(site_id: UUID, limit: int = 200, offset: int = 0) -> Page[ApprovalView]:
    where = (VisitorApproval.site == site_id) & (VisitorApproval.status == "pending")
    total = await VisitorApproval.count().where(where)
    rows = (
        await VisitorApproval.select(VisitorApproval.id)
        .where(where)
        .order_by(VisitorApproval.requested_at)
        .order_by(VisitorApproval.id)
        .limit(limit)
        .offset(offset)
    )
    return page_of([await view(site_id, r["id"]) for r in rows], total=total, limit=limit, offset=offset)


async def for_my_units(
    principal: Principal, now: dt.datetime | None = None, limit: int = 50, offset: int = 0
) -> Page[ApprovalView]:
    """An occupant's visitor requests of the last two hours across their units, waiting or answered:
    what the app shows when it opens (live events keep it current after that). Newest first."""
    now = now or now_utc()
    units = await Occupancy.select(Occupancy.unit).where(
        (Occupancy.site == principal.site_id)
        & (Occupancy.person == principal.person_id)
        & (Occupancy.is_active.eq(True))
    )
    unit_ids = [row["unit"] for row in units]
    if not unit_ids:
        return page_of([], total=0, limit=limit, offset=offset)
    where = (
        (VisitorApproval.site == principal.site_id)
        & VisitorApproval.unit.is_in(unit_ids)
        & (
            (VisitorApproval.requested_at >= now - RECENT_FOR_OCCUPANTS)
            | (VisitorApproval.decided_at >= now - RECENT_FOR_OCCUPANTS)
        )
    )
    total = await VisitorApproval.count().where(where)
    rows = (
        await VisitorApproval.select(VisitorApproval.id)
        .where(where)
        .order_by(VisitorApproval.requested_at, ascending=False)
        .order_by(VisitorApproval.id)
        .limit(limit)
        .offset(offset)
    )
    return page_of([await view(principal.site_id, r["id"]) for r in rows], total=total, limit=limit, offset=offset)
