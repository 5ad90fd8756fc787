"""Permits at the gate: a vendor named on an approved permit is recognised (by phone, plate or the
permit's reference) and let in only inside the permit's window and daily hours; before and after
they are refused with the reason, in the site's clock. Entries are recorded, published and told."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from app.errors import Conflict, InvalidInput
from app.permits import gate, service
from realtime.topics import site_topic, unit_topic
from schema.notifications import Notification
from schema.permits import PermitEntry
from tests.support.ids_permits import approved_vendor_permit
from tests.support.permits import (
    IST,
    T0,
    UNTIL,
    VENDOR_PHONE,
    VENDOR_PLATE,
    principal,
    submitted_fit_out,
    topic_events,
)
from tests.support.world import World


async def _approved_fit_out(world: World, settings: Any, redis: Any) -> service.PermitView:
    permit = await submitted_fit_out(world, settings, redis)
    for name in ("fm_admin", "site_admin"):
        await service.decide(
            settings, redis, principal(world, name), permit.id, service.DecisionInput(decision="approve"), now=T0
        )
    return permit


def _at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 12, day, hour, minute, tzinfo=IST).astimezone(dt.UTC)


async def test_a_vendor_is_let_in_only_inside_the_window(world: World, settings: Any, redis: Any) -> None:
    permit = await _approved_fit_out(world, settings, redis)
    guard = principal(world, "guard")
    by_phone = gate.GateCheckInput(phone="98123 45678", gate="main")
    # Before: the day it was approved (the window opens at Thursday 00:00; work hours 09:00-18:00).
    before = await gate.check(settings, redis, guard, by_phone, now=_at(9, 15))
    assert (before.outcome, before.reason) == ("refused", "not_yet_valid")
    assert (
        before.message
        == f"Permit {permit.reference} is not valid yet: it starts 10 Dec 2026 00:00 (it is 9 Dec 2026 15:00)."
    )
    assert before.permit is not None and before.permit.reference == permit.reference
    # Inside the window but outside the daily hours.
    early = await gate.check(settings, redis, guard, by_phone, now=_at(10, 7, 30))
    assert (early.outcome, early.reason) == ("refused", "outside_hours")
    assert early.message == f"Permit {permit.reference} allows entry only 09:00-18:00 (it is 07:30)."
    # Inside: recognised, shown, then let in.
    inside = await gate.check(settings, redis, guard, by_phone, now=_at(10, 9, 15))
    assert (inside.outcome, inside.reason) == ("valid", None)
    assert inside.permit is not None and inside.permit.title == "Kitchen remodel"
    assert inside.permit.unit_label == "A-101" and inside.permit.applicant_name == "Occupant"
    assert [a.label for a in inside.permit.approvals] == ["FM manager", "Site admin"]
    ravi = inside.permit.people[0]
    assert (ravi.name, ravi.phone_hint, ravi.inside) == ("Ravi Kumar", "…5678", False)
    assert inside.entrant_id == ravi.id
    assert await PermitEntry.count().where(PermitEntry.permit == permit.id) == 0  # a check lets nobody in
    let_in = await gate.check(
        settings, redis, guard, gate.GateCheckInput(phone=VENDOR_PHONE, gate="main", check_in=True), now=_at(10, 9, 16)
    )
    assert let_in.outcome == "checked_in" and let_in.entry_id is not None
    assert let_in.permit is not None and let_in.permit.inside == 1 and let_in.permit.people[0].inside
    # After: the window closed on Saturday 23:00.
    after = await gate.check(settings, redis, guard, by_phone, now=UNTIL + dt.timedelta(minutes=1))
    assert (after.outcome, after.reason) == ("refused", "expired")
    assert (
        after.message == f"Permit {permit.reference} has expired: it ended 12 Dec 2026 23:00 (it is 12 Dec 2026 23:01)."
    )
    # The gate and the control room saw the refusals and the entry live; the unit saw the entry.
    gate_feed = [
        (e["type"], e["data"].get("reason"))
        for e in await topic_events(redis, settings, site_topic(world.site_id, "gate"))
    ]
    assert [g for g in gate_feed if g[0] != "permit.changed"] == [
        ("permit.gate_refused", "not_yet_valid"),
        ("permit.gate_refused", "outside_hours"),
        ("permit.entered", None),
        ("permit.gate_refused", "expired"),
    ]
    unit_feed = [e["type"] for e in await topic_events(redis, settings, unit_topic(world.unit_ids[0]))]
    assert unit_feed.count("permit.entered") == 1 and "permit.gate_refused" not in unit_feed
    told = await Notification.select(Notification.title).where(
        (Notification.site == world.site_id) & Notification.title.like("%entered under permit%")
    )
    assert [t["title"] for t in told] == [f"Ravi Kumar entered under permit {permit.reference}"]
    # Leaving closes the entry, once.
    left = await gate.check_out(settings, redis, guard, let_in.entry_id, now=_at(10, 17))
    assert left.checked_out_at == _at(10, 17)
    with pytest.raises(Conflict):
        await gate.check_out(settings, redis, guard, let_in.entry_id, now=_at(10, 17, 5))


async def test_recognised_by_plate_and_by_reference(world: World, settings: Any, redis: Any) -> None:
    permit = await _approved_fit_out(world, settings, redis)
    guard = principal(world, "guard")
    plate = await gate.check(settings, redis, guard, gate.GateCheckInput(plate="ka-01 ab 1234"), now=_at(11, 12))
    assert plate.outcome == "valid" and plate.permit is not None
    assert plate.permit.vehicles[0].plate == VENDOR_PLATE and plate.entrant_id == plate.permit.vehicles[0].id
    by_ref = gate.GateCheckInput(reference=permit.reference.lower(), check_in=True)
    with pytest.raises(InvalidInput) as who:
        await gate.check(settings, redis, guard, by_ref, now=_at(11, 12))
    assert who.value.errors is not None and who.value.errors[0].field == "entrant_id"
    stranger = gate.GateCheckInput(reference=permit.reference, check_in=True, entrant_id=guard.person_id)
    with pytest.raises(InvalidInput):
        await gate.check(settings, redis, guard, stranger, now=_at(11, 12))
    ravi = gate.GateCheckInput(reference=permit.reference, check_in=True, entrant_id=plate.permit.people[0].id)
    entered = await gate.check(settings, redis, guard, ravi, now=_at(11, 12))
    assert entered.outcome == "checked_in"
    with pytest.raises(InvalidInput):  # exactly one way of recognising
        await gate.check(settings, redis, guard, gate.GateCheckInput(), now=_at(11, 12))


async def test_permits_that_do_not_admit_say_why(world: World, other_world: World, settings: Any, redis: Any) -> None:
    guard = principal(world, "guard")
    pending = await submitted_fit_out(world, settings, redis)
    found = await gate.check(settings, redis, guard, gate.GateCheckInput(reference=pending.reference), now=_at(11, 12))
    assert (found.outcome, found.reason) == ("refused", "not_approved")
    assert found.message == f"Permit {pending.reference} is not approved (it is pending)."
    approved = await _approved_fit_out(world, settings, redis)
    await service.revoke(
        settings, redis, principal(world, "fm_admin"), approved.id, service.ReasonInput(reason="Unsafe wiring"), now=T0
    )
    revoked = await gate.check(
        settings, redis, guard, gate.GateCheckInput(reference=approved.reference), now=_at(11, 12)
    )
    assert (revoked.outcome, revoked.reason) == ("refused", "revoked")
    nobody = await gate.check(settings, redis, guard, gate.GateCheckInput(phone="+919999999999"), now=_at(11, 12))
    assert (nobody.outcome, nobody.reason, nobody.permit) == ("refused", "unknown", None)
    # Another site's guard, given the same phone and reference, finds nothing.
    there = principal(other_world, "guard")
    for attempt in (gate.GateCheckInput(phone=VENDOR_PHONE), gate.GateCheckInput(reference=approved.reference)):
        crossed = await gate.check(settings, redis, there, attempt, now=_at(11, 12))
        assert (crossed.reason, crossed.permit) == ("unknown", None)


async def test_of_several_permits_the_one_that_admits_now_wins(world: World, settings: Any, redis: Any) -> None:
    phone = "+919800000077"
    old = await approved_vendor_permit(world, settings, redis, start=_at(10, 9), phone=phone, now=T0)
    new = await approved_vendor_permit(world, settings, redis, start=_at(12, 9), phone=phone, now=T0)
    guard = principal(world, "guard")
    by_phone = gate.GateCheckInput(phone=phone)
    during_old = await gate.check(settings, redis, guard, by_phone, now=_at(10, 10))
    assert during_old.outcome == "valid" and during_old.permit is not None and during_old.permit.id == old.id
    between = await gate.check(settings, redis, guard, by_phone, now=_at(11, 10))
    assert between.reason == "not_yet_valid" and between.permit is not None and between.permit.id == new.id
    during_new = await gate.check(settings, redis, guard, by_phone, now=_at(12, 10))
    assert during_new.outcome == "valid" and during_new.permit is not None and during_new.permit.id == new.id


async def test_the_gate_api_for_guards(
    client: Any, world: World, other_world: World, settings: Any, redis: Any
) -> None:
    now = dt.datetime.now(dt.UTC)
    permit = await approved_vendor_permit(world, settings, redis, start=now - dt.timedelta(hours=1), plate="MH12XY9876")
    later = await approved_vendor_permit(
        world, settings, redis, start=now + dt.timedelta(days=3), phone="+919800000099"
    )
    headers = world.headers("guard")
    today = await client.get("/api/permits/gate/today", headers=headers)
    assert today.status_code == 200, today.text
    assert [p["id"] for p in today.json()["items"]] == [str(permit.id)]
    shown = today.json()["items"][0]
    assert shown["people"][0]["phone_hint"] == "…0003" and "phone" not in shown["people"][0]
    checked = await client.post(
        "/api/permits/gate/check", json={"plate": "MH 12 XY 9876", "check_in": True, "gate": "main"}, headers=headers
    )
    assert checked.status_code == 200, checked.text
    assert checked.json()["outcome"] == "checked_in"
    entries = await client.get(f"/api/permits/{permit.id}/entries", headers=headers)
    assert entries.json()["total"] == 1 and entries.json()["items"][0]["checked_out_at"] is None
    out = await client.post(f"/api/permits/gate/entries/{checked.json()['entry_id']}/check-out", headers=headers)
    assert out.status_code == 200, out.text
    refused = await client.post("/api/permits/gate/check", json={"phone": "+919800000099"}, headers=headers)
    assert refused.json()["reason"] == "not_yet_valid" and refused.json()["permit"]["id"] == str(later.id)
    bad = await client.post("/api/permits/gate/check", json={"phone": "12"}, headers=headers)
    assert bad.status_code == 400
    both = await client.post(
        "/api/permits/gate/check", json={"phone": "+919800000099", "plate": "MH12"}, headers=headers
    )
    assert both.status_code == 422
    occupant = await client.post(
        "/api/permits/gate/check", json={"phone": "+919800000099"}, headers=world.headers("occupant")
    )
    assert occupant.status_code == 403
    other_guard = await client.post(
        f"/api/permits/gate/entries/{checked.json()['entry_id']}/check-out", headers=other_world.headers("guard")
    )
    assert other_guard.status_code == 404
