"""The retention engine: per site and per data class, one cron applies every registered class and
logs what it deleted (counts, never content)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from app.people.directory import directory_for
from app.privacy.exports import build_export, request_export
from app.privacy.registry import load_registries
from app.privacy.retention import apply_retention
from notifications.audience import Audience
from notifications.categories import Category, Channel
from notifications.service import NotificationRequest, create_notification
from schema.notifications import Delivery, Notification
from schema.privacy import AuditEvent, DataExport, RetentionRunLog
from tests.support.world import World
from workers import privacy_jobs

NOW = dt.datetime(2027, 6, 1, 2, 30, tzinfo=dt.UTC)


async def _old_delivery(world: World, at: dt.datetime) -> Any:
    notification_id, _ = await create_notification(
        site_id=world.site_id,
        request=NotificationRequest(
            title="Old",
            body="Lift maintenance",
            category=Category.ANNOUNCEMENT,
            audience=Audience(everyone=True),
            channels=[Channel.IN_APP],
        ),
        now=at,
    )
    await Notification.update({Notification.status: "completed"}).where(Notification.id == notification_id)
    delivery = Delivery(
        site=world.site_id,
        notification=notification_id,
        person=world.people["occupant"],
        channel="in_app",
        status="read",
        created_at=at,
    )
    await delivery.save()
    return notification_id


async def test_one_cron_applies_every_class_for_every_site_and_logs_counts(
    client: Any, world: World, other_world: World, settings: Any, redis: Any
) -> None:
    # Defaults from the registry, and a site's own period.
    classes = (await client.get("/api/privacy/retention?limit=500", headers=world.headers("site_admin"))).json()[
        "items"
    ]
    by_name = {c["name"]: c for c in classes}
    _, registered = load_registries()
    assert set(by_name) == set(registered)
    assert by_name["delivery_ledger"]["days"] == 365 and by_name["export_archives"]["days"] == 7
    changed = await client.put(
        "/api/privacy/retention",
        json={"class_name": "delivery_ledger", "days": 30},
        headers=world.headers("site_admin"),
    )
    assert changed.status_code == 200, changed.text
    unknown = await client.put(
        "/api/privacy/retention", json={"class_name": "everything", "days": 30}, headers=world.headers("site_admin")
    )
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "class_name"

    # 60-day-old ledger rows: past this site's 30 days, within the other site's default 365.
    here = await _old_delivery(world, NOW - dt.timedelta(days=60))
    there = await _old_delivery(other_world, NOW - dt.timedelta(days=60))
    fresh = await _old_delivery(world, NOW - dt.timedelta(days=5))
    # A 10-day-old export archive (past 7 days) and a 3-year-old audit entry (past 730 days).
    export = await request_export(
        settings,
        site_id=world.site_id,
        person_id=world.people["occupant"],
        created_by=None,
        now=NOW - dt.timedelta(days=10),
    )
    built = await build_export(settings, redis, directory_for(settings), export.id, now=NOW - dt.timedelta(days=10))
    assert built is not None
    archive = await DataExport.select(DataExport.file_key).where(DataExport.id == export.id).first()
    assert archive is not None and (settings.export_path / archive["file_key"]).exists()
    await AuditEvent(
        site=world.site_id,
        at=NOW - dt.timedelta(days=1100),
        subject_id=world.people["guard"],
        action="read",
        data="contact_points",
    ).save()

    # The clock is far ahead: run these two sites only, so other tests' sites keep their rows.
    ran = await apply_retention(settings, redis, NOW, site_ids=[world.site_id, other_world.site_id])
    assert sum(r.deleted for r in ran) >= 4

    assert not await Notification.exists().where(Notification.id == here)
    assert await Notification.exists().where(Notification.id == there)
    assert await Notification.exists().where(Notification.id == fresh)
    assert not await DataExport.exists().where(DataExport.id == export.id)
    assert not (settings.export_path / archive["file_key"]).exists()
    assert not await AuditEvent.exists().where(
        (AuditEvent.site == world.site_id) & (AuditEvent.at < NOW - dt.timedelta(days=1000))
    )

    runs = (await client.get("/api/privacy/retention/runs", headers=world.headers("site_admin"))).json()["items"]
    logged = {r["class_name"]: r for r in runs if r["ran_at"].startswith("2027-06-01")}
    assert set(logged) == set(registered)
    assert logged["delivery_ledger"]["deleted"] == 2 and logged["delivery_ledger"]["days"] == 30
    assert logged["export_archives"]["deleted"] == 1
    assert logged["audit_log"]["deleted"] == 1
    assert all(r["error"] is None for r in logged.values())
    # The other site ran too, with its own (default) period, and its log is its own.
    theirs = await RetentionRunLog.select().where(
        (RetentionRunLog.site == other_world.site_id) & (RetentionRunLog.class_name == "delivery_ledger")
    )
    assert [(r["days"], r["deleted"]) for r in theirs if r["ran_at"] == NOW] == [(365, 0)]
    # A log entry holds counts, never content.
    assert set(runs[0]) == {"class_name", "days", "cutoff", "deleted", "error", "ran_at"}


async def test_the_cron_runs_every_site(world: World, other_world: World, settings: Any, redis: Any) -> None:
    now = dt.datetime.now(dt.UTC)
    await privacy_jobs.privacy_retention({"settings": settings, "redis": redis}, now)
    _, registered = load_registries()
    for site in (world.site_id, other_world.site_id):
        rows = await RetentionRunLog.select(RetentionRunLog.class_name).where(
            (RetentionRunLog.site == site) & (RetentionRunLog.ran_at == now)
        )
        assert {r["class_name"] for r in rows} == set(registered)
