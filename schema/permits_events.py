"""Realtime event payloads of the permits module (docs/permits.md lists who gets which).

Topics: ``site:{id}:control`` (the FM team's permit queue), ``user:{applicant}`` (the applicant's app),
``unit:{id}`` for a unit's permit (its occupants), ``site:{id}:gate`` (guards: permits approved and
entries). Payloads carry ids, states and times: never a named person's phone or plate, nor a reason's
text on the gate topic.
"""

from __future__ import annotations

import datetime as dt
from typing import Final
from uuid import UUID

import msgspec

PERMIT_CHANGED: Final = "permit.changed"
PERMIT_ENTERED: Final = "permit.entered"
PERMIT_LEFT: Final = "permit.left"
PERMIT_GATE_REFUSED: Final = "permit.gate_refused"


class PermitChanged(msgspec.Struct, frozen=True, kw_only=True):
    """A permit was submitted, decided at a step, sent back, resubmitted, cancelled or revoked."""

    permit_id: UUID
    reference: str
    kind: str
    type_name: str
    unit_id: UUID | None
    status: str
    action: str  # the step that happened: submitted | approved | rejected | sent_back | ...
    round: int
    step: int  # the chain step now awaited (while pending)
    step_label: str | None  # its label
    version: int
    applicant_id: UUID | None
    by: UUID | None
    valid_from: dt.datetime
    valid_until: dt.datetime
    at: dt.datetime


class PermitEntered(msgspec.Struct, frozen=True, kw_only=True):
    permit_id: UUID
    entry_id: UUID
    reference: str
    unit_id: UUID | None
    name: str
    gate: str | None
    at: dt.datetime


class PermitGateRefused(msgspec.Struct, frozen=True, kw_only=True):
    """Someone was refused at the gate under a permit (not_yet_valid, expired, outside_hours, ...)."""

    permit_id: UUID
    reference: str
    reason: str
    gate: str | None
    at: dt.datetime
