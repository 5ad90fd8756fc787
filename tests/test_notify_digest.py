"""Digests (#17 point 3), under a controlled clock, against the fakes through the real SDKs.

What waited for a person (their quiet hours, or a burst of updates on one thread) goes out as one
message per channel listing what happened; critical messages still break through at once; consent
withdrawn meanwhile is honoured; the ledger keeps every underlying row and names its digest.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from notifications import fanout, sender
from notifications.audience import Audience
from notifications.categories import Category, Channel, Urgency
from notifications.context import NotifyContext
from notifications.digest import DIGEST_KIND, release_due, render
from notifications.fakes import RunningFakes, running_fakes
from notifications.preferences import ConsentChange, QuietHours, change_consent, set_dnd
from notifications.service import NotificationRequest, create_notification
from schema.notifications import Delivery, Notification
from tests.support.notify import Recipient, add_recipients, pipeline

NIGHT = dt.datetime(2026, 11, 25, 23, 0, tzinfo=dt.UTC)  # quiet hours 22:00-07:00 UTC below
MORNING = dt.datetime(2026, 11, 26, 7, 0, tzinfo=dt.UTC)


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
async def fakes() -> AsyncIterator[RunningFakes]:
    async with running_fakes() as running:
        running.twilio.configure(callbacks_enabled=False)
        yield running


@pytest.fixture
async def wired(settings: Any, redis: Any, fakes: RunningFakes) -> AsyncIterator[tuple[NotifyContext, Clock]]:
    clock = Clock(NIGHT)
    async with pipeline(settings, redis, fakes) as ctx:
        ctx.clock = clock
        yield ctx, clock


async def quiet_at_night(world: Any, people: list[Recipient]) -> None:
    for person in people:
        await set_dnd(
            site_id=world.site_id,
            person_id=person.person_id,
            timezone="UTC",
            quiet_hours=[QuietHours(weekday=d, start="22:00", end="07:00") for d in range(7)],
            snooze_until=None,
        )


async def notify(
    ctx: NotifyContext,
    world: Any,
    people: list[Recipient],
    *,
    title: str,
    body: str,
    category: Category,
    channels: list[Channel],
    urgency: Urgency = Urgency.NORMAL,
    thread: str | None = None,
) -> Any:
    """Create a notification at the clock's time and run it through the pipeline as a worker would."""
    notification_id, _ = await create_notification(
        site_id=world.site_id,
        request=NotificationRequest(
            title=title,
            body=body,
            category=category,
            urgency=urgency,
            audience=Audience(person_ids=[p.person_id for p in people]),
            channels=channels,
        ),
        kind="event",
        collapse_key=thread,
        now=ctx.clock(),
    )
    for channel in await fanout.expand(ctx, notification_id):
        await sender.send_pending(ctx, notification_id, channel)
    return notification_id


async def release_and_send(ctx: NotifyContext) -> Any:
    """What notify_tick does with released rows, then the send jobs it enqueues."""
    released = await release_due(ctx.directory, ctx.clock())
    for notification_id in released.touched:
        await sender.finish_if_done(ctx, notification_id)
    for notification_id, channel in released.to_send:
        await sender.send_pending(ctx, notification_id, Channel(channel))
    return released


def sms_to(fakes: RunningFakes, person: Recipient) -> list[str]:
    return [m.body or "" for m in fakes.twilio.messages if m.to == person.mobile]


def pushes_to(fakes: RunningFakes, person: Recipient) -> list[dict[str, Any]]:
    return [m.notification or {} for m in fakes.fcm.messages if m.target == person.token]


async def test_quiet_hours_updates_and_an_announcement_become_one_digest_per_channel(
    world: Any, fakes: RunningFakes, wired: tuple[NotifyContext, Clock]
) -> None:
    ctx, clock = wired
    sleeper, withdrawer = await add_recipients(world, 2)
    await quiet_at_night(world, [sleeper, withdrawer])
    both, channels = [sleeper, withdrawer], [Channel.PUSH, Channel.SMS]
    updates = []
    for minute, status in ((0, "assigned"), (20, "in progress"), (40, "on hold")):
        clock.now = NIGHT + dt.timedelta(minutes=minute)
        updates.append(
            await notify(
                ctx,
                world,
                both,
                title="Leaking tap",
                body=f"Your complaint is {status}",
                category=Category.COMPLAINT,
                channels=channels,
                thread="complaint:leaking-tap",
            )
        )
    clock.now = NIGHT + dt.timedelta(minutes=50)
    announcement = await notify(
        ctx, world, both, title="Water", body="Off 10:00-12:00", category=Category.ANNOUNCEMENT, channels=channels
    )
    assert fakes.twilio.messages == [] and fakes.fcm.messages == [], "nothing wakes anyone at night"

    # A visitor at the gate still breaks through at once.
    clock.now = NIGHT + dt.timedelta(hours=1)
    await notify(
        ctx,
        world,
        both,
        title="Visitor at the gate",
        body="Ravi is at gate 1",
        category=Category.VISITOR,
        urgency=Urgency.CRITICAL,
        channels=channels,
    )
    assert sms_to(fakes, sleeper) == ["Visitor at the gate: Ravi is at gate 1"]
    assert [p["title"] for p in pushes_to(fakes, withdrawer)] == ["Visitor at the gate"]

    # At 02:00 one of them turns complaint and announcement messages off on both channels.
    clock.now = NIGHT + dt.timedelta(hours=3)
    await change_consent(
        site_id=world.site_id,
        person_id=withdrawer.person_id,
        changes=[ConsentChange(c, k, False) for c in channels for k in (Category.COMPLAINT, Category.ANNOUNCEMENT)],
        source="app",
        policy_version="test",
    )

    clock.now = MORNING - dt.timedelta(minutes=1)
    assert (await release_and_send(ctx)).digests == 0
    clock.now = MORNING
    released = await release_and_send(ctx)
    assert (released.digests, released.digested, released.suppressed) == (2, 8, 8)

    # One SMS and one push for the sleeper, each listing the four updates, oldest first.
    digest_sms = sms_to(fakes, sleeper)[1:]
    assert len(digest_sms) == 1
    text = digest_sms[0]
    assert text.startswith("4 updates while you were away:")
    assert [line for line in text.splitlines()[1:]] == [
        "- Leaking tap: Your complaint is assigned",
        "- Leaking tap: Your complaint is in progress",
        "- Leaking tap: Your complaint is on hold",
        "- Water: Off 10:00-12:00",
    ]
    digest_push = pushes_to(fakes, sleeper)[1:]
    assert [p["title"] for p in digest_push] == ["4 updates while you were away"]
    # The one who withdrew consent meanwhile gets nothing more than the visitor alert.
    assert len(sms_to(fakes, withdrawer)) == 1 and len(pushes_to(fakes, withdrawer)) == 1

    # The ledger keeps every underlying row, each naming the digest it went out in.
    rows = await Delivery.select(Delivery.person, Delivery.channel, Delivery.status, Delivery.digest).where(
        Delivery.notification.is_in([*updates, announcement])
    )
    mine = [r for r in rows if r["person"] == sleeper.person_id]
    assert {r["status"] for r in mine} == {"digested"} and len(mine) == 8
    digests = {r["channel"]: r["digest"] for r in mine}
    assert all(r["digest"] == digests[r["channel"]] for r in mine)
    theirs = [r for r in rows if r["person"] == withdrawer.person_id]
    assert {(r["status"], r["digest"]) for r in theirs} == {("suppressed", None)}
    for channel, digest_id in digests.items():
        notification = await Notification.objects().where(Notification.id == digest_id).first()
        assert notification is not None
        assert (notification.kind, notification.status) == (DIGEST_KIND, "completed")
        digest_rows = await Delivery.select(Delivery.id, Delivery.status).where(Delivery.notification == digest_id)
        assert [r["status"] for r in digest_rows] == ["sent"], channel
        assert [r["id"].version for r in digest_rows] == [7], "ledger ids are time-ordered (ledger.new_row_id)"
    # The underlying notifications are complete: every row is final.
    statuses = await Notification.select(Notification.status).where(Notification.id.is_in([*updates, announcement]))
    assert {s["status"] for s in statuses} == {"completed"}


async def test_a_burst_on_one_complaint_goes_as_the_first_then_one_digest(
    world: Any, fakes: RunningFakes, wired: tuple[NotifyContext, Clock]
) -> None:
    ctx, clock = wired
    (resident,) = await add_recipients(world, 1)
    day = dt.datetime(2026, 11, 26, 10, 0, tzinfo=dt.UTC)
    for minute in range(5):
        clock.now = day + dt.timedelta(minutes=minute)
        await notify(
            ctx,
            world,
            [resident],
            title="Leaking tap",
            body=f"Comment {minute + 1} from the technician",
            category=Category.COMPLAINT,
            channels=[Channel.SMS],
            thread="complaint:tap",
        )
    # Another complaint is another thread: it goes at once.
    await notify(
        ctx,
        world,
        [resident],
        title="Lift",
        body="Your complaint is assigned",
        category=Category.COMPLAINT,
        channels=[Channel.SMS],
        thread="complaint:lift",
    )
    assert sms_to(fakes, resident) == [
        "Leaking tap: Comment 1 from the technician",
        "Lift: Your complaint is assigned",
    ]
    clock.now = day + dt.timedelta(minutes=9, seconds=59)
    assert (await release_and_send(ctx)).digests == 0
    clock.now = day + dt.timedelta(minutes=10)
    assert (await release_and_send(ctx)).digests == 1
    texts = sms_to(fakes, resident)
    assert len(texts) == 3
    assert texts[2].splitlines() == [
        "4 updates while you were away:",
        *(f"- Leaking tap: Comment {n} from the technician" for n in range(2, 6)),
    ]
    # The window has closed: the next comment goes at once, and opens a new one.
    clock.now = day + dt.timedelta(minutes=12)
    await notify(
        ctx,
        world,
        [resident],
        title="Leaking tap",
        body="Resolved",
        category=Category.COMPLAINT,
        channels=[Channel.SMS],
        thread="complaint:tap",
    )
    assert sms_to(fakes, resident)[-1] == "Leaking tap: Resolved"


async def test_consent_withdrawn_after_the_digest_was_made_leaves_its_items_out(
    world: Any, fakes: RunningFakes, wired: tuple[NotifyContext, Clock]
) -> None:
    ctx, clock = wired
    (sleeper,) = await add_recipients(world, 1)
    await quiet_at_night(world, [sleeper])
    for title in ("Lift", "Gym"):
        await notify(
            ctx, world, [sleeper], title=title, body="Closed", category=Category.ANNOUNCEMENT, channels=[Channel.SMS]
        )
    await notify(
        ctx, world, [sleeper], title="Tap", body="Assigned", category=Category.COMPLAINT, channels=[Channel.SMS]
    )
    clock.now = MORNING
    released = await release_due(ctx.directory, clock.now)  # made, not yet sent
    assert released.digests == 1
    await change_consent(
        site_id=world.site_id,
        person_id=sleeper.person_id,
        changes=[ConsentChange(Channel.SMS, Category.ANNOUNCEMENT, False)],
        source="app",
        policy_version="test",
    )
    for notification_id, channel in released.to_send:
        await sender.send_pending(ctx, notification_id, Channel(channel))
    assert sms_to(fakes, sleeper) == ["1 update while you were away: - Tap: Assigned"]
    rows = await Delivery.select(Delivery.status, Delivery.reason).where(Delivery.person == sleeper.person_id)
    assert Counter((r["status"], r["reason"]) for r in rows) == {
        ("suppressed", "no_consent"): 2,
        ("digested", "dnd"): 1,  # the reason it waited stays on the row
        ("sent", None): 1,
    }


async def test_a_site_chooses_which_categories_it_digests(
    client: Any, world: Any, fakes: RunningFakes, wired: tuple[NotifyContext, Clock]
) -> None:
    ctx, clock = wired
    headers = world.headers("fm_admin")
    current = (await client.get("/api/notifications/settings", headers=headers)).json()
    assert current["digest"]["complaint"] == {"dnd": True, "burst_minutes": 10}
    # Announcements are no longer digested on this site; complaints still are.
    current["digest"] = {"complaint": {"dnd": True, "burst_minutes": 0}}
    saved = await client.put("/api/notifications/settings", json=current, headers=headers)
    assert saved.status_code == 200, saved.text
    refused = await client.put(
        "/api/notifications/settings", json={**current, "digest": {"visitor": {"dnd": True}}}, headers=headers
    )
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "digest.visitor"
    forbidden = await client.put("/api/notifications/settings", json=current, headers=world.headers("occupant"))
    assert forbidden.status_code == 403

    (sleeper,) = await add_recipients(world, 1)
    await quiet_at_night(world, [sleeper])
    for title in ("Lift", "Gym"):
        await notify(
            ctx, world, [sleeper], title=title, body="Closed", category=Category.ANNOUNCEMENT, channels=[Channel.SMS]
        )
    for minute, body in enumerate(("Assigned", "In progress")):
        # A minute apart, as updates come: the digest lists them oldest first.
        clock.now = NIGHT + dt.timedelta(minutes=minute)
        await notify(ctx, world, [sleeper], title="Tap", body=body, category=Category.COMPLAINT, channels=[Channel.SMS])
    clock.now = MORNING
    released = await release_and_send(ctx)
    assert released.digests == 1
    assert sorted(sms_to(fakes, sleeper)) == sorted(
        ["Lift: Closed", "Gym: Closed", "2 updates while you were away:\n- Tap: Assigned\n- Tap: In progress"]
    )


def test_a_long_digest_says_how_many_more_are_in_the_app() -> None:
    from uuid import uuid4

    from notifications.digest import Item

    items = [
        Item(
            delivery_id=uuid4(),
            notification_id=uuid4(),
            category=Category.COMPLAINT,
            urgency=Urgency.NORMAL,
            title="Complaint",
            body="x" * 300,
            created_at=NIGHT + dt.timedelta(minutes=i),
        )
        for i in range(12)
    ]
    title, body = render(items)
    assert title == "12 updates while you were away"
    lines = body.splitlines()
    assert lines[-1].startswith("and ") and lines[-1].endswith(" more in the app")
    assert len(body) < 1000 and all(len(line) <= 162 for line in lines)
