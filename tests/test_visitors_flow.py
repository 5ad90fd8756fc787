"""Walk-in outcomes at the gate, passes managed by occupants, settings, and the worker's ladder job."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from app.errors import Conflict
from app.visitors import approvals, gate, ladder
from notifications.context import NotifyContext
from notifications.fakes import running_fakes
from schema.visitors import Visit, VisitorApprovalStep
from tests.support.notify import pipeline
from tests.support.visitors import add_occupant, deps_for, one_time_pass, principal_of
from workers.visitor_jobs import visitor_ladder_tick


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def test_approved_walk_in_checks_in_denied_and_left_at_gate_do_not(world: Any, redis: Any) -> None:
    deps, guard = deps_for(world, redis), principal_of(world, "guard")
    results = {}
    for decision in ("approved", "denied", "leave_at_gate"):
        created = await gate.register_walk_in(
            deps, guard, gate.WalkInForm(unit_id=world.unit_ids[0], name=f"V {decision}", kind="delivery"), None
        )
        await approvals.answer(deps, world.site_id, created.approval_id, decision, person_id=None, via="guard")
        results[decision] = created.visit.id
    inside = await gate.check_in(deps, guard, results["approved"])
    assert inside.status == "inside" and inside.checked_in_at is not None
    for decision in ("denied", "leave_at_gate"):
        try:
            await gate.check_in(deps, guard, results[decision])
            raise AssertionError(f"a {decision} visitor was checked in")
        except Conflict as exc:
            assert exc.extra == {"status": decision}
    statuses = {
        r["id"]: r["status"] for r in await Visit.select(Visit.id, Visit.status).where(Visit.site == world.site_id)
    }
    assert statuses == {
        results["approved"]: "inside",
        results["denied"]: "denied",
        results["leave_at_gate"]: "leave_at_gate",
    }


async def test_two_workers_take_each_rung_once(world: Any, redis: Any) -> None:
    deps = deps_for(world, redis)
    t0 = now_utc() - dt.timedelta(minutes=5)
    created = await gate.register_walk_in(
        deps, principal_of(world, "guard"), gate.WalkInForm(unit_id=world.unit_ids[0], name="Race"), None, now=t0
    )
    at = t0 + dt.timedelta(seconds=46)
    taken = await asyncio.gather(*(ladder.advance_ladders(deps, None, now=at) for _ in range(4)))
    mine = [s for batch in taken for s in batch if s.approval_id == created.approval_id]
    assert [(s.step, s.action) for s in mine] == [(1, "message")]
    steps = await VisitorApprovalStep.select(VisitorApprovalStep.step).where(
        VisitorApprovalStep.approval == created.approval_id
    )
    assert sorted(s["step"] for s in steps) == [0, 1]
    # Answered requests leave the ladder.
    await approvals.answer(deps, world.site_id, created.approval_id, "denied", person_id=None, via="guard")
    later = await ladder.advance_ladders(deps, None, now=t0 + dt.timedelta(minutes=4))
    assert all(s.approval_id != created.approval_id for s in later)


async def test_worker_ladder_tick_places_the_call(world: Any, redis: Any, settings: Any) -> None:
    await add_occupant(world, "called", world.unit_ids[7], mobile="+919845055501")
    t0 = now_utc() - dt.timedelta(minutes=5)
    async with running_fakes() as fakes:
        fakes.twilio.configure(callbacks_enabled=False)
        async with pipeline(settings, redis, fakes) as notify:
            assert isinstance(notify, NotifyContext)
            deps = deps_for(world, redis, notify.settings)
            created = await gate.register_walk_in(
                deps,
                principal_of(world, "guard"),
                gate.WalkInForm(unit_id=world.unit_ids[7], name="Tick"),
                None,
                now=t0,
            )
            ctx = {"settings": notify.settings, "redis": redis, "notify": notify}
            await visitor_ladder_tick(ctx, now=t0 + dt.timedelta(seconds=45))
            await visitor_ladder_tick(ctx, now=t0 + dt.timedelta(seconds=90))
        (call,) = [c for c in fakes.twilio.calls if c.to == "+919845055501"]
    view = await approvals.view(world.site_id, created.approval_id)
    assert [s.action for s in view.steps] == ["push", "message", "voice"]
    assert view.steps[2].detail["calls"] == [{"person": str(world.people["called"]), "sid": call.sid, "error": None}]


async def test_occupants_manage_their_own_unit_passes(client: Any, world: Any, redis: Any) -> None:
    await add_occupant(world, "neighbour", world.unit_ids[1])
    mine = await one_time_pass(world, redis, start=now_utc() - dt.timedelta(minutes=1), visitor_name="Mine")
    theirs = await one_time_pass(
        world,
        redis,
        start=now_utc() - dt.timedelta(minutes=1),
        unit=world.unit_ids[1],
        by="neighbour",
        visitor_name="Theirs",
    )
    listed = await client.get("/api/visitors/passes", headers=world.headers("occupant"))
    assert [p["visitor_name"] for p in listed.json()["items"]] == ["Mine"]
    guard_list = await client.get("/api/visitors/passes", headers=world.headers("guard"))
    assert {p["visitor_name"] for p in guard_list.json()["items"]} >= {"Mine", "Theirs"}
    other_unit = await client.post(
        f"/api/visitors/passes/{theirs.visitor_pass.id}/revoke", headers=world.headers("occupant")
    )
    assert other_unit.status_code == 403
    for_other_unit = await client.post(
        "/api/visitors/passes",
        json={
            "unit_id": str(world.unit_ids[1]),
            "kind": "guest",
            "visitor_name": "Sneaky",
            "one_time": {
                "valid_from": now_utc().isoformat(),
                "valid_until": (now_utc() + dt.timedelta(hours=1)).isoformat(),
            },
        },
        headers=world.headers("occupant"),
    )
    assert for_other_unit.status_code == 403
    revoked = await client.post(
        f"/api/visitors/passes/{mine.visitor_pass.id}/revoke", headers=world.headers("occupant")
    )
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    verified = await client.post("/api/visitors/gate/verify", json={"code": mine.code}, headers=world.headers("guard"))
    assert verified.json()["reason"] == "revoked"


async def test_settings_are_validated_and_read_back(client: Any, world: Any) -> None:
    headers = world.headers("site_admin")
    defaults = (await client.get("/api/visitors/settings", headers=headers)).json()
    assert defaults["retention_days"] == 180 and defaults["retention_is_default"] is True
    assert [r["action"] for r in defaults["config"]["ladder"]] == ["message", "voice", "guard_prompt"]
    bad = await client.put(
        "/api/visitors/settings",
        json={
            "config": {"ladder": [{"after_seconds": 90, "action": "voice"}, {"after_seconds": 30, "action": "message"}]}
        },
        headers=headers,
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "config.ladder"
    good = await client.put(
        "/api/visitors/settings",
        json={"config": {"ladder": [{"after_seconds": 30, "action": "message"}]}, "retention_days": 90},
        headers=headers,
    )
    assert good.status_code == 200 and good.json()["retention_days"] == 90
    assert (await client.get("/api/visitors/settings", headers=headers)).json()["config"]["ladder"] == [
        {"after_seconds": 30, "action": "message"}
    ]
