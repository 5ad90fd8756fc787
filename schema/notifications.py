"""Tables of the notification pipeline: preferences, consent history, DND, and the delivery ledger.

The ledger (``Delivery``) holds exactly one row per (notification, person, channel): the
truth about what was decided and sent, which arq jobs read and update so that re-running
any job sends nothing twice and misses no one.
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

from schema.tables import Person, Site


class NotificationPreference(Table, tablename="notification_preference"):
    """The current on/off per person, channel and category; absent means the category's default."""

    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    person = ForeignKey(references=Person, on_delete=OnDelete.cascade, null=False, index=True)
    channel = Varchar(length=16)
    category = Varchar(length=32)
    enabled = Boolean()
    updated_at = Timestamptz()


class ConsentEvent(Table, tablename="consent_event"):
    """Append-only history of every consent change (never updated, only added to)."""

    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    person = ForeignKey(references=Person, on_delete=OnDelete.cascade, null=False, index=True)
    channel = Varchar(length=16)
    category = Varchar(length=32)
    granted = Boolean()
    source = Varchar(length=16)  # app | web | keyword | admin | import | provider
    policy_version = Varchar(length=32)
    actor = ForeignKey(references=Person, on_delete=OnDelete.set_null, null=True, default=None)
    created_at = Timestamptz()


class DoNotDisturb(Table, tablename="do_not_disturb"):
    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    person = ForeignKey(references=Person, on_delete=OnDelete.cascade, null=False, unique=True)
    timezone = Varchar(length=64)
    # [{"weekday": 0-6, "start": "22:00", "end": "07:00"}, ...]
    windows = JSON(default="[]")
    snooze_until = Timestamptz(null=True, default=None)
    updated_at = Timestamptz()


class NationalDndEntry(Table, tablename="national_dnd_entry"):
    """A number on the national do-not-call registry (NCPR), as the site imported it.

    Only the keyed blind index is stored: the registry's numbers need not be readable here.
    """

    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    phone_index = Varchar(length=64, index=True)
    imported_at = Timestamptz()


class Notification(Table, tablename="notification"):
    """One message to many people: an FM announcement or an event-driven notification."""

    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    kind = Varchar(length=16)  # announcement | event | digest
    category = Varchar(length=32)
    urgency = Varchar(length=16, default="normal")
    title = Varchar(length=200)
    body = Text()
    data = JSON(default="{}")
    channels = JSON(default="[]")
    audience = JSON(default="{}")
    # Messages that supersede each other (slot availability) share a collapse key.
    collapse_key = Varchar(length=64, null=True, default=None)
    idempotency_key = Varchar(length=128, null=True, default=None)
    created_by = ForeignKey(references=Person, on_delete=OnDelete.set_null, null=True, default=None)
    # draft | scheduled | expanding | sending | completed | cancelled
    status = Varchar(length=16, default="scheduled")
    scheduled_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz()
    expanded_at = Timestamptz(null=True, default=None)
    completed_at = Timestamptz(null=True, default=None)
    cancelled_at = Timestamptz(null=True, default=None)
    targeted = Integer(default=0)
    # How many parts the audience is expanded in (0: not yet planned); see NotificationPart.
    parts = Integer(default=0)


class NotificationPart(Table, tablename="notification_part"):
    """A part of a notification's audience, expanded: recorded once (unique notification, part)."""

    id = UUID(primary_key=True)
    notification = ForeignKey(references=Notification, on_delete=OnDelete.cascade, null=False, index=True)
    part = Integer()
    people = Integer(default=0)
    finished_at = Timestamptz()


class Delivery(Table, tablename="delivery"):
    """The ledger: one row per (notification, person, channel) and its fate."""

    id = UUID(primary_key=True)
    # The notification's site, copied for the reads by site and period (reports, retention), indexed with
    # created_at. Not a foreign key of its own (migration 0024): the notification is one, and deleting a site
    # deletes its notifications and their rows here. (SQLite keeps the constraint its table was created with.)
    site = UUID(null=False, default=None)
    # Indexed by uq_delivery_notification_person_channel and ix_delivery_person_channel_created (migrations).
    notification = ForeignKey(references=Notification, on_delete=OnDelete.cascade, null=False)
    person = ForeignKey(references=Person, on_delete=OnDelete.cascade, null=False)
    channel = Varchar(length=16)
    # pending | sending | deferred | suppressed | sent | delivered | read | failed | digested
    status = Varchar(length=16)
    reason = Varchar(length=32, null=True, default=None)
    defer_until = Timestamptz(null=True, default=None)
    next_attempt_at = Timestamptz(null=True, default=None)
    attempts = Integer(default=0)
    # Set when a sender claims the row; a claim older than the lease is "in doubt".
    claimed_at = Timestamptz(null=True, default=None)
    claim_token = Varchar(length=32, null=True, default=None)
    provider_id = Varchar(length=64, null=True, default=None)  # not indexed: no query reads by it (opshub_0023)
    provider_code = Varchar(length=32, null=True, default=None)
    created_at = Timestamptz()
    updated_at = Timestamptz()
    sent_at = Timestamptz(null=True, default=None)
    delivered_at = Timestamptz(null=True, default=None)
    read_at = Timestamptz(null=True, default=None)
    # status 'digested': the row went out inside this digest (a notification of kind 'digest').
    digest = UUID(null=True, default=None)


NOTIFICATION_TABLES: list[type[Table]] = [
    NotificationPreference,
    ConsentEvent,
    DoNotDisturb,
    NationalDndEntry,
    Notification,
    NotificationPart,
    Delivery,
]
