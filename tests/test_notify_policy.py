"""The decision matrix: consent x DND x category x channel, and the rules around it."""

from __future__ import annotations

import datetime as dt
import itertools
from zoneinfo import ZoneInfo

import pytest

from notifications.categories import Category, Channel, Urgency
from notifications.policy import (
    DEFAULT_DIGEST,
    NEVER_DIGESTED,
    Action,
    Decision,
    DndSettings,
    Facts,
    QuietWindow,
    Reason,
    SitePolicy,
    decide,
)

IST = ZoneInfo("Asia/Kolkata")
# Wednesday 2026-11-25, 23:00 in Kolkata: inside 22:00-07:00 quiet hours, outside 09-21 promotional hours.
NOW = dt.datetime(2026, 11, 25, 23, 0, tzinfo=IST).astimezone(dt.UTC)
QUIET_ENDS = dt.datetime(2026, 11, 26, 7, 0, tzinfo=IST).astimezone(dt.UTC)
SNOOZE_ENDS = NOW + dt.timedelta(hours=2)
PROMO_OPENS = dt.datetime(2026, 11, 26, 9, 0, tzinfo=IST).astimezone(dt.UTC)
NIGHTLY = tuple(QuietWindow(weekday=d, start=dt.time(22), end=dt.time(7)) for d in range(7))
DND_STATES = {
    "no dnd": None,
    "quiet hours now": DndSettings(timezone="Asia/Kolkata", windows=NIGHTLY),
    "snoozed": DndSettings(timezone="Asia/Kolkata", snooze_until=SNOOZE_ENDS),
}
CRITICAL = {Category.EMERGENCY, Category.SECURITY, Category.VISITOR}
SITE = SitePolicy()


def urgency_of(category: Category) -> Urgency:
    return Urgency.CRITICAL if category in CRITICAL else Urgency.NORMAL


def expected(consent: bool, dnd: str, category: Category, channel: Channel) -> Decision:
    """The product rules, written out cell by cell (PRODUCT.md: privacy and messaging rules)."""
    if not consent:
        return Decision(Action.SUPPRESS, Reason.NO_CONSENT)
    if category is Category.PROMOTIONAL:  # 23:00 is outside 09-21: wait for 09:00, whatever the DND
        return Decision(Action.DEFER, Reason.PROMOTIONAL_HOURS, PROMO_OPENS)
    if dnd == "no dnd" or channel is Channel.IN_APP:
        return Decision(Action.SEND)
    if category in CRITICAL:
        return Decision(Action.SEND, Reason.BREAKS_THROUGH_DND)
    return Decision(Action.DEFER, Reason.DND, QUIET_ENDS if dnd == "quiet hours now" else SNOOZE_ENDS)


CELLS = list(itertools.product([True, False], DND_STATES, list(Category), list(Channel)))


@pytest.mark.parametrize(("consent", "dnd", "category", "channel"), CELLS)
def test_decision_matrix(consent: bool, dnd: str, category: Category, channel: Channel) -> None:
    facts = Facts(
        channel=channel,
        category=category,
        urgency=urgency_of(category),
        consented=consent,
        contact_present=True,
        dnd=DND_STATES[dnd],
        created_at=NOW,
        now=NOW,
    )
    assert decide(facts, SITE) == expected(consent, dnd, category, channel)


def test_matrix_covers_every_cell() -> None:
    # Counted from the enums, not a literal: every category a module adds joins the matrix by itself.
    assert len(set(CELLS)) == len(CELLS) == 2 * len(DND_STATES) * len(Category) * len(Channel)
    assert {category for _, _, category, _ in CELLS} == set(Category)
    assert {channel for *_, channel in CELLS} == set(Channel)


def _facts(**overrides: object) -> Facts:
    base: dict[str, object] = {
        "channel": Channel.SMS,
        "category": Category.COMPLAINT,
        "urgency": Urgency.NORMAL,
        "consented": True,
        "contact_present": True,
        "created_at": NOW,
        "now": NOW,
    }
    base.update(overrides)
    return Facts(**base)  # type: ignore[arg-type]


def test_missing_invalid_and_opted_out_contacts_are_suppressed() -> None:
    assert decide(_facts(contact_present=False), SITE).reason is Reason.NO_CONTACT_POINT
    assert decide(_facts(contact_status="invalid"), SITE).reason is Reason.INVALID_CONTACT
    assert decide(_facts(contact_status="opted_out"), SITE).reason is Reason.PROVIDER_OPT_OUT
    # A carrier-level STOP does not silence the app.
    assert decide(_facts(contact_status="opted_out", channel=Channel.PUSH), SITE).action is Action.SEND


def test_national_dnd_blocks_promotional_sms_and_whatsapp_only() -> None:
    at_noon = dt.datetime(2026, 11, 25, 12, 0, tzinfo=IST).astimezone(dt.UTC)
    promo = {"category": Category.PROMOTIONAL, "on_national_dnd": True, "created_at": at_noon, "now": at_noon}
    assert decide(_facts(**promo), SITE).reason is Reason.NATIONAL_DND
    assert decide(_facts(**promo, channel=Channel.WHATSAPP), SITE).reason is Reason.NATIONAL_DND
    assert decide(_facts(**promo, channel=Channel.PUSH), SITE).action is Action.SEND
    transactional = {**promo, "category": Category.BILLING}
    assert decide(_facts(**transactional), SITE).action is Action.SEND


def test_promotional_goes_between_nine_and_nine_local_time() -> None:
    for hour, action in [(8, Action.DEFER), (9, Action.SEND), (20, Action.SEND), (21, Action.DEFER)]:
        moment = dt.datetime(2026, 11, 25, hour, 30, tzinfo=IST).astimezone(dt.UTC)
        decision = decide(_facts(category=Category.PROMOTIONAL, created_at=moment, now=moment), SITE)
        assert decision.action is action, hour


def test_a_deferral_past_the_ttl_expires_instead() -> None:
    # A visitor alert that is not allowed to break through is useless 8 hours later.
    site = SitePolicy(critical_categories=frozenset())
    decision = decide(
        _facts(category=Category.VISITOR, urgency=Urgency.CRITICAL, dnd=DND_STATES["quiet hours now"]), site
    )
    assert decision == Decision(Action.SUPPRESS, Reason.EXPIRED)


def test_a_stale_message_expires_at_send_time() -> None:
    later = NOW + dt.timedelta(hours=25)
    assert decide(_facts(category=Category.ANNOUNCEMENT, now=later), SITE).reason is Reason.EXPIRED


def test_critical_breaks_through_only_for_critical_urgency_and_site_critical_category() -> None:
    quiet = DND_STATES["quiet hours now"]
    # Not critical urgency: it waits, and a security alert 8 hours late is past its 6-hour TTL.
    not_urgent = decide(_facts(category=Category.SECURITY, urgency=Urgency.NORMAL, dnd=quiet), SITE)
    assert not_urgent == Decision(Action.SUPPRESS, Reason.EXPIRED)
    assert decide(_facts(category=Category.BILLING, urgency=Urgency.CRITICAL, dnd=quiet), SITE).action is Action.DEFER


def test_quiet_window_from_yesterday_still_applies_after_midnight() -> None:
    # Tuesday's 22:00-07:00 window covers Wednesday 03:00 even though Wednesday has no window.
    tuesday_only = DndSettings(timezone="Asia/Kolkata", windows=(QuietWindow(1, dt.time(22), dt.time(7)),))
    wednesday_3am = dt.datetime(2026, 11, 25, 3, 0, tzinfo=IST).astimezone(dt.UTC)
    decision = decide(_facts(dnd=tuesday_only, created_at=wednesday_3am, now=wednesday_3am), SITE)
    assert decision.defer_until == dt.datetime(2026, 11, 25, 7, 0, tzinfo=IST).astimezone(dt.UTC)


def test_snooze_that_ends_inside_quiet_hours_defers_to_the_end_of_quiet_hours() -> None:
    evening = dt.datetime(2026, 11, 25, 20, 0, tzinfo=IST).astimezone(dt.UTC)
    dnd = DndSettings(timezone="Asia/Kolkata", windows=NIGHTLY, snooze_until=evening + dt.timedelta(hours=3))
    decision = decide(_facts(dnd=dnd, created_at=evening, now=evening), SITE)
    assert decision.defer_until == QUIET_ENDS


def test_quiet_hours_use_the_persons_own_timezone() -> None:
    london_night = DndSettings(timezone="Europe/London", windows=NIGHTLY)
    # 23:00 in Kolkata is 17:30 in London: not quiet there.
    assert decide(_facts(dnd=london_night), SITE).action is Action.SEND


def test_every_category_is_digested_by_default_or_never() -> None:
    # Modules add categories (permits, attendance, maintenance): each is a service update that quiet hours
    # hold and release as one digest, unless it is on the never-digested list.
    assert set(DEFAULT_DIGEST) | NEVER_DIGESTED == set(Category)
    assert not set(DEFAULT_DIGEST) & NEVER_DIGESTED
    assert all(DEFAULT_DIGEST[c].dnd for c in (Category.PERMIT, Category.ATTENDANCE, Category.MAINTENANCE))
