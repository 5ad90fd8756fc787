"""Realtime event payloads of the staff attendance module (docs/attendance.md lists who gets which).

Topics: ``site:{id}:control`` (the attendance board), ``site:{id}:gate`` (check-ins and check-outs the
guards make or see), and the supervisor's ``user:{id}`` for late and absent alerts. No payload carries
a position: a phone check-in says only whether it was inside the geofence.
"""

from __future__ import annotations

import datetime as dt
from typing import Final
from uuid import UUID

import msgspec

ATTENDANCE_PUNCHED: Final = "attendance.punched"
ATTENDANCE_LATE: Final = "attendance.late"
ATTENDANCE_ABSENT: Final = "attendance.absent"
ATTENDANCE_CORRECTED: Final = "attendance.corrected"


class Punched(msgspec.Struct, frozen=True, kw_only=True):
    """A check-in or check-out, at the gate, from a phone, or as a daily help passed the gate."""

    staff_id: UUID
    punch_id: UUID
    name: str
    category: str
    kind: str  # in | out
    source: str  # gate | phone | daily_help_pass | correction
    gate: str | None
    at: dt.datetime


class Alerted(msgspec.Struct, frozen=True, kw_only=True):
    """attendance.late / attendance.absent: a rostered staff member has not checked in."""

    staff_id: UUID
    name: str
    category: str
    day: dt.date
    shift_start: str
    due_at: dt.datetime
    minutes_late: int
    at: dt.datetime


class Corrected(msgspec.Struct, frozen=True, kw_only=True):
    staff_id: UUID
    punch_id: UUID
    action: str  # add | void
    by: UUID | None
    at: dt.datetime
