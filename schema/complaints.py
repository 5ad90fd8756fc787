"""Tables of the complaints module (migrations: see schema/piccolo_migrations/README.md).

A complaint carries a ``version`` that every state change increments with
``UPDATE ... WHERE id = ? AND version = ?``: two people changing one complaint at once
cannot both win, and the loser is told so (409) instead of silently overwriting.
Every state change, assignment and reassignment is also appended to
``complaint_transition`` (never updated, only added to, except anonymised on erasure).
"""

from __future__ import annotations

from piccolo.columns import (
    JSON,
    UUID,
    Boolean,
    ForeignKey,
    Integer,
    OnDelete,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.table import Table

from schema.tables import Person, Site, Unit


class ComplaintSiteConfig(Table, tablename="complaint_site_config"):
    """One row per site; absent means the defaults in ``app.complaints.config``."""

    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, unique=True)
    reopen_window_hours = Integer(default=72)
    at_risk_percent = Integer(default=75)
    escalation_step_minutes = Integer(default=60)
    supervisor = ForeignKey(references=Person, on_delete=OnDelete.set_null, null=True, default=None)
    updated_at = Timestamptz()


class ComplaintCategory(Table, tablename="complaint_category"):
    """A category of complaint on one site, the technician skill it needs and its sub-categories."""

    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    code = Varchar(length=64)
    name = Varchar(length=200)
    skill = Varchar(length=64, null=True, default=None)
    subcategories = JSON(default="[]")
    is_active = Boolean(default=True)


class ComplaintSlaRule(Table, tablename="complaint_sla_rule"):
    """Response and resolution windows for one category and priority on one site."""

    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    category = ForeignKey(references=ComplaintCategory, on_delete=OnDelete.cascade, null=False, index=True)
    priority = Varchar(length=16)
    response_minutes = Integer()
    resolution_minutes = Integer()


class TechnicianShift(Table, tablename="technician_shift"):
    """A technician's working window on one weekday (0 = Monday), in the site's timezone.

    ``end`` before ``start`` means the shift runs past midnight into the next day.
    """

    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    technician = ForeignKey(references=Person, on_delete=OnDelete.cascade, null=False, index=True)
    weekday = Integer()
    start = Varchar(length=5)  # "HH:MM"
    end = Varchar(length=5)


class Complaint(Table, tablename="complaint"):
    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    kind = Varchar(length=16, default="complaint")  # complaint | work_order
    category = ForeignKey(references=ComplaintCategory, on_delete=OnDelete.restrict, null=False)
    subcategory = Varchar(length=64, null=True, default=None)
    unit = ForeignKey(references=Unit, on_delete=OnDelete.set_null, null=True, default=None, index=True)
    location = Varchar(length=200, null=True, default=None)  # common area, when there is no unit
    # What it is about, when raised from a QR code (no foreign key: see migration 0019a).
    asset = UUID(null=True, default=None)  # an amc_asset
    place = UUID(null=True, default=None)  # a place
    description = Text()
    priority = Varchar(length=16, default="normal")
    status = Varchar(length=16, default="open", index=True)
    version = Integer(default=1)
    # Who raised it (an occupant, a guard, or staff) and, when staff raised it for an occupant, for whom.
    raised_by = ForeignKey(references=Person, on_delete=OnDelete.set_null, null=True, default=None, index=True)
    raised_for = ForeignKey(references=Person, on_delete=OnDelete.set_null, null=True, default=None, index=True)
    visibility = Varchar(length=16, default="raiser")  # raiser | staff (internal work orders)
    assignee = ForeignKey(references=Person, on_delete=OnDelete.set_null, null=True, default=None, index=True)
    response_due_at = Timestamptz()
    resolution_due_at = Timestamptz()
    responded_at = Timestamptz(null=True, default=None)
    resolved_at = Timestamptz(null=True, default=None)
    closed_at = Timestamptz(null=True, default=None)
    escalation_level = Integer(default=0)
    rating = Integer(null=True, default=None)
    feedback = Text(null=True, default=None)
    created_at = Timestamptz()
    updated_at = Timestamptz()


class ComplaintTransition(Table, tablename="complaint_transition"):
    """One state change (or reassignment, from_status == to_status), with who, when and a note."""

    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    complaint = ForeignKey(references=Complaint, on_delete=OnDelete.cascade, null=False, index=True)
    from_status = Varchar(length=16, null=True, default=None)  # None for the raise itself
    to_status = Varchar(length=16)
    version = Integer()  # the complaint's version after this change
    actor = ForeignKey(references=Person, on_delete=OnDelete.set_null, null=True, default=None)
    assignee = ForeignKey(references=Person, on_delete=OnDelete.set_null, null=True, default=None)
    note = Text(null=True, default=None)
    created_at = Timestamptz()


class ComplaintComment(Table, tablename="complaint_comment"):
    """A comment (visible to the raiser) or an internal note (staff and technicians only)."""

    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    complaint = ForeignKey(references=Complaint, on_delete=OnDelete.cascade, null=False, index=True)
    author = ForeignKey(references=Person, on_delete=OnDelete.set_null, null=True, default=None, index=True)
    internal = Boolean(default=False)
    body = Text()
    created_at = Timestamptz()


class ComplaintPhoto(Table, tablename="complaint_photo"):
    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    complaint = ForeignKey(references=Complaint, on_delete=OnDelete.cascade, null=False, index=True)
    uploaded_by = ForeignKey(references=Person, on_delete=OnDelete.set_null, null=True, default=None, index=True)
    stage = Varchar(length=16)  # before | after
    key = Varchar(length=255)
    media_type = Varchar(length=32)
    size = Integer()
    created_at = Timestamptz()


class ComplaintEscalation(Table, tablename="complaint_escalation"):
    """One escalation level reached by one complaint: who was told, and the notification that told them."""

    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    complaint = ForeignKey(references=Complaint, on_delete=OnDelete.cascade, null=False, index=True)
    level = Integer()  # 1 technician, 2 supervisor, 3 FM manager
    deadline = Varchar(length=16)  # response | resolution: the one that was breached
    notified = JSON(default="[]")  # person ids
    notification = UUID(null=True, default=None)
    created_at = Timestamptz()


COMPLAINT_UNIQUE_INDEXES: dict[str, tuple[str, ...]] = {
    "complaint_category": ("site", "code"),
    "complaint_sla_rule": ("category", "priority"),
    "complaint_escalation": ("complaint", "level"),
}

COMPLAINT_TABLES: list[type[Table]] = [
    ComplaintSiteConfig,
    ComplaintCategory,
    ComplaintSlaRule,
    TechnicianShift,
    Complaint,
    ComplaintTransition,
    ComplaintComment,
    ComplaintPhoto,
    ComplaintEscalation,
]
