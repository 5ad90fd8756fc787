"""SLOTS: booking rules, no double-booking under 50 concurrent requests, no-show release, charger faults,
coalesced live availability, passes, valet, reports. Real servers, real Redis, real database."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import pytest

from app.auth.roles import Role
from app.db import close_database, is_sqlite, open_database, write_transaction
from app.errors import AppError, Conflict
from app.slots import booking, chargers, passes, valet
from app.slots.availability import COALESCE_WINDOW_SECONDS, AvailabilityFeed
from app.slots.resources import Rules
from realtime import history
from realtime.client import RealtimeClient
from realtime.topics import site_topic, user_topic
from schema.events import Event
from schema.jsonvalue import as_dict
from schema.notifications import Notification
from schema.slots import ParkingPass, SlotBooking, SlotCharge, ValetRequest
from tests.support.servers import FAST, InProcessServer
from tests.support.slots import amenity, charger, device_headers, iso, local, parking_slot, principal
from tests.support.world import World


@pytest.fixture
async def feed(redis, settings) -> AvailabilityFeed:  # type: ignore[no-untyped-def]
    return AvailabilityFeed(redis, settings)


async def topic_events(redis: Any, settings: Any, topic: str) -> list[dict[str, Any]]:
    since = await history.read_since(redis, settings, topic, after=0)
    return [msgspec.json.decode(frame) for _, frame in since.entries]


async def events_on(client: RealtimeClient, topic: str, until: Any, within: float = 10.0) -> list[Event]:
    events: list[Event] = []
    async with asyncio.timeout(within):
        while True:
            message = await client.recv()
            if isinstance(message, Event) and message.topic == topic:
                events.append(message)
                if until(message):
                    return events


# ---------------------------------------------------------------------------- no double-booking


@pytest.fixture
async def server(settings) -> AsyncIterator[InProcessServer]:  # type: ignore[no-untyped-def]
    # A pool on the server's (= the test's) loop: 50 concurrent requests must not open 50+ connections each.
    running = InProcessServer(msgspec.structs.replace(settings, database_pool_size=20), FAST)
    await running.start()
    yield running
    await running.stop()


async def racers(world: World, count: int = 10) -> list[str]:
    names = [f"racer{i}" for i in range(count)]
    for i, name in enumerate(names):
        await world.add_person(name, frozenset({Role.OCCUPANT}), units=[(world.unit_ids[i % 8], "tenant")])
    return names


async def test_fifty_concurrent_requests_for_one_slot_exactly_one_wins(world: World, server: InProcessServer) -> None:
    resource = await amenity(world)
    names = await racers(world)
    body = {"starts_at": iso(local(1, 18)), "ends_at": iso(local(1, 19))}
    async with httpx.AsyncClient(base_url=server.http_url, timeout=60) as http:
        responses = await asyncio.gather(
            *[
                http.post(
                    f"/api/slots/resources/{resource.id}/bookings", json=body, headers=world.headers(names[i % 10])
                )
                for i in range(50)
            ]
        )
    codes = sorted(r.status_code for r in responses)
    unexpected = [r.text for r in responses if r.status_code not in (201, 409)][:3]
    assert (codes.count(201), codes.count(409)) == (1, 49), unexpected
    for response in responses:
        if response.status_code == 409:
            problem = response.json()
            assert problem["errors"][0]["field"] == "starts_at"
            assert problem["extra"]["rule"] == "overlap"
            next_free = [dt.datetime.fromisoformat(t) for t in problem["extra"]["next_free"]]
            assert next_free and next_free[0] == local(1, 19)  # the slot right after the winner's
    rows = await SlotBooking.select().where(SlotBooking.resource == resource.id)
    assert len(rows) == 1 and rows[0]["status"] == "confirmed"


async def test_racing_writers_of_one_resource_get_conflicts_never_deadlocks(
    world: World, feed: AvailabilityFeed, settings: Any
) -> None:
    """Inserts that an exclusion constraint must arbitrate can wait on each other; PostgreSQL then aborts
    every loser with "deadlock detected" (CI saw 49 of 50 requests fail so). Several rounds of 50 writers
    released together: each round has one winner and 49 plain conflicts."""
    if is_sqlite():
        pytest.skip("a PostgreSQL failure mode; SQLite's writers take the database's write lock one at a time")
    resource = await amenity(world)
    names = await racers(world)
    started_pool = await open_database(msgspec.structs.replace(settings, database_pool_size=50))
    try:
        for hour in range(8, 20):
            request = booking.NewBooking(starts_at=local(2, hour), ends_at=local(2, hour + 1))
            outcomes = await asyncio.gather(
                *[booking.book(feed, principal(world, names[i % 10]), resource.id, request) for i in range(50)],
                return_exceptions=True,
            )
            won = [o for o in outcomes if isinstance(o, booking.BookingView)]
            refused = [o for o in outcomes if isinstance(o, Conflict)]
            others = [repr(o) for o in outcomes if not isinstance(o, (booking.BookingView, Conflict))]
            assert (len(won), len(refused), others[:2]) == (1, 49, []), hour
    finally:
        if started_pool:
            await close_database()


async def test_a_writer_of_a_resource_waits_for_the_one_before_it(world: World, feed: AvailabilityFeed) -> None:
    resource, other = await amenity(world), await amenity(world)
    holding, release = asyncio.Event(), asyncio.Event()

    async def first_writer() -> None:
        async with write_transaction():
            await booking.lock_resource(resource.id)
            holding.set()
            await release.wait()

    holder = asyncio.create_task(first_writer())
    await holding.wait()
    request = booking.NewBooking(starts_at=local(3, 10), ends_at=local(3, 11))
    second = asyncio.create_task(booking.book(feed, principal(world, "occupant"), resource.id, request))
    if not is_sqlite():  # SQLite's writer holds the whole database; PostgreSQL's only the resource
        elsewhere = await booking.book(feed, principal(world, "occupant"), other.id, request)
        assert elsewhere.status == "confirmed"
    await asyncio.sleep(0.5)
    assert not second.done()
    release.set()
    await holder
    made = await asyncio.wait_for(second, 10)
    assert made.status == "confirmed" and made.resource_id == resource.id


async def test_the_database_refuses_an_overlap_that_skipped_the_service(world: World, feed: AvailabilityFeed) -> None:
    """The guarantee is the database's: an insert that bypasses the service check still cannot overlap (PostgreSQL),
    and on SQLite the service path is the only writer, serialised by BEGIN IMMEDIATE."""
    resource = await amenity(world)
    made = await booking.book(
        feed,
        principal(world, "occupant"),
        resource.id,
        booking.NewBooking(starts_at=local(1, 10), ends_at=local(1, 11)),
    )
    if is_sqlite():
        pytest.skip("SQLite has no exclusion constraints; the serialised write path is tested above")
    import asyncpg

    clash = SlotBooking(
        site=world.site_id,
        resource=resource.id,
        starts_at=local(1, 10, 30),
        ends_at=local(1, 11, 30),
        blocks_until=local(1, 11, 30),
        status="confirmed",
        checkin_token="x",
    )
    with pytest.raises(asyncpg.exceptions.ExclusionViolationError):
        await clash.save()
    # A cancelled booking no longer holds its range.
    await SlotBooking.update({SlotBooking.status: "cancelled"}).where(SlotBooking.id == made.id)
    await clash.save()


# ---------------------------------------------------------------------------- each rule refused, naming the field


async def book_http(
    client: Any, world: World, resource_id: Any, start: dt.datetime, end: dt.datetime, who: str = "occupant"
) -> Any:
    return await client.post(
        f"/api/slots/resources/{resource_id}/bookings",
        json={"starts_at": iso(start), "ends_at": iso(end)},
        headers=world.headers(who),
    )


async def test_opening_hours_rule_is_refused_naming_the_field(client: Any, world: World) -> None:
    resource = await amenity(world, opening_hours={str(d): [["07:00", "21:00"]] for d in range(7)})
    response = await book_http(client, world, resource.id, local(1, 21), local(1, 22))
    assert response.status_code == 422
    problem = response.json()
    assert problem["errors"][0]["field"] == "starts_at"
    assert problem["extra"]["rule"] == "opening_hours"
    assert "07:00-21:00" in problem["detail"]
    assert (await book_http(client, world, resource.id, local(1, 20), local(1, 21))).status_code == 201


async def test_advance_window_rule_is_refused_naming_the_field(client: Any, world: World) -> None:
    resource = await amenity(world, advance_days=3)
    response = await book_http(client, world, resource.id, local(5, 10), local(5, 11))
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "starts_at"
    assert response.json()["extra"]["rule"] == "advance_days"
    past = await book_http(client, world, resource.id, local(-1, 10), local(-1, 11))
    assert past.status_code == 422 and past.json()["extra"]["rule"] == "advance_days"
    assert (await book_http(client, world, resource.id, local(2, 10), local(2, 11))).status_code == 201


async def test_buffer_rule_is_refused_naming_the_field_and_next_free_time(client: Any, world: World) -> None:
    resource = await amenity(world, slot_minutes=30, min_minutes=30, buffer_minutes=30)
    assert (await book_http(client, world, resource.id, local(1, 10), local(1, 11))).status_code == 201
    response = await book_http(client, world, resource.id, local(1, 11), local(1, 12))
    assert response.status_code == 409
    problem = response.json()
    assert problem["errors"][0]["field"] == "starts_at"
    assert problem["extra"]["rule"] == "buffer_minutes"
    assert "30-minute buffer" in problem["detail"]
    assert dt.datetime.fromisoformat(problem["extra"]["next_free"][0]) == local(1, 11, 30)
    assert (await book_http(client, world, resource.id, local(1, 11, 30), local(1, 12, 30))).status_code == 201


async def test_quota_rule_is_refused_naming_the_field(client: Any, world: World) -> None:
    resource = await amenity(world, quota_per_day=2)
    assert (await book_http(client, world, resource.id, local(1, 8), local(1, 9))).status_code == 201
    assert (await book_http(client, world, resource.id, local(1, 10), local(1, 11))).status_code == 201
    response = await book_http(client, world, resource.id, local(1, 12), local(1, 13))
    assert response.status_code == 409
    problem = response.json()
    assert problem["errors"][0]["field"] == "starts_at"
    assert problem["extra"]["rule"] == "quota_per_day"
    assert "A-101" in problem["detail"]
    # Another unit is not affected; the next day is a new quota.
    await world.add_person("neighbour", frozenset({Role.OCCUPANT}), units=[(world.unit_ids[1], "owner")])
    assert (await book_http(client, world, resource.id, local(1, 12), local(1, 13), "neighbour")).status_code == 201
    assert (await book_http(client, world, resource.id, local(2, 12), local(2, 13))).status_code == 201


async def test_duration_and_slot_grid_rules(client: Any, world: World) -> None:
    resource = await amenity(world, min_minutes=60, max_minutes=120)
    short = await client.post(
        f"/api/slots/resources/{resource.id}/bookings",
        json={"starts_at": iso(local(1, 10)), "ends_at": iso(local(1, 10, 30))},
        headers=world.headers("occupant"),
    )
    assert short.status_code == 422 and short.json()["extra"]["rule"] == "min_minutes"
    long = await book_http(client, world, resource.id, local(1, 10), local(1, 13))
    assert long.status_code == 422 and long.json()["errors"][0]["field"] == "ends_at"
    off_grid = await book_http(client, world, resource.id, local(1, 10, 15), local(1, 11, 15))
    assert off_grid.status_code == 422 and off_grid.json()["extra"]["rule"] == "slot_minutes"


async def test_search_shows_free_times_around_bookings(client: Any, world: World) -> None:
    resource = await amenity(world, opening_hours={str(d): [["08:00", "12:00"]] for d in range(7)}, buffer_minutes=0)
    assert (await book_http(client, world, resource.id, local(1, 9), local(1, 10))).status_code == 201
    day = local(1, 9).astimezone(dt.timezone(dt.timedelta(hours=5, minutes=30))).date()
    response = await client.get(
        f"/api/slots/resources/{resource.id}/availability",
        params={"date": day.isoformat(), "duration_minutes": 60},
        headers=world.headers("occupant"),
    )
    assert response.status_code == 200, response.text
    starts = [dt.datetime.fromisoformat(s) for s in response.json()["starts"]]
    assert starts == [local(1, 8), local(1, 10), local(1, 11)]


# ---------------------------------------------------------------------------- change, cancel, approval, check-in


async def test_change_and_cancel_with_the_site_rule(client: Any, world: World, feed: AvailabilityFeed) -> None:
    resource = await amenity(world, fee_minor=50000)
    who = principal(world, "occupant")
    made = await booking.book(feed, who, resource.id, booking.NewBooking(starts_at=local(1, 10), ends_at=local(1, 11)))
    assert made.fee_minor == 50000 and made.charge_status == "pending"
    moved = await client.patch(
        f"/api/slots/bookings/{made.id}",
        json={"starts_at": iso(local(1, 12)), "ends_at": iso(local(1, 13))},
        headers=world.headers("occupant"),
    )
    assert moved.status_code == 200 and dt.datetime.fromisoformat(moved.json()["starts_at"]) == local(1, 12)
    # Late (inside the default 2-hour cutoff): cancelled, but the fee stays owed.
    late = await booking.cancel_booking(feed, who, made.id, now=local(1, 11))
    assert late.booking.status == "cancelled" and not late.free_cancellation
    assert (await SlotCharge.select(SlotCharge.status).where(SlotCharge.booking == made.id).first())[
        "status"
    ] == "pending"  # type: ignore[index]
    # Early: free, the charge is voided.
    early = await booking.book(feed, who, resource.id, booking.NewBooking(starts_at=local(2, 10), ends_at=local(2, 11)))
    response = await client.post(f"/api/slots/bookings/{early.id}/cancel", json={}, headers=world.headers("occupant"))
    assert response.status_code == 200 and response.json()["free_cancellation"] is True
    assert response.json()["booking"]["charge_status"] == "void"
    # Another occupant cannot see or cancel it.
    await world.add_person("stranger", frozenset({Role.OCCUPANT}), units=[(world.unit_ids[3], "owner")])
    assert (await client.get(f"/api/slots/bookings/{made.id}", headers=world.headers("stranger"))).status_code == 404


async def test_fm_approval_holds_the_slot_until_decided(client: Any, world: World, feed: AvailabilityFeed) -> None:
    resource = await amenity(world, needs_approval=True, fee_minor=10000)
    response = await book_http(client, world, resource.id, local(1, 10), local(1, 11))
    assert response.status_code == 201 and response.json()["status"] == "pending"
    assert response.json()["charge_status"] is None
    booking_id = response.json()["id"]
    await world.add_person("other", frozenset({Role.OCCUPANT}), units=[(world.unit_ids[2], "owner")])
    assert (await book_http(client, world, resource.id, local(1, 10), local(1, 11), "other")).status_code == 409
    approved = await client.post(
        f"/api/slots/bookings/{booking_id}/approve", json={}, headers=world.headers("fm_admin")
    )
    assert approved.status_code == 200 and approved.json()["status"] == "confirmed"
    assert approved.json()["charge_status"] == "pending"
    told = await Notification.select().where(Notification.idempotency_key == f"slot-decision:{booking_id}")
    assert len(told) == 1


async def test_check_in_by_code_and_by_qr(client: Any, world: World, feed: AvailabilityFeed) -> None:
    resource = await amenity(world)
    code = next(
        r
        for r in (await client.get("/api/slots/resources", headers=world.headers("fm_admin"))).json()["items"]
        if r["id"] == str(resource.id)
    )["checkin_code"]
    who = principal(world, "occupant")
    start = local(1, 10)
    made = await booking.book(feed, who, resource.id, booking.NewBooking(starts_at=start, ends_at=local(1, 11)))
    with pytest.raises(AppError) as refused:
        await booking.check_in_with_code(feed, who, made.id, "000000" if code != "000000" else "111111", now=start)
    assert refused.value.errors is not None and refused.value.errors[0].field == "code"
    with pytest.raises(AppError) as early:
        await booking.check_in_with_code(feed, who, made.id, code, now=start - dt.timedelta(hours=1))
    assert early.value.extra is not None and early.value.extra["rule"] == "too_early"
    done = await booking.check_in_with_code(feed, who, made.id, code, now=start + dt.timedelta(minutes=5))
    assert done.status == "checked_in"
    # QR: the owner's code, scanned by the guard.
    second = await booking.book(
        feed, who, resource.id, booking.NewBooking(starts_at=local(2, 10), ends_at=local(2, 11))
    )
    svg = await client.get(f"/api/slots/bookings/{second.id}/qr.svg", headers=world.headers("occupant"))
    assert svg.status_code == 200 and svg.text.lstrip().startswith("<?xml") and "<svg" in svg.text
    assert second.checkin_qr is not None
    scanned = await booking.check_in_with_qr(feed, principal(world, "guard"), second.checkin_qr, now=local(2, 10))
    assert scanned.status == "checked_in"
    forged = await client.post(
        "/api/slots/check-in", json={"qr": second.checkin_qr[:-3] + "xyz"}, headers=world.headers("guard")
    )
    assert forged.status_code == 422 and forged.json()["errors"][0]["field"] == "qr"


# ---------------------------------------------------------------------------- no-show release, reminders


async def test_no_show_release_with_a_controlled_clock_publishes_availability(
    world: World, feed: AvailabilityFeed, redis: Any, settings: Any
) -> None:
    resource = await amenity(world, checkin_grace_minutes=15)
    start = local(1, 10)
    made = await booking.book(
        feed,
        principal(world, "occupant"),
        resource.id,
        booking.NewBooking(starts_at=start, ends_at=local(1, 12)),
        now=start - dt.timedelta(hours=2),
    )
    topic = site_topic(world.site_id, "slots")
    before = len(await topic_events(redis, settings, topic))
    # Within the grace period: nothing is released.
    await booking.release_no_shows(redis, settings, now=start + dt.timedelta(minutes=10))
    assert (await SlotBooking.select(SlotBooking.status).where(SlotBooking.id == made.id).first())[
        "status"
    ] == "confirmed"  # type: ignore[index]
    released = await booking.release_no_shows(redis, settings, now=start + dt.timedelta(minutes=16))
    assert released >= 1
    assert (await SlotBooking.select(SlotBooking.status).where(SlotBooking.id == made.id).first())[
        "status"
    ] == "no_show"  # type: ignore[index]
    # Published at once (no waiting for a debounce window), with the slot free again.
    events = (await topic_events(redis, settings, topic))[before:]
    states = [
        e for e in events if e["type"] == "slot.availability_changed" and e["data"]["resource_id"] == str(resource.id)
    ]
    assert states and states[-1]["data"]["state"] == "free"
    assert any(e["type"] == "slot.counts_changed" and e["data"]["counts"]["amenity_free_now"] >= 1 for e in events)
    # Re-running the cron changes nothing more.
    assert await booking.release_no_shows(redis, settings, now=start + dt.timedelta(minutes=17)) == 0
    # The slot can be booked again by someone else for the rest of its time.
    await world.add_person("walkin", frozenset({Role.OCCUPANT}), units=[(world.unit_ids[4], "owner")])
    again = await booking.book(
        feed,
        principal(world, "walkin"),
        resource.id,
        booking.NewBooking(starts_at=local(1, 11), ends_at=local(1, 12)),
        now=start + dt.timedelta(minutes=20),
    )
    assert again.status == "confirmed"


async def test_reminders_go_once_through_notify(world: World, feed: AvailabilityFeed) -> None:
    resource = await amenity(world, reminder_minutes=30)
    start = local(1, 10)
    made = await booking.book(
        feed, principal(world, "occupant"), resource.id, booking.NewBooking(starts_at=start, ends_at=local(1, 11))
    )
    await booking.send_reminders(now=start - dt.timedelta(hours=2))  # too early for this one
    rows = await Notification.select().where(Notification.idempotency_key.like(f"slot-reminder:{made.id}:%"))
    assert rows == []
    await booking.send_reminders(now=start - dt.timedelta(minutes=20))
    await booking.send_reminders(now=start - dt.timedelta(minutes=10))
    rows = await Notification.select().where(Notification.idempotency_key.like(f"slot-reminder:{made.id}:%"))
    assert len(rows) == 1 and rows[0]["category"] == "booking"


# ---------------------------------------------------------------------------- chargers


async def test_a_faulted_charger_moves_its_next_booking_or_cancels_it_and_tells_the_owner(
    client: Any, world: World, feed: AvailabilityFeed
) -> None:
    first = await charger(world, "EV1", [(1, 7.4, "Type2"), (2, 50, "CCS2")])
    second = await charger(world, "EV2", [(1, 22, "Type2")])
    ev1_type2 = next(c for c in first.connectors if c.connector_no == 1)
    ev1_ccs = next(c for c in first.connectors if c.connector_no == 2)
    ev2_type2 = second.connectors[0]
    who = principal(world, "occupant")
    movable = await booking.book(
        feed, who, ev1_type2.id, booking.NewBooking(starts_at=local(1, 18), ends_at=local(1, 19))
    )
    await world.add_person("driver", frozenset({Role.OCCUPANT}), units=[(world.unit_ids[5], "owner")])
    ccs = await booking.book(
        feed, principal(world, "driver"), ev1_ccs.id, booking.NewBooking(starts_at=local(1, 18), ends_at=local(1, 19))
    )
    stamp = dt.datetime.now(dt.UTC)
    response = await client.post(
        "/api/slots/ocpp/status-notification",
        json={"connector_id": 0, "status": "Faulted", "timestamp": iso(stamp), "error_code": "GroundFailure"},
        headers=device_headers(first),
    )
    assert response.status_code == 200, response.text
    assert response.json()["moved_bookings"] == 1 and response.json()["cancelled_bookings"] == 1
    moved_row = await SlotBooking.select().where(SlotBooking.id == movable.id).first()
    assert moved_row is not None and moved_row["resource"] == ev2_type2.id and moved_row["status"] == "confirmed"
    assert moved_row["moved_from"] == ev1_type2.id
    cancelled_row = await SlotBooking.select().where(SlotBooking.id == ccs.id).first()
    assert cancelled_row is not None and cancelled_row["status"] == "cancelled"  # no other CCS2 connector
    told = {
        r["idempotency_key"].split(":")[1]: r
        for r in await Notification.select().where(Notification.site == world.site_id)
        if (r["idempotency_key"] or "").startswith("slot-fault:")
    }
    assert set(told) == {str(movable.id), str(ccs.id)}
    assert "EV2-1" in told[str(movable.id)]["body"]
    assert as_dict(told[str(movable.id)]["audience"])["person_ids"] == [str(world.people["occupant"])]
    assert as_dict(told[str(ccs.id)]["audience"])["person_ids"] == [str(world.people["driver"])]
    assert "cancelled" in told[str(ccs.id)]["body"]
    # A faulted connector cannot be booked.
    refused = await book_http(client, world, ev1_type2.id, local(2, 18), local(2, 19))
    assert refused.status_code == 409 and refused.json()["extra"]["rule"] == "out_of_service"


async def test_charger_ingest_authenticates_per_charger_and_ignores_older_events(client: Any, world: World) -> None:
    made = await charger(world, "EV9", [(1, 7.4, "Type2")])
    other = await charger(world, "EV8", [(1, 7.4, "Type2")])
    now = dt.datetime.now(dt.UTC)
    url = "/api/slots/ocpp/status-notification"
    wrong = await client.post(
        url,
        json={"connector_id": 1, "status": "Charging", "timestamp": iso(now)},
        headers={"X-Device-Id": str(made.device_id), "X-Device-Token": other.token},
    )
    assert wrong.status_code == 401
    newer = await client.post(
        url, json={"connector_id": 1, "status": "Charging", "timestamp": iso(now)}, headers=device_headers(made)
    )
    assert newer.json()["applied"] == ["EV9-1"]
    older = await client.post(
        url,
        json={"connector_id": 1, "status": "Available", "timestamp": iso(now - dt.timedelta(seconds=30))},
        headers=device_headers(made),
    )
    assert older.status_code == 200 and older.json() == {
        "applied": [],
        "ignored": ["EV9-1"],
        "moved_bookings": 0,
        "cancelled_bookings": 0,
    }
    state = await client.get(
        "/api/slots/availability", params={"category": "ev_connector"}, headers=world.headers("occupant")
    )
    mine = next(r for r in state.json()["resources"] if r["code"] == "EV9-1")
    assert mine["state"] == "in_use" and mine["live_status"] == "Charging"
    bad = await client.post(
        url, json={"connector_id": 1, "status": "Exploded", "timestamp": iso(now)}, headers=device_headers(made)
    )
    assert bad.status_code == 400


async def test_parking_sensor_events_update_counts(client: Any, world: World, redis: Any, settings: Any) -> None:
    await parking_slot(world, "P-1")
    await parking_slot(world, "P-2")
    gateway = await client.post(
        "/api/slots/sensor-gateways", json={"name": "Basement"}, headers=world.headers("fm_admin")
    )
    assert gateway.status_code == 201
    headers = {"X-Device-Id": gateway.json()["device_id"], "X-Device-Token": gateway.json()["token"]}
    now = dt.datetime.now(dt.UTC)
    response = await client.post(
        "/api/slots/sensors/occupancy",
        json={"slot_code": "P-1", "occupied": True, "timestamp": iso(now)},
        headers=headers,
    )
    assert response.status_code == 200 and response.json()["applied"] == ["P-1"]
    counts = (await client.get("/api/slots/availability", headers=world.headers("guard"))).json()["counts"]
    assert counts["parking_total"] == 2 and counts["parking_free_now"] == 1 and counts["visitor_parking_free_now"] == 1


# ---------------------------------------------------------------------------- coalesced live availability


async def test_a_burst_of_changes_is_coalesced_and_the_last_event_has_the_final_state(
    world: World, server: InProcessServer, redis: Any, settings: Any
) -> None:
    made = await charger(world, "EVB", [(1, 7.4, "Type2")])
    topic = site_topic(world.site_id, "slots")
    statuses = ["Charging", "Available"] * 20 + ["Finishing"]
    start = dt.datetime.now(dt.UTC)
    async with RealtimeClient(server.url, world.token("occupant")) as watcher:
        await watcher.subscribe(topic)
        # 41 status changes of one connector in a burst, each one committed and marked changed as the
        # ingest route does (the flusher lock and dirty set are in Redis, shared by every process).
        for i, status in enumerate(statuses):
            result = await chargers.status_notification(
                redis,
                settings,
                made.device_id,
                world.site_id,
                chargers.StatusNotification(
                    connector_id=1,
                    status=status,
                    timestamp=start + dt.timedelta(milliseconds=i),  # type: ignore[arg-type]
                ),
            )
            assert result.applied == ["EVB-1"]
        events = await events_on(
            watcher,
            topic,
            lambda e: e.type == "slot.availability_changed" and e.data["live_status"] == "Finishing",
        )
        try:  # anything still in flight would arrive within a few windows
            async with asyncio.timeout(4 * COALESCE_WINDOW_SECONDS):
                while True:
                    message = await watcher.recv()
                    if isinstance(message, Event) and message.topic == topic:
                        events.append(message)
        except TimeoutError:
            pass
    states = [e for e in events if e.type == "slot.availability_changed"]
    assert 1 <= len(states) <= 5, [s.data["live_status"] for s in states]  # 41 changes, a handful of events
    assert states[-1].data["live_status"] == "Finishing" and states[-1].data["state"] == "in_use"
    counts = [e for e in events if e.type == "slot.counts_changed"]
    assert 1 <= len(counts) <= 5 and counts[-1].data["counts"]["ev_free_now"] == 0


async def test_burst_through_the_http_ingest_is_coalesced_too(world: World, server: InProcessServer) -> None:
    made = await charger(world, "EVH", [(1, 7.4, "Type2")])
    topic = site_topic(world.site_id, "slots")
    statuses = ["Charging", "Available"] * 10 + ["SuspendedEV"]
    start = dt.datetime.now(dt.UTC)
    async with RealtimeClient(server.url, world.token("occupant")) as watcher:
        await watcher.subscribe(topic)
        async with httpx.AsyncClient(base_url=server.http_url) as http:
            for i, status in enumerate(statuses):
                response = await http.post(
                    "/api/slots/ocpp/status-notification",
                    json={"connector_id": 1, "status": status, "timestamp": iso(start + dt.timedelta(milliseconds=i))},
                    headers=device_headers(made),
                )
                assert response.status_code == 200 and response.json()["applied"] == ["EVH-1"]
        events = await events_on(
            watcher,
            topic,
            lambda e: e.type == "slot.availability_changed" and e.data["live_status"] == "SuspendedEV",
        )
    states = [e for e in events if e.type == "slot.availability_changed"]
    assert len(states) < len(statuses) // 2 and states[-1].data["state"] == "in_use"


# ---------------------------------------------------------------------------- passes and valet


async def test_parking_pass_plate_is_encrypted_and_the_pass_expires_and_renews(
    client: Any, world: World, settings: Any
) -> None:
    response = await client.post(
        "/api/slots/passes", json={"plate": "ka 01 ab 1234", "months": 1}, headers=world.headers("occupant")
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["plate"] == "KA01AB1234" and created["status"] == "active"
    row = await ParkingPass.select().where(ParkingPass.id == created["id"]).first()
    assert row is not None and "KA01AB1234" not in row["plate_encrypted"] and "KA01AB1234" not in row["plate_index"]
    check = await client.get(
        "/api/slots/passes/check", params={"plate": "KA-01-AB-1234"}, headers=world.headers("guard")
    )
    assert check.status_code == 200 and check.json()["valid_now"] is True
    who = principal(world, "occupant")
    valid_until = dt.date.fromisoformat(created["valid_until"])
    later = dt.datetime.combine(valid_until + dt.timedelta(days=2), dt.time(12), tzinfo=dt.UTC)
    expired = await passes.get_pass(settings, who, row["id"], now=later)
    assert expired.status == "expired"
    renewed = await passes.renew_pass(settings, who, row["id"], passes.Renewal(months=2), now=later)
    assert renewed.status == "active" and renewed.renewals == 1
    assert renewed.valid_from == later.astimezone(dt.timezone(dt.timedelta(hours=5, minutes=30))).date()
    assert renewed.valid_until > valid_until + dt.timedelta(days=55)
    recurring = await client.post(
        "/api/slots/passes", json={"plate": "KA01ZZ0001", "kind": "recurring"}, headers=world.headers("occupant")
    )
    assert recurring.status_code == 422 and recurring.json()["errors"][0]["field"] == "weekdays"


async def test_valet_status_reaches_the_occupant_live(world: World, server: InProcessServer) -> None:
    topic = user_topic(world.people["occupant"])
    async with (
        RealtimeClient(server.url, world.token("occupant")) as occupant,
        httpx.AsyncClient(base_url=server.http_url) as http,
    ):
        await occupant.subscribe(topic)
        created = await http.post("/api/slots/valet", json={"plate": "KA05MN4321"}, headers=world.headers("occupant"))
        assert created.status_code == 201, created.text
        valet_id = created.json()["id"]
        parked = await http.patch(
            f"/api/slots/valet/{valet_id}", json={"status": "parking"}, headers=world.headers("guard")
        )
        assert parked.status_code == 200
        await http.patch(
            f"/api/slots/valet/{valet_id}", json={"status": "parked", "bay": "B2-14"}, headers=world.headers("guard")
        )
        wrong = await http.patch(
            f"/api/slots/valet/{valet_id}", json={"status": "delivered"}, headers=world.headers("guard")
        )
        assert wrong.status_code == 409 and wrong.json()["extra"]["allowed"] == ["retrieval_requested", "retrieving"]
        retrieve = await http.post(f"/api/slots/valet/{valet_id}/retrieve", headers=world.headers("occupant"))
        assert retrieve.status_code == 200 and retrieve.json()["eta_at"] is not None
        events = await events_on(
            occupant, topic, lambda e: e.type == "valet.status_changed" and e.data["status"] == "retrieval_requested"
        )
    statuses = [e.data["status"] for e in events if e.type == "valet.status_changed"]
    assert statuses == ["requested", "parking", "parked", "retrieval_requested"]
    assert events[-1].data["eta_at"] is not None
    row = await ValetRequest.select().where(ValetRequest.id == valet_id).first()
    assert row is not None and "KA05MN4321" not in row["plate_encrypted"]


# ---------------------------------------------------------------------------- reports and privacy


async def test_utilisation_report_per_resource_and_type(client: Any, world: World, feed: AvailabilityFeed) -> None:
    resource = await amenity(world, code="GYM-1", opening_hours={str(d): [["06:00", "10:00"]] for d in range(7)})
    who = principal(world, "occupant")
    start = local(1, 6)
    made = await booking.book(feed, who, resource.id, booking.NewBooking(starts_at=start, ends_at=local(1, 8)))
    code = (await client.get("/api/slots/resources", headers=world.headers("fm_admin"))).json()["items"]
    checkin = next(r["checkin_code"] for r in code if r["id"] == str(resource.id))
    await booking.check_in_with_code(feed, who, made.id, checkin, now=start)
    day = start.astimezone(dt.timezone(dt.timedelta(hours=5, minutes=30))).date()
    response = await client.get(
        "/api/slots/reports/utilisation.csv",
        params={"from": day.isoformat(), "to": day.isoformat()},
        headers=world.headers("fm_admin"),
    )
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    gym = next(r for r in rows if r["code"] == "GYM-1")
    assert gym["open_hours"] == "4.00" and gym["used_hours"] == "2.00" and gym["utilisation_pct"] == "50.0"
    amenities = next(r for r in rows if r["scope"] == "type" and r["category"] == "amenity")
    assert float(amenities["used_hours"]) >= 2.0
    bad = await client.get(
        "/api/slots/reports/utilisation.csv",
        params={"from": "2026-02-01", "to": "2026-01-01"},
        headers=world.headers("fm_admin"),
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "to"


async def test_personal_data_section_exports_and_erases(world: World, settings: Any, redis: Any) -> None:
    from app.people.directory import directory_for
    from app.privacy.registry import PersonScope, load_registries
    from tests.support.ids_slots import seed_person_data

    person_id = world.people["occupant"]
    await seed_person_data(world, person_id)
    sections, _ = load_registries()
    section = sections["bookings"]
    scope = PersonScope(
        site_id=world.site_id, person_id=person_id, settings=settings, directory=directory_for(settings), redis=redis
    )
    exported = await section.export(scope)
    kinds = sorted({row["kind"] for row in exported})
    assert kinds == ["booking", "booking_charge", "parking_pass", "valet_request"]
    assert any(row.get("plate") == "MH12XY9876" for row in exported)
    outcome = await section.erase(scope)
    assert outcome.erased >= 4 and outcome.held
    assert await section.export(scope) == []
    kept = await SlotCharge.select().where(SlotCharge.site == world.site_id)
    assert kept and all(row["person"] is None for row in kept)
    assert not await ParkingPass.exists().where(ParkingPass.person == person_id)


def test_rules_struct_defaults_are_sane() -> None:
    rules = Rules()
    assert rules.min_minutes <= rules.slot_minutes <= rules.max_minutes
    assert valet.TRANSITIONS["parked"] >= {"retrieval_requested"}
