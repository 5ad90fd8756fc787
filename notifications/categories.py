"""Channels, categories and their defaults: the vocabulary every notification uses."""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class Channel(StrEnum):
    PUSH = "push"
    SMS = "sms"
    WHATSAPP = "whatsapp"
    EMAIL = "email"
    IN_APP = "in_app"


class Category(StrEnum):
    EMERGENCY = "emergency"
    SECURITY = "security"
    VISITOR = "visitor"
    COMPLAINT = "complaint"
    BOOKING = "booking"
    BILLING = "billing"
    PERMIT = "permit"  # a permit's steps, to its applicant and its approvers
    ATTENDANCE = "attendance"  # late and absent staff, to their supervisor
    MAINTENANCE = "maintenance"  # service visits and contract expiry (AMC), for the FM team
    REPORT = "report"  # scheduled reports e-mailed to staff, with the report attached (never digested)
    ANNOUNCEMENT = "announcement"
    PROMOTIONAL = "promotional"


class Urgency(StrEnum):
    NORMAL = "normal"  # may wait for DND to end
    HIGH = "high"  # time-sensitive (e.g. a booking about to start); still waits for DND
    CRITICAL = "critical"  # may break through DND where the site's policy marks its category critical


# Channels that reach a phone number through a carrier: subject to NCPR and provider opt-out.
PHONE_CHANNELS: Final = frozenset({Channel.SMS, Channel.WHATSAPP})
TRANSACTIONAL: Final = frozenset(set(Category) - {Category.PROMOTIONAL})

# Transactional categories are on by default; promotional needs an explicit opt-in.
DEFAULT_ENABLED: Final = {category: category is not Category.PROMOTIONAL for category in Category}

# Categories the site may let break through DND (the site chooses which; these are the defaults).
DEFAULT_CRITICAL: Final = frozenset({Category.EMERGENCY, Category.SECURITY, Category.VISITOR})

# How long a deferred message stays worth delivering.
DEFAULT_TTL_SECONDS: Final = {
    Category.EMERGENCY: 6 * 3600,
    Category.SECURITY: 6 * 3600,
    Category.VISITOR: 15 * 60,  # the visitor has left long before DND ends
    Category.COMPLAINT: 24 * 3600,
    Category.BOOKING: 12 * 3600,
    Category.BILLING: 3 * 24 * 3600,
    Category.PERMIT: 24 * 3600,
    Category.ATTENDANCE: 12 * 3600,  # held by the supervisor's quiet hours, still worth reading in the morning
    Category.MAINTENANCE: 3 * 24 * 3600,
    Category.REPORT: 3 * 24 * 3600,  # its attachment is kept as long (app.reports.schedules)
    Category.ANNOUNCEMENT: 24 * 3600,
    Category.PROMOTIONAL: 24 * 3600,
}

# TRAI: promotional messages only between these local hours.
PROMOTIONAL_WINDOW_START_HOUR: Final = 9
PROMOTIONAL_WINDOW_END_HOUR: Final = 21

# Channels a digest may gather messages on. The in-app feed lists every message itself and is never held.
DIGEST_CHANNELS: Final = frozenset({Channel.PUSH, Channel.SMS, Channel.WHATSAPP, Channel.EMAIL})
