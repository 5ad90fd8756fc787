"""Priority lanes (#17): urgent messages never wait behind bulk ones, in the arq queue or in a
channel's provider rate, and a bulk send keeps going at what is left. Real Redis, real arq worker."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter
from typing import Any

from arq import create_pool
from arq.worker import Worker

from notifications.categories import Category, Urgency
from notifications.lanes import Lane, lane_of, queue_placement
from notifications.ratelimit import RateLimiter
from workers.main import queue_name, redis_settings

URGENT_LANE = Lane.URGENT


def test_lanes_of_categories() -> None:
    assert lane_of(Category.VISITOR, Urgency.NORMAL) is Lane.URGENT
    assert lane_of(Category.COMPLAINT, Urgency.NORMAL) is Lane.URGENT
    assert lane_of(Category.BOOKING, Urgency.HIGH) is Lane.URGENT
    assert lane_of(Category.ANNOUNCEMENT, Urgency.NORMAL) is Lane.BULK
    assert lane_of(Category.PROMOTIONAL, Urgency.NORMAL) is Lane.BULK
    assert lane_of(Category.BILLING, Urgency.NORMAL) is Lane.BULK
    # A fire announcement is not bulk.
    assert lane_of(Category.ANNOUNCEMENT, Urgency.CRITICAL) is Lane.URGENT


async def test_an_urgent_job_is_run_before_every_bulk_job_already_queued(settings: Any) -> None:
    queue = f"{queue_name(settings)}:lanes-{secrets.token_hex(4)}"
    pool = await create_pool(redis_settings(settings), default_queue_name=queue)
    ran: list[str] = []

    async def work(ctx: dict[str, Any], name: str) -> None:
        ran.append(name)

    work.__qualname__ = work.__name__ = "lane_probe"
    try:
        for index in range(300):
            await pool.enqueue_job("lane_probe", f"bulk-{index}", **queue_placement(Lane.BULK))
        await pool.enqueue_job("lane_probe", "urgent", **queue_placement(Lane.URGENT))
        worker = Worker(functions=[work], redis_pool=pool, queue_name=queue, burst=True, poll_delay=0.01, max_jobs=1)
        await worker.main()
        assert worker.jobs_complete == 301, worker.jobs_complete
    finally:
        await pool.aclose()
    assert ran[0] == "urgent", ran[:5]
    assert sorted(ran[1:]) == sorted(f"bulk-{index}" for index in range(300))


async def test_the_window_never_holds_more_than_the_rate_and_urgent_sends_go_first(redis: Any) -> None:
    key = f"test:rate:{secrets.token_hex(4)}"
    limiter = RateLimiter(redis, key, per_second=20)
    granted: list[tuple[float, Lane]] = []
    urgent_waits: list[float] = []
    stop = time.monotonic() + 3.0

    async def bulk_sender() -> None:
        while time.monotonic() < stop:
            chunk = limiter.chunk(Lane.BULK)
            await limiter.acquire(chunk, Lane.BULK)
            granted.extend([(time.monotonic(), Lane.BULK)] * chunk)

    async def urgent_sender() -> None:
        await asyncio.sleep(1.0)  # bulk has filled the window by now
        while time.monotonic() < stop - 0.5:
            waited = await limiter.acquire(1, URGENT_LANE)
            urgent_waits.append(waited)
            granted.extend([(time.monotonic(), Lane.URGENT)] * 1)
            await asyncio.sleep(0.5)  # as often as the reserve (2 of every 20 a second) allows

    await asyncio.gather(bulk_sender(), bulk_sender(), urgent_sender())
    # No one-second window holds more sends than the rate (how providers count them).
    times = sorted(t for t, _ in granted)
    # (Times are taken here after each grant returns, a few ms after the script's own clock: 0.95 s windows.)
    heaviest = max(sum(1 for other in times[i:] if other - start < 0.95) for i, start in enumerate(times))
    assert heaviest <= 20, heaviest
    # Urgent sends found room at once, with two bulk senders saturating the channel.
    assert urgent_waits and max(urgent_waits) < 0.05, urgent_waits
    # Bulk kept going at what was left: over 3 s at 20/s with ~16 urgent sends, most of the rest is bulk.
    lanes = Counter(lane for _, lane in granted)
    assert lanes[Lane.URGENT] == len(urgent_waits)
    assert lanes[Lane.BULK] >= 30, lanes


async def test_bulk_alone_uses_what_the_reserve_leaves(redis: Any) -> None:
    limiter = RateLimiter(redis, f"test:rate:{secrets.token_hex(4)}", per_second=20)
    started = time.monotonic()
    sent = 0
    while time.monotonic() - started < 2.0:
        chunk = limiter.chunk(Lane.BULK)
        await limiter.acquire(chunk, Lane.BULK)
        sent += chunk
    # 18 of every 20 a second (10 % reserve): about 36 in two seconds, never more than 40.
    assert 30 <= sent <= 40, sent


async def test_a_lane_never_asks_for_more_than_its_window(redis: Any) -> None:
    limiter = RateLimiter(redis, f"test:rate:{secrets.token_hex(4)}", per_second=1)
    # One send a second: both lanes may send one (a reserve of the only send would starve bulk).
    assert await limiter.acquire(5, Lane.BULK) < 0.1
    waited = await limiter.acquire(1, Lane.URGENT)
    assert 0.5 < waited < 1.3, waited


async def test_a_visitor_alert_is_sent_at_once_while_an_announcement_fills_the_sms_rate(
    world: Any, settings: Any, redis: Any
) -> None:
    """The pipeline with the provider rate on: a bulk SMS announcement sends at what the reserve leaves,
    a visitor alert created in the middle of it reaches the fake Twilio within 2 s on SMS and push,
    and the announcement still ends with every row sent once."""
    from notifications import fanout, sender
    from notifications.audience import Audience
    from notifications.categories import Channel
    from notifications.fakes import running_fakes
    from notifications.service import NotificationRequest, create_notification
    from schema.notifications import Delivery
    from tests.support.notify import add_recipients, pipeline

    crowd = await add_recipients(world, 120)
    flat = await add_recipients(world, 2, start=500, unit=world.unit_ids[1])
    async with running_fakes() as fakes, pipeline(settings, redis, fakes, notify_rate_sms=20.0) as ctx:
        fakes.twilio.configure(callbacks_enabled=False)

        async def send_everything(notification_id: Any) -> None:
            channels = await fanout.expand(ctx, notification_id)
            await asyncio.gather(*(sender.send_pending(ctx, notification_id, c) for c in channels))

        announcement, _ = await create_notification(
            site_id=world.site_id,
            request=NotificationRequest(
                title="Water",
                body="Tower A water off 10:00-12:00",
                category=Category.ANNOUNCEMENT,
                audience=Audience(unit_ids=[world.unit_ids[0]]),
                channels=[Channel.SMS],
            ),
        )
        bulk = asyncio.create_task(send_everything(announcement))
        await asyncio.sleep(2.0)  # the bulk send has the channel's window full by now
        assert 0 < len(fakes.twilio.messages) < 120
        created = time.monotonic()
        visitor, _ = await create_notification(
            site_id=world.site_id,
            request=NotificationRequest(
                title="Visitor at the gate",
                body="Ravi is at gate 1",
                category=Category.VISITOR,
                urgency=Urgency.CRITICAL,
                audience=Audience(unit_ids=[world.unit_ids[1]]),
                channels=[Channel.SMS, Channel.PUSH],
            ),
        )
        await send_everything(visitor)
        numbers = {person.mobile for person in flat}
        tokens = {person.token for person in flat}
        while {m.to for m in fakes.twilio.messages} & numbers != numbers or {
            m.target for m in fakes.fcm.messages
        } & tokens != tokens:
            assert time.monotonic() - created < 2.0, "the visitor alert waited behind the announcement"
            await asyncio.sleep(0.02)
        visitor_latency = time.monotonic() - created
        assert not bulk.done(), "the announcement should still be sending"
        await asyncio.wait_for(bulk, timeout=30)
    sms_to = Counter(m.to for m in fakes.twilio.messages)
    assert all(sms_to[person.mobile] == 1 for person in crowd), "every announcement SMS exactly once"
    assert all(sms_to[number] == 1 for number in numbers)
    rows = await Delivery.select(Delivery.status).where(
        (Delivery.notification == announcement) & Delivery.person.is_in([p.person_id for p in crowd])
    )
    assert [r["status"] for r in rows] == ["sent"] * 120
    assert visitor_latency < 0.6  # the issue asks for 2 s; the reserve makes it a matter of the pipeline's own work
    print(f"visitor alert latency under the bulk send: {visitor_latency:.3f} s")
