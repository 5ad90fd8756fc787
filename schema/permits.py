"""Tables of the permits module (migrations: see schema/piccolo_migrations/README.md).

A permit type is per site: its declared fields, required attachments, declarations and approval
chain live in JSON columns the service validates (``app.permits.types``). A permit snapshots its
type's chain when it is submitted, so a chain edited later never changes a permit in flight.

A permit carries a ``version`` that every change increments with ``UPDATE ... WHERE version = ?``
(as complaints do): two approvers of an any-of group acting at once cannot both win. Every step
(submitted, approved, rejected, sent back, resubmitted, cancelled, revoked) is appended to
``permit_step`` with who and when.

Named people and vehicles are personal data of people who are not members of the site: phones and
plates are stored encrypted with a blind index (``app.people.directory``'s cipher), and deleted by
the ``permit_people`` retention class after the permit ends.
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


class PermitType(Table, tablename="permit_type"):
    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    code = Varchar(length=64)  # unique per site
    kind = Varchar(length=32)  # fit_out | hot_work | move_in | move_out | vendor_access | working_at_height
    name = Varchar(length=200)
    description = Text(default="")
    fields = JSON(default="[]")  # [{key, label, type, required, choices, min, max, max_length}]
    attachments = JSON(default="[]")  # [{key, label, required, accept: image | pdf | any}]
    declarations = JSON(default="[]")  # [{key, text}]
    chain = JSON(default="[]")  # [{label, role} | {label, person_ids}]: in order
    max_days = Integer(default=30)
    daily_start = Varchar(length=5, null=True, default=None)  # "HH:MM" site time: work hours, if limited
    daily_end = Varchar(length=5, null=True, default=None)
    requires_dues_cleared = Boolean(default=False)
    occupants_may_apply = Boolean(default=True)
    is_active = Boolean(default=True)
    updated_at = Timestamptz()


class Permit(Table, tablename="permit"):
    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    permit_type = ForeignKey(references=PermitType, on_delete=OnDelete.restrict, null=False, index=True)
    reference = Varchar(length=16)  # unique per site, e.g. "P-7K3Q9X": what the vendor quotes at the gate
    unit = ForeignKey(references=Unit, on_delete=OnDelete.set_null, null=True, default=None, index=True)
    location = Varchar(length=200, null=True, default=None)  # a common area, when there is no unit
    title = Varchar(length=200)
    applicant = ForeignKey(references=Person, on_delete=OnDelete.set_null, null=True, default=None, index=True)
    # draft | pending | changes_requested | approved | rejected | cancelled | revoked
    status = Varchar(length=24, index=True)
    version = Integer(default=1)
    round = Integer(default=0)  # 1 at the first submission, +1 at each resubmission
    step = Integer(default=0)  # index into ``chain`` of the step awaiting a decision (while pending)
    chain = JSON(default="[]")  # the type's chain, snapshotted at each submission
    values = JSON(default="{}")  # the type-specific fields, validated against the type
    declarations = JSON(default="[]")  # the keys the applicant accepted
    valid_from = Timestamptz()
    valid_until = Timestamptz()
    daily_start = Varchar(length=5, null=True, default=None)
    daily_end = Varchar(length=5, null=True, default=None)
    decision_reason = Text(null=True, default=None)  # the last rejection / send-back / revocation reason
    submitted_at = Timestamptz(null=True, default=None)
    decided_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz()
    updated_at = Timestamptz()


class PermitStep(Table, tablename="permit_step"):
    """One thing that happened to a permit, with who and when (appended, never updated but on erasure)."""

    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    permit = ForeignKey(references=Permit, on_delete=OnDelete.cascade, null=False, index=True)
    round = Integer()
    step = Integer(null=True, default=None)  # the chain step decided, for approvals and refusals
    step_label = Varchar(length=200, null=True, default=None)
    # submitted | resubmitted | approved | rejected | sent_back | cancelled | revoked
    action = Varchar(length=24)
    actor = ForeignKey(references=Person, on_delete=OnDelete.set_null, null=True, default=None, index=True)
    note = Text(null=True, default=None)
    detail = JSON(default="{}")  # e.g. {"dues": "confirmed_by_approver"}
    version = Integer()  # the permit's version after this step
    at = Timestamptz()


class PermitEntrant(Table, tablename="permit_entrant"):
    """A person or vehicle named on a permit: who the gate may let in under it."""

    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    permit = ForeignKey(references=Permit, on_delete=OnDelete.cascade, null=False, index=True)
    kind = Varchar(length=16)  # person | vehicle
    name = Varchar(length=200, null=True, default=None)  # a person's name, or a vehicle's description
    phone_encrypted = Text(null=True, default=None)
    phone_index = Varchar(length=64, null=True, default=None, index=True)
    plate_encrypted = Text(null=True, default=None)
    plate_index = Varchar(length=64, null=True, default=None, index=True)


class PermitAttachment(Table, tablename="permit_attachment"):
    """A file for one of the type's attachment slots; the newest per slot is the one that counts."""

    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    permit = ForeignKey(references=Permit, on_delete=OnDelete.cascade, null=False, index=True)
    slot = Varchar(length=64)
    key = Varchar(length=255)
    media_type = Varchar(length=64)
    size = Integer()
    uploaded_by = ForeignKey(references=Person, on_delete=OnDelete.set_null, null=True, default=None, index=True)
    created_at = Timestamptz()


class PermitEntry(Table, tablename="permit_entry"):
    """A named person or vehicle let in at the gate under a permit, and when they left."""

    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    permit = ForeignKey(references=Permit, on_delete=OnDelete.cascade, null=False, index=True)
    entrant = ForeignKey(references=PermitEntrant, on_delete=OnDelete.set_null, null=True, default=None)
    gate = Varchar(length=32, null=True, default=None)
    let_in_by = ForeignKey(references=Person, on_delete=OnDelete.set_null, null=True, default=None)
    checked_in_at = Timestamptz()
    checked_out_at = Timestamptz(null=True, default=None)


PERMIT_TABLES: list[type[Table]] = [PermitType, Permit, PermitStep, PermitEntrant, PermitAttachment, PermitEntry]
