"""Provider limits as providers enforce them (#17 point 2).

The fakes refuse above a sender's rate, a project's quota and a cap on requests in flight, the way
Twilio and FCM do (HTTP 429, Twilio error 20429, FCM RESOURCE_EXHAUSTED, each with Retry-After), and
the pipeline honours them: it pauses the channel for as long as the provider asked, tries the refused
messages again without counting the refusal as a failed attempt, never offers more than its configured
rate, and ends with every message delivered exactly once. Real SDKs, real Redis, real fakes.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import firebase_admin
import pytest
from firebase_admin import messaging
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client as TwilioClient

from notifications.channels.base import parse_retry_after
from notifications.channels.twilio_messaging import last_response_headers
from notifications.fakes import RunningFakes, running_fakes
from notifications.fakes._util import LimitedAttempt
from notifications.fakes.sdk_wiring import aclose_firebase_app, firebase_app_for_fake, twilio_client_for_fake
from notifications.lanes import Lane
from notifications.ratelimit import RateLimiter

SENDER = "+15005550006"


@pytest.fixture(scope="module")
async def fakes() -> AsyncIterator[RunningFakes]:
    async with running_fakes() as running:
        yield running


@pytest.fixture(autouse=True)
async def clean(fakes: RunningFakes) -> AsyncIterator[None]:
    yield
    async with asyncio.timeout(10):
        await fakes.twilio.drain()
    fakes.reset()


@pytest.fixture(scope="module")
async def twilio(fakes: RunningFakes) -> AsyncIterator[TwilioClient]:
    client = twilio_client_for_fake(fakes.twilio_url, fakes.twilio.account_sid, fakes.twilio.auth_token)
    yield client
    await client.http_client.close()


@pytest.fixture(scope="module")
async def firebase_app(fakes: RunningFakes) -> AsyncIterator[firebase_admin.App]:
    app = firebase_app_for_fake(fakes.fcm_url, fakes.fcm.project_id, name=f"limits-{secrets.token_hex(3)}")
    yield app
    await aclose_firebase_app(app)


async def _sms(twilio: TwilioClient, to: str) -> tuple[str, int | None, float | None]:
    """('sent', None, None) or ('refused', Twilio error code, Retry-After seconds)."""
    try:
        await twilio.messages.create_async(to=to, from_=SENDER, body="hello")
    except TwilioRestException as exc:
        headers = last_response_headers()
        return "refused", exc.code, parse_retry_after(headers.get("Retry-After") if headers else None)
    return "sent", None, None


async def test_twilio_refuses_above_a_senders_rate_with_20429_and_retry_after(
    fakes: RunningFakes, twilio: TwilioClient
) -> None:
    fakes.twilio.configure(sender_rate_per_second=3, limit_retry_after=2, callbacks_enabled=False)
    frozen = time.time()
    fakes.twilio.limits.clock = lambda: frozen  # one window of the fake's clock for every request
    answers = [await _sms(twilio, f"+9198000000{i:02d}") for i in range(5)]
    assert [a[0] for a in answers] == ["sent"] * 3 + ["refused"] * 2
    assert answers[3][1:] == (20429, 2.0)
    stats = fakes.twilio.limits.stats
    assert stats.max_per_second(SENDER) == 3 and stats.refused == {SENDER: 2}
    assert len(fakes.twilio.messages) == 3  # a refused request creates no message
    # Another sender has its own rate; the next window of the clock takes the first sender again.
    fakes.twilio.limits.clock = lambda: frozen + 1
    assert (await _sms(twilio, "+919800000099"))[0] == "sent"


async def test_twilio_caps_requests_in_flight_for_the_account(fakes: RunningFakes, twilio: TwilioClient) -> None:
    fakes.twilio.configure(max_concurrent_requests=2, api_latency=0.3, callbacks_enabled=False)
    answers = await asyncio.gather(*(_sms(twilio, f"+9198100000{i:02d}") for i in range(5)))
    assert Counter(a[0] for a in answers) == {"sent": 2, "refused": 3}
    assert {a[1] for a in answers if a[0] == "refused"} == {20429}
    assert all(a[2] is not None and a[2] >= 1 for a in answers if a[0] == "refused")
    stats = fakes.twilio.limits.stats
    assert stats.max_concurrency == 2 and stats.max_offered_concurrency > 2
    assert {a.reason for a in stats.attempts if not a.accepted} == {"concurrency"}


async def test_fcm_refuses_above_the_projects_quota_with_resource_exhausted_and_retry_after(
    fakes: RunningFakes, firebase_app: firebase_admin.App
) -> None:
    fakes.fcm.configure(project_rate_per_second=2, limit_retry_after=3)
    frozen = time.time()
    fakes.fcm.limits.clock = lambda: frozen
    messages = [messaging.Message(token=f"quota-{i}", data={"n": str(i)}) for i in range(4)]
    batch = await messaging.send_each_async(messages, app=firebase_app)
    assert batch.success_count == 2
    refused = [r.exception for r in batch.responses if not r.success]
    assert all(isinstance(e, messaging.QuotaExceededError) for e in refused), refused
    assert all(e is not None and e.http_response.headers["Retry-After"] == "3" for e in refused)
    assert len(fakes.fcm.messages) == 2


async def test_a_provider_pause_holds_every_lane_and_is_never_shortened(redis: Any) -> None:
    limiter = RateLimiter(redis, f"test:rate:{secrets.token_hex(4)}", per_second=0)  # no rate: only pauses
    assert await limiter.acquire(50, Lane.BULK) < 0.05
    await limiter.pause(0.6)
    await limiter.pause(0.1)  # a shorter pause does not cut the first one short
    waits = await asyncio.gather(limiter.acquire(1, Lane.URGENT), limiter.acquire(5, Lane.BULK))
    assert all(0.4 < w < 1.0 for w in waits), waits


def _offered_per_second(attempts: list[LimitedAttempt], key: str) -> int:
    """The most requests (accepted or refused) that reached the fake in one second of its clock."""
    return max(Counter(int(a.at) for a in attempts if a.key == key).values(), default=0)


def _retried_too_soon(attempts: list[LimitedAttempt], key: str, retry_after: float) -> list[str]:
    """A refused message tried again before the Retry-After it was answered with had run out."""
    too_soon = []
    for refused in (a for a in attempts if a.key == key and not a.accepted):
        again = [a for a in attempts if a.key == key and a.target == refused.target and a.at > refused.at]
        if again and again[0].at - refused.at < retry_after - 0.02:
            too_soon.append(f"{refused.target} again after {again[0].at - refused.at:.2f} s")
    return too_soon


def _new_messages_while_paused(attempts: list[LimitedAttempt], key: str, retry_after: float) -> int:
    """The most messages never tried before that reached the provider within a Retry-After of a refusal.
    Those already on their way when the refusal came back (one batch) may arrive; with the channel paused,
    no later batch may."""
    first_seen: dict[str, float] = {}
    for attempt in attempts:
        if attempt.key == key:
            first_seen.setdefault(attempt.target, attempt.at)
    return max(
        (
            sum(1 for at in first_seen.values() if refused.at < at < refused.at + retry_after - 0.05)
            for refused in attempts
            if refused.key == key and not refused.accepted
        ),
        default=0,
    )


async def test_a_fan_out_that_meets_429s_delivers_each_message_once_within_the_rate(
    world: Any, settings: Any, redis: Any
) -> None:
    """The hub is configured for 20 SMS/s; the provider only takes 8/s for the sender (another
    system shares it) and FCM 10/s for the project. Part of the fan-out meets 429s."""
    from notifications import fanout, sender
    from notifications.audience import Audience
    from notifications.categories import Category, Channel
    from notifications.service import NotificationRequest, create_notification
    from schema.notifications import Delivery
    from tests.support.notify import add_recipients, pipeline

    people = await add_recipients(world, 48)
    sms_rate, retry_after = 20.0, 1
    async with running_fakes() as fakes, pipeline(settings, redis, fakes, notify_rate_sms=sms_rate) as ctx:
        fakes.twilio.configure(
            callbacks_enabled=False, sender_rate_per_second=8, limit_retry_after=retry_after, api_latency=0.01
        )
        # 48 pushes go in one call to FCM: at 10/s the quota refuses some even when a busy machine spreads
        # the call over two seconds of the fake's clock (25/s did not: 23 + 25 were seen).
        fakes.fcm.configure(project_rate_per_second=10, limit_retry_after=retry_after)
        notification_id, _ = await create_notification(
            site_id=world.site_id,
            request=NotificationRequest(
                title="Water",
                body="Tower A water off 10:00-12:00",
                category=Category.ANNOUNCEMENT,
                audience=Audience(unit_ids=[world.unit_ids[0]]),
                channels=[Channel.SMS, Channel.PUSH],
            ),
        )
        channels = await fanout.expand(ctx, notification_id)
        summaries = await asyncio.wait_for(
            asyncio.gather(*(sender.send_pending(ctx, notification_id, c) for c in channels)), timeout=90
        )
        sms_stats, fcm_stats = fakes.twilio.limits.stats, fakes.fcm.limits.stats
        sms_to = Counter(m.to for m in fakes.twilio.messages)
        push_to = Counter(m.target for m in fakes.fcm.messages if not m.validate_only)

    assert sum(s.throttled for s in summaries) > 0 and sms_stats.refused and fcm_stats.refused, "no 429 was met"
    mine = {p.mobile for p in people}
    assert {to: n for to, n in sms_to.items() if to in mine} == {p.mobile: 1 for p in people}
    assert {t: n for t, n in push_to.items() if t in {p.token for p in people}} == {p.token: 1 for p in people}
    rows = await Delivery.select(Delivery.channel, Delivery.status, Delivery.attempts).where(
        (Delivery.notification == notification_id) & Delivery.person.is_in([p.person_id for p in people])
    )
    assert Counter((r["channel"], r["status"]) for r in rows) == {("sms", "sent"): 48, ("push", "sent"): 48}
    # A refusal for the provider's rate is not a failed attempt: every message took one.
    assert {r["attempts"] for r in rows} == {1}
    sender_key = ctx.settings.twilio_sms_from
    assert sms_stats.max_per_second(sender_key) <= 8
    assert _offered_per_second(sms_stats.attempts, sender_key) <= sms_rate, "the hub offered more than its rate"
    assert _retried_too_soon(sms_stats.attempts, sender_key, retry_after) == []
    assert _retried_too_soon(fcm_stats.attempts, fakes.fcm.project_id, retry_after) == []
    # The whole channel waits, not just the refused messages: at most the batch already on its way
    # (a bulk chunk at 20/s is 5 sends) reaches the provider while a Retry-After runs.
    assert _new_messages_while_paused(sms_stats.attempts, sender_key, retry_after) <= 5


async def test_a_live_rate_set_by_the_platform_operator_replaces_the_configured_one(
    client: Any, world: Any, redis: Any
) -> None:
    from notifications.ratelimit import channel_key

    headers = world.headers("platform_admin")
    key = channel_key(world.settings.redis_prefix, "sms")
    await redis.delete(key, f"{key}:paused-until", f"{key}:urgent-waiting")  # what earlier sends left
    limiter = RateLimiter(redis, key, per_second=2)
    assert await limiter.acquire(2, Lane.URGENT) < 0.05
    assert await limiter.acquire(1, Lane.URGENT) > 0.5  # the configured 2/s holds

    answer = await client.put("/api/platform/notify/rates", json={"sms": 40}, headers=headers)
    assert answer.status_code == 200, answer.text
    sms = next(r for r in answer.json() if r["channel"] == "sms")
    assert (sms["live"], sms["in_force"]) == (40.0, 40.0)
    await asyncio.sleep(1.1)  # every limiter reads the live rate again within a second
    started = time.monotonic()
    for _ in range(4):
        await limiter.acquire(8, Lane.URGENT)
    assert time.monotonic() - started < 0.5 and limiter.per_second == 40

    answer = await client.put("/api/platform/notify/rates", json={"reset": ["sms"]}, headers=headers)
    sms = next(r for r in answer.json() if r["channel"] == "sms")
    assert sms["live"] is None and sms["in_force"] == sms["configured"]
    refused = await client.put("/api/platform/notify/rates", json={"sms": -1}, headers=headers)
    assert refused.status_code == 400 and "sms" in refused.text
    page = await client.get("/api/platform/notify/rates", headers=headers)
    assert page.status_code == 200 and {r["channel"] for r in page.json()["items"]} >= {"sms"}, page.text
    assert (await client.get("/api/platform/notify/rates", headers=world.headers("fm_admin"))).status_code == 403
