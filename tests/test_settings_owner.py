"""Settings that agree: visitor retention has one owner (the privacy retention settings), which both
endpoints show and both purges read; an FM admin can purge now after a dry run that counts per data
class; an erasure is acknowledged and reviewed before it can be approved (409 naming the missing step)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from app.privacy.retention import apply_retention
from app.visitors import gate
from schema.visitors import Visit
from tests.support.visitors import deps_for, principal_of
from tests.support.world import World
from workers.visitor_jobs import visitor_retention


async def walk_in(world: World, redis: Any, name: str, when: dt.datetime) -> Any:
    return await gate.register_walk_in(
        deps_for(world, redis),
        principal_of(world, "guard"),
        gate.WalkInForm(unit_id=world.unit_ids[0], name=name, phone="+919812300077"),
        None,
        now=when,
    )


def visitor_days(classes: list[dict[str, Any]]) -> int:
    (cls,) = [c for c in classes if c["name"] == "visitor_records"]
    return int(cls["days"])


async def test_visitor_retention_has_one_owner(client: Any, world: World) -> None:
    admin = world.headers("site_admin")
    # Set at the owner: the visitors settings show it.
    changed = await client.put(
        "/api/privacy/retention", json={"class_name": "visitor_records", "days": 30}, headers=admin
    )
    assert changed.status_code == 200, changed.text
    shown = (await client.get("/api/visitors/settings", headers=admin)).json()
    assert (shown["retention_days"], shown["retention_is_default"]) == (30, False)
    assert shown["retention_owner"] == "/api/privacy/retention"

    # Written through the (deprecated) visitors field by a site admin: the owner has it.
    config = shown["config"]
    put = await client.put("/api/visitors/settings", json={"config": config, "retention_days": 365}, headers=admin)
    assert put.status_code == 200 and put.json()["retention_days"] == 365
    assert visitor_days((await client.get("/api/privacy/retention?limit=500", headers=admin)).json()["items"]) == 365

    # Leaving it out changes nothing; an FM admin may save the rest, not change the period.
    fm = world.headers("fm_admin")
    assert (await client.put("/api/visitors/settings", json={"config": config}, headers=fm)).json()[
        "retention_days"
    ] == 365
    same = await client.put("/api/visitors/settings", json={"config": config, "retention_days": 365}, headers=fm)
    assert same.status_code == 200
    refused = await client.put("/api/visitors/settings", json={"config": config, "retention_days": 7}, headers=fm)
    assert refused.status_code == 403
    assert refused.json()["errors"][0]["field"] == "retention_days"
    assert visitor_days((await client.get("/api/privacy/retention?limit=500", headers=admin)).json()["items"]) == 365


async def test_both_purges_read_the_owner(client: Any, world: World, redis: Any, settings: Any) -> None:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    old = await walk_in(world, redis, "Forty Days", now - dt.timedelta(days=40))
    recent = await walk_in(world, redis, "Ten Days", now - dt.timedelta(days=10))
    await client.put(
        "/api/privacy/retention",
        json={"class_name": "visitor_records", "days": 30},
        headers=world.headers("site_admin"),
    )
    # The visitors' own cron (workers.visitor_jobs) honours the owner's 30 days...
    await visitor_retention({"settings": settings, "redis": redis}, now)
    assert not await Visit.exists().where(Visit.id == old.visit.id)
    assert await Visit.exists().where(Visit.id == recent.visit.id)
    # ...and so does the privacy engine.
    await client.put(
        "/api/privacy/retention", json={"class_name": "visitor_records", "days": 5}, headers=world.headers("site_admin")
    )
    await apply_retention(settings, redis, now, site_ids=[world.site_id])
    assert not await Visit.exists().where(Visit.id == recent.visit.id)


async def test_an_fm_admin_purges_now_after_a_dry_run(client: Any, world: World, redis: Any) -> None:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    olds = [await walk_in(world, redis, f"Old {i}", now - dt.timedelta(days=200 + i)) for i in range(2)]
    fresh = await walk_in(world, redis, "Fresh", now - dt.timedelta(days=1))
    fm = world.headers("fm_admin")
    for role in ("occupant", "guard", "technician"):
        denied = await client.post("/api/privacy/retention/purge", json={}, headers=world.headers(role))
        assert denied.status_code == 403, role

    blind = await client.post("/api/privacy/retention/purge", json={"dry_run": False}, headers=fm)
    assert blind.status_code == 409 and blind.json()["extra"]["missing_step"] == "dry-run"

    dry = await client.post("/api/privacy/retention/purge", json={"dry_run": True}, headers=fm)
    assert dry.status_code == 200, dry.text
    preview = dry.json()
    counts = {c["class_name"]: c["rows"] for c in preview["classes"]}
    assert counts["visitor_records"] == 2  # two visits past 180 days (this site only)
    assert {"audit_log", "delivery_ledger", "export_archives", "data_rights_requests"} <= set(counts)
    assert all(c["error"] is None for c in preview["classes"])
    assert preview["total"] == sum(counts.values())
    for made in olds:  # a dry run deletes nothing
        assert await Visit.exists().where(Visit.id == made.visit.id)

    ran = await client.post(
        "/api/privacy/retention/purge", json={"dry_run": False, "preview_id": preview["preview_id"]}, headers=fm
    )
    assert ran.status_code == 200, ran.text
    assert {c["class_name"]: c["rows"] for c in ran.json()["classes"]}["visitor_records"] == 2
    for made in olds:
        assert not await Visit.exists().where(Visit.id == made.visit.id)
    assert await Visit.exists().where(Visit.id == fresh.visit.id)
    again = await client.post(
        "/api/privacy/retention/purge", json={"dry_run": False, "preview_id": preview["preview_id"]}, headers=fm
    )
    assert again.status_code == 409 and again.json()["extra"]["missing_step"] == "dry-run"

    # A period changed after the dry run: the purge is refused, the dry run must be shown again.
    second = (await client.post("/api/privacy/retention/purge", json={}, headers=fm)).json()
    await client.put(
        "/api/privacy/retention", json={"class_name": "visitor_records", "days": 1}, headers=world.headers("site_admin")
    )
    stale = await client.post(
        "/api/privacy/retention/purge", json={"dry_run": False, "preview_id": second["preview_id"]}, headers=fm
    )
    assert stale.status_code == 409 and stale.json()["extra"]["missing_step"] == "dry-run"
    assert await Visit.exists().where(Visit.id == fresh.visit.id)


async def test_a_dry_run_of_one_site_cannot_purge_another(client: Any, world: World, other_world: World) -> None:
    mine = (await client.post("/api/privacy/retention/purge", json={}, headers=world.headers("fm_admin"))).json()
    theirs = await client.post(
        "/api/privacy/retention/purge",
        json={"dry_run": False, "preview_id": mine["preview_id"]},
        headers=other_world.headers("fm_admin"),
    )
    assert theirs.status_code == 409


async def test_erasure_is_acknowledged_and_reviewed_before_approval(client: Any, world: World) -> None:
    await world.add_person("leaver", frozenset(world.roles["occupant"]), units=[(world.unit_ids[1], "tenant")])
    filed = await client.post("/api/me/data-requests", json={"kind": "erasure"}, headers=world.headers("leaver"))
    request_id = filed.json()["id"]
    admin = world.headers("site_admin")
    approve = f"/api/privacy/requests/{request_id}/approve-erasure"

    first = await client.post(approve, json={}, headers=admin)
    assert first.status_code == 409 and first.json()["extra"]["missing_step"] == "acknowledge", first.text
    acked = await client.post(f"/api/privacy/requests/{request_id}/acknowledge", headers=admin)
    assert acked.status_code == 200, acked.text
    second = await client.post(approve, json={}, headers=admin)
    assert second.status_code == 409 and second.json()["extra"]["missing_step"] == "erasure-review"
    assert "erasure-review" in second.json()["detail"]

    review = await client.get(f"/api/privacy/requests/{request_id}/erasure-review", headers=admin)
    assert review.status_code == 200
    assert review.json()["request"]["reviewed_at"] is not None
    approved = await client.post(approve, json={"resolution": "checked"}, headers=admin)
    assert approved.status_code == 202, approved.text
    assert approved.json()["status"] == "approved"
