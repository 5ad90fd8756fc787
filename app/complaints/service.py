"""Complaints: raise, move through the lifecycle, assign, converse, rate; with versioned updates.

Every state change is ``UPDATE complaint ... WHERE id = ? AND version = ?`` plus one
``complaint_transition`` row, in one transaction; a change that finds the version moved on
is refused with 409 and the complaint's current state, so concurrent changes never
overwrite each other and the history has exactly the changes that happened.
Publishing and notifying happen after the commit (see ``app.complaints.notify``).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from piccolo.columns import Column
from piccolo.columns.combination import Or, Where
from redis.asyncio import Redis

from app.auth.principal import Principal
from app.auth.roles import STAFF, Role
from app.complaints import assignment, notify
from app.complaints.lifecycle import DONE, LOAD, Actor, Status, allowed_moves, may_move
from app.complaints.sla import PRIORITY_RANK, Priority, SiteRules, breach, now_utc, site_rules, sla_state, windows_for
from app.config import Settings
from app.db import write_transaction
from app.errors import Conflict, FieldSource, Forbidden, InvalidInput, NotFound
from app.pagination import Count, Page, page_of
from app.text import MULTI_LINE, ONE_LINE
from app.uploads import StoredUpload, delete_upload, read_upload, save_image
from realtime.topics import register_checker
from schema.complaints import (
    Complaint,
    ComplaintCategory,
    ComplaintComment,
    ComplaintPhoto,
    ComplaintTransition,
)
from schema.complaints_events import (
    COMPLAINT_ASSIGNED,
    COMPLAINT_COMMENTED,
    COMPLAINT_NOTE_ADDED,
    COMPLAINT_RAISED,
    COMPLAINT_RATED,
    COMPLAINT_STATUS_CHANGED,
    ComplaintCommented,
    ComplaintNoteAdded,
    ComplaintRated,
)
from schema.jsonvalue import as_list
from schema.tables import Occupancy, Person, Unit

Description = Annotated[str, msgspec.Meta(min_length=3, max_length=4000), MULTI_LINE]
Note = Annotated[str, msgspec.Meta(max_length=2000), MULTI_LINE]
Code = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Location = Annotated[str, msgspec.Meta(min_length=1, max_length=200), ONE_LINE]
CommentBody = Annotated[str, msgspec.Meta(min_length=1, max_length=4000), MULTI_LINE]
Stage = Literal["before", "after"]


# ------------------------------------------------------------------------------ shapes


class NewComplaint(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Occupants: ``unit_id`` of a unit they occupy. Guards: a common ``location``, no unit.
    Staff: ``on_behalf_of`` an occupant with their ``unit_id``, or ``work_order=True`` (internal,
    staff-only) with a ``location`` or unit."""

    category: Code
    description: Description
    subcategory: Code | None = None
    priority: Priority = Priority.NORMAL
    unit_id: UUID | None = None
    location: Location | None = None
    on_behalf_of: UUID | None = None
    work_order: bool = False
    # What it is about, when raised from a QR code: an AMC asset and/or a place (QR mapping). Either one
    # stands for the unit an occupant would otherwise name, and gives the location when none is sent.
    asset_id: UUID | None = None
    place_id: UUID | None = None


# Bodies of routes on one complaint have no required members, so that a complaint the caller
# cannot see is a 404 whatever the body; required values are checked after the lookup.


class StatusChange(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    to: Status | None = None  # required
    note: Note | None = None
    version: Count | None = None  # the version the caller saw; a newer one means 409


class AssignInput(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    technician_id: UUID | None = None  # None: choose automatically (skill, shift, load)
    note: Note | None = None
    version: Count | None = None


class NewComment(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    body: CommentBody | None = None  # required
    internal: bool = False


class RatingInput(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    rating: Annotated[int, msgspec.Meta(ge=1, le=5)] | None = None  # required
    feedback: Annotated[str, msgspec.Meta(max_length=2000), MULTI_LINE] | None = None


class TransitionView(msgspec.Struct, frozen=True, kw_only=True):
    from_status: str | None
    to_status: str
    version: int
    actor_id: UUID | None
    actor_name: str | None
    assignee_id: UUID | None
    note: str | None
    at: dt.datetime


class PhotoView(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    stage: str
    media_type: str
    size: int
    uploaded_by: UUID | None
    at: dt.datetime


class CommentView(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    author_id: UUID | None
    author_name: str | None
    internal: bool
    body: str
    at: dt.datetime


class ComplaintView(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    kind: str
    category: str
    subcategory: str | None
    unit_id: UUID | None
    unit_label: str | None
    location: str | None
    description: str
    priority: str
    status: str
    version: int
    raised_by: UUID | None
    raised_for: UUID | None
    assignee_id: UUID | None
    assignee_name: str | None
    visibility: str
    sla_state: str
    response_due_at: dt.datetime
    resolution_due_at: dt.datetime
    responded_at: dt.datetime | None
    resolved_at: dt.datetime | None
    closed_at: dt.datetime | None
    escalation_level: int
    rating: int | None
    feedback: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    allowed_moves: list[str]  # what the caller may move it to now
    asset_id: UUID | None = None  # the AMC asset it is about
    place_id: UUID | None = None  # the place (QR code) it was raised from


class ComplaintDetail(msgspec.Struct, frozen=True, kw_only=True):
    complaint: ComplaintView
    transitions: list[TransitionView]
    photos: list[PhotoView]


class ComplaintPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[ComplaintView]
    total: int
    limit: int
    offset: int


# ------------------------------------------------------------------------------ who is who


def actors_of(principal: Principal, row: dict[str, Any]) -> frozenset[Actor]:
    actors: set[Actor] = set()
    if principal.site_id != row["site"]:
        return frozenset()
    if principal.person_id in (row["raised_by"], row["raised_for"]):
        actors.add(Actor.RAISER)
    if Role.TECHNICIAN in principal.roles and principal.person_id == row["assignee"]:
        actors.add(Actor.ASSIGNEE)
    if principal.has_any(STAFF):
        actors.add(Actor.STAFF)
    return frozenset(actors)


def sees_internal(principal: Principal, row: dict[str, Any]) -> bool:
    """Internal notes: staff of the site and the assigned technician; never occupants or guards."""
    return bool(actors_of(principal, row) & {Actor.STAFF, Actor.ASSIGNEE})


async def active_units(principal: Principal) -> list[UUID]:
    if Role.OCCUPANT not in principal.roles:
        return []
    rows = await Occupancy.select(Occupancy.unit).where(
        (Occupancy.person == principal.person_id)
        & (Occupancy.site == principal.site_id)
        & (Occupancy.is_active.eq(True))
    )
    return [row["unit"] for row in rows]


async def visibility_clause(principal: Principal) -> Where | Or | None:
    """Which of the site's complaints the caller may see; None: none at all."""
    if principal.has_any(STAFF):
        return Complaint.site == principal.site_id
    clauses: list[Any] = []
    if principal.has_any(frozenset({Role.OCCUPANT, Role.GUARD})):
        clauses += [Complaint.raised_by == principal.person_id, Complaint.raised_for == principal.person_id]
    if Role.TECHNICIAN in principal.roles:
        clauses.append(Complaint.assignee == principal.person_id)
    units = await active_units(principal)
    if units:
        clauses.append(Complaint.unit.is_in(units) & (Complaint.visibility == "raiser"))
    if not clauses:
        return None
    combined = clauses[0]
    for clause in clauses[1:]:
        combined = combined | clause
    return combined


async def may_see(principal: Principal, row: dict[str, Any]) -> bool:
    if row["site"] != principal.site_id:
        return False
    if principal.has_any(STAFF):
        return True
    if principal.person_id in (row["raised_by"], row["raised_for"]) and principal.has_any(
        frozenset({Role.OCCUPANT, Role.GUARD})
    ):
        return True
    if Role.TECHNICIAN in principal.roles and principal.person_id == row["assignee"]:
        return True
    return row["unit"] is not None and row["visibility"] == "raiser" and row["unit"] in await active_units(principal)


async def load_visible(principal: Principal, complaint_id: UUID) -> dict[str, Any]:
    row = await Complaint.select().where((Complaint.id == complaint_id) & (Complaint.site == principal.site_id)).first()
    if row is None or not await may_see(principal, row):
        raise NotFound("complaint not found")
    return row


async def may_watch_complaint(principal: Principal, complaint_id: UUID) -> bool:
    """Realtime check for ``complaint:{id}``: staff of its site, the raiser, the unit's
    occupants (not for internal work orders), the assigned technician. Nobody crosses sites."""
    row = await Complaint.select().where(Complaint.id == complaint_id).first()
    return row is not None and await may_see(principal, row)


register_checker("complaint", may_watch_complaint)


# ------------------------------------------------------------------------------ views


async def _names(ids: set[UUID | None]) -> dict[UUID, str]:
    wanted = [i for i in ids if i is not None]
    if not wanted:
        return {}
    rows = await Person.select(Person.id, Person.full_name).where(Person.id.is_in(wanted))
    return {row["id"]: row["full_name"] for row in rows}


async def views(
    principal: Principal, rows: list[dict[str, Any]], now: dt.datetime, rules: SiteRules | None = None
) -> list[ComplaintView]:
    if not rows:
        return []
    rules = rules or await site_rules(principal.site_id)
    names = await _names({row["assignee"] for row in rows})
    category_ids = list({row["category"] for row in rows})
    categories = {
        row["id"]: row["code"]
        for row in await ComplaintCategory.select(ComplaintCategory.id, ComplaintCategory.code).where(
            ComplaintCategory.id.is_in(category_ids)
        )
    }
    unit_ids = list({row["unit"] for row in rows if row["unit"] is not None})
    labels = (
        {row["id"]: row["label"] for row in await Unit.select(Unit.id, Unit.label).where(Unit.id.is_in(unit_ids))}
        if unit_ids
        else {}
    )
    result = []
    for row in rows:
        status = Status(row["status"])
        result.append(
            ComplaintView(
                id=row["id"],
                kind=row["kind"],
                category=categories.get(row["category"], ""),
                subcategory=row["subcategory"],
                unit_id=row["unit"],
                unit_label=labels.get(row["unit"]) if row["unit"] else None,
                location=row["location"],
                description=row["description"],
                priority=row["priority"],
                status=row["status"],
                version=row["version"],
                raised_by=row["raised_by"],
                raised_for=row["raised_for"],
                assignee_id=row["assignee"],
                assignee_name=names.get(row["assignee"]) if row["assignee"] else None,
                visibility=row["visibility"],
                sla_state=str(sla_state(row, now, rules.at_risk_percent)),
                response_due_at=row["response_due_at"],
                resolution_due_at=row["resolution_due_at"],
                responded_at=row["responded_at"],
                resolved_at=row["resolved_at"],
                closed_at=row["closed_at"],
                escalation_level=row["escalation_level"],
                rating=row["rating"],
                feedback=row["feedback"],
                created_at=row["created_at"],
                updated_at=row["updated_at"],
                allowed_moves=[str(s) for s in allowed_moves(status, actors_of(principal, row))],
                asset_id=row.get("asset"),
                place_id=row.get("place"),
            )
        )
    return result


async def view(principal: Principal, row: dict[str, Any], now: dt.datetime) -> ComplaintView:
    return (await views(principal, [row], now))[0]


async def get_complaint(principal: Principal, complaint_id: UUID, now: dt.datetime | None = None) -> ComplaintDetail:
    now = now or now_utc()
    row = await load_visible(principal, complaint_id)
    transitions = (
        await ComplaintTransition.select()
        .where(ComplaintTransition.complaint == complaint_id)
        .order_by(ComplaintTransition.version)
        .order_by(ComplaintTransition.created_at)
    )
    names = await _names({t["actor"] for t in transitions})
    photos = (
        await ComplaintPhoto.select()
        .where(ComplaintPhoto.complaint == complaint_id)
        .order_by(ComplaintPhoto.created_at)
    )
    return ComplaintDetail(
        complaint=await view(principal, row, now),
        transitions=[
            TransitionView(
                from_status=t["from_status"],
                to_status=t["to_status"],
                version=t["version"],
                actor_id=t["actor"],
                actor_name=names.get(t["actor"]) if t["actor"] else None,
                assignee_id=t["assignee"],
                note=t["note"],
                at=t["created_at"],
            )
            for t in transitions
        ],
        photos=[
            PhotoView(
                id=p["id"],
                stage=p["stage"],
                media_type=p["media_type"],
                size=p["size"],
                uploaded_by=p["uploaded_by"],
                at=p["created_at"],
            )
            for p in photos
        ],
    )


async def list_complaints(
    principal: Principal,
    *,
    status: Status | None = None,
    category: str | None = None,
    unit_id: UUID | None = None,
    limit: int = 50,
    offset: int = 0,
    now: dt.datetime | None = None,
) -> ComplaintPage:
    now = now or now_utc()
    clause = await visibility_clause(principal)
    if clause is None:
        return ComplaintPage(items=[], total=0, limit=limit, offset=offset)
    where: Any = (Complaint.site == principal.site_id) & clause
    if status is not None:
        where = where & (Complaint.status == str(status))
    if unit_id is not None:
        where = where & (Complaint.unit == unit_id)
    if category is not None:
        category_row = await _category(principal.site_id, category, "category", source="query")
        where = where & (Complaint.category == category_row["id"])
    total = await Complaint.count().where(where)
    rows = (
        await Complaint.select()
        .where(where)
        .order_by(Complaint.created_at, ascending=False)
        .order_by(Complaint.id)
        .limit(limit)
        .offset(offset)
    )
    return ComplaintPage(items=await views(principal, rows, now), total=total, limit=limit, offset=offset)


async def technician_queue(principal: Principal, now: dt.datetime | None = None) -> list[ComplaintView]:
    """The caller's open jobs: most urgent priority first, then the nearest pending deadline."""
    now = now or now_utc()
    rows = await Complaint.select().where(
        (Complaint.site == principal.site_id)
        & (Complaint.assignee == principal.person_id)
        & Complaint.status.is_in([str(s) for s in LOAD])
    )
    rows.sort(key=lambda r: (PRIORITY_RANK[Priority(r["priority"])], breach(r)[0], str(r["id"])))
    return await views(principal, rows, now)


# ------------------------------------------------------------------------------ raising


async def _category(site_id: UUID, code: str, field: str, source: FieldSource = "body") -> dict[str, Any]:
    row = (
        await ComplaintCategory.select()
        .where((ComplaintCategory.site == site_id) & (ComplaintCategory.code == code))
        .first()
    )
    if row is None or not row["is_active"]:
        raise InvalidInput.for_field(field, f"no active category {code!r} on this site", source=source)
    return row


async def _has_occupancy(site_id: UUID, person_id: UUID, unit_id: UUID) -> bool:
    return await Occupancy.exists().where(
        (Occupancy.site == site_id)
        & (Occupancy.person == person_id)
        & (Occupancy.unit == unit_id)
        & (Occupancy.is_active.eq(True))
    )


async def _check_raise(principal: Principal, data: NewComplaint) -> tuple[UUID | None, str]:
    """Validates who raises what; returns (raised_for, visibility)."""
    site = principal.site_id
    if data.unit_id is not None and not await Unit.exists().where((Unit.id == data.unit_id) & (Unit.site == site)):
        raise InvalidInput.for_field("unit_id", "no such unit on this site")
    staff = principal.has_any(STAFF)
    if data.work_order:
        if not staff:
            raise InvalidInput.for_field("work_order", "only FM staff open internal work orders")
        if data.on_behalf_of is not None:
            raise InvalidInput.for_field("on_behalf_of", "a work order is not raised for an occupant")
        if data.unit_id is None and data.location is None:
            raise InvalidInput.for_field("location", "say where the work is (a location or a unit)")
        return None, "staff"
    if data.on_behalf_of is not None:
        if not staff:
            raise InvalidInput.for_field("on_behalf_of", "only FM staff raise complaints for someone else")
        if data.unit_id is None:
            raise InvalidInput.for_field("unit_id", "is required when raising for an occupant")
        if not await _has_occupancy(site, data.on_behalf_of, data.unit_id):
            raise InvalidInput.for_field("on_behalf_of", "has no active occupancy of that unit")
        return data.on_behalf_of, "raiser"
    if Role.OCCUPANT in principal.roles and data.unit_id is not None:
        if not await _has_occupancy(site, principal.person_id, data.unit_id):
            raise InvalidInput.for_field("unit_id", "you have no active occupancy of that unit")
        return None, "raiser"
    if Role.GUARD in principal.roles and data.unit_id is None:
        if data.location is None:
            raise InvalidInput.for_field("location", "name the common area")
        return None, "raiser"
    if Role.OCCUPANT in principal.roles and (data.asset_id is not None or data.place_id is not None):
        return None, "raiser"  # about a common asset or place (from its QR code): no unit needed
    if Role.OCCUPANT in principal.roles:
        raise InvalidInput.for_field("unit_id", "is required: the unit you occupy")
    if Role.GUARD in principal.roles:
        raise InvalidInput.for_field("unit_id", "guards raise complaints for common areas only")
    raise InvalidInput.for_field("on_behalf_of", "staff raise for an occupant (with unit_id) or open a work_order")


async def about_subject(site_id: UUID, data: NewComplaint) -> NewComplaint:
    """Check the asset and place a complaint names; fill in the asset of a place and, when no location was
    sent, the place's (or asset's) name as the location."""
    from schema.amc import Asset
    from schema.places import Place

    if data.asset_id is None and data.place_id is None:
        return data
    asset_id, location = data.asset_id, data.location
    if data.place_id is not None:
        place = (
            await Place.select(Place.name, Place.asset, Place.is_active)
            .where((Place.site == site_id) & (Place.id == data.place_id))
            .first()
        )
        if place is None or not place["is_active"]:
            raise InvalidInput.for_field("place_id", "no such place in use on this site")
        if asset_id is not None and place["asset"] not in (None, asset_id):
            raise InvalidInput.for_field("asset_id", "is not the asset of that place")
        asset_id = asset_id or place["asset"]
        location = location or place["name"][:200]
    if asset_id is not None:
        asset = await Asset.select(Asset.name).where((Asset.site == site_id) & (Asset.id == asset_id)).first()
        if asset is None:
            raise InvalidInput.for_field("asset_id", "no such asset on this site")
        location = location or asset["name"][:200]
    return msgspec.structs.replace(data, asset_id=asset_id, location=location)


async def raise_complaint(
    settings: Settings, redis: Redis, principal: Principal, data: NewComplaint, now: dt.datetime | None = None
) -> ComplaintView:
    now = now or now_utc()
    category = await _category(principal.site_id, data.category, "category")
    subcategories = [str(s) for s in as_list(category["subcategories"])]
    if data.subcategory is not None and subcategories and data.subcategory not in subcategories:
        raise InvalidInput.for_field("subcategory", f"must be one of {', '.join(subcategories)}")
    data = await about_subject(principal.site_id, data)
    raised_for, visibility = await _check_raise(principal, data)
    response_minutes, resolution_minutes = await windows_for(principal.site_id, category["id"], data.priority)
    complaint = Complaint(
        site=principal.site_id,
        kind="work_order" if data.work_order else "complaint",
        category=category["id"],
        subcategory=data.subcategory,
        unit=data.unit_id,
        location=data.location,
        asset=data.asset_id,
        place=data.place_id,
        description=data.description,
        priority=str(data.priority),
        status=str(Status.OPEN),
        version=1,
        raised_by=principal.person_id,
        raised_for=raised_for,
        visibility=visibility,
        response_due_at=now + dt.timedelta(minutes=response_minutes),
        resolution_due_at=now + dt.timedelta(minutes=resolution_minutes),
        created_at=now,
        updated_at=now,
    )
    async with write_transaction():
        await complaint.save()
        await ComplaintTransition.insert(
            ComplaintTransition(
                site=principal.site_id,
                complaint=complaint.id,
                from_status=None,
                to_status=str(Status.OPEN),
                version=1,
                actor=principal.person_id,
                created_at=now,
            )
        )
    row = await _row(complaint.id)
    rules = await site_rules(principal.site_id)
    await notify.publish_everywhere(
        settings,
        redis,
        row,
        COMPLAINT_RAISED,
        await notify.changed_payload(
            row, from_status=None, by=principal.person_id, now=now, at_risk_percent=rules.at_risk_percent
        ),
    )
    technician = await assignment.choose_technician(principal.site_id, category["skill"], now)
    if technician is not None:
        row = await _move(
            settings,
            redis,
            row,
            Status.ASSIGNED,
            actor_id=None,
            actors=frozenset({Actor.SYSTEM}),
            note="assigned automatically (skill, shift, load)",
            expected_version=row["version"],
            now=now,
            changes={Complaint.assignee: technician},
        )
    return await view(principal, row, now)


async def _row(complaint_id: UUID) -> dict[str, Any]:
    row = await Complaint.select().where(Complaint.id == complaint_id).first()
    if row is None:
        raise NotFound("complaint not found")
    return row


# ------------------------------------------------------------------------------ moving


def _refusal(status: Status, target: Status, actors: frozenset[Actor], version: int, reason: str = "") -> Conflict:
    allowed = [str(s) for s in allowed_moves(status, actors)]
    detail = reason or (
        f"a complaint that is {status} cannot be moved to {target} by you; "
        f"allowed: {', '.join(allowed) if allowed else 'none'}"
    )
    return Conflict(detail, extra={"status": str(status), "version": version, "allowed": allowed})


async def _move(
    settings: Settings,
    redis: Redis,
    row: dict[str, Any],
    target: Status,
    *,
    actor_id: UUID | None,
    actors: frozenset[Actor],
    note: str | None,
    expected_version: int | None,
    now: dt.datetime,
    changes: dict[Column | str, Any] | None = None,
) -> dict[str, Any]:
    """Apply one move if it is allowed and nobody changed the complaint meanwhile; record, publish, notify."""
    status = Status(row["status"])
    if not may_move(status, target, actors):
        raise _refusal(status, target, actors, row["version"])
    version = row["version"] if expected_version is None else expected_version
    if version != row["version"]:
        raise Conflict(
            f"the complaint changed since version {version}: it is {status} at version {row['version']}",
            extra={
                "status": str(status),
                "version": row["version"],
                "allowed": [str(s) for s in allowed_moves(status, actors)],
            },
        )
    values: dict[Column | str, Any] = {
        Complaint.status: str(target),
        Complaint.version: version + 1,
        Complaint.updated_at: now,
        **(changes or {}),
    }
    if target is Status.IN_PROGRESS and row["responded_at"] is None:
        values[Complaint.responded_at] = now
    if target is Status.RESOLVED:
        values[Complaint.resolved_at] = now
    if target is Status.CLOSED:
        values[Complaint.closed_at] = now
    if target is Status.REOPENED:
        values[Complaint.resolved_at] = None
    async with write_transaction():
        updated = (
            await Complaint.update(values)
            .where((Complaint.id == row["id"]) & (Complaint.version == version))
            .returning(Complaint.id)
        )
        if not updated:
            current = (
                await Complaint.select(Complaint.status, Complaint.version).where(Complaint.id == row["id"]).first()
            )
            now_status = Status(current["status"]) if current else status
            raise Conflict(
                f"someone else changed this complaint first: it is now {now_status}"
                f" at version {current['version'] if current else '?'}",
                extra={
                    "status": str(now_status),
                    "version": current["version"] if current else None,
                    "allowed": [str(s) for s in allowed_moves(now_status, actors)],
                },
            )
        new_assignee = values.get(Complaint.assignee, row["assignee"])
        await ComplaintTransition.insert(
            ComplaintTransition(
                site=row["site"],
                complaint=row["id"],
                from_status=str(status),
                to_status=str(target),
                version=version + 1,
                actor=actor_id,
                assignee=new_assignee,
                note=note,
                created_at=now,
            )
        )
    fresh = await _row(row["id"])
    rules = await site_rules(row["site"])
    reassigned = fresh["assignee"] != row["assignee"]
    payload = await notify.changed_payload(
        fresh, from_status=str(status), by=actor_id, now=now, at_risk_percent=rules.at_risk_percent
    )
    await notify.publish_everywhere(
        settings,
        redis,
        fresh,
        COMPLAINT_ASSIGNED if target is Status.ASSIGNED else COMPLAINT_STATUS_CHANGED,
        payload,
        previous_assignee=row["assignee"] if reassigned else None,
    )
    if target is not status:
        await notify.status_to_raiser(fresh, actor_id, now)
    if target is Status.ASSIGNED:
        await notify.assignment_to_technician(fresh, now)
    return fresh


async def change_status(
    settings: Settings,
    redis: Redis,
    principal: Principal,
    complaint_id: UUID,
    data: StatusChange,
    now: dt.datetime | None = None,
) -> ComplaintView:
    now = now or now_utc()
    row = await load_visible(principal, complaint_id)
    actors = actors_of(principal, row)
    status = Status(row["status"])
    if data.to is None:
        raise InvalidInput.for_field("to", "is required: the state to move to")
    if data.to is Status.ASSIGNED:
        raise InvalidInput.for_field("to", "assign with POST /api/complaints/{complaint_id}/assign")
    if data.to is Status.REOPENED and may_move(status, data.to, actors):
        rules = await site_rules(row["site"])
        resolved_at = row["resolved_at"]
        if resolved_at is not None:
            resolved_at = resolved_at if resolved_at.tzinfo else resolved_at.replace(tzinfo=dt.UTC)
        if resolved_at is None or now - resolved_at > dt.timedelta(hours=rules.reopen_window_hours):
            raise _refusal(
                status,
                data.to,
                actors - {Actor.RAISER, Actor.STAFF},
                row["version"],
                f"the reopen window ({rules.reopen_window_hours} h after resolution) has passed; "
                "close it or raise a new one",
            )
    fresh = await _move(
        settings,
        redis,
        row,
        data.to,
        actor_id=principal.person_id,
        actors=actors,
        note=data.note,
        expected_version=data.version,
        now=now,
    )
    return await view(principal, fresh, now)


async def assign(
    settings: Settings,
    redis: Redis,
    principal: Principal,
    complaint_id: UUID,
    data: AssignInput,
    now: dt.datetime | None = None,
) -> ComplaintView:
    """FM assigns (or reassigns) to a technician of the site, or lets the hub choose."""
    now = now or now_utc()
    row = await load_visible(principal, complaint_id)
    actors = actors_of(principal, row)
    status = Status(row["status"])
    if not may_move(status, Status.ASSIGNED, actors):
        raise _refusal(status, Status.ASSIGNED, actors, row["version"])
    if data.technician_id is not None:
        if not await assignment.is_technician_of_site(principal.site_id, data.technician_id):
            raise InvalidInput.for_field("technician_id", "no active technician with that id on this site")
        technician: UUID | None = data.technician_id
    else:
        category = (
            await ComplaintCategory.select(ComplaintCategory.skill)
            .where(ComplaintCategory.id == row["category"])
            .first()
        )
        technician = await assignment.choose_technician(principal.site_id, category["skill"] if category else None, now)
        if technician is None:
            raise Conflict(
                "no technician with this category's skill is on shift now; choose one with technician_id",
                extra={"status": str(status), "version": row["version"], "allowed": []},
            )
    if technician == row["assignee"] and status is Status.ASSIGNED:
        raise InvalidInput.for_field("technician_id", "the complaint is already assigned to this technician")
    note = data.note or ("reassigned" if row["assignee"] is not None else "assigned")
    fresh = await _move(
        settings,
        redis,
        row,
        Status.ASSIGNED,
        actor_id=principal.person_id,
        actors=actors,
        note=note,
        expected_version=data.version,
        now=now,
        changes={Complaint.assignee: technician},
    )
    return await view(principal, fresh, now)


# ------------------------------------------------------------------------------ conversation


async def add_comment(
    settings: Settings,
    redis: Redis,
    principal: Principal,
    complaint_id: UUID,
    data: NewComment,
    now: dt.datetime | None = None,
) -> CommentView:
    now = now or now_utc()
    row = await load_visible(principal, complaint_id)
    if data.body is None:
        raise InvalidInput.for_field("body", "is required")
    body: str = data.body
    if data.internal and not sees_internal(principal, row):
        raise Forbidden("internal notes are for FM staff and the assigned technician")
    comment = ComplaintComment(
        site=row["site"],
        complaint=row["id"],
        author=principal.person_id,
        internal=data.internal,
        body=body,
        created_at=now,
    )
    await comment.save()
    author_name = await notify.name_of(principal.person_id)
    if data.internal:
        await notify.publish_staff_only(
            settings,
            redis,
            row,
            COMPLAINT_NOTE_ADDED,
            ComplaintNoteAdded(complaint_id=row["id"], comment_id=comment.id, author_id=principal.person_id, at=now),
        )
    else:
        await notify.publish_everywhere(
            settings,
            redis,
            row,
            COMPLAINT_COMMENTED,
            ComplaintCommented(
                complaint_id=row["id"],
                comment_id=comment.id,
                author_id=principal.person_id,
                author_name=author_name,
                body=body,
                at=now,
            ),
        )
        owner = notify.owner_of(row)
        if owner is not None and owner != principal.person_id and row["visibility"] != "staff":
            await notify.tell(
                row,
                [owner],
                title=f"New comment on your complaint from {author_name or 'the FM team'}",
                body=body[:200],
                key=f"complaint:{row['id']}:comment:{comment.id}",
                now=now,
            )
    return CommentView(
        id=comment.id,
        author_id=principal.person_id,
        author_name=author_name,
        internal=data.internal,
        body=body,
        at=now,
    )


async def list_comments(
    principal: Principal, complaint_id: UUID, *, limit: int = 50, offset: int = 0
) -> Page[CommentView]:
    """Oldest first, so the next page carries on the thread."""
    row = await load_visible(principal, complaint_id)
    where: Any = ComplaintComment.complaint == row["id"]
    if not sees_internal(principal, row):
        where = where & (ComplaintComment.internal.eq(False))
    total = await ComplaintComment.count().where(where)
    rows = (
        await ComplaintComment.select()
        .where(where)
        .order_by(ComplaintComment.created_at)
        .order_by(ComplaintComment.id)
        .limit(limit)
        .offset(offset)
    )
    names = await _names({r["author"] for r in rows})
    items = [
        CommentView(
            id=r["id"],
            author_id=r["author"],
            author_name=names.get(r["author"]) if r["author"] else None,
            internal=r["internal"],
            body=r["body"],
            at=r["created_at"],
        )
        for r in rows
    ]
    return page_of(items, total=total, limit=limit, offset=offset)


async def add_photo(
    settings: Settings,
    principal: Principal,
    complaint_id: UUID,
    content: bytes | None,
    stage: str,
    now: dt.datetime | None = None,
) -> PhotoView:
    """A before photo (from whoever can see the complaint) or an after photo (staff or the assignee)."""
    now = now or now_utc()
    row = await load_visible(principal, complaint_id)
    if content is None:
        raise InvalidInput.for_field("file", "is required: a JPEG, PNG or WebP photo")
    if stage not in ("before", "after"):
        raise InvalidInput.for_field("stage", "must be before or after")
    if stage == "after" and not sees_internal(principal, row):
        raise InvalidInput.for_field("stage", "after photos come from the technician or FM staff")
    stored: StoredUpload = await save_image(
        content, settings, site_id=principal.site_id, kind="complaints", field="file"
    )
    photo = ComplaintPhoto(
        site=row["site"],
        complaint=row["id"],
        uploaded_by=principal.person_id,
        stage=stage,
        key=stored.key,
        media_type=stored.media_type,
        size=stored.size,
        created_at=now,
    )
    try:
        await photo.save()
    except Exception:
        delete_upload(stored.key, settings)
        raise
    return PhotoView(
        id=photo.id,
        stage=stage,
        media_type=stored.media_type,
        size=stored.size,
        uploaded_by=principal.person_id,
        at=now,
    )


async def read_photo(settings: Settings, principal: Principal, complaint_id: UUID, photo_id: UUID) -> tuple[bytes, str]:
    row = await load_visible(principal, complaint_id)
    photo = (
        await ComplaintPhoto.select()
        .where((ComplaintPhoto.id == photo_id) & (ComplaintPhoto.complaint == row["id"]))
        .first()
    )
    if photo is None:
        raise NotFound("photo not found")
    try:
        return read_upload(photo["key"], settings), photo["media_type"]
    except FileNotFoundError:
        raise NotFound("photo not found") from None


# ------------------------------------------------------------------------------ closing the loop


async def rate(
    settings: Settings,
    redis: Redis,
    principal: Principal,
    complaint_id: UUID,
    data: RatingInput,
    now: dt.datetime | None = None,
) -> ComplaintView:
    now = now or now_utc()
    row = await load_visible(principal, complaint_id)
    if data.rating is None:
        raise InvalidInput.for_field("rating", "is required: 1 to 5")
    if Actor.RAISER not in actors_of(principal, row):
        raise Forbidden("only the person who raised the complaint rates it")
    if Status(row["status"]) not in DONE:
        raise Conflict(
            f"a complaint is rated once it is resolved; it is {row['status']}",
            extra={"status": row["status"], "version": row["version"]},
        )
    async with write_transaction():
        updated = (
            await Complaint.update({Complaint.rating: data.rating, Complaint.feedback: data.feedback})
            .where((Complaint.id == row["id"]) & Complaint.rating.is_null())
            .returning(Complaint.id)
        )
    if not updated:
        raise Conflict(
            "this complaint has already been rated", extra={"status": row["status"], "version": row["version"]}
        )
    fresh = await _row(row["id"])
    await notify.publish_staff_only(
        settings, redis, fresh, COMPLAINT_RATED, ComplaintRated(complaint_id=row["id"], rating=data.rating, at=now)
    )
    return await view(principal, fresh, now)
