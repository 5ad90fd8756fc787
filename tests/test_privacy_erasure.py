"""Erasure that really erases: a person with data in every module is erased, then every table,
every file and every Redis key is searched for their name, phone, email and plate (and the blind
indexes of those values), and nothing is found outside the declared legal holds."""

from __future__ import annotations

from typing import Any

from app.privacy.registry import load_registries
from schema.privacy import AuditEvent, DataRightsRequest
from tests.support.privacy import (
    Hit,
    held_columns,
    make_subject,
    scan_database,
    scan_files,
    scan_redis,
    seed_everywhere,
)
from tests.support.world import World
from workers import privacy_jobs


async def _export_now(client: Any, world: World, key: str, settings: Any, redis: Any) -> None:
    response = await client.post("/api/me/exports", headers=world.headers(key))
    assert response.status_code == 202, response.text
    await privacy_jobs.privacy_export({"settings": settings, "redis": redis}, response.json()["id"])


def _outside_holds(hits: list[Hit]) -> list[Hit]:
    held = held_columns()
    return [hit for hit in hits if hit.where not in held]


async def test_erasure_leaves_nothing_of_the_person(client: Any, world: World, settings: Any, redis: Any) -> None:
    subject = await make_subject(world)
    bystander = await make_subject(world)  # same unit, same kinds of data: must survive untouched
    await seed_everywhere(world, subject, client, redis, settings)
    await seed_everywhere(world, bystander, client, redis, settings)
    await _export_now(client, world, subject.key, settings, redis)

    # The scanners find the person everywhere before erasure (so finding nothing later means something).
    before_db = await scan_database(subject.needles)
    where = {hit.where for hit in before_db}
    assert {"person.full_name", "contact_point.value_index", "vehicle.plate_index", "notification.body"} <= where
    assert "data_rights_request.details" in where
    assert any(hit.needle == subject.plate for hit in scan_files(settings, subject.needles))
    before_redis = {hit.where for hit in await scan_redis(redis, settings, subject.needles)}
    assert any(f"user:{subject.person_id}" in w for w in before_redis), before_redis
    assert any(w.endswith(":hist") and "unit:" in w for w in before_redis), before_redis
    assert any("auth:login-failures:id:" in w for w in before_redis), before_redis

    # The person asks; the site admin reviews (legal holds shown) and approves; the job erases.
    their_session = world.headers(subject.key)
    filed = await client.post(
        "/api/me/data-requests",
        json={"kind": "erasure", "details": f"Please forget {subject.name}"},
        headers=world.headers(subject.key),
    )
    assert filed.status_code == 201, filed.text
    request_id = filed.json()["id"]
    review = await client.get(f"/api/privacy/requests/{request_id}/erasure-review", headers=world.headers("site_admin"))
    assert review.status_code == 200, review.text
    body = review.json()
    sections, _ = load_registries()
    assert {s["name"] for s in body["sections"]} == set(sections)
    counts = {s["name"]: s["rows"] for s in body["sections"]}
    assert counts["contact_points"] == 3 and counts["vehicles"] == 1 and counts["devices"] == 1
    assert any(h.startswith("data_rights_requests:") for h in body["legal_holds"]), body["legal_holds"]
    acknowledged = await client.post(
        f"/api/privacy/requests/{request_id}/acknowledge", headers=world.headers("site_admin")
    )
    assert acknowledged.status_code == 200, acknowledged.text
    approved = await client.post(
        f"/api/privacy/requests/{request_id}/approve-erasure",
        json={"resolution": "identity checked at the desk"},
        headers=world.headers("site_admin"),
    )
    assert approved.status_code == 202, approved.text
    assert approved.json()["legal_holds"] == body["legal_holds"]

    ctx = {"settings": settings, "redis": redis}
    assert await privacy_jobs.privacy_erase(ctx, request_id) == "completed"
    assert await privacy_jobs.privacy_erase(ctx, request_id) == "completed"  # a re-run changes nothing

    # Nothing of them anywhere: tables (raw values), files (archives opened), Redis (keys and values).
    assert _outside_holds(await scan_database(subject.needles)) == []
    assert scan_files(settings, subject.needles) == []
    assert await scan_redis(redis, settings, subject.needles) == []

    # The bystander's data is all still there.
    still = {hit.where for hit in await scan_database(bystander.needles)}
    assert {"person.full_name", "contact_point.value_index", "vehicle.plate_index"} <= still
    assert any(
        f"cache:person:{bystander.person_id}" in h.where for h in await scan_redis(redis, settings, bystander.needles)
    )

    # The request record stays (ids, dates, outcome), the erased person's sessions are over.
    record = await DataRightsRequest.select().where(DataRightsRequest.id == request_id).first()
    assert record is not None and record["status"] == "completed" and record["details"] == ""
    assert record["identifiers_encrypted"] is None
    assert await AuditEvent.exists().where(
        (AuditEvent.subject_id == subject.person_id) & (AuditEvent.action == "erase")
    )
    refused = await client.get("/api/me/data", headers=their_session)
    assert refused.status_code == 401


async def test_erasure_needs_a_site_admins_approval(client: Any, world: World, settings: Any, redis: Any) -> None:
    subject = await make_subject(world)
    filed = await client.post("/api/me/data-requests", json={"kind": "erasure"}, headers=world.headers(subject.key))
    request_id = filed.json()["id"]
    ctx = {"settings": settings, "redis": redis}
    # Not approved: the job refuses and erases nothing.
    try:
        await privacy_jobs.privacy_erase(ctx, request_id)
    except Exception as exc:
        assert "not approved" in str(exc)
    else:
        raise AssertionError("an unapproved erasure ran")
    assert await scan_database([subject.name]) != []
    for role in ("occupant", "fm_admin", "guard"):
        refused = await client.post(
            f"/api/privacy/requests/{request_id}/approve-erasure", json={}, headers=world.headers(role)
        )
        assert refused.status_code == 403
    rejected = await client.post(
        f"/api/privacy/requests/{request_id}/reject",
        json={"resolution": "could not verify identity"},
        headers=world.headers("site_admin"),
    )
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    again = await client.post(
        f"/api/privacy/requests/{request_id}/approve-erasure", json={}, headers=world.headers("site_admin")
    )
    assert again.status_code == 409
