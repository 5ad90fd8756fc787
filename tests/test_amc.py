"""AMC tracker: assets with QR, contracts and their schedule, visits recorded, reminders under a controlled
clock (each fires once at each lead time), overdue visits on the control-room board, an asset's history."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

from PIL import Image

from app.amc import assets, board, contracts, history, reminders, visits
from app.amc.common import ReminderSettings, put_reminder_settings
from app.amc.schedule import Frequency
from app.complaints import config as complaint_config
from app.slots import resources
from schema.amc import AmcReminder, ServiceVisit
from schema.notifications import Notification
from schema.slots import SlotDevice
from tests.support.amc import at, contract, control_events, lift
from tests.support.slots import principal
from tests.support.world import World

D = dt.date(2027, 3, 31)  # a visit day far from today: every clock below is explicit


async def _maintenance_notifications(world: World) -> list[dict[str, Any]]:
    return list(
        await Notification.select(Notification.idempotency_key, Notification.title, Notification.audience).where(
            (Notification.site == world.site_id) & (Notification.category == "maintenance")
        )
    )


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 40, 40)).save(buffer, format="JPEG")
    return buffer.getvalue()


# ------------------------------------------------------------------------------ assets and contracts


async def test_an_asset_gets_a_qr_place_and_keeps_its_code_when_renamed(client: Any, world: World) -> None:
    headers = world.headers("fm_admin")
    made = await client.post(
        "/api/amc/assets",
        json={
            "code": "DG-1",
            "name": "DG set 1",
            "kind": "dg_set",
            "building_id": str(world.building_ids[1]),
            "floor": "B1",
            "location": "Behind the STP",
            "installed_on": "2021-06-01",
        },
        headers=headers,
    )
    assert made.status_code == 201, made.text
    asset = made.json()
    assert asset["qr_code"] and asset["qr_url"].endswith("/q/" + asset["qr_code"])
    assert asset["building_name"] == "Tower B"
    renamed = await client.patch(f"/api/amc/assets/{asset['id']}", json={"name": "DG set 1 (500 kVA)"}, headers=headers)
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["qr_code"] == asset["qr_code"]
    place = (await client.get(f"/api/places/{asset['place_id']}", headers=headers)).json()
    assert place["name"] == "DG set 1 (500 kVA)" and place["kind"] == "asset" and place["code"] == asset["qr_code"]
    again = await client.post(
        "/api/amc/assets", json={"code": "DG-1", "name": "Another", "kind": "pump"}, headers=headers
    )
    assert again.status_code == 409
    # A technician reads assets but does not create them; an occupant sees none of it.
    assert (await client.get("/api/amc/assets", headers=world.headers("technician"))).status_code == 200
    assert (
        await client.post(
            "/api/amc/assets", json={"code": "X", "name": "X", "kind": "cctv"}, headers=world.headers("technician")
        )
    ).status_code == 403
    assert (await client.get("/api/amc/assets", headers=world.headers("occupant"))).status_code == 403


async def test_an_ev_charger_asset_links_the_slots_charger(client: Any, world: World) -> None:
    charger = await resources.create_charger(
        world.site_id,
        resources.NewCharger(
            code="EV-7",
            name="Charger 7",
            connectors=[resources.NewConnector(connector_no=1, power_kw=7.4, connector_type="Type2")],
        ),
    )
    device = await SlotDevice.select(SlotDevice.resource).where(SlotDevice.id == charger.device_id).first()
    assert device is not None
    charger_resource = str(device["resource"])
    headers = world.headers("fm_admin")
    body = {"code": "EVC-7", "name": "EV charger 7", "kind": "ev_charger", "charger_id": charger_resource}
    made = await client.post("/api/amc/assets", json=body, headers=headers)
    assert made.status_code == 201, made.text
    assert made.json()["charger_name"] == "Charger 7"
    # A connector is not a charger; a lift cannot name one; one charger is one asset.
    connector = {**body, "code": "EVC-8", "charger_id": str(charger.connectors[0].id)}
    assert (await client.post("/api/amc/assets", json=connector, headers=headers)).json()["errors"][0][
        "field"
    ] == "charger_id"
    wrong_kind = {**body, "code": "EVC-9", "kind": "lift"}
    assert (await client.post("/api/amc/assets", json=wrong_kind, headers=headers)).status_code == 422
    assert (await client.post("/api/amc/assets", json={**body, "code": "EVC-10"}, headers=headers)).status_code == 409


async def test_a_contract_writes_its_schedule_and_money_stays_integer_paise(client: Any, world: World) -> None:
    asset = await lift(world)
    headers = world.headers("fm_admin")
    body = {
        "asset_id": str(asset.id),
        "vendor": "Otis",
        "starts_on": "2027-01-01",
        "ends_on": "2027-12-31",
        "frequency": "monthly",
        "first_visit_on": "2027-01-31",
        "cost_paise": 1_234_567_890_123,
        "sla_response_hours": 4,
    }
    made = await client.post("/api/amc/contracts", json=body, headers=headers)
    assert made.status_code == 201, made.text
    view = made.json()
    assert view["cost_paise"] == 1_234_567_890_123 and view["visits_total"] == 12
    schedule = await client.get(
        "/api/amc/visits", params={"contract_id": view["id"], "which": "all", "limit": 50}, headers=headers
    )
    due = [v["due_on"] for v in schedule.json()["items"]]
    assert due[:4] == ["2027-01-31", "2027-02-28", "2027-03-31", "2027-04-30"] and due[-1] == "2027-12-31"
    bad = await client.post("/api/amc/contracts", json={**body, "ends_on": "2026-12-31"}, headers=headers)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "ends_on"
    outside = await client.post("/api/amc/contracts", json={**body, "first_visit_on": "2028-01-01"}, headers=headers)
    assert outside.json()["errors"][0]["field"] == "first_visit_on"
    fraction = await client.post("/api/amc/contracts", json={**body, "cost_paise": 10.5}, headers=headers)
    assert fraction.status_code == 400
    cancelled = await client.post(
        f"/api/amc/contracts/{view['id']}/cancel", json={"reason": "vendor changed"}, headers=headers
    )
    assert cancelled.json()["state"] == "cancelled"
    left = await client.get("/api/amc/visits", params={"contract_id": view["id"]}, headers=headers)
    assert left.json()["total"] == 0  # no open visit of a cancelled contract


async def test_recording_a_visit_with_notes_checklist_and_a_photo(client: Any, world: World, redis: Any) -> None:
    asset = await lift(world)
    today = dt.datetime.now(dt.UTC).date()
    made = await contract(
        world, redis, asset.id, starts_on=today - dt.timedelta(days=40), ends_on=today + dt.timedelta(days=300)
    )
    first = (await visits.list_visits(world.site_id, contract_id=made.id, which="all", limit=1, offset=0)).items[0]
    headers = world.headers("technician")
    report = {
        "notes": "Brake pads replaced; ropes fine.",
        "checklist": [{"item": "Brake test", "ok": True}, {"item": "Door sensor", "ok": False, "remark": "sticky"}],
    }
    done = await client.post(f"/api/amc/visits/{first.id}/complete", json=report, headers=headers)
    assert done.status_code == 200, done.text
    assert done.json()["state"] == "done" and done.json()["checklist"][1]["remark"] == "sticky"
    assert done.json()["completed_by_name"] == "Technician"
    twice = await client.post(f"/api/amc/visits/{first.id}/complete", json=report, headers=headers)
    assert twice.status_code == 409
    photo = await client.post(
        f"/api/amc/visits/{first.id}/attachments",
        files={"file": ("report.jpg", _jpeg(), "image/jpeg")},
        headers=headers,
    )
    assert photo.status_code == 201, photo.text
    fetched = await client.get(f"/api/amc/visits/{first.id}/attachments/{photo.json()['id']}", headers=headers)
    assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/jpeg"
    not_image = await client.post(
        f"/api/amc/visits/{first.id}/attachments", files={"file": ("x.jpg", b"%PDF-1.4", "image/jpeg")}, headers=headers
    )
    assert not_image.status_code == 422 and not_image.json()["errors"][0]["field"] == "file"
    future = (await visits.list_visits(world.site_id, contract_id=made.id, which="open", limit=5, offset=0)).items[-1]
    tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).date().isoformat()
    ahead = await client.post(f"/api/amc/visits/{future.id}/complete", json={"completed_on": tomorrow}, headers=headers)
    assert ahead.status_code == 422 and ahead.json()["errors"][0]["field"] == "completed_on"
    events = await control_events(redis, world.settings, world.site_id, board.AMC_BOARD_CHANGED)
    assert {"visit_done", "contract_created"} <= {e["reason"] for e in events}


# ------------------------------------------------------------------------------ reminders, controlled clock


async def test_visit_reminders_fire_once_at_each_lead_time(world: World, redis: Any) -> None:
    await put_reminder_settings(
        world.site_id, ReminderSettings(visit_lead_days=[7, 1], expiry_lead_days=[], reminder_hour=9)
    )
    asset = await lift(world)
    made = await contract(
        world,
        redis,
        asset.id,
        starts_on=D - dt.timedelta(days=20),
        ends_on=D + dt.timedelta(days=200),
        frequency=Frequency.YEARLY,
        first_visit_on=D,
    )
    visit = (await visits.list_visits(world.site_id, contract_id=made.id, which="all", limit=5, offset=0)).items
    assert [v.due_on for v in visit] == [D]
    fired: dict[dt.datetime, int] = {}
    clock = at(D - dt.timedelta(days=10), 0)
    while clock <= at(D, 23):
        sent = await reminders.run(world.settings, redis, now=clock, site_ids=[world.site_id])
        # The cron runs again at once (a second worker, a retry): nothing more.
        assert await reminders.run(world.settings, redis, now=clock, site_ids=[world.site_id]) == 0
        if sent:
            fired[clock] = sent
        clock += dt.timedelta(minutes=30)
    assert fired == {at(D - dt.timedelta(days=7), 9): 1, at(D - dt.timedelta(days=1), 9): 1}
    rows = await AmcReminder.select(AmcReminder.lead_days, AmcReminder.status).where(AmcReminder.subject == visit[0].id)
    assert sorted((r["lead_days"], r["status"]) for r in rows) == [(1, "sent"), (7, "sent")]
    sent_notes = await _maintenance_notifications(world)
    assert sorted(n["idempotency_key"] for n in sent_notes) == [
        f"amc:visit:{visit[0].id}:1",
        f"amc:visit:{visit[0].id}:7",
    ]
    assert any("in 7 days" in n["title"] for n in sent_notes) and any("tomorrow" in n["title"] for n in sent_notes)


async def test_a_late_cron_sends_only_the_latest_reminder_and_none_for_a_done_visit(world: World, redis: Any) -> None:
    await put_reminder_settings(world.site_id, ReminderSettings(visit_lead_days=[7, 3, 1], expiry_lead_days=[]))
    asset = await lift(world)
    made = await contract(
        world,
        redis,
        asset.id,
        starts_on=D - dt.timedelta(days=20),
        ends_on=D + dt.timedelta(days=200),
        frequency=Frequency.YEARLY,
        first_visit_on=D,
    )
    visit_id = (
        (await visits.list_visits(world.site_id, contract_id=made.id, which="all", limit=5, offset=0)).items[0].id
    )
    # The worker was down for a week: at D-2 10:00 the 7- and 3-day reminders are both past due.
    assert (
        await reminders.run(world.settings, redis, now=at(D - dt.timedelta(days=2), 10), site_ids=[world.site_id]) == 1
    )
    rows = await AmcReminder.select(AmcReminder.lead_days, AmcReminder.status).where(AmcReminder.subject == visit_id)
    assert sorted((r["lead_days"], r["status"]) for r in rows) == [(3, "sent"), (7, "skipped")]
    # The vendor came early and the visit is recorded: no reminder the day before.
    await visits.complete_visit(
        world.settings,
        redis,
        principal(world, "technician"),
        visit_id,
        visits.VisitReport(),
        now=at(D - dt.timedelta(days=2), 11),
    )
    assert (
        await reminders.run(world.settings, redis, now=at(D - dt.timedelta(days=1), 10), site_ids=[world.site_id]) == 0
    )


async def test_expiry_reminders_fire_once_each_and_not_for_a_renewed_contract(world: World, redis: Any) -> None:
    await put_reminder_settings(world.site_id, ReminderSettings(visit_lead_days=[], expiry_lead_days=[60, 30, 7]))
    asset = await lift(world)
    end = D
    made = await contract(
        world,
        redis,
        asset.id,
        starts_on=end - dt.timedelta(days=364),
        ends_on=end,
        frequency=Frequency.YEARLY,
        first_visit_on=end,
    )
    fired = []
    for offset in range(75, -2, -1):
        for hour in (8, 9, 15):
            clock = at(end - dt.timedelta(days=offset), hour)
            if await reminders.run(world.settings, redis, now=clock, site_ids=[world.site_id]):
                fired.append(clock)
    assert fired == [at(end - dt.timedelta(days=days), 9) for days in (60, 30, 7)]
    keys = sorted(n["idempotency_key"] for n in await _maintenance_notifications(world))
    assert keys == sorted(f"amc:expiry:{made.id}:{days}" for days in (60, 30, 7))
    # Another asset's contract renewed before its 30-day reminder: nothing more is said about it.
    other = await lift(world, name="Lift B1")
    old = await contract(
        world,
        redis,
        other.id,
        starts_on=end - dt.timedelta(days=364),
        ends_on=end,
        frequency=Frequency.YEARLY,
        first_visit_on=end,
    )
    assert (
        await reminders.run(world.settings, redis, now=at(end - dt.timedelta(days=60), 9, 30), site_ids=[world.site_id])
        == 1
    )
    await contract(
        world,
        redis,
        other.id,
        starts_on=end + dt.timedelta(days=1),
        ends_on=end + dt.timedelta(days=365),
        frequency=Frequency.YEARLY,
    )
    assert (
        await reminders.run(world.settings, redis, now=at(end - dt.timedelta(days=30), 9, 30), site_ids=[world.site_id])
        == 0
    )
    board_now = await board.amc_board(world.site_id, now=at(end - dt.timedelta(days=20), 10))
    assert [c.contract_id for c in board_now.expiring] == [made.id]  # the renewed one is not "expiring"
    assert old.id not in [c.contract_id for c in board_now.expiring]


async def test_an_overdue_visit_is_published_to_the_board_and_told_once(world: World, redis: Any) -> None:
    await put_reminder_settings(world.site_id, ReminderSettings(visit_lead_days=[], expiry_lead_days=[]))
    asset = await lift(world)
    made = await contract(
        world,
        redis,
        asset.id,
        starts_on=D - dt.timedelta(days=20),
        ends_on=D + dt.timedelta(days=200),
        frequency=Frequency.YEARLY,
        first_visit_on=D,
        grace=3,
    )
    visit_id = (
        (await visits.list_visits(world.site_id, contract_id=made.id, which="all", limit=5, offset=0)).items[0].id
    )
    last_grace_day = at(D + dt.timedelta(days=3), 23, 59)
    assert await reminders.run(world.settings, redis, now=last_grace_day, site_ids=[world.site_id]) == 0
    snapshot = await board.amc_board(world.site_id, now=last_grace_day)
    assert [v.visit_id for v in snapshot.due_soon] == [visit_id] and snapshot.overdue == []
    next_day = at(D + dt.timedelta(days=4), 0, 5)
    assert await reminders.run(world.settings, redis, now=next_day, site_ids=[world.site_id]) == 1
    assert (
        await reminders.run(world.settings, redis, now=next_day + dt.timedelta(hours=5), site_ids=[world.site_id]) == 0
    )
    events = await control_events(redis, world.settings, world.site_id, board.AMC_VISIT_OVERDUE)
    assert [e["visit_id"] for e in events] == [str(visit_id)] and events[0]["asset_code"] == asset.code
    assert [n["idempotency_key"] for n in await _maintenance_notifications(world)] == [f"amc:overdue:{visit_id}:0"]
    later = await board.amc_board(world.site_id, now=next_day)
    assert [(v.visit_id, v.days_late) for v in later.overdue] == [(visit_id, 1)]
    row = await ServiceVisit.select(ServiceVisit.overdue_at).where(ServiceVisit.id == visit_id).first()
    assert row is not None and row["overdue_at"] is not None
    overdue_page = await visits.list_visits(world.site_id, which="overdue", limit=10, offset=0, now=next_day)
    assert [v.id for v in overdue_page.items] == [visit_id]


# ------------------------------------------------------------------------------ complaints and history


async def test_a_complaint_raised_from_an_assets_qr_shows_in_its_history(client: Any, world: World, redis: Any) -> None:
    await complaint_config.put_category(
        world.site_id, complaint_config.CategoryInput(code="lift", name="Lift", skill="lift")
    )
    asset = await lift(world)
    made = await contract(
        world,
        redis,
        asset.id,
        starts_on=dt.date(2026, 1, 1),
        ends_on=dt.date(2026, 12, 31),
        frequency=Frequency.QUARTERLY,
    )
    raised = await client.post(
        "/api/complaints",
        json={"category": "lift", "description": "Lift stops between floors", "place_id": str(asset.place_id)},
        headers=world.headers("occupant"),
    )
    assert raised.status_code == 201, raised.text
    body = raised.json()
    assert body["asset_id"] == str(asset.id) and body["place_id"] == str(asset.place_id)
    assert body["location"] == asset.name and body["unit_id"] is None
    # Without a unit, an occupant must name an asset or place; an unknown one is refused by name.
    wrong = await client.post(
        "/api/complaints",
        json={"category": "lift", "description": "Lift stops", "asset_id": str(made.id)},
        headers=world.headers("occupant"),
    )
    assert wrong.status_code == 422 and wrong.json()["errors"][0]["field"] == "asset_id"
    page = await client.get(f"/api/amc/assets/{asset.id}/history", headers=world.headers("fm_admin"))
    assert page.status_code == 200, page.text
    story = page.json()
    assert [c["id"] for c in story["complaints"]] == [body["id"]]
    assert [c["id"] for c in story["contracts"]] == [str(made.id)] and len(story["visits"]) == 4
    assert story["place"]["code"] == asset.qr_code and story["total_cost_paise"] == 12_000_000
    whole = await history.asset_history(world.settings, world.site_id, asset.id)
    assert whole.asset.id == asset.id


async def test_reminder_settings_are_validated(client: Any, world: World) -> None:
    headers = world.headers("site_admin")
    put = await client.put(
        "/api/amc/settings", json={"visit_lead_days": [1, 14, 1], "reminder_hour": 8}, headers=headers
    )
    assert put.status_code == 200, put.text
    assert put.json()["visit_lead_days"] == [14, 1] and put.json()["expiry_lead_days"] == [60, 30, 7]
    bad = await client.put("/api/amc/settings", json={"visit_lead_days": [-1]}, headers=headers)
    assert bad.status_code == 400 and "visit_lead_days" in bad.text
    assert (await client.get("/api/amc/settings", headers=world.headers("technician"))).status_code == 403


async def test_amc_board_route_is_staff_only(client: Any, world: World) -> None:
    assert (await client.get("/api/amc/board", headers=world.headers("fm_admin"))).status_code == 200
    assert (await client.get("/api/amc/board", headers=world.headers("guard"))).status_code == 403
    await assets.list_assets(world.settings, world.site_id, limit=1, offset=0)
    assert contracts.contract_state  # the module's names stay importable for the pages


async def test_the_demo_seed_shows_an_overdue_visit_and_an_ending_contract(world: World) -> None:
    from app.seed import seed_maintenance

    await seed_maintenance(world.settings, world.site_id)
    snapshot = await board.amc_board(world.site_id)
    assert [v.asset_code for v in snapshot.overdue] == ["LIFT-A1"]
    assert {c.asset_code for c in snapshot.expiring} == {"LIFT-A1", "DG-1"}
    listed = await assets.list_assets(world.settings, world.site_id, limit=50, offset=0)
    assert listed.total == 5 and all(a.qr_code for a in listed.items)


async def test_two_people_recording_one_visit_at_once_one_wins(world: World, redis: Any) -> None:
    import asyncio

    from app.errors import Conflict

    asset = await lift(world)
    made = await contract(
        world, redis, asset.id, starts_on=D - dt.timedelta(days=20), ends_on=D, first_visit_on=D - dt.timedelta(days=5)
    )
    visit_id = (
        (await visits.list_visits(world.site_id, contract_id=made.id, which="all", limit=1, offset=0)).items[0].id
    )
    now = at(D, 12)
    results = await asyncio.gather(
        *[
            visits.complete_visit(
                world.settings, redis, principal(world, name), visit_id, visits.VisitReport(notes=name), now=now
            )
            for name in ("technician", "fm_admin", "site_admin")
        ],
        return_exceptions=True,
    )
    assert sum(isinstance(r, visits.VisitView) for r in results) == 1
    assert sum(isinstance(r, Conflict) for r in results) == 2
    row = await ServiceVisit.select(ServiceVisit.notes, ServiceVisit.status).where(ServiceVisit.id == visit_id).first()
    winner = next(r for r in results if isinstance(r, visits.VisitView))
    assert row == {"notes": winner.notes, "status": "done"}


async def test_two_reminder_runs_at_once_send_each_reminder_once(world: World, redis: Any) -> None:
    import asyncio

    await put_reminder_settings(world.site_id, ReminderSettings(visit_lead_days=[7, 1], expiry_lead_days=[30]))
    for name in ("Lift E1", "Lift E2", "Lift E3"):
        asset = await lift(world, name=name)
        await contract(
            world,
            redis,
            asset.id,
            starts_on=D - dt.timedelta(days=300),
            ends_on=D + dt.timedelta(days=20),
            frequency=Frequency.YEARLY,
            first_visit_on=D,
        )
    clock = at(D - dt.timedelta(days=7), 9, 30)
    sent = await asyncio.gather(
        *[reminders.run(world.settings, redis, now=clock, site_ids=[world.site_id]) for _ in range(4)]
    )
    assert sum(sent) == 6  # per lift a visit and an expiry reminder, by whichever run got there first
    keys = [n["idempotency_key"] for n in await _maintenance_notifications(world)]
    assert len(keys) == len(set(keys)) == 6


async def test_a_technician_opens_an_assets_page_and_its_code(client: Any, world: World) -> None:
    asset = await lift(world)
    headers = world.headers("technician")
    page = await client.get(f"/control/assets/{asset.id}", headers=headers)
    assert page.status_code == 200 and asset.name in page.text
    assert "sheet.pdf" not in page.text  # printing is for the FM team
    image = await client.get(f"/api/places/{asset.place_id}/qr.svg", headers=headers)
    assert image.status_code == 200
    assert (await client.get("/control/places", headers=headers)).status_code == 403
    assert (await client.get(f"/control/assets/{asset.id}", headers=world.headers("occupant"))).status_code == 403
    missing = await client.get("/control/assets/not-a-uuid", headers=world.headers("fm_admin"))
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")


async def test_a_renewal_continues_the_cadence_and_ends_expiry_reminders(client: Any, world: World, redis: Any) -> None:
    await put_reminder_settings(world.site_id, ReminderSettings(visit_lead_days=[], expiry_lead_days=[30, 7]))
    asset = await lift(world)
    old = await contract(
        world,
        redis,
        asset.id,
        starts_on=dt.date(2026, 7, 1),
        ends_on=dt.date(2027, 6, 30),
        frequency=Frequency.MONTHLY,
        first_visit_on=dt.date(2026, 7, 31),
    )
    clock = at(dt.date(2027, 6, 30) - dt.timedelta(days=30), 10)
    await reminders.run(world.settings, redis, now=clock, site_ids=[world.site_id])  # (and overdue visits)

    async def expiry_leads() -> list[int]:
        rows = await AmcReminder.select(AmcReminder.lead_days).where(
            (AmcReminder.kind == "expiry") & (AmcReminder.subject == old.id)
        )
        return sorted(r["lead_days"] for r in rows)

    assert await expiry_leads() == [30]
    headers = world.headers("fm_admin")
    renewed = await client.post(f"/api/amc/contracts/{old.id}/renew", json={"cost_paise": 13_000_000}, headers=headers)
    assert renewed.status_code == 201, renewed.text
    view = renewed.json()
    assert (view["starts_on"], view["ends_on"], view["first_visit_on"]) == ("2027-07-01", "2028-06-29", "2027-07-31")
    assert view["cost_paise"] == 13_000_000 and view["vendor"] == old.vendor and view["visits_total"] == 11
    schedule = await client.get("/api/amc/visits", params={"contract_id": view["id"], "limit": 3}, headers=headers)
    assert [v["due_on"] for v in schedule.json()["items"]] == ["2027-07-31", "2027-08-31", "2027-09-30"]
    # Renewed: no 7-day expiry reminder for the old contract, and it leaves the board's "ending" list.
    week_before = at(dt.date(2027, 6, 30) - dt.timedelta(days=7), 10)
    await reminders.run(world.settings, redis, now=week_before, site_ids=[world.site_id])
    assert await expiry_leads() == [30]
    assert (await board.amc_board(world.site_id, now=week_before)).expiring == []
    cancelled = await client.post(f"/api/amc/contracts/{view['id']}/cancel", json={}, headers=headers)
    assert cancelled.status_code == 200
    again = await client.post(f"/api/amc/contracts/{view['id']}/renew", json={}, headers=headers)
    assert again.status_code == 409
    early = await client.post(f"/api/amc/contracts/{old.id}/renew", json={"ends_on": "2027-01-01"}, headers=headers)
    assert early.status_code == 422 and early.json()["errors"][0]["field"] == "ends_on"


async def test_the_worker_runs_the_reminders_as_a_cron(world: World, redis: Any) -> None:
    from workers import amc_jobs
    from workers.main import WorkerSettings

    assert any(job.coroutine is amc_jobs.amc_reminders for job in WorkerSettings.cron_jobs)
    await put_reminder_settings(world.site_id, ReminderSettings(visit_lead_days=[1], expiry_lead_days=[]))
    asset = await lift(world)
    await contract(
        world,
        redis,
        asset.id,
        starts_on=D - dt.timedelta(days=20),
        ends_on=D + dt.timedelta(days=100),
        frequency=Frequency.YEARLY,
        first_visit_on=D,
    )
    ctx = {"settings": world.settings, "redis": redis}
    clock = at(D - dt.timedelta(days=1), 9, 5)
    assert await amc_jobs.amc_reminders(ctx, now=clock) >= 1  # every site with an active contract
    assert await amc_jobs.amc_reminders(ctx, now=clock) == 0  # arq ran it again: nothing more
