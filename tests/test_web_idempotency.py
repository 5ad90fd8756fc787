"""Idempotency-Key (app/web/idempotency.py): what an offline guard console relies on when it sends an
action again after losing the answer. Real app, real Redis, real database."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import httpx

from schema.visitors import VisitorPass


def new_pass(world: Any, name: str = "Asha") -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    return {
        "unit_id": str(world.unit_ids[0]),
        "kind": "guest",
        "visitor_name": name,
        "one_time": {"valid_from": now.isoformat(), "valid_until": (now + dt.timedelta(hours=2)).isoformat()},
    }


async def passes_named(world: Any, name: str) -> int:
    return await VisitorPass.count().where((VisitorPass.site == world.site_id) & (VisitorPass.visitor_name == name))


async def test_a_repeat_gets_the_first_answer_and_nothing_is_done_twice(client: Any, world: Any) -> None:
    headers = {**world.headers("occupant"), "Idempotency-Key": "offline-action-0001"}
    body = new_pass(world, "Repeat")
    first = await client.post("/api/visitors/passes", json=body, headers=headers)
    assert first.status_code == 201, first.text
    again = await client.post("/api/visitors/passes", json=body, headers=headers)
    assert again.status_code == 201
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.json()["visitor_pass"]["id"] == first.json()["visitor_pass"]["id"], (first.text, again.text)
    assert await passes_named(world, "Repeat") == 1


async def test_without_the_key_each_request_is_its_own(client: Any, world: Any) -> None:
    for _ in range(2):
        assert (
            await client.post("/api/visitors/passes", json=new_pass(world, "Twice"), headers=world.headers("occupant"))
        ).status_code == 201
    assert await passes_named(world, "Twice") == 2


async def test_a_key_is_per_caller_and_per_request(client: Any, world: Any, other_world: Any) -> None:
    key = {"Idempotency-Key": "shared-key-000001"}
    mine = await client.post(
        "/api/visitors/passes", json=new_pass(world, "Mine"), headers={**world.headers("occupant"), **key}
    )
    assert mine.status_code == 201
    # Another person using the same key is not answered with my pass.
    theirs = await client.post(
        "/api/visitors/passes", json=new_pass(other_world, "Theirs"), headers={**other_world.headers("occupant"), **key}
    )
    assert theirs.status_code == 201 and theirs.json()["visitor_pass"]["id"] != mine.json()["visitor_pass"]["id"]
    # The same key for a different body is a mistake, said as such.
    reused = await client.post(
        "/api/visitors/passes", json=new_pass(world, "Other"), headers={**world.headers("occupant"), **key}
    )
    assert reused.status_code == 422
    assert reused.json()["errors"][0]["field"] == "Idempotency-Key"
    assert await passes_named(world, "Other") == 0


async def test_a_malformed_key_is_refused(client: Any, world: Any) -> None:
    answer = await client.post(
        "/api/visitors/passes", json=new_pass(world), headers={**world.headers("occupant"), "Idempotency-Key": "x"}
    )
    assert answer.status_code == 422 and answer.json()["errors"][0]["source"] == "header"


async def test_racing_repeats_do_it_once(settings: Any, world: Any) -> None:
    from tests.support.servers import FAST, InProcessServer

    server = InProcessServer(settings, FAST)
    await server.start()
    try:
        headers = {**world.headers("occupant"), "Idempotency-Key": "racing-key-00001"}
        body = new_pass(world, "Race")
        async with httpx.AsyncClient(base_url=server.http_url) as http:
            answers = await asyncio.gather(
                *(http.post("/api/visitors/passes", json=body, headers=headers) for _ in range(5))
            )
    finally:
        await server.stop()
    codes = sorted(a.status_code for a in answers)
    assert set(codes) <= {201, 409}, codes
    ids = {a.json()["visitor_pass"]["id"] for a in answers if a.status_code == 201}
    assert len(ids) == 1
    assert all(a.headers.get("retry-after") == "1" for a in answers if a.status_code == 409)
    assert await passes_named(world, "Race") == 1
