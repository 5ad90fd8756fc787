"""Complaints live: real uvicorn server, real Redis, the realtime client; what reaches whom over /ws."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import pytest

from app.auth.roles import Role
from realtime.client import RealtimeClient, RequestFailed
from realtime.topics import complaint_topic, site_topic, unit_topic, user_topic
from schema.events import Event
from tests.support.complaints import configure, principal
from tests.support.servers import FAST, InProcessServer
from tests.support.world import World


@pytest.fixture(scope="module")
async def server(settings: Any) -> AsyncIterator[InProcessServer]:
    running = InProcessServer(settings, FAST)
    await running.start()
    yield running
    await running.stop()


@pytest.fixture
async def http(server: InProcessServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as client:
        yield client


async def events_until_quiet(client: RealtimeClient, quiet: float = 0.5) -> list[Event]:
    events: list[Event] = []
    try:
        while True:
            async with asyncio.timeout(quiet):
                message = await client.recv()
            if isinstance(message, Event):
                events.append(message)
    except TimeoutError:
        pass
    return events


async def events_on(client: RealtimeClient, topic: str, count: int, within: float = 10.0) -> list[Event]:
    got: list[Event] = []
    async with asyncio.timeout(within):
        while len(got) < count:
            message = await client.recv()
            if isinstance(message, Event) and message.topic == topic:
                got.append(message)
    return got


async def raise_via_http(http: httpx.AsyncClient, world: World) -> dict[str, Any]:
    response = await http.post(
        "/api/complaints",
        json={"category": "plumbing", "description": "Bathroom tap leaking", "unit_id": str(world.unit_ids[0])},
        headers=world.headers("occupant"),
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == "assigned"
    return body


async def test_technician_status_change_reaches_occupant_and_control_room_in_order_once(
    server: InProcessServer, http: httpx.AsyncClient, world: World
) -> None:
    await configure(world)
    complaint = await raise_via_http(http, world)
    cid = complaint["id"]
    unit = unit_topic(world.unit_ids[0])
    control = site_topic(world.site_id, "control")
    async with (
        RealtimeClient(server.url, world.token("occupant")) as occupant,
        RealtimeClient(server.url, world.token("fm_admin")) as board,
    ):
        for to in ("in_progress", "on_hold", "in_progress"):
            response = await http.post(
                f"/api/complaints/{cid}/transitions", json={"to": to}, headers=world.headers("technician")
            )
            assert response.status_code == 200, response.text
        seen_by_occupant = await events_on(occupant, unit, 3)
        seen_by_board = await events_on(board, control, 3)
        extra_occupant = await events_until_quiet(occupant)
        extra_board = await events_until_quiet(board)
    for events in (seen_by_occupant, seen_by_board):
        assert [e.type for e in events] == ["complaint.status_changed"] * 3
        assert [e.data["status"] for e in events] == ["in_progress", "on_hold", "in_progress"]
        assert [e.data["version"] for e in events] == [3, 4, 5]
        assert all(e.data["complaint_id"] == cid for e in events)
        assert [e.seq for e in events] == sorted(e.seq for e in events)
    # Exactly once: nothing more about this complaint on those topics.
    assert not [e for e in extra_occupant if e.topic == unit]
    assert not [e for e in extra_board if e.topic == control]


async def test_internal_notes_never_reach_occupants_over_the_websocket(
    server: InProcessServer, http: httpx.AsyncClient, world: World
) -> None:
    await configure(world)
    cid = (await raise_via_http(http, world))["id"]
    async with (
        RealtimeClient(server.url, world.token("occupant")) as occupant,
        RealtimeClient(server.url, world.token("fm_admin")) as board,
        RealtimeClient(server.url, world.token("technician")) as technician,
    ):
        await occupant.subscribe(complaint_topic(cid))
        note = await http.post(
            f"/api/complaints/{cid}/comments",
            json={"body": "SECRET internal: the occupant refused entry", "internal": True},
            headers=world.headers("fm_admin"),
        )
        public = await http.post(
            f"/api/complaints/{cid}/comments", json={"body": "We will come at 5pm"}, headers=world.headers("fm_admin")
        )
        assert note.status_code == 201 and public.status_code == 201
        occupant_events = await events_until_quiet(occupant, 1.0)
        board_events = await events_until_quiet(board, 0.5)
        technician_events = await events_until_quiet(technician, 0.5)
    raw = msgspec.json.encode(occupant_events).decode()
    assert "SECRET" not in raw and "complaint.note_added" not in raw
    comments = [e for e in occupant_events if e.type == "complaint.commented"]
    assert sorted(e.topic for e in comments) == sorted([unit_topic(world.unit_ids[0]), complaint_topic(cid)])
    assert all(e.data["body"] == "We will come at 5pm" for e in comments)
    # Staff and the assignee learn that a note was added, without its text on the wire.
    notes = [e for e in board_events + technician_events if e.type == "complaint.note_added"]
    assert {e.topic for e in notes} == {site_topic(world.site_id, "control"), user_topic(world.people["technician"])}
    assert "SECRET" not in msgspec.json.encode(board_events + technician_events).decode()


async def test_who_may_watch_a_complaint_topic(
    server: InProcessServer, http: httpx.AsyncClient, settings: Any, redis: Any, world: World, other_world: World
) -> None:
    from app.complaints import service

    await configure(world)
    cid = (await raise_via_http(http, world))["id"]
    topic = complaint_topic(cid)
    await world.add_person("co_occupant", frozenset({Role.OCCUPANT}), units=[(world.unit_ids[0], "tenant")])
    await world.add_person("neighbour", frozenset({Role.OCCUPANT}), units=[(world.unit_ids[1], "owner")])
    await world.add_person("other_tech", frozenset({Role.TECHNICIAN}), skills=("plumbing",))
    work_order = await service.raise_complaint(
        settings,
        redis,
        principal(world, "fm_admin"),
        service.NewComplaint(
            category="plumbing", description="Riser valve", unit_id=world.unit_ids[0], work_order=True
        ),
    )
    cases = [
        (world, "occupant", topic, True),
        (world, "co_occupant", topic, True),
        (world, "technician", topic, True),
        (world, "fm_admin", topic, True),
        (world, "neighbour", topic, False),
        (world, "other_tech", topic, False),
        (world, "guard", topic, False),
        (other_world, "fm_admin", topic, False),
        (world, "occupant", complaint_topic(work_order.id), False),
        (world, "fm_admin", complaint_topic(work_order.id), True),
    ]
    for place, name, wanted, allowed in cases:
        async with RealtimeClient(server.url, place.token(name)) as client:
            if allowed:
                await client.subscribe(wanted)
            else:
                with pytest.raises(RequestFailed):
                    await client.subscribe(wanted)
