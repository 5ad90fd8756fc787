"""Complaints: raising, every lifecycle move (allowed and refused), assignment, SLA and escalation,
conversation privacy, rating, reports and personal data; on the real database and Redis."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
from typing import Any

import pytest
from PIL import Image

from app.auth.roles import Role
from app.complaints import assignment, config, service
from app.complaints.lifecycle import TRANSITIONS, Actor, Status, allowed_moves
from app.complaints.sla import Priority, escalate_breaches
from app.errors import Conflict, InvalidInput, NotFound
from app.people.directory import directory_for
from app.privacy.registry import PersonScope, load_registries
from schema.complaints import Complaint, ComplaintEscalation, ComplaintPhoto, ComplaintTransition
from schema.jsonvalue import as_dict
from schema.notifications import Notification
from tests.support.complaints import ALL_DAY, T0, configure, drive_to, move, principal, raise_one
from tests.support.world import World
from workers.complaint_jobs import CRON_JOBS, complaint_escalate

pytestmark = pytest.mark.usefixtures("configured")


@pytest.fixture
async def configured(world: World) -> World:
    await configure(world)
    return world


def jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buffer, format="JPEG")
    return buffer.getvalue()


async def history(complaint_id: Any) -> list[tuple[str | None, str, int]]:
    rows = (
        await ComplaintTransition.select()
        .where(ComplaintTransition.complaint == complaint_id)
        .order_by(ComplaintTransition.version)
    )
    return [(r["from_status"], r["to_status"], r["version"]) for r in rows]


# ---------------------------------------------------------------------------- raising


async def test_occupant_raises_for_own_unit_and_is_auto_assigned(client: Any, world: World) -> None:
    response = await client.post(
        "/api/complaints",
        json={
            "category": "plumbing",
            "subcategory": "leak",
            "description": "Water leaking under the sink",
            "unit_id": str(world.unit_ids[0]),
        },
        headers=world.headers("occupant"),
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "assigned" and body["assignee_id"] == str(world.people["technician"])
    assert body["raised_by"] == str(world.people["occupant"]) and body["unit_label"] == "A-101"
    assert body["sla_state"] == "on_track" and body["version"] == 2
    created = dt.datetime.fromisoformat(body["created_at"])
    assert dt.datetime.fromisoformat(body["response_due_at"]) - created == dt.timedelta(minutes=60)
    assert dt.datetime.fromisoformat(body["resolution_due_at"]) - created == dt.timedelta(minutes=240)
    assert await history(body["id"]) == [(None, "open", 1), ("open", "assigned", 2)]


@pytest.mark.parametrize(
    ("who", "body", "field"),
    [
        ("occupant", {"unit_id": "other"}, "unit_id"),  # not their unit
        ("occupant", {}, "unit_id"),  # no unit
        ("guard", {"unit_id": "own"}, "unit_id"),  # guards: common areas only
        ("guard", {}, "location"),
        ("occupant", {"unit_id": "own", "work_order": True}, "work_order"),
        ("fm_admin", {"unit_id": "own"}, "on_behalf_of"),
        ("fm_admin", {"unit_id": "other", "on_behalf_of": "occupant"}, "on_behalf_of"),
        ("occupant", {"unit_id": "own", "category": "nope"}, "category"),
        ("occupant", {"unit_id": "own", "subcategory": "sparks"}, "subcategory"),
    ],
)
async def test_raise_refuses_the_wrong_raiser_naming_the_field(
    client: Any, world: World, who: str, body: dict[str, Any], field: str
) -> None:
    payload: dict[str, Any] = {"category": "plumbing", "description": "Something is wrong"}
    for key, value in body.items():
        if value == "own":
            value = str(world.unit_ids[0])
        elif value == "other":
            value = str(world.unit_ids[5])
        elif key == "on_behalf_of":
            value = str(world.people[value])
        payload[key] = value
    response = await client.post("/api/complaints", json=payload, headers=world.headers(who))
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == field


async def test_guard_staff_and_work_orders(client: Any, world: World) -> None:
    guard = await client.post(
        "/api/complaints",
        json={"category": "electrical", "description": "Lobby light flickering", "location": "Tower A lobby"},
        headers=world.headers("guard"),
    )
    assert guard.status_code == 201 and guard.json()["unit_id"] is None and guard.json()["status"] == "open"
    for_occupant = await client.post(
        "/api/complaints",
        json={
            "category": "plumbing",
            "description": "Called the desk: no water pressure",
            "unit_id": str(world.unit_ids[0]),
            "on_behalf_of": str(world.people["occupant"]),
            "priority": "high",
        },
        headers=world.headers("fm_admin"),
    )
    assert for_occupant.status_code == 201 and for_occupant.json()["raised_for"] == str(world.people["occupant"])
    work_order = await client.post(
        "/api/complaints",
        json={
            "category": "plumbing",
            "description": "Replace the valve in A-101's riser",
            "unit_id": str(world.unit_ids[0]),
            "work_order": True,
        },
        headers=world.headers("fm_admin"),
    )
    assert work_order.status_code == 201 and work_order.json()["visibility"] == "staff"
    # The occupant sees what was raised for them, not the internal work order on their unit.
    mine = await client.get("/api/complaints", headers=world.headers("occupant"))
    ids = {item["id"] for item in mine.json()["items"]}
    assert for_occupant.json()["id"] in ids and work_order.json()["id"] not in ids
    hidden = await client.get(f"/api/complaints/{work_order.json()['id']}", headers=world.headers("occupant"))
    assert hidden.status_code == 404
    # The guard sees their own, the FM sees all three.
    assert {i["id"] for i in (await client.get("/api/complaints", headers=world.headers("guard"))).json()["items"]} == {
        guard.json()["id"]
    }
    assert (await client.get("/api/complaints", headers=world.headers("fm_admin"))).json()["total"] == 3


# ---------------------------------------------------------------------------- every move


MOVERS = {Actor.RAISER: "occupant", Actor.ASSIGNEE: "technician", Actor.STAFF: "fm_admin"}


@pytest.mark.parametrize("actor", list(MOVERS))
@pytest.mark.parametrize("state", list(Status))
async def test_every_move_is_allowed_or_refused_as_declared(
    settings: Any, redis: Any, world: World, state: Status, actor: Actor
) -> None:
    """From each state, by each kind of actor, every target state: done exactly when TRANSITIONS says so."""
    for target in Status:
        cid = await drive_to(world, settings, redis, state)
        who = principal(world, MOVERS[actor])
        before = await history(cid)
        allowed = actor in TRANSITIONS[state].get(target, frozenset())
        if target is Status.ASSIGNED:
            call: Any = service.assign(
                settings,
                redis,
                who,
                cid,
                service.AssignInput(technician_id=await _second_technician(world)),
                now=T0,
            )
        else:
            call = service.change_status(settings, redis, who, cid, service.StatusChange(to=target, note="n"), now=T0)
        if allowed:
            result = await call
            assert result.status == target, (state, target, actor)
            after = await history(cid)
            assert after[:-1] == before and after[-1][:2] == (state, target)
            continue
        row = await Complaint.select().where(Complaint.id == cid).first()
        assert row is not None
        if not await service.may_see(who, row):  # e.g. a technician and someone else's job: not even found
            with pytest.raises(NotFound):
                await call
            assert await history(cid) == before
            continue
        with pytest.raises((Conflict, InvalidInput)) as refused:
            await call
        if isinstance(refused.value, Conflict):
            assert refused.value.extra is not None
            assert refused.value.extra["status"] == state
            row = await Complaint.select().where(Complaint.id == cid).first()
            assert row is not None
            mine = service.actors_of(who, row)
            assert refused.value.extra["allowed"] == [str(s) for s in allowed_moves(state, mine)]
        else:  # to=assigned through the status route: it must go through /assign
            assert target is Status.ASSIGNED
        assert await history(cid) == before, (state, target, actor)


async def _second_technician(world: World) -> Any:
    if "technician_2" not in world.people:
        await world.add_person("technician_2", frozenset({Role.TECHNICIAN}), skills=("plumbing",))
    return world.people["technician_2"]


async def test_refusal_over_http_names_the_allowed_moves(client: Any, settings: Any, redis: Any, world: World) -> None:
    cid = await drive_to(world, settings, redis, Status.IN_PROGRESS)
    response = await client.post(
        f"/api/complaints/{cid}/transitions", json={"to": "closed"}, headers=world.headers("technician")
    )
    assert response.status_code == 409
    problem = response.json()
    assert problem["extra"]["allowed"] == ["on_hold", "resolved"] and "on_hold, resolved" in problem["detail"]
    cancel = await client.post(
        f"/api/complaints/{cid}/transitions", json={"to": "cancelled"}, headers=world.headers("occupant")
    )
    assert cancel.status_code == 409 and cancel.json()["extra"]["allowed"] == []


async def test_full_lifecycle_records_who_when_and_note(client: Any, settings: Any, redis: Any, world: World) -> None:
    cid = (await raise_one(world, settings, redis)).id
    steps = [
        ("technician", "in_progress", "on my way"),
        ("technician", "on_hold", "waiting for a part"),
        ("fm_admin", "in_progress", None),
        ("technician", "resolved", "washer replaced"),
        ("occupant", "reopened", "still dripping"),
        ("technician", "in_progress", None),
        ("technician", "resolved", None),
        ("occupant", "closed", "thanks"),
    ]
    for who, to, note in steps:
        response = await client.post(
            f"/api/complaints/{cid}/transitions", json={"to": to, "note": note}, headers=world.headers(who)
        )
        assert response.status_code == 200, (who, to, response.text)
    detail = (await client.get(f"/api/complaints/{cid}", headers=world.headers("occupant"))).json()
    moves = [(t["from_status"], t["to_status"], t["actor_id"], t["note"]) for t in detail["transitions"]]
    assert moves[0] == (None, "open", str(world.people["occupant"]), None)
    assert moves[1][:3] == ("open", "assigned", None)  # automatic assignment
    assert moves[2:] == [
        (prev, to, str(world.people[who]), note)
        for (who, to, note), prev in zip(
            steps,
            ["assigned", "in_progress", "on_hold", "in_progress", "resolved", "reopened", "in_progress", "resolved"],
            strict=True,
        )
    ]
    assert [t["version"] for t in detail["transitions"]] == list(range(1, 11))
    assert detail["complaint"]["status"] == "closed" and detail["complaint"]["closed_at"]


async def test_reopen_only_within_the_sites_window(settings: Any, redis: Any, world: World) -> None:
    await config.put_rules(world.site_id, config.SiteRulesInput(reopen_window_hours=24))
    cid = await drive_to(world, settings, redis, Status.RESOLVED)
    with pytest.raises(Conflict) as late:
        await move(world, settings, redis, cid, "occupant", Status.REOPENED, T0 + dt.timedelta(hours=25))
    assert "reopen window" in late.value.detail
    reopened = await move(world, settings, redis, cid, "occupant", Status.REOPENED, T0 + dt.timedelta(hours=23))
    assert reopened.status == "reopened" and reopened.assignee_id == world.people["technician"]


# ---------------------------------------------------------------------------- concurrency


async def test_two_staff_changing_status_at_once_one_wins_one_conflicts(
    client: Any, settings: Any, redis: Any, world: World
) -> None:
    await world.add_person("fm_admin_2", frozenset({Role.FM_ADMIN}))
    for _ in range(3):
        cid = await drive_to(world, settings, redis, Status.IN_PROGRESS)
        seen = (await client.get(f"/api/complaints/{cid}", headers=world.headers("fm_admin"))).json()["complaint"]
        first, second = await asyncio.gather(
            client.post(
                f"/api/complaints/{cid}/transitions",
                json={"to": "on_hold", "note": "A", "version": seen["version"]},
                headers=world.headers("fm_admin"),
            ),
            client.post(
                f"/api/complaints/{cid}/transitions",
                json={"to": "resolved", "note": "B", "version": seen["version"]},
                headers=world.headers("fm_admin_2"),
            ),
        )
        codes = sorted([first.status_code, second.status_code])
        assert codes == [200, 409], (first.text, second.text)
        winner = first if first.status_code == 200 else second
        loser = second if winner is first else first
        assert loser.json()["extra"]["status"] == winner.json()["status"]
        assert loser.json()["extra"]["version"] == seen["version"] + 1
        rows = await history(cid)
        assert rows[-1] == ("in_progress", winner.json()["status"], seen["version"] + 1)
        assert len(rows) == seen["version"] + 1  # one row per version, no gap, no duplicate


async def test_concurrent_service_calls_without_versions_never_lose_a_move(
    settings: Any, redis: Any, world: World
) -> None:
    await world.add_person("fm_admin_2", frozenset({Role.FM_ADMIN}))
    cid = await drive_to(world, settings, redis, Status.IN_PROGRESS)
    results = await asyncio.gather(
        service.change_status(
            settings, redis, principal(world, "fm_admin"), cid, service.StatusChange(to=Status.ON_HOLD), now=T0
        ),
        service.change_status(
            settings, redis, principal(world, "fm_admin_2"), cid, service.StatusChange(to=Status.ON_HOLD), now=T0
        ),
        return_exceptions=True,
    )
    wins = [r for r in results if isinstance(r, service.ComplaintView)]
    conflicts = [r for r in results if isinstance(r, Conflict)]
    assert len(wins) == 1 and len(conflicts) == 1, results
    row = await Complaint.select().where(Complaint.id == cid).first()
    assert row is not None and row["status"] == "on_hold"
    assert (await history(cid))[-1] == ("in_progress", "on_hold", row["version"])
    assert len(await history(cid)) == row["version"]


# ---------------------------------------------------------------------------- assignment


async def test_assignment_picks_least_loaded_skilled_technician_on_shift(
    settings: Any, redis: Any, world: World
) -> None:
    site = world.site_id
    busy = world.people["technician"]  # plumbing, on shift all day
    idle = await world.add_person("aarti", frozenset({Role.TECHNICIAN}), skills=("plumbing",))
    tied = await world.add_person("zubin", frozenset({Role.TECHNICIAN}), skills=("plumbing",))
    off_shift = await world.add_person("aaron", frozenset({Role.TECHNICIAN}), skills=("plumbing",))
    unskilled = await world.add_person("abe", frozenset({Role.TECHNICIAN}), skills=("electrical",))
    for person in (idle, tied, unskilled):
        await config.put_shifts(site, person, config.ShiftsInput(shifts=ALL_DAY))
    # Wednesday 08:00-09:00 local only: not at 10:00.
    await config.put_shifts(
        site, off_shift, config.ShiftsInput(shifts=[config.Shift(weekday=2, start="08:00", end="09:00")])
    )
    # The first goes to the world's technician? No: ties are broken by name: Aarti < Technician < Zubin.
    first = await raise_one(world, settings, redis)
    assert first.assignee_id == idle
    second = await raise_one(world, settings, redis)
    assert second.assignee_id == busy  # Aarti has 1 now; Technician and Zubin 0; by name
    third = await raise_one(world, settings, redis)
    assert third.assignee_id == tied
    fourth = await raise_one(world, settings, redis)
    assert fourth.assignee_id == idle  # all at 1 again: by name
    # Resolving Zubin's job lowers his load: he is next.
    await move(world, settings, redis, third.id, "zubin", Status.IN_PROGRESS)
    await move(world, settings, redis, third.id, "zubin", Status.RESOLVED)
    assert (await raise_one(world, settings, redis)).assignee_id == tied
    # At 08:30 local (03:00 UTC) Aaron is on shift with no load: he wins.
    early = T0 - dt.timedelta(hours=1, minutes=30)
    assert await assignment.choose_technician(site, "plumbing", early) == off_shift
    # Overnight shifts cover the small hours of the next day.
    await config.put_shifts(
        site, off_shift, config.ShiftsInput(shifts=[config.Shift(weekday=1, start="22:00", end="11:00")])
    )
    assert await assignment.choose_technician(site, "plumbing", T0) == off_shift
    assert await assignment.choose_technician(site, "carpentry", T0) is None


async def test_manual_reassignment_and_technician_queue(client: Any, settings: Any, redis: Any, world: World) -> None:
    other = await world.add_person("technician_b", frozenset({Role.TECHNICIAN}), skills=("plumbing",))
    low = await raise_one(world, settings, redis, priority=Priority.LOW)
    urgent = await raise_one(world, settings, redis, priority=Priority.URGENT)
    normal_late = await raise_one(world, settings, redis, now=T0 + dt.timedelta(minutes=5))
    normal_early = await raise_one(world, settings, redis)
    queue = (await client.get("/api/complaints/queue", headers=world.headers("technician"))).json()["items"]
    assert [q["id"] for q in queue] == [str(c.id) for c in (urgent, normal_early, normal_late, low)]
    response = await client.post(
        f"/api/complaints/{urgent.id}/assign",
        json={"technician_id": str(other), "note": "Ravi is nearer"},
        headers=world.headers("fm_admin"),
    )
    assert response.status_code == 200 and response.json()["assignee_id"] == str(other)
    queue = (await client.get("/api/complaints/queue", headers=world.headers("technician"))).json()["items"]
    assert str(urgent.id) not in [q["id"] for q in queue]
    # The previous technician can no longer see or move it; the new one can.
    gone = await client.get(f"/api/complaints/{urgent.id}", headers=world.headers("technician"))
    assert gone.status_code == 404
    last = (await history(urgent.id))[-1]
    assert last[:2] == ("assigned", "assigned")
    bad = await client.post(
        f"/api/complaints/{urgent.id}/assign",
        json={"technician_id": str(world.people["guard"])},
        headers=world.headers("fm_admin"),
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "technician_id"


# ---------------------------------------------------------------------------- SLA and escalation


async def test_sla_state_moves_from_on_track_to_at_risk_to_breached(settings: Any, redis: Any, world: World) -> None:
    cid = (await raise_one(world, settings, redis)).id  # response 60 min, resolution 240 min
    who = principal(world, "occupant")
    state = [
        (await service.get_complaint(who, cid, now=T0 + dt.timedelta(minutes=m))).complaint.sla_state
        for m in (10, 44, 46, 61)
    ]
    assert state == ["on_track", "on_track", "at_risk", "breached"]
    # Work started in time: the resolution window is what counts now.
    await move(world, settings, redis, cid, "technician", Status.IN_PROGRESS, T0 + dt.timedelta(minutes=30))
    state = [
        (await service.get_complaint(who, cid, now=T0 + dt.timedelta(minutes=m))).complaint.sla_state
        for m in (61, 179, 181, 241)
    ]
    assert state == ["on_track", "on_track", "at_risk", "breached"]
    await move(world, settings, redis, cid, "technician", Status.RESOLVED, T0 + dt.timedelta(minutes=200))
    assert (await service.get_complaint(who, cid, now=T0 + dt.timedelta(days=3))).complaint.sla_state == "met"


async def test_escalation_climbs_each_level_once_with_a_controlled_clock(
    settings: Any, redis: Any, world: World
) -> None:
    supervisor = await world.add_person("supervisor", frozenset({Role.FM_ADMIN}))
    await config.put_rules(
        world.site_id, config.SiteRulesInput(escalation_step_minutes=30, supervisor_id=world.people["site_admin"])
    )
    cid = (await raise_one(world, settings, redis)).id  # response due T0+60
    fm_managers = sorted([world.people["fm_admin"], supervisor], key=str)

    async def run(minutes: int) -> list[Any]:
        return await escalate_breaches(
            T0 + dt.timedelta(minutes=minutes), settings=settings, redis=redis, site_id=world.site_id
        )

    assert [job.coroutine for job in CRON_JOBS] == [complaint_escalate]
    assert await run(59) == []
    first = await run(60)
    assert [(e.level, e.deadline, e.notified) for e in first] == [(1, "response", [world.people["technician"]])]
    assert await run(61) == []  # re-run: nothing new
    # The arq cron's job is the same function: re-running it at the same time changes nothing.
    await complaint_escalate({"settings": settings, "redis": redis}, T0 + dt.timedelta(minutes=61))
    assert await ComplaintEscalation.count().where(ComplaintEscalation.complaint == cid) == 1
    second = await run(90)
    assert [(e.level, e.notified) for e in second] == [(2, [world.people["site_admin"]])]
    third = await run(125)
    assert [(e.level, sorted(e.notified, key=str)) for e in third] == [(3, fm_managers)]
    assert await run(500) == []  # the top level is the last
    rows = (
        await ComplaintEscalation.select()
        .where(ComplaintEscalation.complaint == cid)
        .order_by(ComplaintEscalation.level)
    )
    assert [r["level"] for r in rows] == [1, 2, 3]
    notifications = await Notification.select().where(
        (Notification.site == world.site_id) & Notification.idempotency_key.like(f"complaint:{cid}:escalation:%")
    )
    assert sorted(n["idempotency_key"] for n in notifications) == [
        f"complaint:{cid}:escalation:{level}" for level in (1, 2, 3)
    ]
    audiences = {n["idempotency_key"][-1]: sorted(as_dict(n["audience"])["person_ids"]) for n in notifications}
    assert audiences["1"] == [str(world.people["technician"])]
    assert audiences["2"] == [str(world.people["site_admin"])]
    assert audiences["3"] == sorted(str(p) for p in fm_managers)
    assert all(n["category"] == "complaint" for n in notifications)
    detail = await service.get_complaint(principal(world, "fm_admin"), cid, now=T0 + dt.timedelta(minutes=500))
    assert detail.complaint.escalation_level == 3 and detail.complaint.sla_state == "breached"


async def test_escalation_after_a_pause_climbs_through_every_missed_level(
    settings: Any, redis: Any, world: World
) -> None:
    cid = (await raise_one(world, settings, redis)).id
    done = await escalate_breaches(T0 + dt.timedelta(hours=10), settings=settings, redis=redis, site_id=world.site_id)
    assert [e.level for e in done] == [1, 2, 3]
    # No supervisor configured: level 2 falls through to the FM managers.
    assert done[1].notified == [world.people["fm_admin"]]
    # A resolved complaint is not escalated.
    resolved = await drive_to(world, settings, redis, Status.RESOLVED)
    later = await escalate_breaches(T0 + dt.timedelta(hours=20), settings=settings, redis=redis, site_id=world.site_id)
    assert all(e.complaint_id not in (cid, resolved) for e in later)


# ---------------------------------------------------------------------------- conversation, photos, rating


async def test_internal_notes_never_reach_the_occupant_over_the_api(
    client: Any, settings: Any, redis: Any, world: World
) -> None:
    cid = (await raise_one(world, settings, redis)).id
    public = await client.post(
        f"/api/complaints/{cid}/comments", json={"body": "Coming at 4pm"}, headers=world.headers("technician")
    )
    note = await client.post(
        f"/api/complaints/{cid}/comments",
        json={"body": "SECRET: occupant was rude", "internal": True},
        headers=world.headers("fm_admin"),
    )
    assert public.status_code == 201 and note.status_code == 201
    as_occupant = await client.get(f"/api/complaints/{cid}/comments", headers=world.headers("occupant"))
    assert [c["body"] for c in as_occupant.json()["items"]] == ["Coming at 4pm"]
    assert "SECRET" not in as_occupant.text
    as_staff = await client.get(f"/api/complaints/{cid}/comments", headers=world.headers("technician"))
    assert [c["body"] for c in as_staff.json()["items"]] == ["Coming at 4pm", "SECRET: occupant was rude"]
    detail = await client.get(f"/api/complaints/{cid}", headers=world.headers("occupant"))
    assert "SECRET" not in detail.text
    refused = await client.post(
        f"/api/complaints/{cid}/comments", json={"body": "x", "internal": True}, headers=world.headers("occupant")
    )
    assert refused.status_code == 403


async def test_before_and_after_photos(client: Any, settings: Any, redis: Any, world: World) -> None:
    cid = (await raise_one(world, settings, redis)).id
    before = await client.post(
        f"/api/complaints/{cid}/photos",
        files={"file": ("leak.jpg", jpeg(), "image/jpeg")},
        data={"stage": "before"},
        headers=world.headers("occupant"),
    )
    assert before.status_code == 201, before.text
    not_after = await client.post(
        f"/api/complaints/{cid}/photos",
        files={"file": ("x.jpg", jpeg(), "image/jpeg")},
        data={"stage": "after"},
        headers=world.headers("occupant"),
    )
    assert not_after.status_code == 422 and not_after.json()["errors"][0]["field"] == "stage"
    after = await client.post(
        f"/api/complaints/{cid}/photos",
        files={"file": ("fixed.jpg", jpeg(), "image/jpeg")},
        data={"stage": "after"},
        headers=world.headers("technician"),
    )
    assert after.status_code == 201
    svg = await client.post(
        f"/api/complaints/{cid}/photos",
        files={"file": ("x.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/jpeg")},
        headers=world.headers("occupant"),
    )
    assert svg.status_code == 422 and svg.json()["errors"][0]["field"] == "file"
    detail = (await client.get(f"/api/complaints/{cid}", headers=world.headers("occupant"))).json()
    assert [p["stage"] for p in detail["photos"]] == ["before", "after"]
    image = await client.get(f"/api/complaints/{cid}/photos/{before.json()['id']}", headers=world.headers("occupant"))
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
    assert image.content.startswith(b"\xff\xd8") and image.headers["content-length"] == str(before.json()["size"])
    stranger = await client.get(f"/api/complaints/{cid}/photos/{before.json()['id']}", headers=world.headers("guard"))
    assert stranger.status_code == 404


async def test_rating_after_resolution_by_the_raiser_once(client: Any, settings: Any, redis: Any, world: World) -> None:
    cid = await drive_to(world, settings, redis, Status.IN_PROGRESS)
    early = await client.post(f"/api/complaints/{cid}/rating", json={"rating": 5}, headers=world.headers("occupant"))
    assert early.status_code == 409
    await move(world, settings, redis, cid, "technician", Status.RESOLVED)
    bad = await client.post(f"/api/complaints/{cid}/rating", json={"rating": 6}, headers=world.headers("occupant"))
    assert bad.status_code == 400
    rated = await client.post(
        f"/api/complaints/{cid}/rating",
        json={"rating": 4, "feedback": "Quick, tidy"},
        headers=world.headers("occupant"),
    )
    assert rated.status_code == 200 and rated.json()["rating"] == 4 and rated.json()["feedback"] == "Quick, tidy"
    again = await client.post(f"/api/complaints/{cid}/rating", json={"rating": 1}, headers=world.headers("occupant"))
    assert again.status_code == 409


async def test_raiser_is_notified_of_status_changes_once(settings: Any, redis: Any, world: World) -> None:
    cid = await drive_to(world, settings, redis, Status.RESOLVED)
    rows = await Notification.select().where(
        (Notification.site == world.site_id) & Notification.idempotency_key.like(f"complaint:{cid}:%:raiser")
    )
    # assigned (v2), in_progress (v3), resolved (v4): each once, to the raiser, category complaint.
    assert sorted(r["idempotency_key"] for r in rows) == [f"complaint:{cid}:v{v}:raiser" for v in (2, 3, 4)]
    assert all(as_dict(r["audience"])["person_ids"] == [str(world.people["occupant"])] for r in rows)
    assert all(r["category"] == "complaint" for r in rows)


# ---------------------------------------------------------------------------- reports, config, privacy


async def test_csv_reports_by_category_tower_and_technician(
    client: Any, settings: Any, redis: Any, world: World
) -> None:
    on_time = await drive_to(world, settings, redis, Status.IN_PROGRESS)
    await move(world, settings, redis, on_time, "technician", Status.RESOLVED, T0 + dt.timedelta(minutes=30))
    late = await drive_to(world, settings, redis, Status.IN_PROGRESS)
    await move(world, settings, redis, late, "technician", Status.RESOLVED, T0 + dt.timedelta(hours=6))
    await drive_to(world, settings, redis, Status.OPEN)  # electrical, unassigned
    by_category = await client.get("/api/complaints/reports/sla.csv?by=category", headers=world.headers("fm_admin"))
    assert by_category.status_code == 200 and by_category.headers["content-type"].startswith("text/csv")
    table = {row["group"]: row for row in csv.DictReader(io.StringIO(by_category.text))}
    assert table["plumbing"]["complaints"] == "2" and table["plumbing"]["resolution_met"] == "1"
    assert table["plumbing"]["resolution_breached"] == "1" and table["plumbing"]["compliance_percent"] == "50.0"
    assert table["electrical"]["complaints"] == "1"
    by_tech = await client.get("/api/complaints/reports/volume.csv?by=technician", headers=world.headers("fm_admin"))
    volume = {row["group"]: row for row in csv.DictReader(io.StringIO(by_tech.text))}
    assert volume["Technician"]["resolved"] == "2" and volume["unassigned"]["open"] == "1"
    by_tower = await client.get("/api/complaints/reports/volume.csv?by=tower", headers=world.headers("site_admin"))
    assert {row["group"]: row["complaints"] for row in csv.DictReader(io.StringIO(by_tower.text))} == {"A": "3"}
    refused = await client.get("/api/complaints/reports/sla.csv", headers=world.headers("technician"))
    assert refused.status_code == 403


async def test_config_endpoints(client: Any, world: World) -> None:
    response = await client.post(
        "/api/complaints/config/categories",
        json={
            "code": "lift",
            "name": "Lift",
            "skill": "lift",
            "subcategories": ["stuck"],
            "sla": [{"priority": "urgent", "response_minutes": 5, "resolution_minutes": 60}],
        },
        headers=world.headers("fm_admin"),
    )
    assert response.status_code == 200
    urgent = next(w for w in response.json()["sla"] if w["priority"] == "urgent")
    assert urgent == {"priority": "urgent", "response_minutes": 5, "resolution_minutes": 60}
    listed = await client.get("/api/complaints/config/categories", headers=world.headers("occupant"))
    assert {c["code"] for c in listed.json()["items"]} == {"electrical", "lift", "plumbing"}
    bad_shift = await client.put(
        f"/api/complaints/config/technicians/{world.people['technician']}/shifts",
        json={"shifts": [{"weekday": 7, "start": "25:00", "end": "10:00"}]},
        headers=world.headers("fm_admin"),
    )
    assert bad_shift.status_code == 400
    not_tech = await client.get(
        f"/api/complaints/config/technicians/{world.people['guard']}/shifts", headers=world.headers("fm_admin")
    )
    assert not_tech.status_code == 404
    rules = await client.put(
        "/api/complaints/config/rules",
        json={"reopen_window_hours": 48, "supervisor_id": str(world.people["occupant"])},
        headers=world.headers("fm_admin"),
    )
    assert rules.status_code == 422 and rules.json()["errors"][0]["field"] == "supervisor_id"


async def test_personal_data_export_and_erase(settings: Any, redis: Any, world: World) -> None:
    from tests.support.ids_complaints import seed_person_data

    person = await world.add_person("leaver", frozenset({Role.OCCUPANT}), units=[(world.unit_ids[0], "tenant")])
    await seed_person_data(world, person)
    sections, _ = load_registries()
    section = sections["complaints"]
    scope = PersonScope(
        site_id=world.site_id, person_id=person, settings=settings, directory=directory_for(settings), redis=redis
    )
    exported = await section.export(scope)
    kinds = sorted(r["record"] for r in exported)
    assert kinds == ["comment", "complaint", "photo", "status_change"]
    assert any(r.get("description") == "Tap dripping all night" for r in exported)
    photo_keys = [
        r["key"] for r in await ComplaintPhoto.select(ComplaintPhoto.key).where(ComplaintPhoto.uploaded_by == person)
    ]
    outcome = await section.erase(scope)
    assert outcome.files_deleted == len(photo_keys) == 1
    assert await section.export(scope) == []
    kept = await Complaint.select().where(Complaint.site == world.site_id)
    assert kept and all("Tap dripping" not in r["description"] for r in kept if r["raised_by"] is None)
    assert all(r["raised_by"] != person for r in kept)
