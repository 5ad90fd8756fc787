"""Whether, and when, one message may go to one person on one channel.

A pure function of the facts (consent, DND, category, channel, contact, site policy and
the time), so every combination is testable without I/O. The fan-out job decides with it
when it expands an audience, and the sender decides again at send time, so a consent
withdrawn after enqueueing still stops the message.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated, Final
from zoneinfo import ZoneInfo

import msgspec

from notifications.categories import (
    DEFAULT_CRITICAL,
    DEFAULT_TTL_SECONDS,
    PHONE_CHANNELS,
    PROMOTIONAL_WINDOW_END_HOUR,
    PROMOTIONAL_WINDOW_START_HOUR,
    Category,
    Channel,
    Urgency,
)


class Action(StrEnum):
    SEND = "send"
    DEFER = "defer"
    SUPPRESS = "suppress"


class Reason(StrEnum):
    NO_CONSENT = "no_consent"
    NO_CONTACT_POINT = "no_contact_point"
    INVALID_CONTACT = "invalid_contact"
    PROVIDER_OPT_OUT = "provider_opt_out"
    NATIONAL_DND = "national_dnd"
    DND = "dnd"
    PROMOTIONAL_HOURS = "promotional_hours"
    EXPIRED = "expired"
    BREAKS_THROUGH_DND = "breaks_through_dnd"
    CANCELLED = "cancelled"
    DIGEST = "digest"  # held for a digest: a burst of one thread


class QuietWindow(msgspec.Struct, frozen=True):
    """Quiet hours on one weekday (0 = Monday), local time; end <= start means 'until next day'."""

    weekday: int
    start: dt.time
    end: dt.time


class DndSettings(msgspec.Struct, frozen=True):
    timezone: str
    windows: tuple[QuietWindow, ...] = ()
    snooze_until: dt.datetime | None = None


class DigestRule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How a category's messages are gathered into digests (``notifications.digest``)."""

    # Messages held back by a person's quiet hours go out as one digest when the quiet time ends.
    dnd: bool = True
    # After a message of one thread (a complaint, or the category itself), further ones within this many
    # minutes wait and go out together as one digest when the window ends. 0: every message goes at once.
    burst_minutes: Annotated[int, msgspec.Meta(ge=0, le=24 * 60)] = 0


# Critical, time-bound categories (emergency, security, visitor) are never digested, and promotional
# messages never join service ones (India's DLT approves their texts in separate template classes), nor
# scheduled reports (a digest carries no attachment). Every other category is a service update that
# quiet hours may hold: those held go out as one digest.
NEVER_DIGESTED: Final = frozenset(
    {Category.EMERGENCY, Category.SECURITY, Category.VISITOR, Category.PROMOTIONAL, Category.REPORT}
)
DEFAULT_DIGEST: dict[Category, DigestRule] = {
    Category.COMPLAINT: DigestRule(dnd=True, burst_minutes=10),
    Category.BOOKING: DigestRule(dnd=True),
    Category.BILLING: DigestRule(dnd=True),
    Category.PERMIT: DigestRule(dnd=True),
    Category.ATTENDANCE: DigestRule(dnd=True),
    Category.MAINTENANCE: DigestRule(dnd=True),
    Category.ANNOUNCEMENT: DigestRule(dnd=True),
}


class SitePolicy(msgspec.Struct, frozen=True):
    timezone: str = "Asia/Kolkata"
    critical_categories: frozenset[Category] = DEFAULT_CRITICAL
    ttl_seconds: dict[Category, int] = msgspec.field(default_factory=lambda: dict(DEFAULT_TTL_SECONDS))
    digest: dict[Category, DigestRule] = msgspec.field(default_factory=lambda: dict(DEFAULT_DIGEST))


class Facts(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    channel: Channel
    category: Category
    urgency: Urgency
    consented: bool
    contact_present: bool
    contact_status: str = "ok"  # ok | invalid | opted_out
    on_national_dnd: bool = False
    dnd: DndSettings | None = None
    created_at: dt.datetime
    now: dt.datetime


class Decision(msgspec.Struct, frozen=True, gc=False):
    action: Action
    reason: Reason | None = None
    defer_until: dt.datetime | None = None


def decide(facts: Facts, site: SitePolicy) -> Decision:
    if not facts.contact_present:
        return Decision(Action.SUPPRESS, Reason.NO_CONTACT_POINT)
    if facts.contact_status == "invalid":
        return Decision(Action.SUPPRESS, Reason.INVALID_CONTACT)
    if facts.contact_status == "opted_out" and facts.channel in PHONE_CHANNELS:
        return Decision(Action.SUPPRESS, Reason.PROVIDER_OPT_OUT)
    if not facts.consented:
        return Decision(Action.SUPPRESS, Reason.NO_CONSENT)
    expires_at = facts.created_at + dt.timedelta(seconds=site.ttl_seconds[facts.category])
    if facts.now >= expires_at:
        return Decision(Action.SUPPRESS, Reason.EXPIRED)

    if facts.category is Category.PROMOTIONAL:
        if facts.on_national_dnd and facts.channel in PHONE_CHANNELS:
            return Decision(Action.SUPPRESS, Reason.NATIONAL_DND)
        opens = next_promotional_opening(facts.now, _zone(facts.dnd.timezone if facts.dnd else site.timezone))
        if opens is not None:
            return _defer_or_expire(opens, expires_at, Reason.PROMOTIONAL_HOURS)

    # The in-app feed wakes nobody: DND does not hold it back.
    if facts.channel is Channel.IN_APP or facts.dnd is None:
        return Decision(Action.SEND)
    quiet_until = dnd_ends_at(facts.dnd, facts.now)
    if quiet_until is None:
        return Decision(Action.SEND)
    if facts.urgency is Urgency.CRITICAL and facts.category in site.critical_categories:
        return Decision(Action.SEND, Reason.BREAKS_THROUGH_DND)
    return _defer_or_expire(quiet_until, expires_at, Reason.DND)


class Decisions:
    """``decide`` with a memory: the same facts always give the same decision, and most people of a
    site share theirs (default consent, no quiet hours), so a batch of thousands decides a handful."""

    def __init__(self, site: SitePolicy) -> None:
        self._site = site
        self._memo: dict[Facts, Decision] = {}

    def __call__(self, facts: Facts) -> Decision:
        decision = self._memo.get(facts)
        if decision is None:
            if len(self._memo) > 10_000:  # facts that differ by their moment (now) never repeat
                self._memo.clear()
            decision = self._memo[facts] = decide(facts, self._site)
        return decision


def _defer_or_expire(until: dt.datetime, expires_at: dt.datetime, reason: Reason) -> Decision:
    if until >= expires_at:
        return Decision(Action.SUPPRESS, Reason.EXPIRED)
    return Decision(Action.DEFER, reason, defer_until=until)


def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def next_promotional_opening(now: dt.datetime, zone: ZoneInfo) -> dt.datetime | None:
    """None inside 09:00-21:00 local time, else when the window next opens."""
    local = now.astimezone(zone)
    if PROMOTIONAL_WINDOW_START_HOUR <= local.hour < PROMOTIONAL_WINDOW_END_HOUR:
        return None
    day = local.date() if local.hour < PROMOTIONAL_WINDOW_START_HOUR else local.date() + dt.timedelta(days=1)
    opening = dt.datetime.combine(day, dt.time(PROMOTIONAL_WINDOW_START_HOUR), tzinfo=zone)
    return opening.astimezone(dt.UTC)


def dnd_ends_at(dnd: DndSettings, now: dt.datetime) -> dt.datetime | None:
    """When the person's quiet time that covers `now` ends, or None if they are not quiet now.

    Snooze and quiet windows can chain (a snooze that ends inside a quiet window), so we
    follow them until a moment that is not quiet.
    """
    zone = _zone(dnd.timezone)
    moment = now
    for _ in range(16):  # windows cover at most a week; this bounds pathological chains
        end = _quiet_end_covering(dnd, moment, zone)
        if end is None:
            return None if moment == now else moment
        moment = end
    return moment


def _quiet_end_covering(dnd: DndSettings, moment: dt.datetime, zone: ZoneInfo) -> dt.datetime | None:
    ends: list[dt.datetime] = []
    if dnd.snooze_until is not None and dnd.snooze_until > moment:
        ends.append(dnd.snooze_until)
    local = moment.astimezone(zone)
    # A window that started yesterday may still be running after midnight.
    for day_offset in (0, -1):
        day = local.date() + dt.timedelta(days=day_offset)
        for window in dnd.windows:
            if window.weekday != day.weekday():
                continue
            start = dt.datetime.combine(day, window.start, tzinfo=zone)
            end_day = day if window.end > window.start else day + dt.timedelta(days=1)
            end = dt.datetime.combine(end_day, window.end, tzinfo=zone)
            if start <= local < end:
                ends.append(end.astimezone(dt.UTC))
    return max(ends) if ends else None
