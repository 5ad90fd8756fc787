"""At the gate: verify a code or QR and check in, register a walk-in, check in and out."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal
from uuid import UUID

import msgspec

from app.auth.principal import Principal
from app.db import write_transaction
from app.errors import Conflict, InvalidInput, NotFound
from app.text import text_error
from app.uploads import save_image
from app.visitors import alerts, codes, sitecfg
from app.visitors.common import (
    VisitorDeps,
    gate_topics,
    is_blocked,
    notify,
    now_utc,
    occupants_of,
    plate_index_of,
    publish_all,
    seal_phone,
    seal_plate,
    unit_and_region,
)
from app.visitors.passes import site_zone_of, validity
from app.visitors.sitecfg import VisitorKind
from notifications.audience import Audience
from notifications.categories import Urgency
from schema import visitors_events as ev
from schema.visitors import Visit, VisitorApproval, VisitorApprovalStep, VisitorPass

GATE_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
GateName = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")]
RefusalReason = Literal[
    "unknown", "wrong_site", "expired", "not_yet_valid", "outside_hours", "used", "revoked", "blocklisted"
]


class VerifyInput(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A typed 6-digit code or a scanned QR payload (one of them), and the plate seen, if any."""

    code: Annotated[str, msgspec.Meta(min_length=1, max_length=16)] | None = None
    qr: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    plate: Annotated[str, msgspec.Meta(max_length=20)] | None = None
    gate: GateName | None = None
    # False: check only (the console shows who it is, the guard then confirms); nothing is consumed.
    check_in: bool = True


class VerifyResult(msgspec.Struct, frozen=True, kw_only=True):
    outcome: Literal["checked_in", "valid", "refused"]
    reason: RefusalReason | None = None
    visit_id: UUID | None = None
    pass_id: UUID | None = None
    unit_id: UUID | None = None
    visitor_name: str | None = None
    kind: str | None = None
    # None: no plate on the pass or none seen; otherwise whether the seen plate is the pass's.
    plate_matches: bool | None = None


class VisitView(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    unit_id: UUID
    kind: str
    source: str
    name: str
    purpose: str | None
    status: str
    gate: str | None
    created_at: dt.datetime
    checked_in_at: dt.datetime | None
    checked_out_at: dt.datetime | None
    approval_id: UUID | None = None


def visit_view(row: dict[str, object], approval_id: UUID | None = None) -> VisitView:
    return VisitView(
        id=row["id"],  # type: ignore[arg-type]
        unit_id=row["unit"],  # type: ignore[arg-type]
        kind=str(row["kind"]),
        source=str(row["source"]),
        name=str(row["name"]),
        purpose=row["purpose"],  # type: ignore[arg-type]
        status=str(row["status"]),
        gate=row["gate"],  # type: ignore[arg-type]
        created_at=row["created_at"],  # type: ignore[arg-type]
        checked_in_at=row["checked_in_at"],  # type: ignore[arg-type]
        checked_out_at=row["checked_out_at"],  # type: ignore[arg-type]
        approval_id=approval_id,
    )


async def _find_pass(deps: VisitorDeps, site_id: UUID, data: VerifyInput) -> tuple[dict[str, object] | None, str]:
    """The pass the code or QR names, or (None, reason).

    A typed code is looked up on this site only: one live on another site is ``unknown`` here, as
    any wrong guess is, so guessing at one gate learns nothing of the others. A scanned QR is signed
    and cannot be guessed: a genuine one of another site says ``wrong_site``, which helps a visitor
    at the wrong gate and tells its holder nothing they did not show."""
    if data.qr:
        parsed = codes.parse_qr(deps.settings, data.qr)
        if parsed is None:
            return None, "unknown"
        pass_id, mac = parsed
        row = await VisitorPass.select().where(VisitorPass.id == pass_id).first()
        if row is None or not codes.qr_matches(deps.settings, pass_id, row["code_hash"], mac):
            return None, "unknown"
        if row["site"] != site_id:
            return None, "wrong_site"
        return row, ""
    assert data.code is not None
    hashed = codes.code_hash(deps.settings, data.code)
    here = await VisitorPass.select().where((VisitorPass.site == site_id) & (VisitorPass.code_hash == hashed))
    if not here:
        return None, "unknown"
    # An active pass first; else the most recent one explains the refusal (used, revoked, expired).
    here.sort(key=lambda r: (r["status"] == "active", r["created_at"]), reverse=True)
    return here[0], ""


async def verify(
    deps: VisitorDeps, principal: Principal, data: VerifyInput, now: dt.datetime | None = None
) -> VerifyResult:
    """Code or QR -> check-in, in one call; a refusal says why. Throttled per guard and per site."""
    now = now or now_utc()
    site_id = principal.site_id
    if (data.code is None) == (data.qr is None):
        raise InvalidInput.for_field("code", "give exactly one of code or qr")
    if data.code is not None and not codes.is_code(data.code):
        raise InvalidInput.for_field("code", "must be 6 digits")
    config = await sitecfg.load(site_id)
    await codes.check_throttle(deps.redis, deps.settings, site_id, principal.person_id, config.code_max_failures)
    row, reason = await _find_pass(deps, site_id, data)
    if row is None:
        await codes.record_failure(deps.redis, deps.settings, site_id, principal.person_id, config.code_window_seconds)
        return VerifyResult(outcome="refused", reason=reason)  # type: ignore[arg-type]
    summary = {
        "pass_id": row["id"],
        "unit_id": row["unit"],
        "visitor_name": str(row["visitor_name"]),
        "kind": str(row["kind"]),
    }
    refusal = validity(row, now, await site_zone_of(site_id))
    if refusal is None and await is_blocked(site_id, row["phone_index"], row["plate_index"]):  # type: ignore[arg-type]
        refusal = "blocklisted"
    seen_plate = plate_index_of(deps.settings, data.plate) if data.plate else None
    plate_matches = None if not row["plate_index"] or not data.plate else seen_plate == row["plate_index"]
    if refusal is None and seen_plate and await is_blocked(site_id, None, seen_plate):
        refusal = "blocklisted"
    if refusal is not None:
        await _refused_attempt(deps, site_id, principal, config, refusal)
        return VerifyResult(outcome="refused", reason=refusal, plate_matches=plate_matches, **summary)  # type: ignore[arg-type]
    if not data.check_in:
        return VerifyResult(outcome="valid", plate_matches=plate_matches, **summary)  # type: ignore[arg-type]
    plate = seal_plate(deps.settings, data.plate, "plate") if data.plate else None
    visit = Visit(
        site=site_id,
        unit=row["unit"],
        visitor_pass=row["id"],
        kind=row["kind"],
        source="pass",
        name=row["visitor_name"],
        phone_encrypted=row["phone_encrypted"],
        phone_index=row["phone_index"],
        plate_encrypted=plate.encrypted if plate else row["plate_encrypted"],
        plate_index=plate.index if plate else row["plate_index"],
        status="inside",
        registered_by=principal.person_id,
        gate=data.gate,
        created_at=now,
        checked_in_at=now,
    )
    async with write_transaction():
        if row["schedule"] == "one_time":
            # Single use: only one verification can move it from active to used, with its visit.
            taken = (
                await VisitorPass.update({VisitorPass.status: "used", VisitorPass.used_at: now})
                .where((VisitorPass.id == row["id"]) & (VisitorPass.status == "active"))
                .returning(VisitorPass.id)
            )
            if not taken:
                refusal = "used"
        if refusal is None:
            await visit.save()
    if refusal is not None:
        await _refused_attempt(deps, site_id, principal, config, refusal)
        return VerifyResult(outcome="refused", reason=refusal, plate_matches=plate_matches, **summary)  # type: ignore[arg-type]
    stored = await Visit.select().where(Visit.id == visit.id).first()
    assert stored is not None
    await alerts.arrived(deps, stored, now)
    return VerifyResult(outcome="checked_in", visit_id=visit.id, plate_matches=plate_matches, **summary)  # type: ignore[arg-type]


async def _refused_attempt(
    deps: VisitorDeps, site_id: UUID, principal: Principal, config: sitecfg.VisitorSettings, reason: str
) -> None:
    """Every refusal but the blocklist counts towards the guessing throttle."""
    if reason != "blocklisted":
        await codes.record_failure(deps.redis, deps.settings, site_id, principal.person_id, config.code_window_seconds)


# ------------------------------------------------------------------------------ walk-ins


class WalkInForm(msgspec.Struct, frozen=True, kw_only=True):
    unit_id: UUID
    name: str
    phone: str | None = None
    purpose: str | None = None
    kind: VisitorKind = "guest"
    plate: str | None = None
    gate: str | None = None


class WalkInCreated(msgspec.Struct, frozen=True, kw_only=True):
    visit: VisitView
    approval_id: UUID
    occupants_asked: int
    refused: Literal["blocklisted"] | None = None


async def register_walk_in(
    deps: VisitorDeps,
    principal: Principal,
    form: WalkInForm,
    photo: bytes | None,
    now: dt.datetime | None = None,
) -> WalkInCreated:
    now = now or now_utc()
    site_id = principal.site_id
    name = form.name.strip()
    if not 1 <= len(name) <= 200:
        raise InvalidInput.for_field("name", "must be 1-200 characters")
    if form.purpose is not None and len(form.purpose) > 200:
        raise InvalidInput.for_field("purpose", "must be at most 200 characters")
    for field, value in (("name", name), ("purpose", form.purpose)):
        if value is not None and (problem := text_error(value)) is not None:
            raise InvalidInput.for_field(field, problem)
    if form.gate is not None and not GATE_PATTERN.fullmatch(form.gate):
        raise InvalidInput.for_field("gate", "is not a gate name")
    label, region = await unit_and_region(site_id, form.unit_id)
    phone = seal_phone(deps.settings, form.phone, region, "phone")
    plate = seal_plate(deps.settings, form.plate, "plate")
    if await is_blocked(site_id, phone.index, plate.index):
        raise Conflict("the visitor is on the site's blocklist", extra={"reason": "blocklisted"})
    stored_photo = await save_image(photo, deps.settings, site_id=site_id, kind="visitor") if photo else None
    config = await sitecfg.load(site_id)
    first_rung = config.ladder[0].after_seconds if config.ladder else None
    visit = Visit(
        site=site_id,
        unit=form.unit_id,
        kind=form.kind,
        source="walk_in",
        name=name,
        phone_encrypted=phone.encrypted,
        phone_index=phone.index,
        plate_encrypted=plate.encrypted,
        plate_index=plate.index,
        photo_key=stored_photo.key if stored_photo else None,
        purpose=form.purpose,
        status="pending",
        registered_by=principal.person_id,
        gate=form.gate,
        created_at=now,
    )
    approval = VisitorApproval(
        site=site_id,
        visit=visit.id,
        unit=form.unit_id,
        status="pending",
        requested_at=now,
        next_step=0,
        next_step_at=now + dt.timedelta(seconds=first_rung) if first_rung is not None else None,
    )
    first_ask = VisitorApprovalStep(
        site=site_id,
        approval=approval.id,
        step=0,  # the first ask (app and push); rung i of the site's ladder is step i + 1
        action="push",
        at=now,
        detail={},
    )
    async with write_transaction():
        await visit.save()
        await approval.save()
        await first_ask.save()
    event = ev.ApprovalRequested(
        approval_id=approval.id,
        visit_id=visit.id,
        unit_id=form.unit_id,
        unit_label=label,
        name=name,
        kind=form.kind,
        purpose=form.purpose,
        has_photo=stored_photo is not None,
        gate=form.gate,
        requested_at=now,
    )
    await publish_all(deps, gate_topics(site_id, form.unit_id), ev.APPROVAL_REQUESTED, event)
    occupants = await occupants_of(site_id, form.unit_id)
    notification_id = await notify(
        deps,
        site_id=site_id,
        audience=Audience(person_ids=occupants),
        title=f"Visitor at the gate for {label}",
        body=f"{name}" + (f" ({form.purpose})" if form.purpose else "") + " is waiting. Approve or deny in the app.",
        key=f"visitor:approval:{approval.id}",
        urgency=Urgency.CRITICAL,
        data={"type": ev.APPROVAL_REQUESTED, "approval_id": approval.id, "visit_id": visit.id},
        collapse_key=f"visitor-{approval.id}"[:64],
        now=now,
    )
    await VisitorApprovalStep.update(
        {VisitorApprovalStep.detail: {"occupants": len(occupants), "notification": str(notification_id)}}
    ).where(VisitorApprovalStep.id == first_ask.id)
    if first_rung == 0 and deps.enqueue_job is not None:
        # The site's first rung is due at once (SMS beside the push, say): take it now, not at the next tick.
        await deps.enqueue_job("visitor_ladder_tick")
    row = await Visit.select().where(Visit.id == visit.id).first()
    assert row is not None
    return WalkInCreated(visit=visit_view(row, approval.id), approval_id=approval.id, occupants_asked=len(occupants))


# ------------------------------------------------------------------------------ check in and out


async def _visit(site_id: UUID, visit_id: UUID) -> dict[str, object]:
    row = await Visit.select().where((Visit.site == site_id) & (Visit.id == visit_id)).first()
    if row is None:
        raise NotFound("visit not found")
    return row


async def check_in(
    deps: VisitorDeps, principal: Principal, visit_id: UUID, now: dt.datetime | None = None
) -> VisitView:
    """Let an approved walk-in through."""
    now = now or now_utc()
    row = await _visit(principal.site_id, visit_id)
    if row["status"] == "pending" and await VisitorApproval.exists().where(
        (VisitorApproval.visit == visit_id) & (VisitorApproval.status == "approved")
    ):
        # approvals.answer publishes the answer before the visit row follows it; a guard who taps
        # "Check in" the moment it shows must not be refused in between.
        await Visit.update({Visit.status: "approved"}).where((Visit.id == visit_id) & (Visit.status == "pending"))
    moved = (
        await Visit.update({Visit.status: "inside", Visit.checked_in_at: now})
        .where((Visit.id == visit_id) & (Visit.status == "approved"))
        .returning(Visit.id)
    )
    if not moved:
        raise Conflict(f"the visit is {row['status']}, not approved", extra={"status": row["status"]})
    stored = await _visit(principal.site_id, visit_id)
    await alerts.arrived(deps, stored, now)
    return visit_view(stored)


async def check_out(
    deps: VisitorDeps, principal: Principal, visit_id: UUID, now: dt.datetime | None = None
) -> VisitView:
    now = now or now_utc()
    row = await _visit(principal.site_id, visit_id)
    moved = (
        await Visit.update({Visit.status: "left", Visit.checked_out_at: now})
        .where((Visit.id == visit_id) & (Visit.status == "inside"))
        .returning(Visit.id)
    )
    if not moved:
        raise Conflict(f"the visit is {row['status']}, not inside", extra={"status": row["status"]})
    stored = await _visit(principal.site_id, visit_id)
    await alerts.departed(deps, stored, now)
    return visit_view(stored)
