"""Data-rights requests: tracked records with 7-day and 30-day deadlines, alerts to the site admin
before each deadline passes (under a controlled clock), and records kept at least 3 years."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from app.privacy import requests as rights
from app.privacy.retention import apply_retention
from notifications.audience import Audience, resolve_audience
from realtime.history import history_key
from realtime.topics import user_topic
from schema.jsonvalue import as_dict
from schema.notifications import Notification
from schema.privacy import DataRightsRequest
from tests.support.world import World
from workers import privacy_jobs

T0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)


async def _alerts_for(request_id: Any) -> dict[str, dict[str, Any]]:
    rows = await Notification.select().where(Notification.idempotency_key.like(f"privacy:{request_id}:%"))
    return {row["idempotency_key"].rsplit(":", 1)[1]: row for row in rows}


async def test_unanswered_request_triggers_the_7_day_and_30_day_alerts(world: World, settings: Any) -> None:
    request = await rights.create_request(
        site_id=world.site_id, person_id=world.people["occupant"], kind="access", now=T0
    )
    assert request.ack_due_at == T0 + dt.timedelta(days=7)
    assert request.due_at == T0 + dt.timedelta(days=30)
    ctx = {"settings": settings}

    async def tick(at: dt.datetime) -> set[str]:
        await privacy_jobs.privacy_deadlines(ctx, at)
        return set(await _alerts_for(request.id))

    assert await tick(T0 + dt.timedelta(days=1)) == set()
    assert await tick(T0 + dt.timedelta(days=4, hours=23)) == set()
    # Two days before the 7-day deadline: the site admins are told.
    assert await tick(T0 + dt.timedelta(days=5, hours=1)) == {"ack_due_soon"}
    assert await tick(T0 + dt.timedelta(days=6)) == {"ack_due_soon"}  # once, not on every run
    assert await tick(T0 + dt.timedelta(days=7, minutes=1)) == {"ack_due_soon", "ack_overdue"}
    assert await tick(T0 + dt.timedelta(days=24)) == {"ack_due_soon", "ack_overdue"}
    # Five days before the 30-day deadline, and once it has passed.
    after_25 = await tick(T0 + dt.timedelta(days=25, hours=1))
    assert after_25 == {"ack_due_soon", "ack_overdue", "completion_due_soon"}
    final = await tick(T0 + dt.timedelta(days=30, minutes=1))
    assert final == {"ack_due_soon", "ack_overdue", "completion_due_soon", "completion_overdue"}
    assert final == await tick(T0 + dt.timedelta(days=31))

    alerts = await _alerts_for(request.id)
    for kind, row in alerts.items():
        assert row["site"] == world.site_id and row["kind"] == "event"
        assert str(request.id) in row["body"]
        assert as_dict(row["data"]) == {"request_id": str(request.id), "alert": kind}
        audience = Audience(**{k: v for k, v in as_dict(row["audience"]).items()})
        # NOTIFY expands the audience to the site's admins, and to no one else.
        assert await resolve_audience(world.site_id, audience) == [world.people["site_admin"]]


async def test_an_acknowledged_request_gets_only_the_completion_alerts(
    client: Any, world: World, settings: Any
) -> None:
    request = await rights.create_request(
        site_id=world.site_id, person_id=world.people["occupant"], kind="objection", now=T0
    )
    await rights.acknowledge(world.site_id, request.id, world.people["site_admin"], now=T0 + dt.timedelta(days=1))
    await rights.check_deadlines(T0 + dt.timedelta(days=8))
    assert set(await _alerts_for(request.id)) == set()
    await rights.check_deadlines(T0 + dt.timedelta(days=26))
    assert set(await _alerts_for(request.id)) == {"completion_due_soon"}
    done = await client.post(
        f"/api/privacy/requests/{request.id}/complete",
        json={"resolution": "promotional messages stopped"},
        headers=world.headers("site_admin"),
    )
    assert done.status_code == 200 and done.json()["status"] == "completed"
    await rights.check_deadlines(T0 + dt.timedelta(days=40))
    assert set(await _alerts_for(request.id)) == {"completion_due_soon"}


async def test_requests_through_the_api(client: Any, world: World, settings: Any, redis: Any) -> None:
    filed = await client.post(
        "/api/me/data-requests", json={"kind": "access", "details": "all of it"}, headers=world.headers("occupant")
    )
    assert filed.status_code == 201
    body = filed.json()
    assert body["status"] == "open" and body["acknowledged_at"] is None
    mine = await client.get("/api/me/data-requests", headers=world.headers("occupant"))
    assert [r["id"] for r in mine.json()["items"]] == [body["id"]]
    listed = await client.get("/api/privacy/requests?status=open", headers=world.headers("site_admin"))
    assert body["id"] in [r["id"] for r in listed.json()["items"]]
    acked = await client.post(f"/api/privacy/requests/{body['id']}/acknowledge", headers=world.headers("site_admin"))
    assert acked.status_code == 200 and acked.json()["acknowledged_at"] is not None
    topic = history_key(settings, user_topic(world.people["occupant"]))
    frames = [json.loads(f[b"f"]) for _, f in await redis.xrange(topic)]
    assert [f["data"] for f in frames if f["type"] == "privacy.request.updated"] == [
        {"request_id": body["id"], "kind": "access", "status": "acknowledged"}
    ]
    reject_without_reason = await client.post(
        f"/api/privacy/requests/{body['id']}/reject", json={}, headers=world.headers("site_admin")
    )
    assert reject_without_reason.status_code == 422
    assert reject_without_reason.json()["errors"][0]["field"] == "resolution"
    bad_kind = await client.post("/api/me/data-requests", json={"kind": "sell"}, headers=world.headers("occupant"))
    assert bad_kind.status_code == 400
    for_them = await client.post(
        "/api/privacy/requests",
        json={"person_id": str(world.people["guard"]), "kind": "correction", "details": "letter of 2 Dec"},
        headers=world.headers("site_admin"),
    )
    assert for_them.status_code == 201 and for_them.json()["person_id"] == str(world.people["guard"])


async def test_request_records_are_kept_3_years_then_purged(
    client: Any, world: World, settings: Any, redis: Any
) -> None:
    request = await rights.create_request(
        site_id=world.site_id, person_id=world.people["occupant"], kind="access", now=T0
    )
    await rights.close(
        world.site_id, request.id, None, outcome="completed", resolution="sent", now=T0 + dt.timedelta(days=3)
    )
    # A site cannot keep them for less than 3 years.
    too_short = await client.put(
        "/api/privacy/retention",
        json={"class_name": "data_rights_requests", "days": 365},
        headers=world.headers("site_admin"),
    )
    assert too_short.status_code == 422 and too_short.json()["errors"][0]["field"] == "days"
    two_years_on = T0 + dt.timedelta(days=2 * 365)
    await apply_retention(settings, redis, two_years_on, site_ids=[world.site_id])
    assert await DataRightsRequest.exists().where(DataRightsRequest.id == request.id)
    three_years_on = T0 + dt.timedelta(days=3 * 366 + 4)
    await apply_retention(settings, redis, three_years_on, site_ids=[world.site_id])
    assert not await DataRightsRequest.exists().where(DataRightsRequest.id == request.id)
