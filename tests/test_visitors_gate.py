"""Passes at the gate: check-in in one call, refusals with their reason, throttled guessing,
the blocklist, plates, arrival/exit alerts and daily help across the units that employ them."""

from __future__ import annotations

import datetime as dt
from typing import Any
from uuid import UUID

from app.errors import Conflict, InvalidInput
from app.visitors import blocklist, gate
from app.visitors.passes import NewPass, Recurring, create_pass
from schema.jsonvalue import as_dict
from schema.notifications import Notification
from schema.visitors import Visit
from tests.support.visitors import add_occupant, deps_for, one_time_pass, principal_of

VERIFY = "/api/visitors/gate/verify"


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def verify(client: Any, world: Any, body: dict[str, Any], who: str = "guard") -> Any:
    return await client.post(VERIFY, json=body, headers=world.headers(who))


async def notified(world: Any, key: str) -> list[UUID]:
    row = (
        await Notification.select()
        .where((Notification.site == world.site_id) & (Notification.idempotency_key == key))
        .first()
    )
    return [] if row is None else [UUID(p) for p in as_dict(row["audience"]).get("person_ids", [])]


async def test_a_code_checks_in_once_and_refusals_say_why(
    client: Any, world: Any, other_world: Any, redis: Any
) -> None:
    now = now_utc()
    valid = await one_time_pass(world, redis, start=now - dt.timedelta(minutes=5), visitor_name="Priya")
    expired = await one_time_pass(world, redis, start=now - dt.timedelta(hours=5), hours=1)
    future = await one_time_pass(world, redis, start=now + dt.timedelta(hours=3))
    elsewhere = await one_time_pass(other_world, redis, start=now - dt.timedelta(minutes=5))
    codes_here = {valid.code, expired.code, future.code}
    unknown = next(c for c in (f"{n:06d}" for n in range(1000, 2000)) if c not in codes_here | {elsewhere.code})

    first = await verify(client, world, {"code": valid.code, "gate": "main"})
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["outcome"], body["visitor_name"], body["unit_id"]) == ("checked_in", "Priya", str(world.unit_ids[0]))
    visit = await Visit.select().where(Visit.id == UUID(body["visit_id"])).first()
    assert visit is not None and visit["status"] == "inside" and visit["source"] == "pass"
    # The unit's occupants are told at check-in.
    assert world.people["occupant"] in await notified(world, f"visitor:arrived:{visit['id']}:{world.unit_ids[0]}")

    reasons = {
        "reused": (await verify(client, world, {"code": valid.code})).json()["reason"],
        "expired": (await verify(client, world, {"code": expired.code})).json()["reason"],
        "future": (await verify(client, world, {"code": future.code})).json()["reason"],
        "cross_site": (await verify(client, world, {"code": elsewhere.code})).json()["reason"],
        "unknown": (await verify(client, world, {"code": unknown})).json()["reason"],
        "cross_site_qr": (await verify(client, world, {"qr": elsewhere.qr_payload})).json()["reason"],
    }
    assert reasons == {
        "reused": "used",
        "expired": "expired",
        "future": "not_yet_valid",
        "cross_site": "unknown",  # as any wrong guess: a code live on another site is not revealed
        "unknown": "unknown",
        "cross_site_qr": "wrong_site",
    }
    # The other site's pass is untouched and still works at its own gate.
    at_home = await verify(client, other_world, {"code": elsewhere.code})
    assert at_home.json()["outcome"] == "checked_in"
    bad = await verify(client, world, {"code": "12a456"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "code"


async def test_qr_checks_in_and_a_forged_qr_is_unknown(client: Any, world: Any, redis: Any) -> None:
    created = await one_time_pass(world, redis, start=now_utc() - dt.timedelta(minutes=1))
    assert created.qr_payload.startswith("VP1.") and created.code not in created.qr_payload
    forged = created.qr_payload[:-4] + ("AAAA" if not created.qr_payload.endswith("AAAA") else "BBBB")
    assert (await verify(client, world, {"qr": forged})).json()["reason"] == "unknown"
    assert (await verify(client, world, {"qr": created.qr_payload})).json()["outcome"] == "checked_in"
    assert (await verify(client, world, {"qr": created.qr_payload})).json()["reason"] == "used"
    image = await client.get(created.qr_url.split("127.0.0.1:8000", 1)[-1])
    assert image.status_code == 200 and image.headers["content-type"].startswith("image/svg+xml")
    assert (await client.get("/v/qr/" + forged + ".svg")).status_code == 404


async def test_code_guessing_is_throttled_per_guard(client: Any, world: Any, redis: Any) -> None:
    saved = await client.put(
        "/api/visitors/settings",
        json={"config": {"code_max_failures": 5, "code_window_seconds": 120}},
        headers=world.headers("fm_admin"),
    )
    assert saved.status_code == 200, saved.text
    real = await one_time_pass(world, redis, start=now_utc() - dt.timedelta(minutes=1))
    guesses = [c for c in (f"{n:06d}" for n in range(500000, 500010)) if c != real.code][:5]
    for guess in guesses:
        refused = await verify(client, world, {"code": guess})
        assert refused.status_code == 200 and refused.json()["reason"] == "unknown"
    throttled = await verify(client, world, {"code": real.code})
    assert throttled.status_code == 429, throttled.text
    assert throttled.headers["content-type"].startswith("application/problem+json")
    assert 1 <= int(throttled.headers["retry-after"]) <= 120
    # The right code did not get through, and nothing was checked in.
    assert await Visit.count().where(Visit.site == world.site_id) == 0
    # Another guard's console is not locked out by this one's guesses.
    await world.add_person("second_guard", world.roles["guard"])
    other = await verify(client, world, {"code": real.code}, who="second_guard")
    assert other.json()["outcome"] == "checked_in"


async def test_blocklist_is_checked_at_pre_approval_and_at_the_gate(client: Any, world: Any, redis: Any) -> None:
    phone, plate = "+919811100022", "KA 01 AB 4321"
    before = await one_time_pass(
        world, redis, start=now_utc() - dt.timedelta(minutes=1), visitor_phone=phone, visitor_name="Blocked Later"
    )
    added = await client.post(
        "/api/visitors/blocklist",
        json={"name": "Banned", "phone": "98111 00022", "plate": plate, "reason": "theft"},
        headers=world.headers("fm_admin"),
    )
    assert added.status_code == 201, added.text
    assert added.json()["phone"] == phone and added.json()["plate"] == "KA01AB4321"
    refused = await client.post(
        "/api/visitors/passes",
        json={
            "unit_id": str(world.unit_ids[0]),
            "kind": "guest",
            "visitor_name": "Again",
            "visitor_phone": phone,
            "one_time": {
                "valid_from": now_utc().isoformat(),
                "valid_until": (now_utc() + dt.timedelta(hours=1)).isoformat(),
            },
        },
        headers=world.headers("occupant"),
    )
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "visitor_phone"
    at_gate = await verify(client, world, {"code": before.code})
    assert at_gate.json()["reason"] == "blocklisted"
    deps, guard = deps_for(world, redis), principal_of(world, "guard")
    try:
        await gate.register_walk_in(
            deps, guard, gate.WalkInForm(unit_id=world.unit_ids[0], name="X", plate="ka01ab4321"), None
        )
        raise AssertionError("a blocklisted plate was let in")
    except Conflict as exc:
        assert exc.extra == {"reason": "blocklisted"}
    # Removing the entry lets the (still active) pass through.
    assert (
        await client.delete(f"/api/visitors/blocklist/{added.json()['id']}", headers=world.headers("fm_admin"))
    ).status_code == 204
    assert (await verify(client, world, {"code": before.code})).json()["outcome"] == "checked_in"
    try:
        await blocklist.add(
            world.settings, principal_of(world, "fm_admin"), blocklist.NewBlock(name="Only a name", reason="x")
        )
        raise AssertionError("a name-only entry was accepted")
    except InvalidInput as exc:
        assert exc.errors and exc.errors[0].field == "phone"


async def test_plate_match_is_reported(client: Any, world: Any, redis: Any) -> None:
    start = now_utc() - dt.timedelta(minutes=1)
    cab = await one_time_pass(world, redis, start=start, kind="cab", plate="MH12 DE 1433")
    other = await one_time_pass(world, redis, start=start, kind="cab", plate="MH12DE9999")
    assert (await verify(client, world, {"code": cab.code, "plate": "mh-12-de-1433"})).json()["plate_matches"] is True
    assert (await verify(client, world, {"code": other.code, "plate": "MH12DE1433"})).json()["plate_matches"] is False


async def test_check_out_and_daily_help_entry_exit_reach_every_employing_unit(world: Any, redis: Any) -> None:
    helper_phone = "+919800011122"
    first, second = world.unit_ids[4], world.unit_ids[5]
    a = await add_occupant(world, "employer_a", first)
    b = await add_occupant(world, "employer_b", second)
    deps = deps_for(world, redis)
    # Monday 2026-11-23, 08:00 in Asia/Kolkata.
    monday_8am = dt.datetime(2026, 11, 23, 2, 30, tzinfo=dt.UTC)
    made = []
    for unit, who in ((first, "employer_a"), (second, "employer_b")):
        made.append(
            await create_pass(
                deps,
                principal_of(world, who),
                NewPass(
                    unit_id=unit,
                    kind="daily_help",
                    visitor_name="Lakshmi",
                    visitor_phone=helper_phone,
                    recurring=Recurring(
                        days=[0, 1, 2, 3, 4], start="07:00", end="11:00", valid_until=monday_8am + dt.timedelta(days=30)
                    ),
                ),
                now=monday_8am - dt.timedelta(days=1),
            )
        )
    guard = principal_of(world, "guard")
    evening = await gate.verify(
        deps, guard, gate.VerifyInput(code=made[0].code), now=monday_8am + dt.timedelta(hours=10)
    )
    assert evening.reason == "outside_hours"
    entered = await gate.verify(deps, guard, gate.VerifyInput(code=made[0].code), now=monday_8am)
    assert entered.outcome == "checked_in" and entered.visit_id is not None
    assert a in await notified(world, f"visitor:arrived:{entered.visit_id}:{first}")
    assert b in await notified(world, f"visitor:arrived:{entered.visit_id}:{second}")
    # Recurring passes are not used up.
    again = await gate.verify(deps, guard, gate.VerifyInput(code=made[0].code), now=monday_8am + dt.timedelta(days=1))
    assert again.outcome == "checked_in"
    left = await gate.check_out(deps, guard, entered.visit_id, now=monday_8am + dt.timedelta(hours=2))
    assert left.status == "left"
    assert b in await notified(world, f"visitor:departed:{entered.visit_id}:{second}")
    try:
        await gate.check_out(deps, guard, entered.visit_id)
        raise AssertionError("checked out twice")
    except Conflict:
        pass
