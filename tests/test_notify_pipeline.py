"""The notification pipeline end to end, against the local fakes through the real SDKs."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import firebase_admin
import httpx
import pytest
from firebase_admin import messaging

from app.privacy import audit
from notifications import fanout, sender
from notifications.audience import Audience
from notifications.categories import Category, Channel, Urgency
from notifications.digest import release_due
from notifications.facts import load_facts
from notifications.fakes import running_fakes
from notifications.ledger import claim_batch, release_claim
from notifications.preferences import ConsentChange, QuietHours, change_consent, consent_history, set_dnd
from notifications.providers import FIREBASE_APP_NAME
from notifications.recovery import reconcile_in_doubt
from notifications.service import NotificationRequest, cancel_notification, create_notification
from schema.notifications import Delivery
from schema.tables import ContactPoint, Device
from tests.support.notify import add_recipients, pipeline

ALL = [Channel.PUSH, Channel.SMS, Channel.WHATSAPP, Channel.EMAIL, Channel.IN_APP]


@pytest.fixture
async def fakes() -> Any:
    async with running_fakes() as running:
        running.twilio.configure(callbacks_enabled=False)
        yield running


async def announce(world: Any, channels: list[Channel], **fields: Any) -> Any:
    request = NotificationRequest(
        title=fields.pop("title", "Water shutdown"),
        body=fields.pop("body", "Tower A water off 10:00-12:00"),
        category=fields.pop("category", Category.ANNOUNCEMENT),
        audience=fields.pop("audience", Audience(unit_ids=[world.unit_ids[0]])),
        channels=channels,
        **fields,
    )
    notification_id, _ = await create_notification(site_id=world.site_id, request=request)
    return notification_id


async def expanded(ctx: Any, world: Any, people: list[Any], channel: Channel) -> Any:
    """An announcement to these people on one channel, expanded into its ledger rows."""
    notification_id = await announce(world, [channel], audience=Audience(person_ids=[p.person_id for p in people]))
    await fanout.expand(ctx, notification_id)
    return notification_id


async def run_all(ctx: Any, notification_id: Any) -> None:
    for channel in await fanout.expand(ctx, notification_id):
        await sender.send_pending(ctx, notification_id, channel)


async def ledger(notification_id: Any) -> list[dict[str, Any]]:
    return list(await Delivery.select().where(Delivery.notification == notification_id))


async def withdraw_sms(world: Any, person: Any) -> None:
    """The person turns announcements by SMS off, in the app."""
    await change_consent(
        site_id=world.site_id,
        person_id=person.person_id,
        changes=[ConsentChange(Channel.SMS, Category.ANNOUNCEMENT, granted=False)],
        source="app",
        policy_version="test",
    )


async def quiet_every_day(world: Any, person: Any, start: str, end: str) -> None:
    """The person's quiet hours, start to end (UTC) on every day of the week."""
    await set_dnd(
        site_id=world.site_id,
        person_id=person.person_id,
        timezone="UTC",
        quiet_hours=[QuietHours(weekday=d, start=start, end=end) for d in range(7)],
        snooze_until=None,
    )


def per_recipient(fakes: Any) -> dict[str, Counter[str]]:
    return {
        "sms": Counter(m.to for m in fakes.twilio.messages if m.channel == "sms"),
        "whatsapp": Counter(m.to.removeprefix("whatsapp:") for m in fakes.twilio.messages if m.channel == "whatsapp"),
        "push": Counter(m.target for m in fakes.fcm.messages),
        "email": Counter(to for e in fakes.smtp.emails for to in e.rcpt_tos),
    }


async def test_announcement_reaches_every_person_once_per_channel(world, settings, redis, fakes) -> None:  # type: ignore[no-untyped-def]
    people = await add_recipients(world, 12)
    async with pipeline(settings, redis, fakes) as ctx:
        notification_id = await announce(world, ALL)
        await run_all(ctx, notification_id)
        await fakes.smtp.wait_for(12)
        # Running everything again (arq re-runs a job) sends nothing more.
        await run_all(ctx, notification_id)
        await sender.send_pending(ctx, notification_id, Channel.SMS)
    got = per_recipient(fakes)
    for person in people:
        assert got["sms"][person.mobile] == 1
        assert got["whatsapp"][person.mobile] == 1
        assert got["push"][person.token] == 1
        assert got["email"][person.email] == 1
    rows = await ledger(notification_id)
    mine = [r for r in rows if r["person"] in {p.person_id for p in people}]
    assert len(mine) == 12 * len(ALL)
    assert {r["status"] for r in mine} == {"sent"}
    # The world's own occupant has no mobile and no device: suppressed, with the reason.
    others = [r for r in rows if r["person"] == world.people["occupant"]]
    assert {(r["channel"], r["status"], r["reason"]) for r in others if r["channel"] in ("sms", "push")} == {
        ("sms", "suppressed", "no_contact_point"),
        ("push", "suppressed", "no_contact_point"),
    }
    whatsapp = [m for m in fakes.twilio.messages if m.channel == "whatsapp"]
    assert all(m.content_sid for m in whatsapp), "outside the 24h window WhatsApp must use the template"


async def test_an_audience_s_ledger_rows_have_ids_in_the_order_they_were_made(world, settings, redis, fakes) -> None:  # type: ignore[no-untyped-def]
    """UUIDv7 ids: a batch's rows sit side by side in the primary key's index (ledger.new_row_id)."""
    people = await add_recipients(world, 12)
    before = dt.datetime.now(dt.UTC)
    async with pipeline(settings, redis, fakes) as ctx:
        notification_id = await expanded(ctx, world, people, Channel.SMS)
    after = dt.datetime.now(dt.UTC)
    rows = await ledger(notification_id)
    assert len(rows) == 12
    assert {row["id"].version for row in rows} == {7}
    made = [dt.datetime.fromtimestamp((row["id"].int >> 80) / 1000, dt.UTC) for row in rows]
    assert all(before - dt.timedelta(milliseconds=1) <= when <= after for when in made), (before, made, after)


async def test_an_announcements_senders_start_once_its_first_hundred_people_have_rows(
    world, settings, redis, fakes
) -> None:  # type: ignore[no-untyped-def]
    """A part is expanded a chunk at a time, and its senders start (``first_rows``) once the first chunk's rows
    are written. That chunk is small (fanout.FIRST_CHUNK): the senders do not wait for a thousand people's
    facts and decisions, nor for the next chunk's, before the first message goes."""
    people = await add_recipients(world, 250)
    async with pipeline(settings, redis, fakes) as ctx:
        audience = Audience(person_ids=[p.person_id for p in people])
        notification_id = await announce(world, [Channel.PUSH, Channel.SMS], audience=audience)
        planned = await fanout.plan(ctx, notification_id)
        assert planned is not None and planned.todo == [0]
        rows_when_started: list[int] = []

        async def start_sending(channels: list[Channel]) -> None:
            assert sorted(channels) == [Channel.PUSH, Channel.SMS]
            rows_when_started.append(await Delivery.count().where(Delivery.notification == notification_id))

        await fanout.expand_part(ctx, notification_id, 0, first_rows=start_sending)
    assert rows_when_started == [fanout.FIRST_CHUNK * 2]
    assert await Delivery.count().where(Delivery.notification == notification_id) == 250 * 2


async def test_withdrawal_between_enqueue_and_send_suppresses(world, settings, redis, fakes) -> None:  # type: ignore[no-untyped-def]
    keep, withdraw = await add_recipients(world, 2)
    async with pipeline(settings, redis, fakes) as ctx:
        notification_id = await announce(world, [Channel.SMS])
        await fanout.expand(ctx, notification_id)  # both rows are pending now
        await withdraw_sms(world, withdraw)
        await sender.send_pending(ctx, notification_id, Channel.SMS)
    assert [m.to for m in fakes.twilio.messages] == [keep.mobile]
    row = next(r for r in await ledger(notification_id) if r["person"] == withdraw.person_id)
    assert (row["status"], row["reason"]) == ("suppressed", "no_consent")


async def test_deferred_message_goes_out_when_dnd_ends_and_stale_one_expires(world, settings, redis, fakes) -> None:  # type: ignore[no-untyped-def]
    (sleeper,) = await add_recipients(world, 1)
    await quiet_every_day(world, sleeper, "22:00", "06:00")
    night = dt.datetime(2026, 11, 25, 23, 0, tzinfo=dt.UTC)
    clock = {"now": night}
    async with pipeline(settings, redis, fakes) as ctx:
        ctx.clock = lambda: clock["now"]
        audience = Audience(person_ids=[sleeper.person_id])
        complaint = await announce(world, [Channel.SMS], category=Category.COMPLAINT, audience=audience)
        visitor = await announce(
            world, [Channel.SMS], category=Category.VISITOR, audience=audience, title="Visitor", body="at gate"
        )
        await _backdate(complaint, night)
        await _backdate(visitor, night)
        await fanout.expand(ctx, complaint)
        await fanout.expand(ctx, visitor)
        # Visitor (normal urgency) cannot break through and is stale long before 06:00.
        visitor_row = (await ledger(visitor))[0]
        assert (visitor_row["status"], visitor_row["reason"]) == ("suppressed", "expired")
        row = (await ledger(complaint))[0]
        assert row["status"] == "deferred"
        assert row["defer_until"] == dt.datetime(2026, 11, 26, 6, 0, tzinfo=dt.UTC)
        # 05:59: still deferred; 06:00: released and sent.
        clock["now"] = dt.datetime(2026, 11, 26, 5, 59, tzinfo=dt.UTC)
        assert (complaint, "sms") not in (await release_due(ctx.directory, clock["now"])).to_send
        clock["now"] = dt.datetime(2026, 11, 26, 6, 0, tzinfo=dt.UTC)
        assert (complaint, "sms") in (await release_due(ctx.directory, clock["now"])).to_send
        await sender.send_pending(ctx, complaint, Channel.SMS)
    assert (await ledger(complaint))[0]["status"] == "sent"
    assert [m.to for m in fakes.twilio.messages] == [sleeper.mobile]


async def _backdate(notification_id: Any, when: dt.datetime) -> None:
    from schema.notifications import Notification

    await Notification.update({Notification.created_at: when}).where(Notification.id == notification_id)


async def test_critical_visitor_alert_breaks_through_dnd(world, settings, redis, fakes) -> None:  # type: ignore[no-untyped-def]
    (sleeper,) = await add_recipients(world, 1)
    await quiet_every_day(world, sleeper, "00:00", "23:59")
    async with pipeline(settings, redis, fakes) as ctx:
        notification_id = await announce(
            world,
            [Channel.PUSH],
            category=Category.VISITOR,
            urgency=Urgency.CRITICAL,
            audience=Audience(person_ids=[sleeper.person_id]),
        )
        await run_all(ctx, notification_id)
    row = (await ledger(notification_id))[0]
    assert (row["status"], row["reason"]) == ("sent", "breaks_through_dnd")
    assert fakes.fcm.messages[0].android_priority == "high"


async def test_permanent_failures_update_the_record_and_are_not_retried(world, settings, redis, fakes) -> None:  # type: ignore[no-untyped-def]
    stopped, invalid, dead, fine = await add_recipients(world, 4)
    fakes.twilio.opt_out(stopped.mobile)
    fakes.twilio.mark_invalid(invalid.mobile)
    fakes.fcm.mark_unregistered(dead.token)
    async with pipeline(settings, redis, fakes) as ctx:
        notification_id = await announce(world, [Channel.SMS, Channel.PUSH])
        await run_all(ctx, notification_id)
        await sender.send_pending(ctx, notification_id, Channel.SMS)
    rows = {(r["person"], r["channel"]): r for r in await ledger(notification_id)}
    assert (rows[(stopped.person_id, "sms")]["status"], rows[(stopped.person_id, "sms")]["provider_code"]) == (
        "failed",
        "21610",
    )
    assert rows[(invalid.person_id, "sms")]["provider_code"] == "21211"
    assert rows[(dead.person_id, "push")]["provider_code"] == "UNREGISTERED"
    assert rows[(fine.person_id, "sms")]["status"] == "sent"
    assert all(r["attempts"] == 1 for r in rows.values() if r["status"] == "failed")
    statuses = {
        r["person"]: r["status"]
        for r in await ContactPoint.select().where(ContactPoint.kind == "mobile")
        if r["person"] in (stopped.person_id, invalid.person_id)
    }
    assert statuses == {stopped.person_id: "opted_out", invalid.person_id: "invalid"}
    assert not await Device.exists().where(Device.push_token == dead.token)
    history = await consent_history(stopped.person_id)
    assert history and all(not h.granted and h.source == "provider" and h.channel is Channel.SMS for h in history)


async def test_transient_failure_is_retried_with_backoff(world, settings, redis, fakes) -> None:  # type: ignore[no-untyped-def]
    (person,) = await add_recipients(world, 1)
    fakes.twilio.fail_next(1, 429)
    clock = {"now": dt.datetime.now(dt.UTC)}
    async with pipeline(settings, redis, fakes) as ctx:
        ctx.clock = lambda: clock["now"]
        notification_id = await announce(world, [Channel.SMS], audience=Audience(person_ids=[person.person_id]))
        await run_all(ctx, notification_id)
        row = (await ledger(notification_id))[0]
        assert (row["status"], row["attempts"]) == ("pending", 1)
        assert row["next_attempt_at"] > clock["now"]
        await sender.send_pending(ctx, notification_id, Channel.SMS)  # not due yet: nothing happens
        assert (await ledger(notification_id))[0]["attempts"] == 1
        clock["now"] = row["next_attempt_at"]
        await sender.send_pending(ctx, notification_id, Channel.SMS)
    row = (await ledger(notification_id))[0]
    assert (row["status"], row["attempts"]) == ("sent", 2)
    assert len(fakes.twilio.messages) == 1


class _AnswerLost(httpx.AsyncBaseTransport):
    """Passes each request on to the fake, which takes it, then loses the first ``count`` answers on the way
    back: the connection drops as a keep-alive connection the server has just closed does."""

    def __init__(self, inner: httpx.AsyncBaseTransport, count: int) -> None:
        self.inner, self.count = inner, count

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if self.count > 0:
            self.count -= 1
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)
        return response


async def test_a_push_whose_answer_was_lost_is_sent_again_not_failed(world, settings, redis, fakes) -> None:  # type: ignore[no-untyped-def]
    """firebase-admin reports a dropped connection as UnknownError with no HTTP answer: transient, not a
    permanent failure. The repeat has the same tag, so the device shows one notification."""
    (person,) = await add_recipients(world, 1)
    clock = {"now": dt.datetime.now(dt.UTC)}
    async with pipeline(settings, redis, fakes) as ctx:
        ctx.clock = lambda: clock["now"]
        app = firebase_admin.get_app(f"{FIREBASE_APP_NAME}:{ctx.settings.fcm_base_url}")
        # firebase-admin's retrying transports wrap the HTTP one (as notifications.fakes.sdk_wiring wires them).
        retrying = messaging._get_messaging_service(app)._async_client._mounts.values()
        for transport in retrying:
            transport._wrapped_transport = _AnswerLost(transport._wrapped_transport, count=1)
        notification_id = await announce(world, [Channel.PUSH], audience=Audience(person_ids=[person.person_id]))
        await run_all(ctx, notification_id)
        row = (await ledger(notification_id))[0]
        assert (row["status"], row["attempts"], row["provider_code"]) == ("pending", 1, "UNKNOWN"), row
        clock["now"] = row["next_attempt_at"]
        await sender.send_pending(ctx, notification_id, Channel.PUSH)
    row = (await ledger(notification_id))[0]
    assert (row["status"], row["attempts"]) == ("sent", 2)
    arrived = [m for m in fakes.fcm.messages if m.target == person.token]
    assert len(arrived) == 2, "the first arrived, its answer did not"
    assert {m.message["android"]["notification"]["tag"] for m in arrived} == {str(row["id"])}


async def test_a_batch_claimed_after_the_cancel_but_before_its_rows_were_suppressed_is_not_sent(  # type: ignore[no-untyped-def]
    world, settings, redis, fakes
) -> None:
    """cancel_notification marks the notification, then its pending rows: a sender claiming in between gets
    rows of a cancelled notification, and the claim tells it so."""
    from schema.notifications import Notification

    await add_recipients(world, 3)
    async with pipeline(settings, redis, fakes) as ctx:
        notification_id = await announce(world, [Channel.SMS])
        await fanout.expand(ctx, notification_id)
        claim = await claim_batch(notification_id, Channel.SMS, 10, ctx.clock())
        assert (len(claim.rows), claim.cancelled) == (3, False)
        await release_claim(claim.token, [row.delivery_id for row in claim.rows], ctx.clock())
        await Notification.update({Notification.status: "cancelled"}).where(Notification.id == notification_id)
        late = await claim_batch(notification_id, Channel.SMS, 1, ctx.clock())
        assert (len(late.rows), late.cancelled) == (1, True)
        await release_claim(late.token, [row.delivery_id for row in late.rows], ctx.clock())
        await sender.send_pending(ctx, notification_id, Channel.SMS)
    assert not fakes.twilio.messages
    rows = await ledger(notification_id)
    assert sum(1 for r in rows if (r["status"], r["reason"]) == ("suppressed", "cancelled")) == 3
    assert not [r for r in rows if r["status"] in ("pending", "sending", "sent")]


async def test_cancel_before_sending_stops_everything(world, settings, redis, fakes) -> None:  # type: ignore[no-untyped-def]
    await add_recipients(world, 3)
    async with pipeline(settings, redis, fakes) as ctx:
        notification_id = await announce(world, [Channel.SMS, Channel.PUSH])
        await fanout.expand(ctx, notification_id)
        await cancel_notification(world.site_id, notification_id)
        await sender.send_pending(ctx, notification_id, Channel.SMS)
    assert not fakes.twilio.messages
    assert {r["reason"] for r in await ledger(notification_id) if r["status"] == "suppressed"} >= {"cancelled"}


async def test_an_in_doubt_sms_found_at_the_provider_is_not_sent_again(world, settings, redis, fakes) -> None:  # type: ignore[no-untyped-def]
    """A sender claimed rows, the provider accepted, and the worker died before recording it."""
    people = await add_recipients(world, 3)
    async with pipeline(settings, redis, fakes) as ctx:
        notification_id = await expanded(ctx, world, people, Channel.SMS)
        claimed = (await claim_batch(notification_id, Channel.SMS, 10, ctx.clock())).rows
        # Send only the first person's message, then "die": nothing is recorded.
        first = next(c for c in claimed if c.person_id == people[0].person_id)
        from notifications.channels.base import Recipient
        from notifications.sender import outgoing_of
        from schema.notifications import Notification

        notification = await Notification.objects().where(Notification.id == notification_id).first()
        await ctx.providers.adapters[Channel.SMS].send(
            outgoing_of(notification),
            [Recipient(delivery_id=first.delivery_id, person_id=first.person_id, address=people[0].mobile)],
        )
        later = ctx.clock() + dt.timedelta(seconds=settings.notify_claim_lease_seconds + 1)
        result = await reconcile_in_doubt(ctx, later)
        # reconcile_in_doubt covers every site: other tests' abandoned claims may be counted too,
        # so this notification's own rows are what is judged.
        assert (notification_id, str(Channel.SMS)) in result.to_send
        assert result.found_sent >= 1 and result.released >= 2
        status = {r["person"]: r["status"] for r in await ledger(notification_id)}
        assert status[people[0].person_id] == "sent"  # found at the provider: not sent again
        assert [status[p.person_id] for p in people[1:]] == ["pending", "pending"]  # released to be sent
        await sender.send_pending(ctx, notification_id, Channel.SMS)
    assert sorted(m.to for m in fakes.twilio.messages) == sorted(p.mobile for p in people)
    assert {r["status"] for r in await ledger(notification_id)} == {"sent"}


async def test_a_claim_renewed_while_recovery_asks_the_provider_is_not_given_back(
    world, settings, redis, fakes
) -> None:  # type: ignore[no-untyped-def]
    """A sender that was only slow (its lease ran out while it waited, as for Redis to come back) renews
    its claim and sends while recovery is asking the provider about the same rows. Recovery's answer for
    a row is "not sent" when it asked before the send went: it must not give that row back to be sent
    again (seen: 41 of 800 SMS twice after a Redis restart under a fan-out)."""
    import asyncio

    from notifications.channels.base import Recipient
    from notifications.ledger import record_sent, renew_claim
    from notifications.sender import outgoing_of
    from schema.notifications import Notification

    people = await add_recipients(world, 2)
    async with pipeline(settings, redis, fakes) as ctx:
        notification_id = await expanded(ctx, world, people, Channel.SMS)
        claim = await claim_batch(notification_id, Channel.SMS, 10, ctx.clock())
        token, claimed = claim.token, claim.rows
        later = ctx.clock() + dt.timedelta(seconds=settings.notify_claim_lease_seconds + 1)
        fakes.twilio.configure(api_latency=0.5)  # each question to the provider, and each send, takes a while
        recovering = asyncio.create_task(reconcile_in_doubt(ctx, later))
        await asyncio.sleep(0.2)  # recovery has read the rows in doubt and asks about the first
        # The slow sender comes back: its rows are still its own.
        held = await renew_claim(token, [c.delivery_id for c in claimed], later)
        assert held == {c.delivery_id for c in claimed}
        notification = await Notification.objects().where(Notification.id == notification_id).first()
        mobiles = {p.person_id: p.mobile for p in people}
        recipients = [
            Recipient(delivery_id=c.delivery_id, person_id=c.person_id, address=mobiles[c.person_id]) for c in claimed
        ]
        sending = asyncio.create_task(ctx.providers.adapters[Channel.SMS].send(outgoing_of(notification), recipients))
        await recovering  # it asked about the first row before that row's message went
        outcomes = await sending
        await record_sent(token, {o.delivery_id: o.provider_id for o in outcomes}, later)
        fakes.twilio.configure(api_latency=0.0)
        await sender.send_pending(ctx, notification_id, Channel.SMS)
    assert sorted(m.to for m in fakes.twilio.messages) == sorted(p.mobile for p in people)  # once each
    assert {r["status"] for r in await ledger(notification_id)} == {"sent"}


async def test_a_sender_keeps_its_claim_while_a_slow_provider_call_outlasts_the_lease(
    world, settings, redis, fakes
) -> None:  # type: ignore[no-untyped-def]
    """A batch with its provider longer than the claim lease (500 pushes on a loaded machine): the sender is
    alive, so recovery must not take its rows, and each push goes once with one attempt."""
    import asyncio

    people = await add_recipients(world, 2)
    async with pipeline(settings, redis, fakes, notify_claim_lease_seconds=1) as ctx:
        notification_id = await expanded(ctx, world, people, Channel.PUSH)
        fakes.fcm.configure(api_latency=2.5)  # the call takes two and a half leases
        sending = asyncio.create_task(sender.send_pending(ctx, notification_id, Channel.PUSH))
        await asyncio.sleep(1.6)  # well past the lease since the claim and the renewal before the call
        await reconcile_in_doubt(ctx)
        await sending
        fakes.fcm.configure(api_latency=0.0)
    rows = await Delivery.select(Delivery.status, Delivery.attempts).where(Delivery.notification == notification_id)
    assert [(r["status"], r["attempts"]) for r in rows] == [("sent", 1), ("sent", 1)]
    assert sorted(m.target for m in fakes.fcm.messages) == sorted(p.token for p in people)  # once each


async def test_batches_waiting_for_their_turn_longer_than_the_lease_keep_their_claims(
    world, settings, redis, fakes
) -> None:  # type: ignore[no-untyped-def]
    """At 2 SMS/s, batches claimed ahead wait for a free sender and for the rate limiter, seconds past a
    one-second lease, while recovery runs again and again: the sender is alive, so each row keeps its one
    claim (one attempt) and each number gets one SMS."""
    import asyncio

    people = await add_recipients(world, 6)
    async with pipeline(settings, redis, fakes, notify_claim_lease_seconds=1, notify_rate_sms=2.0) as ctx:
        notification_id = await expanded(ctx, world, people, Channel.SMS)
        sending = asyncio.create_task(sender.send_pending(ctx, notification_id, Channel.SMS))
        released = 0
        for _ in range(60):  # six sends at 2/s take about 3 s; recovery taking rows back can go on for ever
            if sending.done():
                break
            await asyncio.sleep(0.3)
            released += (await reconcile_in_doubt(ctx)).released
        if not sending.done():
            sending.cancel()
        assert released == 0
        await sending
    rows = await Delivery.select(Delivery.status, Delivery.attempts).where(Delivery.notification == notification_id)
    assert [(r["status"], r["attempts"]) for r in rows] == [("sent", 1)] * len(people)
    assert sorted(m.to for m in fakes.twilio.messages) == sorted(p.mobile for p in people)


async def test_a_claim_is_renewed_before_a_send_only_when_its_last_renewal_is_a_third_of_a_lease_old(
    world, settings, redis, fakes
) -> None:  # type: ignore[no-untyped-def]
    """Renewing every claim before every provider call rewrote each ledger row once more. A claim renewed
    less than a third of a lease ago is trusted (recovery takes only claims a whole lease old); an older one
    is renewed first, and a row recovery gave back meanwhile is no longer the sender's."""
    import dataclasses

    from notifications.ledger import release_claim
    from schema.notifications import Notification

    people = await add_recipients(world, 3)
    t0 = dt.datetime.now(dt.UTC).replace(microsecond=0)
    now = [t0]
    async with pipeline(settings, redis, fakes, notify_claim_lease_seconds=60) as base:
        ctx = dataclasses.replace(base, clock=lambda: now[0])
        notification_id = await expanded(ctx, world, people, Channel.SMS)
        claim = await claim_batch(notification_id, Channel.SMS, 10, t0)
        token, claimed = claim.token, claim.rows
        notification = await Notification.objects().where(Notification.id == notification_id).first()
        assert notification is not None
        batch = sender._Batch(
            token=token,
            claimed_at=t0,
            claimed=claimed,
            to_send=claimed,
            facts={},
            message=sender.outgoing_of(notification),
        )
        keeper = sender._ClaimKeeper(ctx, batch)
        try:
            ids = {c.delivery_id for c in claimed}

            async def claimed_at() -> set[dt.datetime]:
                rows = await Delivery.select(Delivery.claimed_at).where(Delivery.id.is_in(list(ids)))
                return {r["claimed_at"].replace(tzinfo=dt.UTC) for r in rows}

            now[0] = t0 + dt.timedelta(seconds=19)
            assert await keeper.held() == ids
            assert await claimed_at() == {t0}  # not rewritten

            given_back = claimed[0].delivery_id
            await release_claim(token, [given_back], now[0])
            now[0] = t0 + dt.timedelta(seconds=21)
            assert await keeper.held() == ids - {given_back}
            ids.remove(given_back)
            assert await claimed_at() == {now[0]}  # renewed
        finally:
            await keeper.stop()


async def test_a_dead_second_device_is_removed_while_the_live_one_delivers(world, settings, redis, fakes) -> None:  # type: ignore[no-untyped-def]
    two_devices, one_device = await add_recipients(world, 2)
    stale = f"tok-stale-{two_devices.person_id.hex[:12]}"
    await Device(site=world.site_id, person=two_devices.person_id, platform="android", push_token=stale).save()
    fakes.fcm.mark_unregistered(stale)
    async with pipeline(settings, redis, fakes) as ctx:
        notification_id = await announce(world, [Channel.PUSH])
        await run_all(ctx, notification_id)
    rows = {r["person"]: r for r in await ledger(notification_id)}
    assert rows[two_devices.person_id]["status"] == "sent"
    assert rows[one_device.person_id]["status"] == "sent"
    assert not await Device.exists().where(Device.push_token == stale)
    assert await Device.exists().where(Device.push_token == two_devices.token)
    assert Counter(m.target for m in fakes.fcm.messages)[two_devices.token] == 1


async def test_a_sender_reads_only_the_contact_points_its_channel_decides_on(world, settings, redis, fakes) -> None:  # type: ignore[no-untyped-def]
    people = await add_recipients(world, 2)
    ids = [p.person_id for p in people]
    now = dt.datetime.now(dt.UTC)

    def decide_on(facts: Any, channel: Channel) -> Any:
        return facts.facts(
            channel=channel, category=Category.ANNOUNCEMENT, urgency=Urgency.NORMAL, created_at=now, now=now
        )

    async with pipeline(settings, redis, fakes) as ctx:
        push = await load_facts(
            ctx.directory, world.site_id, "Asia/Kolkata", ids, addresses=(), channels=[Channel.PUSH]
        )
        sms = await load_facts(
            ctx.directory, world.site_id, "Asia/Kolkata", ids, addresses=("mobile",), channels=[Channel.SMS]
        )
        everything = await load_facts(ctx.directory, world.site_id, "Asia/Kolkata", ids, addresses=())
    for person in people:
        # A push batch reads no contact points at all: its facts refuse to decide on a phone or e-mail.
        assert push[person.person_id].kinds_read == frozenset()
        assert decide_on(push[person.person_id], Channel.PUSH).contact_present
        with pytest.raises(ValueError, match="mobile"):
            decide_on(push[person.person_id], Channel.SMS)
        # An SMS batch reads the mobile (and its value), not the e-mail.
        assert sms[person.person_id].kinds_read == frozenset({"mobile"})
        assert sms[person.person_id].mobile == person.mobile
        # Devices only for push: an SMS batch does not read them.
        assert (push[person.person_id].push_tokens, sms[person.person_id].push_tokens) == ((person.token,), ())
        assert decide_on(sms[person.person_id], Channel.SMS).contact_present
        with pytest.raises(ValueError, match="email"):
            decide_on(sms[person.person_id], Channel.EMAIL)
        # Expansion decides on every channel, so it reads both kinds (their values are not decrypted).
        facts = everything[person.person_id]
        assert (facts.kinds_read, facts.has_mobile, facts.has_email, facts.mobile) == (
            frozenset({"mobile", "email"}),
            True,
            True,
            None,
        )


async def test_a_sender_opens_only_the_addresses_it_sends_to(world, settings, redis, fakes) -> None:  # type: ignore[no-untyped-def]
    """A batch decides on whether a mobile exists and its status; its value is decrypted (and, where reads are
    audited, recorded as read) only for the people the batch then sends to, not for those it suppresses or
    defers."""
    sent_to, withdrew, quiet = await add_recipients(world, 3)
    async with pipeline(settings, redis, fakes) as ctx:
        notification_id = await expanded(ctx, world, [sent_to, withdrew, quiet], Channel.SMS)
        await withdraw_sms(world, withdrew)
        await quiet_every_day(world, quiet, "00:00", "23:59")
        with audit.acting_as(None, route="test: a sender's reads") as reads:
            await sender.send_pending(ctx, notification_id, Channel.SMS)
    assert [m.to for m in fakes.twilio.messages] == [sent_to.mobile]
    statuses = {r["person"]: r["status"] for r in await ledger(notification_id)}
    assert statuses == {sent_to.person_id: "sent", withdrew.person_id: "suppressed", quiet.person_id: "deferred"}
    assert {subject for subject, action, data in reads.seen if data == "contact_points"} == {sent_to.person_id}


async def test_a_claim_on_sqlite_is_one_trip_to_the_database_thread(  # type: ignore[no-untyped-def]
    world, settings, redis, fakes, monkeypatch
) -> None:
    """Picking the due rows, claiming them and the transaction around both go to the connection's thread in
    one trip: each trip hands the GIL over and back, and cost the busy event loop about a millisecond."""
    import aiosqlite

    from app.db import is_sqlite

    if not is_sqlite():
        pytest.skip("SQLite only: on PostgreSQL a claim is one statement")
    await add_recipients(world, 3)
    async with pipeline(settings, redis, fakes) as ctx:
        notification_id = await announce(world, [Channel.SMS])
        await fanout.expand(ctx, notification_id)
        trips = 0
        original = aiosqlite.Connection._execute

        async def counted(connection: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
            nonlocal trips
            trips += 1
            return await original(connection, fn, *args, **kwargs)

        monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
        claim = await claim_batch(notification_id, Channel.SMS, 2, ctx.clock())
        monkeypatch.undo()
        assert (trips, len(claim.rows), claim.cancelled) == (1, 2, False)
        rest = await claim_batch(notification_id, Channel.SMS, 10, ctx.clock())
        assert rest.rows and not {r.delivery_id for r in rest.rows} & {r.delivery_id for r in claim.rows}
        statuses = Counter(r["status"] for r in await ledger(notification_id))
    assert statuses["sending"] == len(claim.rows) + len(rest.rows) and not statuses["pending"]
