"""Staff attendance: staff, shifts and rosters (technicians' shifts reused), check-in and out at the gate
and from a phone inside the geofence (refused outside with the distance, nothing of the position kept),
a daily help's pass at the gate as their check-in, late and absent alerts once each under a controlled
clock, supervisor corrections with a reason, and a monthly sheet that reconciles with the raw punches."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
from typing import Any
from uuid import UUID

import pytest

from app.attendance import config as cfg
from app.attendance import punches, sheet
from app.attendance.alerts import check_attendance
from app.auth.roles import Role
from app.complaints import config as complaint_config
from app.errors import Conflict, InvalidInput, NotFound
from app.visitors import gate as visitor_gate
from app.visitors.passes import NewPass, Recurring, create_pass
from realtime.topics import site_topic, user_topic
from schema.attendance import AttendanceAlert, Punch
from schema.notifications import Notification
from tests.support.attendance import CENTRE, FAR, NEAR, at, geofenced, principal, rostered
from tests.support.permits import topic_events
from tests.support.visitors import deps_for
from tests.support.world import World
from workers import attendance_jobs

# ------------------------------------------------------------------------------ staff, shifts, rosters


async def test_staff_shifts_and_rosters_are_checked(
    client: Any, world: World, other_world: World, settings: Any
) -> None:
    staff = world.headers("fm_admin")
    no_phone = await client.post(
        "/api/attendance/staff", json={"name": "Meena", "category": "daily_help"}, headers=staff
    )
    assert no_phone.status_code == 422 and no_phone.json()["errors"][0]["field"] == "phone"
    meena = await client.post(
        "/api/attendance/staff", json={"name": "Meena", "category": "daily_help", "phone": "98111 22233"}, headers=staff
    )
    assert meena.status_code == 201, meena.text
    assert meena.json()["phone"] == "+919811122233"
    linked = {"name": "Ramesh", "category": "guard", "person_id": str(world.people["guard"])}
    assert (await client.post("/api/attendance/staff", json=linked, headers=staff)).status_code == 201
    twice = await client.post("/api/attendance/staff", json=linked, headers=staff)
    assert twice.status_code == 409
    foreign = {"name": "X", "category": "guard", "person_id": str(other_world.people["guard"])}
    assert (await client.post("/api/attendance/staff", json=foreign, headers=staff)).json()["errors"][0]["field"] == (
        "person_id"
    )
    same = await client.post(
        "/api/attendance/shifts", json={"code": "m", "name": "M", "start": "06:00", "end": "06:00"}, headers=staff
    )
    assert same.status_code == 422 and same.json()["errors"][0]["field"] == "end"
    morning = await client.post(
        "/api/attendance/shifts",
        json={"code": "morning", "name": "Morning", "start": "06:00", "end": "14:00"},
        headers=staff,
    )
    assert morning.status_code == 201, morning.text
    theirs = await cfg.add_shift(
        other_world.site_id, cfg.ShiftInput(code="night", name="Night", start="22:00", end="06:00")
    )
    roster_url = f"/api/attendance/staff/{meena.json()['id']}/roster"
    bad = await client.put(roster_url, json={"entries": [{"weekday": 0, "shift_id": str(theirs.id)}]}, headers=staff)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "entries[0].shift_id"
    ok = await client.put(
        roster_url,
        json={"entries": [{"weekday": d, "shift_id": morning.json()["id"]} for d in (0, 2, 4, 4)]},
        headers=staff,
    )
    assert ok.status_code == 200, ok.text
    assert [(line["weekday"], line["start"]) for line in ok.json()["lines"]] == [
        (0, "06:00"),
        (2, "06:00"),
        (4, "06:00"),
    ]
    # A guard sees the staff list (to check people in) but not their mobile numbers.
    seen = (await client.get("/api/attendance/staff", headers=world.headers("guard"))).json()["items"]
    assert {s["name"] for s in seen} == {"Meena", "Ramesh"} and all(s["phone"] is None for s in seen)
    assert (await client.put(roster_url, json={"entries": []}, headers=world.headers("guard"))).status_code == 403


async def test_a_technicians_shifts_are_their_roster(world: World, settings: Any) -> None:
    await complaint_config.put_shifts(
        world.site_id,
        world.people["technician"],
        complaint_config.ShiftsInput(shifts=[complaint_config.Shift(weekday=1, start="09:00", end="17:00")]),
    )
    member = await cfg.add_staff(
        settings,
        world.site_id,
        cfg.StaffInput(name="Tech", category="technician", person_id=world.people["technician"]),
    )
    roster = await cfg.get_roster(world.site_id, member.id)
    assert [(line.weekday, line.start, line.end, line.source) for line in roster.lines] == [
        (1, "09:00", "17:00", "technician_shifts")
    ]
    board = await sheet.board(world.site_id, now=at(1, 9, 5))  # Tuesday 1 December, in the grace
    row = next(r for r in board if r.staff_id == member.id)
    assert (row.duty, row.state) == ("Technician shift 09:00-17:00", "due")


# ------------------------------------------------------------------------------ check-in and out


async def test_a_guard_checks_staff_in_and_out_at_the_gate(world: World, settings: Any, redis: Any) -> None:
    member = await rostered(world, settings, "Savitri")
    guard = principal(world, "guard")
    first = await punches.at_gate(
        settings, redis, guard, member, punches.GatePunchInput(kind="in", gate="main"), now=at(1, 5, 58)
    )
    assert (first.kind, first.source, first.gate, first.recorded_by) == ("in", "gate", "main", guard.person_id)
    with pytest.raises(Conflict, match="already checked in"):
        await punches.at_gate(settings, redis, guard, member, punches.GatePunchInput(kind="in"), now=at(1, 6))
    await punches.at_gate(settings, redis, guard, member, punches.GatePunchInput(kind="out"), now=at(1, 14, 2))
    with pytest.raises(Conflict, match="not checked in"):
        await punches.at_gate(settings, redis, guard, member, punches.GatePunchInput(kind="out"), now=at(1, 14, 3))
    for topic in (site_topic(world.site_id, "gate"), site_topic(world.site_id, "control")):
        kinds = [
            e["data"]["kind"] for e in await topic_events(redis, settings, topic) if e["type"] == "attendance.punched"
        ]
        assert kinds == ["in", "out"], topic


async def test_phone_check_in_inside_the_geofence_only_keeping_no_position(
    client: Any, world: World, settings: Any
) -> None:
    headers = world.headers("guard")
    here = {"kind": "in", "latitude": NEAR[0], "longitude": NEAR[1], "accuracy_m": 12.3}
    not_staff = await client.post("/api/attendance/me/punch", json=here, headers=headers)
    assert not_staff.status_code == 404
    await cfg.add_staff(
        settings, world.site_id, cfg.StaffInput(name="Ramesh", category="guard", person_id=world.people["guard"])
    )
    no_fence = await client.post("/api/attendance/me/punch", json=here, headers=headers)
    assert no_fence.status_code == 409
    await geofenced(world)
    far = await client.post(
        "/api/attendance/me/punch", json={**here, "latitude": FAR[0], "longitude": FAR[1]}, headers=headers
    )
    assert far.status_code == 422, far.text
    problem = far.json()
    assert problem["extra"] == {"reason": "outside_geofence", "distance_m": 1201, "radius_m": 200}
    assert problem["detail"].startswith("you are 1201 m from the site; check-ins are taken within 200 m")
    assert problem["errors"][0]["field"] == "latitude"
    vague = await client.post("/api/attendance/me/punch", json={**here, "accuracy_m": 450}, headers=headers)
    assert vague.status_code == 422 and vague.json()["extra"]["reason"] == "too_imprecise"
    assert await Punch.count().where(Punch.site == world.site_id) == 0  # refusals leave nothing behind
    inside = await client.post("/api/attendance/me/punch", json=here, headers=headers)
    assert inside.status_code == 201, inside.text
    body = inside.json()
    assert (body["source"], body["inside_geofence"], body["accuracy_m"]) == ("phone", True, 12.3)
    # Nothing of the position is kept: not in the row, not in the table's columns.
    row = await Punch.select().where(Punch.id == body["id"]).first()
    assert row is not None
    stored = " ".join(str(v) for v in row.values())
    for value in (*NEAR, *CENTRE):
        assert f"{value}" not in stored
    assert not {"lat", "lng", "latitude", "longitude"} & {c._meta.name for c in Punch._meta.columns}
    me = (await client.get("/api/attendance/me", headers=headers)).json()
    assert me["on_staff"] and me["inside"] and me["phone_check_in"] and me["last_punch"]["id"] == body["id"]
    assert (await client.get("/api/attendance/me", headers=world.headers("technician"))).json()["on_staff"] is False
    assert (
        await client.post("/api/attendance/me/punch", json=here, headers=world.headers("occupant"))
    ).status_code == 403


def test_distances_are_right_at_a_sites_scale() -> None:
    # 0.0108 degrees along a meridian is 1200.9 m on the mean Earth sphere; 0.001 degrees of longitude
    # at 12.9756 N is 108.4 m.
    assert round(punches.distance_m(*CENTRE, *FAR), 1) == 1200.9
    assert round(punches.distance_m(CENTRE[0], CENTRE[1], CENTRE[0], CENTRE[1] + 0.001), 1) == 108.4
    assert punches.distance_m(*CENTRE, *CENTRE) == 0


async def test_a_daily_helps_pass_at_the_gate_is_their_check_in(world: World, settings: Any, redis: Any) -> None:
    phone = "+919811122244"
    member = await rostered(world, settings, "Lakshmi", category="daily_help", phone=phone, start="07:00", end="11:00")
    deps = deps_for(world, redis, settings)
    made = await create_pass(
        deps,
        principal(world, "occupant"),
        NewPass(
            unit_id=world.unit_ids[0],
            kind="daily_help",
            visitor_name="Lakshmi",
            visitor_phone=phone,
            recurring=Recurring(days=[0, 1, 2, 3, 4], start="06:30", end="12:00", valid_until=at(31, 0)),
        ),
        now=at(1, 0),
    )
    import app.attendance.routes  # noqa: F401 - the app registers the gate hooks; this test runs without it

    guard = principal(world, "guard")
    entered = await visitor_gate.verify(
        deps, guard, visitor_gate.VerifyInput(code=made.code, gate="main"), now=at(1, 7, 5)
    )
    assert entered.outcome == "checked_in" and entered.visit_id is not None
    await visitor_gate.check_out(deps, guard, entered.visit_id, now=at(1, 10, 50))
    rows = await Punch.select().where(Punch.staff == member).order_by(Punch.at)
    assert [(r["kind"], r["source"], r["visit"], r["at"]) for r in rows] == [
        ("in", "daily_help_pass", entered.visit_id, at(1, 7, 5)),
        ("out", "daily_help_pass", entered.visit_id, at(1, 10, 50)),
    ]
    month = await sheet.build_sheet(settings, world.site_id, member, "2026-12", now=at(1, 12))
    assert (month.days[0].status, month.days[0].worked_minutes) == ("present", 225)


# ------------------------------------------------------------------------------ late and absent alerts


async def test_late_and_absent_alerts_fire_once_each_under_a_controlled_clock(
    world: World, settings: Any, redis: Any
) -> None:
    await geofenced(world, supervisor_id=world.people["fm_admin"])
    missing = await rostered(world, settings, "Suresh")  # never comes: late at 06:10, absent at 07:00
    tardy = await rostered(world, settings, "Kiran")  # comes at 06:25: late once, never absent
    punctual = await rostered(world, settings, "Anita")  # on time: nothing
    guard = principal(world, "guard")
    ctx = {"settings": settings, "redis": redis}
    await punches.at_gate(settings, redis, guard, punctual, punches.GatePunchInput(kind="in"), now=at(2, 5, 50))

    mine = {missing, tardy, punctual}

    async def tick(hour: int, minute: int) -> list[tuple[Any, str]]:
        # The cron looks at every site; other tests' sites have their own staff.
        raised = await check_attendance(settings, redis, at(2, hour, minute))
        return sorted((r.staff_id, r.kind) for r in raised if r.staff_id in mine)

    assert await tick(6, 5) == []
    assert await tick(6, 10) == []  # the grace is ten minutes: at 06:10 nobody is late yet
    assert await tick(6, 11) == sorted([(missing, "late"), (tardy, "late")])
    assert await tick(6, 12) == []
    await attendance_jobs.attendance_alerts(ctx, at(2, 6, 13))  # the cron's own entry point: nothing new here
    assert await AttendanceAlert.count().where(AttendanceAlert.site == world.site_id) == 2
    await punches.at_gate(settings, redis, guard, tardy, punches.GatePunchInput(kind="in"), now=at(2, 6, 25))
    assert await tick(7, 0) == []  # sixty minutes: at 07:00 still late, not yet absent
    assert await tick(7, 1) == [(missing, "absent")]
    assert await tick(7, 2) == [] and await tick(13, 0) == [] and await tick(14, 30) == []
    alerts = await AttendanceAlert.select(AttendanceAlert.staff, AttendanceAlert.kind).where(
        AttendanceAlert.site == world.site_id
    )
    assert sorted((a["staff"], a["kind"]) for a in alerts) == sorted(
        [(missing, "late"), (tardy, "late"), (missing, "absent")]
    )
    # Told once each, to the supervisor, and live on the board and their own topic.
    notes = await Notification.select(Notification.title, Notification.category).where(
        (Notification.site == world.site_id) & (Notification.category == "attendance")
    )
    assert sorted(n["title"] for n in notes) == ["Kiran is late", "Suresh is absent", "Suresh is late"]
    control = [
        (e["type"], e["data"]["name"])
        for e in await topic_events(redis, settings, site_topic(world.site_id, "control"))
        if e["type"] in ("attendance.late", "attendance.absent")
    ]
    assert sorted(control[:2]) == [("attendance.late", "Kiran"), ("attendance.late", "Suresh")]
    assert control[2:] == [("attendance.absent", "Suresh")]
    supervisor = await topic_events(redis, settings, user_topic(world.people["fm_admin"]))
    assert len([e for e in supervisor if e["type"].startswith("attendance.")]) == 3
    board = {r.name: r for r in await sheet.board(world.site_id, now=at(2, 7, 30))}
    assert (board["Suresh"].state, board["Suresh"].alerts) == ("absent", ["absent", "late"])
    assert (board["Kiran"].state, board["Kiran"].minutes_late, board["Kiran"].alerts) == ("late", 25, ["late"])
    assert (board["Anita"].state, board["Anita"].alerts) == ("present", [])


async def test_a_late_tick_tells_only_what_is_true_now(world: World, settings: Any, redis: Any) -> None:
    """The worker was down through the grace: at 07:05 the duty is past the absent threshold, so the
    supervisor hears 'absent' once, not a stale 'late' as well."""
    member = await rostered(world, settings, "Mohan")

    async def mine(when: dt.datetime) -> list[tuple[Any, str]]:
        return [(r.staff_id, r.kind) for r in await check_attendance(settings, redis, when) if r.staff_id == member]

    assert await mine(at(2, 7, 5)) == [(member, "absent")]
    assert await mine(at(2, 7, 6)) == []
    assert await mine(at(5, 9)) == []  # Saturday: no duty, no alert


async def test_an_overnight_shift_is_watched_past_midnight(world: World, settings: Any, redis: Any) -> None:
    night = await rostered(world, settings, "Night guard", category="guard", weekdays=(2,), start="22:00", end="06:00")

    async def mine(when: dt.datetime) -> list[tuple[str, dt.date]]:
        return [(r.kind, r.day) for r in await check_attendance(settings, redis, when) if r.staff_id == night]

    assert await mine(at(2, 21, 59)) == []
    assert await mine(at(2, 22, 15)) == [("late", dt.date(2026, 12, 2))]
    assert await mine(at(3, 0, 30)) == [("absent", dt.date(2026, 12, 2))]  # past midnight, Wednesday's duty


# ------------------------------------------------------------------------------ corrections and the sheet


async def test_corrections_need_a_reason_and_are_recorded(client: Any, world: World, settings: Any, redis: Any) -> None:
    member = await rostered(world, settings, "Savitri")
    fm = principal(world, "fm_admin")
    recent = dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)
    url = f"/api/attendance/staff/{member}/corrections"
    headers = world.headers("fm_admin")
    no_reason = await client.post(url, json={"action": "add", "kind": "in", "at": recent.isoformat()}, headers=headers)
    assert no_reason.status_code == 422 and no_reason.json()["errors"][0]["field"] == "reason"
    added = await client.post(
        url,
        json={"action": "add", "kind": "in", "at": recent.isoformat(), "reason": "Came in by the back gate"},
        headers=headers,
    )
    assert added.status_code == 201, added.text
    assert (added.json()["source"], added.json()["recorded_by"]) == ("correction", str(fm.person_id))
    future = await client.post(
        url,
        json={"action": "add", "kind": "out", "at": (recent + dt.timedelta(days=1)).isoformat(), "reason": "typo"},
        headers=headers,
    )
    assert future.status_code == 422 and future.json()["errors"][0]["field"] == "at"
    voided = await client.post(
        url, json={"action": "void", "punch_id": added.json()["id"], "reason": "Entered twice"}, headers=headers
    )
    assert voided.status_code == 201 and voided.json()["voided_at"] is not None
    again = await client.post(
        url, json={"action": "void", "punch_id": added.json()["id"], "reason": "Entered twice"}, headers=headers
    )
    assert again.status_code == 409
    month = f"{recent.astimezone(dt.timezone(dt.timedelta(hours=5, minutes=30))):%Y-%m}"
    raw = (await client.get(f"/api/attendance/staff/{member}/punches?month={month}", headers=headers)).json()
    assert [(p["source"], p["voided_at"] is not None, p["correction_reason"]) for p in raw["items"]] == [
        ("correction", True, "Entered twice")
    ]
    events = [
        e["data"]["action"]
        for e in await topic_events(redis, settings, site_topic(world.site_id, "control"))
        if e["type"] == "attendance.corrected"
    ]
    assert events == ["add", "void"]
    assert (
        await client.post(
            url,
            json={"action": "void", "punch_id": added.json()["id"], "reason": "x y z"},
            headers=world.headers("guard"),
        )
    ).status_code == 403


async def test_the_monthly_sheet_reconciles_with_the_raw_punches(
    client: Any, world: World, settings: Any, redis: Any
) -> None:
    member = await rostered(world, settings, "Savitri")  # Morning 06:00-14:00, Monday to Friday
    night = await cfg.add_shift(world.site_id, cfg.ShiftInput(code="night", name="Night", start="22:00", end="06:00"))
    roster = await cfg.get_roster(world.site_id, member)
    await cfg.put_roster(
        world.site_id,
        member,
        cfg.RosterInput(
            entries=[cfg.RosterItem(weekday=x.weekday, shift_id=x.shift_id) for x in roster.lines if x.shift_id]
            + [cfg.RosterItem(weekday=5, shift_id=night.id)]
        ),
    )
    guard, fm = principal(world, "guard"), principal(world, "fm_admin")

    async def punch(kind: str, when: dt.datetime) -> Any:
        return await punches.at_gate(settings, redis, guard, member, punches.GatePunchInput(kind=kind), now=when)  # type: ignore[arg-type]

    await punch("in", at(1, 5, 55))  # Tue 1: present, 8 h 10 min
    await punch("out", at(1, 14, 5))
    await punch("in", at(2, 6, 25))  # Wed 2: late by 25 min, 7 h 35 min
    await punch("out", at(2, 14, 0))
    # Thu 3: nobody: absent.
    await punch("in", at(4, 6, 0))  # Fri 4: an early check-out by mistake, voided by the supervisor
    wrong = await punch("out", at(4, 10, 0))
    await punches.correct(
        settings,
        redis,
        fm,
        member,
        punches.CorrectionInput(action="void", punch_id=wrong.id, reason="Pressed by mistake"),
        now=at(4, 10, 5),
    )
    await punch("out", at(4, 14, 0))
    await punch("in", at(5, 21, 50))  # Sat 5, night shift: its hours stay on Saturday
    await punch("out", at(6, 6, 10))
    await punches.correct(  # Mon 7: forgot to check in at the gate; the supervisor adds it
        settings,
        redis,
        fm,
        member,
        punches.CorrectionInput(action="add", kind="in", at=at(7, 6, 2), reason="Forgot at the gate"),
        now=at(7, 9),
    )
    await punch("out", at(7, 14, 0))
    await punch("in", at(8, 6, 0))  # Tue 8: never checked out
    now = at(9, 12)  # Wed 9 noon: no check-in today, past the absent threshold
    built = await sheet.build_sheet(settings, world.site_id, member, "2026-12", now=now)
    days = {d.date.day: d for d in built.days}
    expected = {
        1: ("present", 490, 0),
        2: ("late", 455, 25),
        3: ("absent", 0, 0),
        4: ("present", 480, 0),
        5: ("present", 500, 0),
        6: ("off", 0, 0),
        7: ("present", 478, 0),
        8: ("present", 0, 0),
        9: ("absent", 0, 0),
        10: ("upcoming", 0, 0),
        13: ("off", 0, 0),
    }
    for day, (status, worked, late) in expected.items():
        assert (days[day].status, days[day].worked_minutes, days[day].late_minutes) == (status, worked, late), day
    assert days[8].unmatched == ["check-in without check-out"]
    assert days[4].corrections == 1 and days[7].corrections == 1
    assert days[5].last_out == at(6, 6, 10)
    assert len(built.days) == 31
    # Reconciliation with the raw record, computed here on its own: every valid punch on exactly one day,
    # the minutes of every in/out pair on its check-in's day, the totals the sums of the days.
    raw = (
        await client.get(
            f"/api/attendance/staff/{member}/punches?month=2026-12&limit=500", headers=world.headers("fm_admin")
        )
    ).json()
    valid = [p for p in raw["items"] if p["voided_at"] is None]
    assert raw["total"] == 12 and len(valid) == 11
    placed = [pid for d in built.days for pid in d.punch_ids]
    assert sorted(placed, key=str) == sorted((UUID(p["id"]) for p in valid), key=str)  # each once, none left out
    minutes, open_in = 0, None
    for p in sorted(valid, key=lambda p: p["at"]):
        stamp = dt.datetime.fromisoformat(p["at"])
        if p["kind"] == "in":
            open_in = stamp
        elif open_in is not None:
            minutes += int((stamp - open_in).total_seconds() // 60)
            open_in = None
    assert minutes == built.totals.worked_minutes == sum(d.worked_minutes for d in built.days) == 2403
    totals = built.totals
    assert (totals.duties, totals.present, totals.late, totals.absent) == (27, 5, 1, 2)  # 23 weekdays, 4 Saturdays
    assert (totals.punches, totals.voided, totals.corrections, totals.late_minutes) == (11, 1, 2, 25)
    # The CSV says the same, row for row.
    response = await client.get(
        f"/api/attendance/staff/{member}/sheet.csv?month=2026-12", headers=world.headers("fm_admin")
    )
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 32 and rows[-1]["date"] == "TOTAL" and rows[-1]["worked_minutes"] == "2403"
    assert sum(int(r["worked_minutes"]) for r in rows[:-1]) == 2403
    assert (rows[1]["status"], rows[1]["first_in"], rows[1]["worked_hours"], rows[1]["late_minutes"]) == (
        "late",
        "06:25",
        "7:35",
        "25",
    )
    api = (
        await client.get(f"/api/attendance/staff/{member}/sheet?month=2026-12", headers=world.headers("fm_admin"))
    ).json()
    assert api["totals"]["worked_minutes"] == 2403 and api["timezone"] == "Asia/Kolkata"
    bad = await client.get(f"/api/attendance/staff/{member}/sheet?month=2026-13", headers=world.headers("fm_admin"))
    assert bad.status_code == 400


async def test_names_that_look_like_formulas_stay_text_in_the_csv(world: World, settings: Any) -> None:
    member = await cfg.add_staff(settings, world.site_id, cfg.StaffInput(name="=HYPERLINK(1)", category="other"))
    built = await sheet.build_sheet(settings, world.site_id, member.id, "2026-12", now=at(9, 12))
    text = sheet.sheet_csv(built, await sheet.site_zone(world.site_id))
    assert all(row[0] == "'=HYPERLINK(1)" for row in csv.reader(io.StringIO(text)) if row[0] != "name")


async def test_unknown_staff_and_other_sites(world: World, other_world: World, settings: Any, redis: Any) -> None:
    member = await rostered(world, settings, "Savitri")
    there = principal(other_world, "guard")
    with pytest.raises(NotFound):
        await punches.at_gate(settings, redis, there, member, punches.GatePunchInput(kind="in"))
    with pytest.raises(InvalidInput):
        await punches.at_gate(settings, redis, principal(world, "guard"), member, punches.GatePunchInput())


async def test_two_guards_checking_one_person_in_at_once_record_one_check_in(
    client: Any, world: World, settings: Any, redis: Any
) -> None:
    member = await rostered(world, settings, "Savitri")
    await world.add_person("guard_two", frozenset({Role.GUARD}))
    results = await asyncio.gather(
        *(
            client.post(f"/api/attendance/staff/{member}/punch", json={"kind": "in"}, headers=world.headers(name))
            for name in ("guard", "guard_two")
        )
    )
    assert sorted(r.status_code for r in results) == [201, 409], [r.text for r in results]
    # Many at once, straight into the service: still one check-in, then one check-out.
    guards = [principal(world, "guard"), principal(world, "guard_two")] * 4
    for kind in ("out", "in"):
        outcomes = await asyncio.gather(
            *(punches.at_gate(settings, redis, g, member, punches.GatePunchInput(kind=kind)) for g in guards),  # type: ignore[arg-type]
            return_exceptions=True,
        )
        assert sum(1 for o in outcomes if isinstance(o, punches.PunchView)) == 1, outcomes
        assert all(isinstance(o, Conflict) for o in outcomes if not isinstance(o, punches.PunchView)), outcomes
    assert await Punch.count().where(Punch.staff == member) == 3
