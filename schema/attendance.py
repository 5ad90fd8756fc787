"""Tables of the staff attendance module (migrations: see schema/piccolo_migrations/README.md).

Staff are the site's facility people (guards, technicians, housekeeping, daily help), with or
without an account. Who is due when comes from the roster (weekday -> named shift), or for a
technician with an account from the complaints module's ``technician_shift`` rows (one roster,
not two). Check-ins and check-outs are ``attendance_punch`` rows, appended and never edited: a
supervisor's correction voids one or adds one, with a reason, in ``attendance_correction``.

No location is stored: a phone check-in keeps whether it was inside the site's geofence and the
accuracy the browser reported, never the coordinates. No biometric data is collected.
"""

from __future__ import annotations

from piccolo.columns import (
    UUID,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Integer,
    OnDelete,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.table import Table

from schema.tables import Person, Site


class AttendanceSiteConfig(Table, tablename="attendance_site_config"):
    """One row per site; absent means the defaults in ``app.attendance.config``."""

    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, unique=True)
    # The geofence: a circle around the site's centre (WGS 84 degrees, metres). None: no phone check-in.
    centre_lat = Float(null=True, default=None)
    centre_lng = Float(null=True, default=None)
    radius_m = Integer(default=200)
    max_accuracy_m = Integer(default=100)  # a fix less precise than this is refused (ask to retry or use the gate)
    late_after_minutes = Integer(default=10)  # grace after a shift's start
    absent_after_minutes = Integer(default=60)
    supervisor = ForeignKey(references=Person, on_delete=OnDelete.set_null, null=True, default=None)
    updated_at = Timestamptz()


class StaffMember(Table, tablename="attendance_staff"):
    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    name = Varchar(length=200)
    category = Varchar(length=16)  # guard | technician | housekeeping | daily_help | other
    # The staff member's own account (phone check-in; a technician's shifts), if they have one.
    person = ForeignKey(references=Person, on_delete=OnDelete.set_null, null=True, default=None, index=True)
    # A daily help's mobile (encrypted, blind-indexed): their daily-help pass at the gate is their check-in.
    phone_encrypted = Text(null=True, default=None)
    phone_index = Varchar(length=64, null=True, default=None, index=True)
    supervisor = ForeignKey(references=Person, on_delete=OnDelete.set_null, null=True, default=None)
    is_active = Boolean(default=True)
    created_at = Timestamptz()


class Shift(Table, tablename="attendance_shift"):
    """A named working window of the site, in site time; ``end`` before ``start`` runs past midnight."""

    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    code = Varchar(length=64)
    name = Varchar(length=200)
    start = Varchar(length=5)
    end = Varchar(length=5)


class RosterEntry(Table, tablename="attendance_roster"):
    """A staff member is due on this shift every ``weekday`` (0 = Monday)."""

    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    staff = ForeignKey(references=StaffMember, on_delete=OnDelete.cascade, null=False, index=True)
    shift = ForeignKey(references=Shift, on_delete=OnDelete.cascade, null=False, index=True)
    weekday = Integer()


class Punch(Table, tablename="attendance_punch"):
    """One check-in or check-out, as it was recorded; voided (never deleted) by a correction."""

    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    staff = ForeignKey(references=StaffMember, on_delete=OnDelete.cascade, null=False, index=True)
    kind = Varchar(length=8)  # in | out
    at = Timestamptz()
    source = Varchar(length=16)  # gate | phone | daily_help_pass | correction
    recorded_by = ForeignKey(references=Person, on_delete=OnDelete.set_null, null=True, default=None)
    gate = Varchar(length=32, null=True, default=None)
    inside_geofence = Boolean(null=True, default=None)  # phone check-ins only
    accuracy_m = Float(null=True, default=None)  # phone check-ins only
    visit = UUID(null=True, default=None)  # the visitors module's visit, for a daily help let in on their pass
    voided_at = Timestamptz(null=True, default=None)


class Correction(Table, tablename="attendance_correction"):
    """A supervisor's change to the record: a punch added or voided, with the reason."""

    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    staff = ForeignKey(references=StaffMember, on_delete=OnDelete.cascade, null=False, index=True)
    punch = ForeignKey(references=Punch, on_delete=OnDelete.cascade, null=False)
    action = Varchar(length=8)  # add | void
    reason = Text()
    by = ForeignKey(references=Person, on_delete=OnDelete.set_null, null=True, default=None)
    at = Timestamptz()


class AttendanceAlert(Table, tablename="attendance_alert"):
    """A late or absent alert sent for one duty (unique per staff, day, shift start and kind: sent once)."""

    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    staff = ForeignKey(references=StaffMember, on_delete=OnDelete.cascade, null=False, index=True)
    day = Date()  # the duty's day, site time
    shift_start = Varchar(length=5)
    kind = Varchar(length=8)  # late | absent
    due_at = Timestamptz()  # when the shift started
    notification = UUID(null=True, default=None)
    at = Timestamptz()


ATTENDANCE_TABLES: list[type[Table]] = [
    AttendanceSiteConfig,
    StaffMember,
    Shift,
    RosterEntry,
    Punch,
    Correction,
    AttendanceAlert,
]
