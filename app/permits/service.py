"""Permits: apply (a draft, its attachments, then submit), decide step by step, send back, resubmit.

Every change is ``UPDATE permit ... WHERE id = ? AND version = ?`` plus one ``permit_step`` row in one
transaction; a change that finds the version moved on is refused with 409 and the permit's current
state, so two approvers of one step never both win and the history holds exactly what happened.
Publishing and notifying happen after the commit (``app.permits.notify``).
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from piccolo.columns import Column
from redis.asyncio import Redis

from app.auth.principal import Principal
from app.auth.roles import STAFF, Role
from app.config import Settings
from app.db import is_unique_violation, write_transaction
from app.errors import Conflict, Forbidden, InvalidInput, NotFound
from app.pagination import Count, Page, page_of, window
from app.permits import notify
from app.permits.dues import DuesStatus, dues_status
from app.permits.lifecycle import CANCELLABLE, EDITABLE, Action, Status
from app.permits.types import ChainStep, FieldValue, Key, chain_of, specs, validate_values
from app.text import MULTI_LINE, ONE_LINE
from app.uploads import StoredUpload, delete_upload, read_upload, save_document
from app.visitors.common import reveal, seal_phone, seal_plate, site_region
from schema.jsonvalue import as_dict, as_list
from schema.permits import Permit, PermitAttachment, PermitEntrant, PermitStep, PermitType
from schema.tables import Occupancy, Person, Unit

Title = Annotated[str, msgspec.Meta(min_length=3, max_length=200), ONE_LINE]
Location = Annotated[str, msgspec.Meta(min_length=1, max_length=200), ONE_LINE]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200), ONE_LINE]
Phone = Annotated[str, msgspec.Meta(min_length=4, max_length=32), ONE_LINE]
Plate = Annotated[str, msgspec.Meta(min_length=2, max_length=20), ONE_LINE]
Reason = Annotated[str, msgspec.Meta(max_length=2000), MULTI_LINE]
TypeCode = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]

MAX_AHEAD = dt.timedelta(days=366)  # a permit starts within a year of being applied for
MAX_ATTACHMENTS = 30
REFERENCE_ALPHABET = "ACDEFGHJKLMNPQRTUVWXY3479"  # no 0/O, 1/I, 2/Z, 5/S, 8/B: read aloud at a gate


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


# ------------------------------------------------------------------------------ shapes


class PersonInput(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Name
    phone: Phone | None = None


class VehicleInput(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    plate: Plate
    description: Annotated[str, msgspec.Meta(max_length=100), ONE_LINE] | None = None


class PermitInput(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A new permit (a draft): its type's code, where, when, who, and the type's fields."""

    type: TypeCode | None = None  # required
    title: Title | None = None  # required
    unit_id: UUID | None = None
    location: Location | None = None
    valid_from: dt.datetime | None = None  # required
    valid_until: dt.datetime | None = None  # required
    values: Annotated[dict[Key, FieldValue], msgspec.Meta(max_length=40)] = msgspec.field(default_factory=dict)
    declarations: Annotated[list[Key], msgspec.Meta(max_length=20)] = msgspec.field(default_factory=list)
    people: Annotated[list[PersonInput], msgspec.Meta(max_length=20)] = msgspec.field(default_factory=list)
    vehicles: Annotated[list[VehicleInput], msgspec.Meta(max_length=10)] = msgspec.field(default_factory=list)


class PermitEdit(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A draft or a permit sent back, replaced whole (the type stays); ``version`` as last seen."""

    title: Title | None = None  # required
    unit_id: UUID | None = None
    location: Location | None = None
    valid_from: dt.datetime | None = None  # required
    valid_until: dt.datetime | None = None  # required
    values: Annotated[dict[Key, FieldValue], msgspec.Meta(max_length=40)] = msgspec.field(default_factory=dict)
    declarations: Annotated[list[Key], msgspec.Meta(max_length=20)] = msgspec.field(default_factory=list)
    people: Annotated[list[PersonInput], msgspec.Meta(max_length=20)] = msgspec.field(default_factory=list)
    vehicles: Annotated[list[VehicleInput], msgspec.Meta(max_length=10)] = msgspec.field(default_factory=list)
    version: Count | None = None


class VersionInput(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    version: Count | None = None  # the version the caller saw; a newer one means 409


class DecisionInput(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Decide the step awaiting the caller: approve, reject (with a reason) or send back for changes
    (with a reason). ``dues_confirmed``: the approver checked the unit's dues by hand, for a type that
    needs them cleared while billing cannot say."""

    decision: Literal["approve", "reject", "send_back"] | None = None  # required
    reason: Reason | None = None
    dues_confirmed: bool = False
    version: Count | None = None


class ReasonInput(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    reason: Reason | None = None
    version: Count | None = None


class EntrantView(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    kind: str  # person | vehicle
    name: str | None
    phone: str | None  # the full number for the applicant and FM staff; None for others
    phone_hint: str | None  # the last four digits, for everyone who sees the permit
    plate: str | None


class AttachmentView(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    slot: str
    media_type: str
    size: int
    uploaded_by: UUID | None
    at: dt.datetime


class ChainStepView(msgspec.Struct, frozen=True, kw_only=True):
    index: int
    label: str
    role: str | None
    person_ids: list[UUID] | None
    state: Literal["approved", "awaiting", "waiting", "rejected", "sent_back"]
    by: UUID | None = None
    by_name: str | None = None
    at: dt.datetime | None = None


class StepView(msgspec.Struct, frozen=True, kw_only=True):
    round: int
    step: int | None
    step_label: str | None
    action: str
    actor_id: UUID | None
    actor_name: str | None
    note: str | None
    detail: dict[str, str]
    version: int
    at: dt.datetime


class PermitView(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    reference: str
    type_id: UUID
    type_code: str
    type_name: str
    kind: str
    title: str
    unit_id: UUID | None
    unit_label: str | None
    location: str | None
    applicant_id: UUID | None
    applicant_name: str | None
    status: str
    version: int
    round: int
    awaiting: str | None  # the label of the step awaiting a decision, while pending
    chain: list[ChainStepView]
    values: dict[str, Any]
    declarations: list[str]
    valid_from: dt.datetime
    valid_until: dt.datetime
    daily_start: str | None
    daily_end: str | None
    decision_reason: str | None
    people: list[EntrantView]
    vehicles: list[EntrantView]
    attachments: list[AttachmentView]
    missing: list[str]  # what submitting still needs: required fields, attachments and declarations
    requires_dues_cleared: bool
    allowed: list[str]  # what the caller may do now: edit, upload, submit, cancel, approve, reject, send_back, revoke
    submitted_at: dt.datetime | None
    decided_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime


class PermitDetail(msgspec.Struct, frozen=True, kw_only=True):
    permit: PermitView
    steps: list[StepView]


# ------------------------------------------------------------------------------ who is who


async def _my_units(principal: Principal) -> list[UUID]:
    if Role.OCCUPANT not in principal.roles:
        return []
    rows = await Occupancy.select(Occupancy.unit).where(
        (Occupancy.person == principal.person_id)
        & (Occupancy.site == principal.site_id)
        & (Occupancy.is_active.eq(True))
    )
    return [row["unit"] for row in rows]


def eligible(principal: Principal, step: ChainStep) -> bool:
    """Whether the caller may decide this step (before the four-eyes rules)."""
    if step.role is not None:
        return Role(step.role) in principal.roles
    return principal.person_id in (step.person_ids or [])


def _in_chain(principal: Principal, chain: list[ChainStep]) -> bool:
    return any(eligible(principal, step) for step in chain)


async def may_see(principal: Principal, row: dict[str, Any], units: list[UUID] | None = None) -> bool:
    """Staff of the site, the applicant, occupants of the permit's unit, and the approvers of its chain."""
    if row["site"] != principal.site_id:
        return False
    if principal.has_any(STAFF) or row["applicant"] == principal.person_id:
        return True
    if row["unit"] is not None and row["unit"] in (units if units is not None else await _my_units(principal)):
        return True
    return row["status"] != Status.DRAFT and _in_chain(principal, chain_of(row["chain"]))


async def load_visible(principal: Principal, permit_id: UUID) -> dict[str, Any]:
    row = await Permit.select().where((Permit.id == permit_id) & (Permit.site == principal.site_id)).first()
    if row is None or not await may_see(principal, row):
        raise NotFound("permit not found")
    return row


async def _approvers_this_round(permit_id: UUID, round_: int) -> dict[int, UUID | None]:
    rows = await PermitStep.select(PermitStep.step, PermitStep.actor).where(
        (PermitStep.permit == permit_id) & (PermitStep.round == round_) & (PermitStep.action == str(Action.APPROVED))
    )
    return {row["step"]: row["actor"] for row in rows}


def _refusal_to_decide(
    principal: Principal, row: dict[str, Any], approved_by: dict[int, UUID | None]
) -> tuple[int, str] | None:
    """(status, why) the caller may not decide the awaited step; None when they may."""
    if row["status"] != Status.PENDING:
        return 409, f"the permit is {row['status']}: there is no step to decide"
    chain = chain_of(row["chain"])
    step = chain[row["step"]]
    if not eligible(principal, step):
        return 403, f"step {row['step'] + 1} ({step.label}) is decided by someone else"
    if row["applicant"] == principal.person_id:
        return 403, "you applied for this permit: someone else decides it"
    if principal.person_id in approved_by.values():
        earlier = next(index for index, who in approved_by.items() if who == principal.person_id)
        return 403, (
            f"you approved step {earlier + 1} already: step {row['step'] + 1} ({step.label}) needs another approver"
        )
    return None


def allowed_actions(principal: Principal, row: dict[str, Any], approved_by: dict[int, UUID | None]) -> list[str]:
    status = Status(row["status"])
    mine = row["applicant"] == principal.person_id
    actions: list[str] = []
    if mine and status in EDITABLE:
        actions += ["edit", "upload", "submit"]
    if mine and status in CANCELLABLE:
        actions.append("cancel")
    if status is Status.PENDING and _refusal_to_decide(principal, row, approved_by) is None:
        actions += ["approve", "reject", "send_back"]
    if status is Status.APPROVED and principal.has_any(STAFF):
        actions.append("revoke")
    return actions


# ------------------------------------------------------------------------------ views


async def _names(ids: set[UUID | None]) -> dict[UUID, str]:
    wanted = [i for i in ids if i is not None]
    if not wanted:
        return {}
    rows = await Person.select(Person.id, Person.full_name).where(Person.id.is_in(wanted))
    return {row["id"]: row["full_name"] for row in rows}


def _hint(phone: str | None) -> str | None:
    return f"…{phone[-4:]}" if phone else None


def _missing(type_row: dict[str, Any], row: dict[str, Any], slots: set[str]) -> list[str]:
    fields, attachments, declarations = specs(type_row)
    values = as_dict(row["values"])
    accepted = set(as_list(row["declarations"]))
    missing = [
        f"values.{f.key}"
        for f in fields
        if (f.required or f.must_be_true)
        and (values.get(f.key) in (None, "") or (f.must_be_true and values.get(f.key) is not True))
    ]
    missing += [f"attachments.{a.key}" for a in attachments if a.required and a.key not in slots]
    missing += [f"declarations.{d.key}" for d in declarations if d.key not in accepted]
    return missing


async def views(settings: Settings, principal: Principal, rows: list[dict[str, Any]]) -> list[PermitView]:
    if not rows:
        return []
    ids = [row["id"] for row in rows]
    type_rows = {
        t["id"]: t
        for t in await PermitType.select().where(PermitType.id.is_in(list({row["permit_type"] for row in rows})))
    }
    unit_ids = [row["unit"] for row in rows if row["unit"] is not None]
    labels = (
        {u["id"]: u["label"] for u in await Unit.select(Unit.id, Unit.label).where(Unit.id.is_in(unit_ids))}
        if unit_ids
        else {}
    )
    entrants = await PermitEntrant.select().where(PermitEntrant.permit.is_in(ids)).order_by(PermitEntrant.name)
    attachments = (
        await PermitAttachment.select()
        .where(PermitAttachment.permit.is_in(ids))
        .order_by(PermitAttachment.created_at)
        .order_by(PermitAttachment.id)
    )
    steps = await PermitStep.select().where(PermitStep.permit.is_in(ids)).order_by(PermitStep.at)
    names = await _names({row["applicant"] for row in rows} | {s["actor"] for s in steps})
    result = []
    for row in rows:
        own_steps = [s for s in steps if s["permit"] == row["id"] and s["round"] == row["round"]]
        approved_by = {s["step"]: s["actor"] for s in own_steps if s["action"] == Action.APPROVED}
        full_phone = principal.has_any(STAFF) or row["applicant"] == principal.person_id
        own_entrants = [e for e in entrants if e["permit"] == row["id"]]
        entrant_views = []
        for e in own_entrants:
            phone = reveal(settings, e["phone_encrypted"])
            entrant_views.append(
                EntrantView(
                    id=e["id"],
                    kind=e["kind"],
                    name=e["name"],
                    phone=phone if full_phone else None,
                    phone_hint=_hint(phone),
                    plate=reveal(settings, e["plate_encrypted"]),
                )
            )
        own_attachments = [a for a in attachments if a["permit"] == row["id"]]
        type_row = type_rows[row["permit_type"]]
        result.append(
            PermitView(
                id=row["id"],
                reference=row["reference"],
                type_id=type_row["id"],
                type_code=type_row["code"],
                type_name=type_row["name"],
                kind=type_row["kind"],
                title=row["title"],
                unit_id=row["unit"],
                unit_label=labels.get(row["unit"]) if row["unit"] else None,
                location=row["location"],
                applicant_id=row["applicant"],
                applicant_name=names.get(row["applicant"]) if row["applicant"] else None,
                status=row["status"],
                version=row["version"],
                round=row["round"],
                awaiting=_awaiting(row),
                chain=_chain_views(row, own_steps, names),
                values=as_dict(row["values"]),
                declarations=[str(d) for d in as_list(row["declarations"])],
                valid_from=row["valid_from"],
                valid_until=row["valid_until"],
                daily_start=row["daily_start"],
                daily_end=row["daily_end"],
                decision_reason=row["decision_reason"],
                people=[v for v in entrant_views if v.kind == "person"],
                vehicles=[v for v in entrant_views if v.kind == "vehicle"],
                attachments=[
                    AttachmentView(
                        id=a["id"],
                        slot=a["slot"],
                        media_type=a["media_type"],
                        size=a["size"],
                        uploaded_by=a["uploaded_by"],
                        at=a["created_at"],
                    )
                    for a in own_attachments
                ],
                missing=_missing(type_row, row, {a["slot"] for a in own_attachments}),
                requires_dues_cleared=type_row["requires_dues_cleared"],
                allowed=allowed_actions(principal, row, approved_by),
                submitted_at=row["submitted_at"],
                decided_at=row["decided_at"],
                created_at=row["created_at"],
                updated_at=row["updated_at"],
            )
        )
    return result


def _awaiting(row: dict[str, Any]) -> str | None:
    if row["status"] != Status.PENDING:
        return None
    chain = chain_of(row["chain"])
    return chain[row["step"]].label if row["step"] < len(chain) else None


def _chain_views(row: dict[str, Any], steps: list[dict[str, Any]], names: dict[UUID, str]) -> list[ChainStepView]:
    chain = chain_of(row["chain"])
    decided = {s["step"]: s for s in steps if s["step"] is not None}
    result = []
    for index, step in enumerate(chain):
        found = decided.get(index)
        state: Literal["approved", "awaiting", "waiting", "rejected", "sent_back"] = "waiting"
        if found is not None:
            state = {"approved": "approved", "rejected": "rejected", "sent_back": "sent_back"}[found["action"]]  # type: ignore[assignment]
        elif row["status"] == Status.PENDING and index == row["step"]:
            state = "awaiting"
        result.append(
            ChainStepView(
                index=index,
                label=step.label,
                role=step.role,
                person_ids=step.person_ids,
                state=state,
                by=found["actor"] if found else None,
                by_name=names.get(found["actor"]) if found and found["actor"] else None,
                at=found["at"] if found else None,
            )
        )
    return result


async def view(settings: Settings, principal: Principal, row: dict[str, Any]) -> PermitView:
    return (await views(settings, principal, [row]))[0]


async def get_permit(settings: Settings, principal: Principal, permit_id: UUID) -> PermitDetail:
    row = await load_visible(principal, permit_id)
    steps = await PermitStep.select().where(PermitStep.permit == permit_id).order_by(PermitStep.at)
    names = await _names({s["actor"] for s in steps})
    return PermitDetail(
        permit=await view(settings, principal, row),
        steps=[
            StepView(
                round=s["round"],
                step=s["step"],
                step_label=s["step_label"],
                action=s["action"],
                actor_id=s["actor"],
                actor_name=names.get(s["actor"]) if s["actor"] else None,
                note=s["note"],
                detail={str(k): str(v) for k, v in as_dict(s["detail"]).items()},
                version=s["version"],
                at=s["at"],
            )
            for s in steps
        ],
    )


async def list_permits(
    settings: Settings,
    principal: Principal,
    *,
    status: Status | None = None,
    awaiting_me: bool = False,
    unit_id: UUID | None = None,
    type_code: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Page[PermitView]:
    """Newest first. ``awaiting_me``: the pending permits whose awaited step the caller may decide."""
    where: Any = Permit.site == principal.site_id
    if status is not None:
        where = where & (Permit.status == str(status))
    if awaiting_me:
        where = where & (Permit.status == str(Status.PENDING))
    if unit_id is not None:
        where = where & (Permit.unit == unit_id)
    if type_code is not None:
        found = (
            await PermitType.select(PermitType.id)
            .where((PermitType.site == principal.site_id) & (PermitType.code == type_code))
            .first()
        )
        if found is None:
            raise InvalidInput.for_query("type", f"no permit type {type_code!r} on this site")
        where = where & (Permit.permit_type == found["id"])
    order = (Permit.created_at, Permit.id)
    if principal.has_any(STAFF) and not awaiting_me:
        total = await Permit.count().where(where)
        rows = (
            await Permit.select()
            .where(where)
            .order_by(order[0], ascending=False)
            .order_by(order[1])
            .limit(limit)
            .offset(offset)
        )
        return page_of(await views(settings, principal, rows), total=total, limit=limit, offset=offset)
    # Approvers by role or by name, and occupants: decided row by row (a site has hundreds of permits, not millions).
    units = await _my_units(principal)
    rows = await Permit.select().where(where).order_by(order[0], ascending=False).order_by(order[1])
    visible = [row for row in rows if await may_see(principal, row, units)]
    if awaiting_me:
        mine = []
        for row in visible:
            if _refusal_to_decide(principal, row, await _approvers_this_round(row["id"], row["round"])) is None:
                mine.append(row)
        visible = mine
    page = window(visible, limit=limit, offset=offset)
    return page_of(await views(settings, principal, page.items), total=page.total, limit=limit, offset=offset)


# ------------------------------------------------------------------------------ applying


async def _has_occupancy(site_id: UUID, person_id: UUID, unit_id: UUID) -> bool:
    return await Occupancy.exists().where(
        (Occupancy.site == site_id)
        & (Occupancy.person == person_id)
        & (Occupancy.unit == unit_id)
        & (Occupancy.is_active.eq(True))
    )


UNIT_KINDS = frozenset({"fit_out", "move_in", "move_out"})


async def _check_where(
    principal: Principal, type_row: dict[str, Any], unit_id: UUID | None, location: str | None
) -> None:
    site = principal.site_id
    if unit_id is not None and not await Unit.exists().where((Unit.id == unit_id) & (Unit.site == site)):
        raise InvalidInput.for_field("unit_id", "no such unit on this site")
    if principal.has_any(STAFF):
        if type_row["kind"] in UNIT_KINDS and unit_id is None:
            raise InvalidInput.for_field("unit_id", f"is required for a {type_row['name']} permit")
        if unit_id is None and location is None:
            raise InvalidInput.for_field("location", "say where the work is: a unit or a common area")
        return
    if not type_row["occupants_may_apply"]:
        raise InvalidInput.for_field("type", f"{type_row['name']} permits are applied for by the FM team")
    if unit_id is None:
        raise InvalidInput.for_field("unit_id", "is required: the unit you occupy")
    if not await _has_occupancy(site, principal.person_id, unit_id):
        raise InvalidInput.for_field("unit_id", "you have no active occupancy of that unit")


def _check_window(
    type_row: dict[str, Any], valid_from: dt.datetime | None, valid_until: dt.datetime | None, now: dt.datetime
) -> tuple[dt.datetime, dt.datetime]:
    if valid_from is None:
        raise InvalidInput.for_field("valid_from", "is required: when the permit starts")
    if valid_until is None:
        raise InvalidInput.for_field("valid_until", "is required: when the permit ends")
    for field, value in (("valid_from", valid_from), ("valid_until", valid_until)):
        if value.tzinfo is None:
            raise InvalidInput.for_field(field, "must include a timezone offset")
    start, end = valid_from.astimezone(dt.UTC), valid_until.astimezone(dt.UTC)
    if end <= start:
        raise InvalidInput.for_field("valid_until", "must be after valid_from")
    if end <= now:
        raise InvalidInput.for_field("valid_until", "is in the past")
    if start > now + MAX_AHEAD:
        raise InvalidInput.for_field("valid_from", "must be within a year from now")
    if end - start > dt.timedelta(days=type_row["max_days"]):
        raise InvalidInput.for_field(
            "valid_until", f"a {type_row['name']} permit lasts at most {type_row['max_days']} day(s)"
        )
    return start, end


async def _check_declarations(type_row: dict[str, Any], accepted: list[str]) -> list[str]:
    _, _, declarations = specs(type_row)
    known = {d.key for d in declarations}
    for index, key in enumerate(accepted):
        if key not in known:
            raise InvalidInput.for_field(f"declarations[{index}]", f"{key!r} is not a declaration of this permit type")
    return list(dict.fromkeys(accepted))


def _entrant_rows(
    settings: Settings,
    site_id: UUID,
    permit_id: UUID,
    region: str,
    people: list[PersonInput],
    vehicles: list[VehicleInput],
) -> list[PermitEntrant]:
    rows = []
    for index, person in enumerate(people):
        phone = seal_phone(settings, person.phone, region, f"people[{index}].phone")
        rows.append(
            PermitEntrant(
                site=site_id,
                permit=permit_id,
                kind="person",
                name=person.name.strip(),
                phone_encrypted=phone.encrypted,
                phone_index=phone.index,
            )
        )
    for index, vehicle in enumerate(vehicles):
        plate = seal_plate(settings, vehicle.plate, f"vehicles[{index}].plate")
        rows.append(
            PermitEntrant(
                site=site_id,
                permit=permit_id,
                kind="vehicle",
                name=vehicle.description,
                plate_encrypted=plate.encrypted,
                plate_index=plate.index,
            )
        )
    return rows


def new_reference() -> str:
    return "P-" + "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(6))


async def _type_for(site_id: UUID, code: str) -> dict[str, Any]:
    from app.permits.types import type_row

    row = await type_row(site_id, code)
    if not row["is_active"]:
        raise InvalidInput.for_field("type", f"{row['name']} permits are not taken at the moment")
    return row


async def apply(
    settings: Settings, redis: Redis, principal: Principal, data: PermitInput, now: dt.datetime | None = None
) -> PermitView:
    """A draft permit: checked as far as it goes (types, window, where, who); submitting checks it is complete."""
    now = now or now_utc()
    if data.type is None:
        raise InvalidInput.for_field("type", "is required: the permit type's code")
    if data.title is None:
        raise InvalidInput.for_field("title", "is required: a few words on what the permit is for")
    type_row = await _type_for(principal.site_id, data.type)
    fields, _, _ = specs(type_row)
    values = validate_values(fields, dict(data.values), complete=False)
    declarations = await _check_declarations(type_row, data.declarations)
    await _check_where(principal, type_row, data.unit_id, data.location)
    start, end = _check_window(type_row, data.valid_from, data.valid_until, now)
    region = await site_region(principal.site_id)
    for _attempt in range(5):
        permit = Permit(
            site=principal.site_id,
            permit_type=type_row["id"],
            reference=new_reference(),
            unit=data.unit_id,
            location=data.location,
            title=data.title,
            applicant=principal.person_id,
            status=str(Status.DRAFT),
            version=1,
            round=0,
            step=0,
            chain=[],
            values=values,
            declarations=declarations,
            valid_from=start,
            valid_until=end,
            daily_start=type_row["daily_start"],
            daily_end=type_row["daily_end"],
            created_at=now,
            updated_at=now,
        )
        entrants = _entrant_rows(settings, principal.site_id, permit.id, region, data.people, data.vehicles)
        try:
            async with write_transaction():
                await permit.save()
                if entrants:
                    await PermitEntrant.insert(*entrants)
        except Exception as error:
            if is_unique_violation(error):
                continue  # the reference was taken: draw another
            raise
        break
    else:  # pragma: no cover - 25^6 references; five collisions in a row mean something else is wrong
        raise Conflict("could not give the permit a reference; try again")
    return await view(settings, principal, await _row(permit.id))


async def _row(permit_id: UUID) -> dict[str, Any]:
    row = await Permit.select().where(Permit.id == permit_id).first()
    if row is None:
        raise NotFound("permit not found")
    return row


def _stale(row: dict[str, Any], version: int | None) -> None:
    if version is not None and version != row["version"]:
        raise Conflict(
            f"the permit changed since version {version}: it is {row['status']} at version {row['version']}",
            extra={"status": row["status"], "version": row["version"]},
        )


def _must_be_applicant(principal: Principal, row: dict[str, Any], what: str) -> None:
    if row["applicant"] != principal.person_id:
        raise Forbidden(f"only the applicant {what}")


async def _type_row_of(row: dict[str, Any]) -> dict[str, Any]:
    found = await PermitType.select().where(PermitType.id == row["permit_type"]).first()
    assert found is not None  # on_delete=restrict
    return found


async def edit(
    settings: Settings,
    redis: Redis,
    principal: Principal,
    permit_id: UUID,
    data: PermitEdit,
    now: dt.datetime | None = None,
) -> PermitView:
    now = now or now_utc()
    row = await load_visible(principal, permit_id)
    _must_be_applicant(principal, row, "edits a permit")
    if Status(row["status"]) not in EDITABLE:
        raise Conflict(
            f"a permit that is {row['status']} cannot be edited",
            extra={"status": row["status"], "version": row["version"]},
        )
    _stale(row, data.version)
    if data.title is None:
        raise InvalidInput.for_field("title", "is required")
    type_row = await _type_row_of(row)
    fields, _, _ = specs(type_row)
    values = validate_values(fields, dict(data.values), complete=False)
    declarations = await _check_declarations(type_row, data.declarations)
    await _check_where(principal, type_row, data.unit_id, data.location)
    start, end = _check_window(type_row, data.valid_from, data.valid_until, now)
    region = await site_region(principal.site_id)
    entrants = _entrant_rows(settings, principal.site_id, row["id"], region, data.people, data.vehicles)
    async with write_transaction():
        updated = (
            await Permit.update(
                {
                    Permit.title: data.title,
                    Permit.unit: data.unit_id,
                    Permit.location: data.location,
                    Permit.values: values,
                    Permit.declarations: declarations,
                    Permit.valid_from: start,
                    Permit.valid_until: end,
                    Permit.version: row["version"] + 1,
                    Permit.updated_at: now,
                }
            )
            .where((Permit.id == row["id"]) & (Permit.version == row["version"]))
            .returning(Permit.id)
        )
        if not updated:
            raise await _lost_race(row["id"])
        await PermitEntrant.delete().where(PermitEntrant.permit == row["id"])
        if entrants:
            await PermitEntrant.insert(*entrants)
    return await view(settings, principal, await _row(row["id"]))


async def _lost_race(permit_id: UUID) -> Conflict:
    current = await Permit.select(Permit.status, Permit.version).where(Permit.id == permit_id).first()
    status = current["status"] if current else "?"
    version = current["version"] if current else None
    return Conflict(
        f"someone else changed this permit first: it is now {status} at version {version}",
        extra={"status": status, "version": version},
    )


async def add_attachment(
    settings: Settings,
    principal: Principal,
    permit_id: UUID,
    slot: str | None,
    content: bytes | None,
    now: dt.datetime | None = None,
) -> AttachmentView:
    """A file for one of the type's attachment slots: an image (re-encoded) or a PDF (checked)."""
    now = now or now_utc()
    row = await load_visible(principal, permit_id)
    _must_be_applicant(principal, row, "adds attachments")
    if Status(row["status"]) not in EDITABLE:
        raise Conflict(
            f"a permit that is {row['status']} takes no more attachments",
            extra={"status": row["status"], "version": row["version"]},
        )
    _, attachments, _ = specs(await _type_row_of(row))
    declared = {a.key: a for a in attachments}
    if not slot:
        raise InvalidInput.for_field("slot", f"is required: one of {', '.join(declared) or '(none)'}")
    spec = declared.get(slot)
    if spec is None:
        raise InvalidInput.for_field("slot", f"must be one of {', '.join(declared) or '(none)'}")
    if content is None:
        raise InvalidInput.for_field("file", "is required")
    if await PermitAttachment.count().where(PermitAttachment.permit == row["id"]) >= MAX_ATTACHMENTS:
        raise InvalidInput.for_field("file", f"a permit holds at most {MAX_ATTACHMENTS} files")
    stored: StoredUpload = await save_document(
        content, settings, site_id=principal.site_id, kind="permits", accept=spec.accept, field="file"
    )
    attachment = PermitAttachment(
        site=row["site"],
        permit=row["id"],
        slot=slot,
        key=stored.key,
        media_type=stored.media_type,
        size=stored.size,
        uploaded_by=principal.person_id,
        created_at=now,
    )
    try:
        await attachment.save()
    except Exception:
        delete_upload(stored.key, settings)
        raise
    return AttachmentView(
        id=attachment.id,
        slot=slot,
        media_type=stored.media_type,
        size=stored.size,
        uploaded_by=principal.person_id,
        at=now,
    )


async def read_attachment(
    settings: Settings, principal: Principal, permit_id: UUID, attachment_id: UUID
) -> tuple[bytes, str, str]:
    row = await load_visible(principal, permit_id)
    found = (
        await PermitAttachment.select()
        .where((PermitAttachment.id == attachment_id) & (PermitAttachment.permit == row["id"]))
        .first()
    )
    if found is None:
        raise NotFound("attachment not found")
    try:
        return read_upload(found["key"], settings), found["media_type"], f"{row['reference']}-{found['slot']}"
    except FileNotFoundError:
        raise NotFound("attachment not found") from None


# ------------------------------------------------------------------------------ moving


def _values(changes: dict[str, Any], **more: Any) -> dict[Column | str, Any]:
    return {name: value for name, value in {**changes, **more}.items()}


async def _move(
    settings: Settings,
    redis: Redis,
    row: dict[str, Any],
    *,
    action: Action,
    actor: UUID | None,
    changes: dict[str, Any],
    step: int | None = None,
    step_label: str | None = None,
    note: str | None = None,
    detail: dict[str, str] | None = None,
    now: dt.datetime,
) -> dict[str, Any]:
    """Apply one change if nobody changed the permit meanwhile; record its step; publish and notify."""
    version = row["version"] + 1
    round_ = changes.get("round", row["round"])
    async with write_transaction():
        updated = (
            await Permit.update(_values(changes, version=version, updated_at=now))
            .where((Permit.id == row["id"]) & (Permit.version == row["version"]))
            .returning(Permit.id)
        )
        if not updated:
            raise await _lost_race(row["id"])
        await PermitStep(
            site=row["site"],
            permit=row["id"],
            round=round_,
            step=step,
            step_label=step_label,
            action=str(action),
            actor=actor,
            note=note,
            detail=detail or {},
            version=version,
            at=now,
        ).save()
    fresh = await _row(row["id"])
    await notify.after_change(
        settings, redis, fresh, previous_status=row["status"], action=action, actor=actor, now=now
    )
    return fresh


async def submit(
    settings: Settings,
    redis: Redis,
    principal: Principal,
    permit_id: UUID,
    data: VersionInput,
    now: dt.datetime | None = None,
) -> PermitView:
    """Submit a draft, or resubmit a permit sent back: it must be complete; the chain starts at its first step."""
    now = now or now_utc()
    row = await load_visible(principal, permit_id)
    _must_be_applicant(principal, row, "submits a permit")
    status = Status(row["status"])
    if status not in EDITABLE:
        raise Conflict(
            f"a permit that is {status} cannot be submitted",
            extra={"status": str(status), "version": row["version"]},
        )
    _stale(row, data.version)
    type_row = await _type_row_of(row)
    if not type_row["is_active"]:
        raise Conflict(f"{type_row['name']} permits are not taken at the moment", extra={"status": str(status)})
    fields, _, _ = specs(type_row)
    validate_values(fields, as_dict(row["values"]), complete=True)
    slots = {
        a["slot"]
        for a in await PermitAttachment.select(PermitAttachment.slot).where(PermitAttachment.permit == row["id"])
    }
    missing = _missing(type_row, row, slots)
    if missing:
        first = missing[0]
        message = {
            "attachments": "is required: upload it before submitting",
            "declarations": "must be accepted before submitting",
        }.get(first.split(".")[0], "is required")
        raise InvalidInput.for_field(first, message)
    if _aware(row["valid_until"]) <= now:
        raise InvalidInput.for_field("valid_until", "is in the past: edit the dates")
    chain = chain_of(type_row["chain"])
    action = Action.SUBMITTED if status is Status.DRAFT else Action.RESUBMITTED
    fresh = await _move(
        settings,
        redis,
        row,
        action=action,
        actor=principal.person_id,
        changes={
            "status": str(Status.PENDING),
            "round": row["round"] + 1,
            "step": 0,
            "chain": msgspec.to_builtins(chain),
            "submitted_at": now,
            "decided_at": None,
            "decision_reason": None,
        },
        now=now,
    )
    return await view(settings, principal, fresh)


async def decide(
    settings: Settings,
    redis: Redis,
    principal: Principal,
    permit_id: UUID,
    data: DecisionInput,
    now: dt.datetime | None = None,
) -> PermitView:
    now = now or now_utc()
    row = await load_visible(principal, permit_id)
    if data.decision is None:
        raise InvalidInput.for_field("decision", "is required: approve, reject or send_back")
    approved_by = await _approvers_this_round(row["id"], row["round"])
    refusal = _refusal_to_decide(principal, row, approved_by)
    if refusal is not None:
        status_code, why = refusal
        if status_code == 409:
            raise Conflict(why, extra={"status": row["status"], "version": row["version"]})
        raise Forbidden(why)
    _stale(row, data.version)
    chain = chain_of(row["chain"])
    index = row["step"]
    step = chain[index]
    reason = (data.reason or "").strip() or None
    if data.decision in ("reject", "send_back"):
        if reason is None or len(reason) < 3:
            raise InvalidInput.for_field("reason", "is required: tell the applicant why")
        target, action = (
            (Status.REJECTED, Action.REJECTED)
            if data.decision == "reject"
            else (Status.CHANGES_REQUESTED, Action.SENT_BACK)
        )
        fresh = await _move(
            settings,
            redis,
            row,
            action=action,
            actor=principal.person_id,
            changes={
                "status": str(target),
                "decision_reason": reason,
                "decided_at": now if target is Status.REJECTED else None,
            },
            step=index,
            step_label=step.label,
            note=reason,
            now=now,
        )
        return await view(settings, principal, fresh)
    last = index == len(chain) - 1
    detail: dict[str, str] = {}
    if last:
        type_row = await _type_row_of(row)
        if type_row["requires_dues_cleared"]:
            detail["dues"] = await _dues_for_approval(row, data.dues_confirmed)
    changes: dict[str, Any] = (
        {"status": str(Status.APPROVED), "decided_at": now, "decision_reason": None} if last else {"step": index + 1}
    )
    fresh = await _move(
        settings,
        redis,
        row,
        action=Action.APPROVED,
        actor=principal.person_id,
        changes=changes,
        step=index,
        step_label=step.label,
        note=reason,
        detail=detail,
        now=now,
    )
    return await view(settings, principal, fresh)


async def _dues_for_approval(row: dict[str, Any], confirmed: bool) -> str:
    """How the final approval of a permit that needs cleared dues knows they are: billing, or the approver."""
    status = await dues_status(row["site"], row["unit"])
    if status is DuesStatus.OUTSTANDING:
        raise Conflict(
            "the unit has dues outstanding: they must be cleared before this permit is approved",
            extra={"status": row["status"], "version": row["version"], "dues": str(status)},
        )
    if status is DuesStatus.CLEARED:
        return "cleared_per_billing"
    if not confirmed:
        raise InvalidInput.for_field(
            "dues_confirmed",
            "billing cannot tell whether the unit's dues are cleared: check them, then approve with dues_confirmed",
        )
    return "confirmed_by_approver"


async def cancel(
    settings: Settings,
    redis: Redis,
    principal: Principal,
    permit_id: UUID,
    data: ReasonInput,
    now: dt.datetime | None = None,
) -> PermitView:
    now = now or now_utc()
    row = await load_visible(principal, permit_id)
    _must_be_applicant(principal, row, "cancels a permit")
    if Status(row["status"]) not in CANCELLABLE:
        raise Conflict(
            f"a permit that is {row['status']} cannot be cancelled",
            extra={"status": row["status"], "version": row["version"]},
        )
    _stale(row, data.version)
    fresh = await _move(
        settings,
        redis,
        row,
        action=Action.CANCELLED,
        actor=principal.person_id,
        changes={"status": str(Status.CANCELLED), "decided_at": now},
        note=(data.reason or "").strip() or None,
        now=now,
    )
    return await view(settings, principal, fresh)


async def revoke(
    settings: Settings,
    redis: Redis,
    principal: Principal,
    permit_id: UUID,
    data: ReasonInput,
    now: dt.datetime | None = None,
) -> PermitView:
    """FM staff withdraw an approved permit (unsafe work, a complaint): the gate refuses it from now on."""
    now = now or now_utc()
    row = await load_visible(principal, permit_id)
    if row["status"] != Status.APPROVED:
        raise Conflict(
            f"only an approved permit can be revoked; this one is {row['status']}",
            extra={"status": row["status"], "version": row["version"]},
        )
    _stale(row, data.version)
    reason = (data.reason or "").strip()
    if len(reason) < 3:
        raise InvalidInput.for_field("reason", "is required: tell the applicant why")
    fresh = await _move(
        settings,
        redis,
        row,
        action=Action.REVOKED,
        actor=principal.person_id,
        changes={"status": str(Status.REVOKED), "decision_reason": reason, "decided_at": now},
        note=reason,
        now=now,
    )
    return await view(settings, principal, fresh)
