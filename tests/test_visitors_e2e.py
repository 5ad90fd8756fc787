"""Walk-in approval end to end: real uvicorn, real websockets, two occupants and a guard console."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from realtime.client import RealtimeClient
from realtime.topics import site_topic, unit_topic
from schema import visitors_events as ev
from schema.events import Event
from schema.visitors import VisitorApproval, VisitorApprovalStep
from tests.support.servers import FAST, InProcessServer
from tests.support.visitors import add_occupant, jpeg


@pytest.fixture(scope="module")
async def server(settings: Any) -> AsyncIterator[InProcessServer]:
    running = InProcessServer(settings, FAST)
    await running.start()
    yield running
    await running.stop()


async def next_event(client: RealtimeClient, topic: str, event_type: str, within: float = 5.0) -> Event:
    async with asyncio.timeout(within):
        while True:
            message = await client.recv()
            if isinstance(message, Event) and message.topic == topic and message.type == event_type:
                return message


async def test_walk_in_reaches_both_occupants_and_the_first_answer_reaches_the_guard(
    server: InProcessServer, world: Any
) -> None:
    unit = world.unit_ids[1]
    await add_occupant(world, "first_occupant", unit)
    await add_occupant(world, "second_occupant", unit)
    unit_t, gate_t = unit_topic(unit), site_topic(world.site_id, "gate")
    async with (
        RealtimeClient(server.url, world.token("first_occupant")) as first,
        RealtimeClient(server.url, world.token("second_occupant")) as second,
        RealtimeClient(server.url, world.token("guard"), gate="main") as guard,
        httpx.AsyncClient(base_url=server.http_url) as http,
    ):
        started = time.perf_counter()
        created = await http.post(
            "/api/visitors/walk-ins",
            data={
                "unit_id": str(unit),
                "name": "Ravi Kumar",
                "phone": "+919876500011",
                "purpose": "parcel",
                "kind": "delivery",
                "gate": "main",
            },
            files={"photo": ("ravi.jpg", jpeg(), "image/jpeg")},
            headers=world.headers("guard"),
        )
        assert created.status_code == 201, created.text
        approval_id = created.json()["approval_id"]
        asked = await asyncio.gather(
            next_event(first, unit_t, ev.APPROVAL_REQUESTED), next_event(second, unit_t, ev.APPROVAL_REQUESTED)
        )
        assert {e.data["approval_id"] for e in asked} == {approval_id}
        assert asked[0].data["name"] == "Ravi Kumar" and asked[0].data["has_photo"] is True

        answered = await http.post(
            f"/api/visitors/approvals/{approval_id}/answer",
            json={"decision": "approved"},
            headers=world.headers("first_occupant"),
        )
        assert answered.status_code == 200, answered.text
        on_gate, on_unit = await asyncio.gather(
            next_event(guard, gate_t, ev.APPROVAL_RESOLVED), next_event(second, unit_t, ev.APPROVAL_RESOLVED)
        )
        elapsed = time.perf_counter() - started
        assert on_gate.data["decision"] == "approved" and on_unit.data["decision"] == "approved"
        assert on_gate.data["decided_by"] == str(world.people["first_occupant"])
        assert elapsed < 1.0, f"walk-in to resolution took {elapsed:.3f} s"

        late = await http.post(
            f"/api/visitors/approvals/{approval_id}/answer",
            json={"decision": "denied"},
            headers=world.headers("second_occupant"),
        )
        assert late.status_code == 409
        problem = late.json()
        assert problem["extra"]["decision"] == "approved" and "already answered" in problem["detail"]

    row = await VisitorApproval.select().where(VisitorApproval.id == approval_id).first()
    assert row is not None and row["status"] == "approved" and row["decided_via"] == "app"
    assert 0 <= row["time_to_decision_ms"] < 1000
    steps = await VisitorApprovalStep.select(VisitorApprovalStep.action).where(
        VisitorApprovalStep.approval == approval_id
    )
    assert sorted(s["action"] for s in steps) == ["decided", "push"]


async def test_concurrent_answers_have_exactly_one_winner(server: InProcessServer, world: Any) -> None:
    unit = world.unit_ids[2]
    names = [f"racer_{i}" for i in range(4)]
    for name in names:
        await add_occupant(world, name, unit)
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        created = await http.post(
            "/api/visitors/walk-ins",
            files={"unit_id": (None, str(unit)), "name": (None, "Zomato"), "kind": (None, "delivery")},
            headers=world.headers("guard"),
        )
        assert created.status_code == 201, created.text
        approval_id = created.json()["approval_id"]
        replies = await asyncio.gather(
            *(
                http.post(
                    f"/api/visitors/approvals/{approval_id}/answer",
                    json={"decision": "approved" if i % 2 else "leave_at_gate"},
                    headers=world.headers(name),
                )
                for i, name in enumerate(names)
            )
        )
    codes = sorted(r.status_code for r in replies)
    assert codes == [200, 409, 409, 409]
    winner = next(r.json() for r in replies if r.status_code == 200)
    assert all(r.json()["extra"]["decision"] == winner["status"] for r in replies if r.status_code == 409)
