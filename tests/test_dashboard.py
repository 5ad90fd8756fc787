"""The control room's aggregates (app/dashboard/service.py) against seeded data, and who may read them.

Every expected number is counted here from the seed spec (or with a query of its own), not taken
from the service: complaint volume and SLA outcome per local day, approval-time p50/p90 and
histogram, the delivery funnel per channel, the active-complaint board and the gate board.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest

from app.complaints.lifecycle import Status
from app.complaints.sla import Priority
from app.dashboard import service
from notifications.audience import Audience
from notifications.categories import Category, Channel
from notifications.service import NotificationRequest, create_notification
from schema.notifications import Delivery
from schema.visitors import Visit, VisitorApproval, VisitorApprovalStep
from tests.support.complaints import configure, move, raise_one
from tests.support.world import World

TZ = ZoneInfo("Asia/Kolkata")
NOW = dt.datetime(2026, 11, 25, 6, 30, tzinfo=dt.UTC)  # 12:00 in the site's timezone
MIN = dt.timedelta(minutes=1)
DAY = dt.timedelta(days=1)

# (raised this long before NOW, what happens to it): plumbing is 60 min to respond, 240 to resolve.
COMPLAINTS: list[tuple[dt.timedelta, str]] = [
    (DAY, "met"),  # started after 10 min, resolved after 60
    (DAY, "late_start"),  # started after 90 min: the response deadline was missed
    (DAY, "never_started"),  # electrical, nobody on shift: open long past its deadlines
    (5 * DAY, "met"),
    (5 * DAY, "cancelled"),
    (12 * DAY, "late_resolution"),  # resolved after 300 min
    (40 * DAY, "met"),  # outside the 30 days
    (30 * MIN, "assigned"),  # today, on track
    (50 * MIN, "assigned"),  # today, 50 of its 60 response minutes used: at risk
]
OUTCOME = {
    "met": "met",
    "late_start": "breached",
    "never_started": "breached",
    "late_resolution": "breached",
    "cancelled": None,
    "assigned": None,
}


async def seed_complaints(world: World, settings: Any, redis: Any) -> None:
    await configure(world)
    for ago, fate in COMPLAINTS:
        at = NOW - ago
        category = "electrical" if fate == "never_started" else "plumbing"
        raised = await raise_one(world, settings, redis, now=at, category=category, priority=Priority.NORMAL)
        if fate == "met":
            await move(world, settings, redis, raised.id, "technician", Status.IN_PROGRESS, at + 10 * MIN)
            await move(world, settings, redis, raised.id, "technician", Status.RESOLVED, at + 60 * MIN)
        elif fate == "late_start":
            await move(world, settings, redis, raised.id, "technician", Status.IN_PROGRESS, at + 90 * MIN)
            await move(world, settings, redis, raised.id, "technician", Status.RESOLVED, at + 100 * MIN)
        elif fate == "late_resolution":
            await move(world, settings, redis, raised.id, "technician", Status.IN_PROGRESS, at + 5 * MIN)
            await move(world, settings, redis, raised.id, "technician", Status.RESOLVED, at + 300 * MIN)
        elif fate == "cancelled":
            await move(world, settings, redis, raised.id, "occupant", Status.CANCELLED, at + 5 * MIN)


async def test_complaint_volume_and_sla_compliance_per_day(world: World, settings: Any, redis: Any) -> None:
    await seed_complaints(world, settings, redis)
    trend = await service.complaint_trend(world.site_id, NOW)

    today = NOW.astimezone(TZ).date()
    raised: Counter[dt.date] = Counter()
    outcomes: dict[dt.date, Counter[str]] = {}
    for ago, fate in COMPLAINTS:
        day = (NOW - ago).astimezone(TZ).date()
        if (today - day).days >= 30:
            continue
        raised[day] += 1
        if OUTCOME[fate]:
            outcomes.setdefault(day, Counter())[OUTCOME[fate]] += 1  # type: ignore[index]

    assert len(trend.days) == 30
    assert trend.days[0].date == today - dt.timedelta(days=29) and trend.days[-1].date == today
    for entry in trend.days:
        met = outcomes.get(entry.date, Counter())["met"]
        breached = outcomes.get(entry.date, Counter())["breached"]
        assert (entry.raised, entry.met, entry.breached) == (raised[entry.date], met, breached), entry.date
        expected = round(100 * met / (met + breached), 1) if met + breached else None
        assert entry.compliance_percent == expected, entry.date
    yesterday = next(d for d in trend.days if d.date == today - dt.timedelta(days=1))
    assert (yesterday.raised, yesterday.met, yesterday.breached, yesterday.compliance_percent) == (3, 1, 2, 33.3)
    assert sum(d.raised for d in trend.days) == 8  # the one 40 days ago is left out


async def test_complaint_board_counts_active_complaints_by_status_and_sla(
    world: World, settings: Any, redis: Any
) -> None:
    await seed_complaints(world, settings, redis)
    board = await service.complaint_board(world.site_id, NOW)
    # Active now: the never-started electrical one (open, breached) and today's two (assigned).
    assert board.by_status == {"open": 1, "assigned": 2, "in_progress": 0, "on_hold": 0, "reopened": 0}
    assert board.by_sla == {"on_track": 1, "at_risk": 1, "breached": 1}
    assert [c.sla_state for c in board.complaints] == ["breached", "at_risk", "on_track"]
    assert board.complaints[0].status == "open" and board.complaints[0].category == "electrical"


async def add_visit(world: World, status: str, **fields: Any) -> UUID:
    visit = Visit(
        site=world.site_id,
        unit=world.unit_ids[0],
        kind=fields.pop("kind", "guest"),
        source=fields.pop("source", "walk_in"),
        name=fields.pop("name", "Ravi"),
        status=status,
        created_at=fields.pop("created_at", NOW - DAY),
        **fields,
    )
    await visit.save()
    return visit.id


async def add_approval(world: World, status: str, decided_ago: dt.timedelta | None, ms: int | None) -> UUID:
    decided_at = NOW - decided_ago if decided_ago is not None else None
    requested_at = (decided_at or NOW) - dt.timedelta(milliseconds=ms or 0)
    visit_id = await add_visit(world, status, created_at=requested_at)  # a walk-in asks as it is registered
    approval = VisitorApproval(
        site=world.site_id,
        visit=visit_id,
        unit=world.unit_ids[0],
        status=status,
        requested_at=requested_at,
        decided_at=decided_at,
        decided_via="app" if decided_at else None,
        time_to_decision_ms=ms,
    )
    await approval.save()
    return approval.id


DECISION_MS = [700_000, 4_000, 12_000, 90_000, 20_000, 31_000, 45_000, 61_000, 150_000, 400_000]


async def test_approval_time_distribution(world: World, other_world: World) -> None:
    for index, ms in enumerate(DECISION_MS):
        await add_approval(world, "denied" if index == 3 else "approved", dt.timedelta(days=index + 1), ms)
    await add_approval(world, "approved", dt.timedelta(days=40), 1_000)  # outside the 30 days
    await add_approval(world, "pending", None, None)  # not decided
    await add_approval(other_world, "approved", dt.timedelta(days=1), 999_000)  # another site

    times = await service.approval_times(world.site_id, NOW)

    values = sorted(DECISION_MS)
    # Nearest rank: the ceil(p * n)-th smallest value.
    assert times.count == 10
    assert times.p50_ms == values[math.ceil(0.5 * 10) - 1] == 45_000
    assert times.p90_ms == values[math.ceil(0.9 * 10) - 1] == 400_000
    bounds = [15, 30, 60, 120, 300, 600]
    expected = [
        sum(1 for v in values if (i == 0 or v > bounds[i - 1] * 1000) and v <= b * 1000) for i, b in enumerate(bounds)
    ]
    expected.append(sum(1 for v in values if v > 600_000))
    assert [b.count for b in times.buckets] == expected == [2, 1, 2, 2, 1, 1, 1]
    assert times.by_decision == {"approved": 9, "denied": 1}

    other = await service.approval_times(other_world.site_id, NOW)
    assert (other.count, other.p50_ms, other.p90_ms) == (1, 999_000, 999_000)


# (person, channel, status, reason) rows of one announcement's ledger.
LEDGER: list[tuple[str, str, str, str | None]] = [
    ("occupant", "sms", "delivered", None),
    ("guard", "sms", "sent", None),
    ("technician", "sms", "failed", None),
    ("fm_admin", "sms", "suppressed", "no_consent"),
    ("site_admin", "sms", "suppressed", "ncpr"),
    ("platform_admin", "sms", "deferred", "dnd"),
    ("occupant", "push", "read", None),
    ("guard", "push", "delivered", None),
    ("technician", "push", "sent", None),
    ("fm_admin", "push", "pending", None),
    ("site_admin", "push", "suppressed", "no_consent"),
]


async def seed_ledger(world: World, rows: list[tuple[str, str, str, str | None]], created: dt.datetime) -> UUID:
    notification_id, _ = await create_notification(
        site_id=world.site_id,
        request=NotificationRequest(
            title="Water cut",
            body="No water 14:00-16:00",
            category=Category.ANNOUNCEMENT,
            audience=Audience(everyone=True),
            channels=[Channel.SMS, Channel.PUSH],
        ),
        now=created,
    )
    for person, channel, status, reason in rows:
        await Delivery(
            site=world.site_id,
            notification=notification_id,
            person=world.people[person],
            channel=channel,
            status=status,
            reason=reason,
            created_at=created,
            updated_at=created,
        ).save()
    return notification_id


async def test_delivery_funnel_per_channel(world: World, other_world: World) -> None:
    await seed_ledger(world, LEDGER, NOW - 2 * DAY)
    await seed_ledger(world, [("occupant", "sms", "delivered", None)], NOW - 45 * DAY)  # too old
    await seed_ledger(other_world, [("occupant", "sms", "failed", None)], NOW - DAY)  # another site

    funnel = await service.delivery_funnel(world.site_id, NOW)

    by_channel = {c.channel: c for c in funnel.channels}
    assert sorted(by_channel) == ["push", "sms"]
    for channel in ("sms", "push"):
        mine = [(s, r) for _, c, s, r in LEDGER if c == channel]
        statuses = Counter(s for s, _ in mine)
        got = by_channel[channel]
        assert got.requested == len(mine)
        assert got.sent == statuses["sent"] + statuses["delivered"] + statuses["read"]
        assert got.delivered == statuses["delivered"] + statuses["read"]
        assert got.failed == statuses["failed"]
        assert got.suppressed == statuses["suppressed"]
        assert got.deferred == statuses["deferred"]
        assert got.pending == statuses["pending"] + statuses["sending"]
        assert got.suppressed_by_reason == dict(Counter(r for s, r in mine if s == "suppressed"))
    # And against the ledger itself, counted by a query of its own.
    since = NOW - 30 * DAY
    sms_rows = await Delivery.count().where(
        (Delivery.site == world.site_id) & (Delivery.channel == "sms") & (Delivery.created_at >= since)
    )
    assert by_channel["sms"].requested == sms_rows == 6

    other = await service.delivery_funnel(other_world.site_id, NOW)
    assert [(c.channel, c.requested, c.failed) for c in other.channels] == [("sms", 1, 1)]


async def test_gate_board_pending_with_rung_answers_arrivals_and_overstays(world: World, other_world: World) -> None:
    pending_id = await add_approval(world, "pending", None, None)
    await VisitorApprovalStep(
        site=world.site_id, approval=pending_id, step=0, action="push", at=NOW - 2 * MIN, detail={}
    ).save()
    await VisitorApprovalStep(
        site=world.site_id, approval=pending_id, step=1, action="message", at=NOW - MIN, detail={}
    ).save()
    answered_id = await add_approval(world, "approved", 10 * MIN, 30_000)
    await add_approval(world, "denied", 5 * DAY, 30_000)  # answered too long ago for the feed
    await add_visit(world, "inside", name="Courier", kind="delivery", checked_in_at=NOW - 20 * MIN)
    await add_visit(world, "inside", name="Old friend", checked_in_at=NOW - 14 * 60 * MIN)  # past 12 h: overstay
    await add_approval(other_world, "pending", None, None)

    board = await service.gate_board(world.site_id, NOW)

    assert [(a.id, a.status) for a in board.approvals] == [(pending_id, "pending"), (answered_id, "approved")]
    assert (board.approvals[0].rung, board.approvals[0].step) == ("message", 1)
    assert [v.name for v in board.arrivals] == ["Courier"]
    assert [v.name for v in board.overstays] == ["Old friend"]


ROUTES = [
    "/api/dashboard/complaints",
    "/api/dashboard/gate",
    "/api/dashboard/charts",
    "/api/dashboard/audience-options",
]


@pytest.mark.parametrize("path", ROUTES)
async def test_only_staff_of_the_site_may_read_the_dashboard(
    client: Any, world: World, other_world: World, path: str
) -> None:
    for who in ("occupant", "guard", "technician"):
        response = await client.get(path, headers=world.headers(who))
        assert response.status_code == 403, (who, response.text)
    for who in ("fm_admin", "site_admin"):
        assert (await client.get(path, headers=world.headers(who))).status_code == 200
    assert (await client.get(path)).status_code == 401


async def test_another_sites_admin_sees_only_their_own(
    client: Any, world: World, other_world: World, settings: Any, redis: Any
) -> None:
    await configure(world)
    await raise_one(world, settings, redis, now=service.now_utc() - 5 * MIN, category="electrical")
    await add_approval(world, "pending", None, None)
    await seed_ledger(world, LEDGER, service.now_utc() - DAY)

    mine = (await client.get("/api/dashboard/complaints", headers=world.headers("fm_admin"))).json()
    theirs = (await client.get("/api/dashboard/complaints", headers=other_world.headers("fm_admin"))).json()
    assert mine["by_status"]["open"] == 1 and sum(mine["by_status"].values()) == 1
    assert sum(theirs["by_status"].values()) == 0 and theirs["complaints"] == []

    gate = (await client.get("/api/dashboard/gate", headers=other_world.headers("site_admin"))).json()
    assert gate["approvals"] == []
    charts = (await client.get("/api/dashboard/charts", headers=other_world.headers("fm_admin"))).json()
    assert charts["deliveries"]["channels"] == []
    assert sum(d["raised"] for d in charts["complaints"]["days"]) == 0
    options = (await client.get("/api/dashboard/audience-options", headers=other_world.headers("fm_admin"))).json()
    assert {u["id"] for u in options["units"]}.isdisjoint({str(u) for u in world.unit_ids})
    mine_charts = (await client.get("/api/dashboard/charts", headers=world.headers("fm_admin"))).json()
    assert {c["channel"]: c["requested"] for c in mine_charts["deliveries"]["channels"]} == {"push": 5, "sms": 6}
