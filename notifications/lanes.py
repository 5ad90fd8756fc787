"""Priority lanes: a visitor at the gate never waits behind a 10,000-flat announcement.

Two lanes. Urgent: critical messages of any category, and the transactional moments a person is
waiting on (a visitor at the gate, security, an emergency, a booking starting, a complaint update).
Bulk: announcements, promotional messages and reminders such as bills. The lane decides where a
notification's jobs sit in the arq queue (urgent jobs are scored ahead of every bulk job) and which
share of a channel's provider rate it may use (bulk leaves a reserve, and pauses while urgent sends
are waiting: notifications.ratelimit).
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Final, TypedDict

from notifications.categories import Category, Urgency


class Lane(StrEnum):
    URGENT = "urgent"
    BULK = "bulk"


BULK_CATEGORIES: Final = frozenset(
    {Category.ANNOUNCEMENT, Category.PROMOTIONAL, Category.BILLING, Category.MAINTENANCE, Category.REPORT}
)

# arq picks due jobs in ascending score (the time they are due, in ms). An urgent job is scored this far
# in the past, so it is read before every bulk job already queued, however many there are.
URGENT_HEAD_START: Final = dt.timedelta(days=1)
# With its score in the past, arq would compute a job's expiry from it; every job is given this instead.
JOB_EXPIRY: Final = dt.timedelta(days=1)


def lane_of(category: Category | str, urgency: Urgency | str) -> Lane:
    if Urgency(urgency) is Urgency.CRITICAL:
        return Lane.URGENT
    return Lane.BULK if Category(category) in BULK_CATEGORIES else Lane.URGENT


class Placement(TypedDict, total=False):
    """arq's enqueue_job options, as they are named there."""

    _defer_until: dt.datetime
    _expires: dt.timedelta


def queue_placement(lane: Lane, now: dt.datetime | None = None) -> Placement:
    """The arq enqueue options that put a job of this lane in its place in the queue."""
    if lane is Lane.BULK:
        return Placement(_expires=JOB_EXPIRY)
    now = now or dt.datetime.now(dt.UTC)
    return Placement(_defer_until=now - URGENT_HEAD_START, _expires=JOB_EXPIRY)
