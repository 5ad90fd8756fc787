"""Realtime event payloads of the complaints module (types documented in docs/complaints.md).

Payloads carry ids and the changed fields, nothing the topic's audience may not see: internal
notes are never published on a topic an occupant can subscribe to, and no payload carries
a note's text.
"""

from __future__ import annotations

import datetime as dt
from typing import Final
from uuid import UUID

import msgspec

COMPLAINT_RAISED: Final = "complaint.raised"
COMPLAINT_STATUS_CHANGED: Final = "complaint.status_changed"
COMPLAINT_ASSIGNED: Final = "complaint.assigned"
COMPLAINT_COMMENTED: Final = "complaint.commented"
COMPLAINT_NOTE_ADDED: Final = "complaint.note_added"
COMPLAINT_ESCALATED: Final = "complaint.escalated"
COMPLAINT_RATED: Final = "complaint.rated"


class ComplaintChanged(msgspec.Struct, frozen=True, kw_only=True):
    """complaint.raised, complaint.status_changed, complaint.assigned: the complaint's new state."""

    complaint_id: UUID
    site_id: UUID
    unit_id: UUID | None
    status: str
    from_status: str | None
    version: int
    priority: str
    category: str
    assignee_id: UUID | None
    assignee_name: str | None
    sla_state: str
    response_due_at: dt.datetime
    resolution_due_at: dt.datetime
    by: UUID | None
    at: dt.datetime


class ComplaintCommented(msgspec.Struct, frozen=True, kw_only=True):
    """complaint.commented: a comment the raiser may see (never an internal note)."""

    complaint_id: UUID
    comment_id: UUID
    author_id: UUID | None
    author_name: str | None
    body: str
    at: dt.datetime


class ComplaintNoteAdded(msgspec.Struct, frozen=True, kw_only=True):
    """complaint.note_added: staff and the assignee only (site control and user topics); no text."""

    complaint_id: UUID
    comment_id: UUID
    author_id: UUID | None
    at: dt.datetime


class ComplaintEscalated(msgspec.Struct, frozen=True, kw_only=True):
    """complaint.escalated: on the site's control topic and the complaint's topic."""

    complaint_id: UUID
    level: int
    level_name: str
    deadline: str
    notified: list[UUID]
    at: dt.datetime


class ComplaintRated(msgspec.Struct, frozen=True, kw_only=True):
    complaint_id: UUID
    rating: int
    at: dt.datetime
