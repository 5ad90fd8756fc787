"""Payloads of the visitors module's realtime events (docs/visitors.md lists who gets which).

Topics: ``unit:{unit_id}`` (the unit's occupants, guards and staff), ``site:{id}:gate`` (guards and
staff) and ``site:{id}:control`` (staff). Event types are the constants below.
"""

from __future__ import annotations

import datetime as dt
from typing import Final
from uuid import UUID

import msgspec

APPROVAL_REQUESTED: Final = "visitor.approval_requested"
APPROVAL_RESOLVED: Final = "visitor.approval_resolved"
APPROVAL_ESCALATED: Final = "visitor.approval_escalated"
ARRIVED: Final = "visitor.arrived"
DEPARTED: Final = "visitor.departed"
OVERSTAY: Final = "visitor.overstay"
EXPECTED: Final = "visitor.expected"
PASS_REVOKED: Final = "visitor.pass_revoked"
ANPR_READ: Final = "visitor.anpr_read"
ANPR_REVIEW: Final = "visitor.anpr_review"


class ApprovalRequested(msgspec.Struct, frozen=True, kw_only=True):
    approval_id: UUID
    visit_id: UUID
    unit_id: UUID
    unit_label: str
    name: str
    kind: str
    purpose: str | None
    has_photo: bool
    gate: str | None
    requested_at: dt.datetime


class ApprovalResolved(msgspec.Struct, frozen=True, kw_only=True):
    approval_id: UUID
    visit_id: UUID
    unit_id: UUID
    decision: str  # approved | denied | leave_at_gate
    decided_by: UUID | None
    decided_via: str  # app | link | voice | guard
    decided_at: dt.datetime
    time_to_decision_ms: int


class OccupantToCall(msgspec.Struct, frozen=True, kw_only=True):
    person_id: UUID
    name: str
    mobile: str | None


class ApprovalEscalated(msgspec.Struct, frozen=True, kw_only=True):
    approval_id: UUID
    visit_id: UUID
    unit_id: UUID
    step: int
    action: str  # message | voice | guard_prompt
    at: dt.datetime
    # guard_prompt only: whom the guard should call.
    call: list[OccupantToCall] = msgspec.field(default_factory=list)


class Arrived(msgspec.Struct, frozen=True, kw_only=True):
    visit_id: UUID
    unit_id: UUID
    name: str
    kind: str
    source: str  # pass | walk_in
    pass_id: UUID | None
    at: dt.datetime
    gate: str | None


class Departed(msgspec.Struct, frozen=True, kw_only=True):
    visit_id: UUID
    unit_id: UUID
    name: str
    kind: str
    at: dt.datetime


class Overstay(msgspec.Struct, frozen=True, kw_only=True):
    visit_id: UUID
    unit_id: UUID
    unit_label: str
    name: str
    kind: str
    checked_in_at: dt.datetime
    limit_minutes: int


class Expected(msgspec.Struct, frozen=True, kw_only=True):
    pass_id: UUID
    unit_id: UUID
    name: str
    kind: str
    valid_from: dt.datetime
    valid_until: dt.datetime
    has_vehicle: bool


class PassRevoked(msgspec.Struct, frozen=True, kw_only=True):
    pass_id: UUID
    unit_id: UUID


class AnprSeen(msgspec.Struct, frozen=True, kw_only=True):
    read_id: UUID
    camera: str
    gate: str
    plate: str
    confidence: float
    lane: str | None
    direction: str
    image_ref: str | None
    outcome: str  # resident | visitor | unknown | manual_review
    unit_id: UUID | None
    pass_id: UUID | None
    at: dt.datetime
