"""Tables of the visitors module (migrations: see schema/piccolo_migrations/README.md).

Personal values of visitors (phone, plate) are stored encrypted with a keyed blind index, as
``schema.tables.ContactPoint`` does; names may be plain text. Retention (``app.visitors.retention``)
deletes visit, pass and ANPR rows past the site's period and keeps ``VisitorDailyCount``.
"""

from __future__ import annotations

from piccolo.columns import (
    JSON,
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

from schema.tables import Person, Site, Unit


class VisitorSiteSettings(Table, tablename="visitor_site_settings"):
    """Per-site visitor settings (ladder, overstay limits, ANPR threshold...) and the retention override."""

    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, unique=True)
    config = JSON(default="{}")
    retention_days = Integer(null=True, default=None)
    updated_at = Timestamptz()


class VisitorPass(Table, tablename="visitor_pass"):
    """An occupant's pre-approval: one-time (a window) or recurring (weekdays and hours)."""

    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    unit = ForeignKey(references=Unit, on_delete=OnDelete.cascade, null=False, index=True)
    created_by = ForeignKey(references=Person, on_delete=OnDelete.set_null, null=True, default=None)
    kind = Varchar(length=16)  # guest | cab | delivery | service | daily_help
    visitor_name = Varchar(length=200)
    phone_encrypted = Text(null=True, default=None)
    phone_index = Varchar(length=64, null=True, default=None, index=True)
    plate_encrypted = Text(null=True, default=None)
    plate_index = Varchar(length=64, null=True, default=None, index=True)
    # HMAC of the 6-digit code (never the code); unique among the site's active passes.
    code_hash = Varchar(length=64, index=True)
    schedule = Varchar(length=16)  # one_time | recurring
    valid_from = Timestamptz()
    valid_until = Timestamptz()
    days = JSON(default="[]")  # recurring: weekdays 0 (Monday) to 6
    day_start = Varchar(length=5, null=True, default=None)  # recurring: "HH:MM" site time
    day_end = Varchar(length=5, null=True, default=None)
    status = Varchar(length=16, default="active")  # active | used | revoked
    used_at = Timestamptz(null=True, default=None)
    send_channel = Varchar(length=16, null=True, default=None)  # sms | whatsapp | None
    created_at = Timestamptz()


class VisitorMessage(Table, tablename="visitor_message"):
    """Ledger of pass messages to visitors who are not people of the site (one per pass and channel)."""

    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    visitor_pass = ForeignKey(references=VisitorPass, on_delete=OnDelete.cascade, null=False, index=True)
    channel = Varchar(length=16)
    # pending | sending | sent | failed | suppressed | via_notify
    status = Varchar(length=16, default="pending")
    reason = Varchar(length=32, null=True, default=None)
    provider_id = Varchar(length=64, null=True, default=None)
    notification_id = UUID(null=True, default=None)
    # The message text (it holds the code) until it is sent; cleared afterwards.
    body_encrypted = Text(null=True, default=None)
    attempts = Integer(default=0)
    claimed_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz()
    updated_at = Timestamptz()


class Visit(Table, tablename="visitor_visit"):
    """One visitor at the gate: a walk-in waiting for approval, or a pass holder checked in."""

    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    unit = ForeignKey(references=Unit, on_delete=OnDelete.cascade, null=False, index=True)
    visitor_pass = ForeignKey(references=VisitorPass, on_delete=OnDelete.set_null, null=True, default=None)
    kind = Varchar(length=16)
    source = Varchar(length=16)  # pass | walk_in
    name = Varchar(length=200)
    phone_encrypted = Text(null=True, default=None)
    phone_index = Varchar(length=64, null=True, default=None, index=True)
    plate_encrypted = Text(null=True, default=None)
    plate_index = Varchar(length=64, null=True, default=None)
    photo_key = Varchar(length=200, null=True, default=None)
    purpose = Varchar(length=200, null=True, default=None)
    # pending | approved | denied | leave_at_gate | inside | left
    status = Varchar(length=16)
    registered_by = ForeignKey(references=Person, on_delete=OnDelete.set_null, null=True, default=None)
    gate = Varchar(length=32, null=True, default=None)
    created_at = Timestamptz(index=True)
    checked_in_at = Timestamptz(null=True, default=None)
    checked_out_at = Timestamptz(null=True, default=None)
    overstay_alerted_at = Timestamptz(null=True, default=None)


class VisitorApproval(Table, tablename="visitor_approval"):
    """A walk-in's request to the unit: the first answer wins; the ladder escalates while pending."""

    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    visit = ForeignKey(references=Visit, on_delete=OnDelete.cascade, null=False, unique=True)
    unit = ForeignKey(references=Unit, on_delete=OnDelete.cascade, null=False, index=True)
    status = Varchar(length=16, default="pending")  # pending | approved | denied | leave_at_gate
    decided_by = ForeignKey(references=Person, on_delete=OnDelete.set_null, null=True, default=None)
    decided_via = Varchar(length=16, null=True, default=None)  # app | link | voice | guard
    requested_at = Timestamptz()
    decided_at = Timestamptz(null=True, default=None)
    time_to_decision_ms = Integer(null=True, default=None)
    next_step = Integer(default=1)  # index into the site's ladder of the next escalation
    next_step_at = Timestamptz(null=True, default=None, index=True)


class VisitorApprovalStep(Table, tablename="visitor_approval_step"):
    """Every rung of the ladder taken, with its time (unique per approval and step).

    A rung is claimed and recorded ``started`` in one transaction, under a lease; it becomes
    ``done`` once its sends are made. A ``started`` rung whose lease ran out (its worker died) is
    taken again, with ``attempts`` + 1 as the fencing token for whoever holds it now."""

    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    approval = ForeignKey(references=VisitorApproval, on_delete=OnDelete.cascade, null=False, index=True)
    step = Integer()
    action = Varchar(length=16)  # push | message | voice | guard_prompt | decided
    at = Timestamptz()
    detail = JSON(default="{}")
    state = Varchar(length=16, default="done")  # started | done
    lease_until = Timestamptz(null=True, default=None)
    attempts = Integer(default=1)


class VisitorBlock(Table, tablename="visitor_block"):
    """A blocklist entry of a site: by phone and/or plate (blind indexes), with a name for display."""

    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    name = Varchar(length=200, null=True, default=None)
    phone_encrypted = Text(null=True, default=None)
    phone_index = Varchar(length=64, null=True, default=None, index=True)
    plate_encrypted = Text(null=True, default=None)
    plate_index = Varchar(length=64, null=True, default=None, index=True)
    reason = Varchar(length=500)
    created_by = ForeignKey(references=Person, on_delete=OnDelete.set_null, null=True, default=None)
    created_at = Timestamptz()


class AnprCamera(Table, tablename="visitor_camera"):
    """A plate camera allowed to post reads; its secret is stored as a SHA-256 hash."""

    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    name = Varchar(length=100)
    gate = Varchar(length=32)
    token_hash = Varchar(length=64)
    is_active = Boolean(default=True)
    created_at = Timestamptz()


class AnprRead(Table, tablename="visitor_anpr_read"):
    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    camera = ForeignKey(references=AnprCamera, on_delete=OnDelete.cascade, null=False, index=True)
    plate_encrypted = Text()
    plate_index = Varchar(length=64)
    confidence = Float()
    lane = Varchar(length=32, null=True, default=None)
    direction = Varchar(length=8)  # in | out
    image_ref = Varchar(length=500, null=True, default=None)
    outcome = Varchar(length=16)  # resident | visitor | unknown | manual_review
    unit = ForeignKey(references=Unit, on_delete=OnDelete.set_null, null=True, default=None)
    vehicle_id = UUID(null=True, default=None)
    pass_id = UUID(null=True, default=None)
    created_at = Timestamptz(index=True)


class VisitorDailyCount(Table, tablename="visitor_daily_count"):
    """Aggregate visits per site, day, kind and source: what remains after retention deletes the visits."""

    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    day = Date()
    kind = Varchar(length=16)
    source = Varchar(length=16)
    visits = Integer(default=0)


VISITOR_TABLES: list[type[Table]] = [
    VisitorSiteSettings,
    VisitorPass,
    VisitorMessage,
    Visit,
    VisitorApproval,
    VisitorApprovalStep,
    VisitorBlock,
    AnprCamera,
    AnprRead,
    VisitorDailyCount,
]
