"""ANPR, overstay, the guard feeds, walk-in photo checks, pass messages to visitors, personal data."""

from __future__ import annotations

import datetime as dt
from typing import Any
from uuid import UUID

import pytest

from app.people.directory import directory_for
from app.privacy.registry import PersonScope, load_registries
from app.visitors import alerts, gate, messaging
from app.visitors.common import VisitorDeps
from notifications.fakes import RunningFakes, running_fakes
from schema.notifications import Notification
from schema.tables import Vehicle
from schema.visitors import AnprRead, Visit, VisitorMessage
from tests.support import ids_visitors
from tests.support.notify import pipeline
from tests.support.visitors import deps_for, jpeg, one_time_pass, principal_of


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def test_anpr_reads_are_authenticated_per_camera_and_matched(client: Any, world: Any, redis: Any) -> None:
    made = await client.post(
        "/api/visitors/cameras", json={"name": "Main gate in", "gate": "main"}, headers=world.headers("site_admin")
    )
    assert made.status_code == 201, made.text
    key = made.json()["key"]
    directory = directory_for(world.settings)
    await directory.vehicle_row(site_id=world.site_id, person_id=world.people["occupant"], plate="KA05MN7777").save()
    await Vehicle.update({Vehicle.unit: world.unit_ids[0]}).where(Vehicle.person == world.people["occupant"])
    cab = await one_time_pass(world, redis, start=now_utc() - dt.timedelta(minutes=1), kind="cab", plate="KA05CB1111")

    async def read(plate: str, confidence: float, header: str | None = key) -> Any:
        headers = {"X-Camera-Key": header} if header else {}
        body = {"plate": plate, "confidence": confidence, "direction": "in", "lane": "1", "image_ref": "s3://cam/1.jpg"}
        return await client.post("/api/visitors/anpr", json=body, headers=headers)

    assert (await read("KA05MN7777", 0.97, header=None)).status_code == 401
    assert (await read("KA05MN7777", 0.97, header=key[:-2] + "xx")).status_code == 401
    resident = (await read("ka 05 mn 7777", 0.97)).json()
    assert (resident["outcome"], resident["unit_id"]) == ("resident", str(world.unit_ids[0]))
    visitor = (await read("KA05CB1111", 0.91)).json()
    assert (visitor["outcome"], visitor["pass_id"]) == ("visitor", str(cab.visitor_pass.id))
    assert (await read("KA05ZZ0000", 0.95)).json()["outcome"] == "unknown"
    assert (await read("KA05MN7777", 0.42)).json()["outcome"] == "manual_review"
    rows = await AnprRead.select(AnprRead.outcome, AnprRead.plate_encrypted).where(AnprRead.site == world.site_id)
    assert sorted(r["outcome"] for r in rows) == ["manual_review", "resident", "unknown", "visitor"]
    assert all("KA05" not in r["plate_encrypted"] for r in rows)  # stored encrypted


async def test_overstay_alerts_gate_and_control_once(world: Any, redis: Any) -> None:
    deps = deps_for(world, redis)
    start = now_utc() - dt.timedelta(hours=3)
    cab = await one_time_pass(world, redis, start=start, kind="cab")
    guest = await one_time_pass(world, redis, start=start, kind="guest")
    guard = principal_of(world, "guard")
    in_cab = await gate.verify(deps, guard, gate.VerifyInput(code=cab.code), now=start)
    in_guest = await gate.verify(deps, guard, gate.VerifyInput(code=guest.code), now=start)
    too_early = await alerts.check_overstays(deps, now=start + dt.timedelta(minutes=29))
    assert in_cab.visit_id not in too_early and in_guest.visit_id not in too_early  # other tests' visits may show
    alerted = await alerts.check_overstays(deps, now=start + dt.timedelta(minutes=31))
    assert in_cab.visit_id in alerted and in_guest.visit_id not in alerted  # cab limit 30 min, guest 12 h
    assert in_cab.visit_id not in await alerts.check_overstays(deps, now=start + dt.timedelta(minutes=40))
    row = (
        await Notification.select().where(Notification.idempotency_key == f"visitor:overstay:{in_cab.visit_id}").first()
    )
    assert row is not None and row["site"] == world.site_id


async def test_feeds_show_expected_inside_and_pending(client: Any, world: Any, redis: Any) -> None:
    expected = await one_time_pass(world, redis, start=now_utc() - dt.timedelta(minutes=10), visitor_name="Expected Ed")
    inside = await one_time_pass(world, redis, start=now_utc() - dt.timedelta(minutes=10), visitor_name="Inside Ina")
    await client.post("/api/visitors/gate/verify", json={"code": inside.code}, headers=world.headers("guard"))
    walk = await client.post(
        "/api/visitors/walk-ins",
        files={
            "unit_id": (None, str(world.unit_ids[0])),
            "name": (None, "Pending Pat"),
            "photo": ("p.jpg", jpeg(), "image/jpeg"),
        },
        headers=world.headers("guard"),
    )
    assert walk.status_code == 201, walk.text
    headers = world.headers("guard")
    names = [e["name"] for e in (await client.get("/api/visitors/feeds/expected", headers=headers)).json()["items"]]
    assert "Expected Ed" in names and "Inside Ina" not in names
    assert [
        i["visit"]["name"] for i in (await client.get("/api/visitors/feeds/inside", headers=headers)).json()["items"]
    ] == ["Inside Ina"]
    pending = (await client.get("/api/visitors/feeds/pending", headers=headers)).json()["items"]
    assert [p["visitor_name"] for p in pending] == ["Pending Pat"] and pending[0]["has_photo"] is True
    photo = await client.get(
        f"/api/visitors/visits/{walk.json()['visit']['id']}/photo", headers=world.headers("occupant")
    )
    assert photo.status_code == 200 and photo.headers["content-type"] == "image/jpeg"
    assert expected.visitor_pass.id


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"GIF89a" + b"\x00" * 40, "is not a JPEG, PNG or WebP image"), (b"", "is empty")],
)
async def test_walk_in_photo_is_checked(client: Any, world: Any, content: bytes, message: str) -> None:
    response = await client.post(
        "/api/visitors/walk-ins",
        files={
            "unit_id": (None, str(world.unit_ids[0])),
            "name": (None, "X"),
            "photo": ("x.gif", content, "image/gif"),
        },
        headers=world.headers("guard"),
    )
    if content:
        assert response.status_code == 422 and response.json()["errors"][0] == {
            "field": "photo",
            "message": message,
            "source": "body",
        }
    else:
        assert response.status_code == 201  # an empty file part is "no photo"
    assert await Visit.count().where((Visit.site == world.site_id) & (Visit.photo_key.is_not_null())) == 0


@pytest.fixture
async def fakes() -> Any:
    async with running_fakes() as running:
        running.twilio.configure(callbacks_enabled=False)
        yield running


async def test_pass_reaches_a_visitor_who_is_not_a_person_once(
    world: Any, redis: Any, settings: Any, fakes: RunningFakes
) -> None:
    async with pipeline(settings, redis, fakes) as ctx:
        deps = VisitorDeps(settings=ctx.settings, redis=redis, directory=ctx.directory)
        created = await one_time_pass(world, redis, start=now_utc(), visitor_phone="98450 99887", send_via="sms")
        assert created.message_status == "pending"
        (message_id,) = [
            r["id"]
            for r in await VisitorMessage.select(VisitorMessage.id).where(
                VisitorMessage.visitor_pass == created.visitor_pass.id
            )
        ]
        assert await messaging.send_pass_message(deps, ctx.providers, message_id) == "sent"
        assert await messaging.send_pass_message(deps, ctx.providers, message_id) == "sent"  # re-run: nothing more
    (sms,) = fakes.twilio.messages
    assert sms.to == "+919845099887" and created.code in (sms.body or "") and "/v/qr/VP1." in (sms.body or "")
    row = await VisitorMessage.select().where(VisitorMessage.id == message_id).first()
    assert row is not None and row["body_encrypted"] is None and row["provider_id"] == sms.sid


async def test_pass_to_a_person_of_the_site_goes_through_notify(
    world: Any, redis: Any, settings: Any, fakes: RunningFakes
) -> None:
    await world.add_person(
        "neighbour", world.roles["occupant"], units=[(world.unit_ids[6], "owner")], mobile="+919845011223"
    )
    async with pipeline(settings, redis, fakes) as ctx:
        deps = VisitorDeps(settings=ctx.settings, redis=redis, directory=ctx.directory)
        created = await one_time_pass(world, redis, start=now_utc(), visitor_phone="+919845011223", send_via="sms")
        (message_id,) = [
            r["id"]
            for r in await VisitorMessage.select(VisitorMessage.id).where(
                VisitorMessage.visitor_pass == created.visitor_pass.id
            )
        ]
        assert await messaging.send_pass_message(deps, ctx.providers, message_id) == "via_notify"
    row = await VisitorMessage.select().where(VisitorMessage.id == message_id).first()
    assert row is not None and isinstance(row["notification_id"], UUID)
    assert fakes.twilio.messages == []  # NOTIFY's worker sends it, under the person's consent


async def test_personal_data_export_and_erase(world: Any, redis: Any, settings: Any) -> None:
    sections, _ = load_registries()
    person = world.people["occupant"]
    await ids_visitors.seed_person_data(world, person)
    scope = PersonScope(
        site_id=world.site_id, person_id=person, settings=settings, directory=directory_for(settings), redis=redis
    )
    exported = await sections["visitors"].export(scope)
    assert {item["record"] for item in exported} == {"visitor_pass_issued", "visitor_request_answered"}
    outcome = await sections["visitors"].erase(scope)
    assert outcome.erased == 2
    assert await sections["visitors"].export(scope) == []
