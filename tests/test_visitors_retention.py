"""Retention of visitor personal data: exactly the records past the site's period go, photos too;
counts remain; a second run changes nothing; a site's own period is honoured."""

from __future__ import annotations

import datetime as dt
from typing import Any

from app.privacy.registry import load_registries
from app.uploads import path_for
from app.visitors import gate, sitecfg
from app.visitors.passes import NewPass, OneTime, Recurring, create_pass
from schema.visitors import AnprCamera, AnprRead, Visit, VisitorDailyCount, VisitorPass
from tests.support.visitors import deps_for, jpeg, principal_of
from workers.visitor_jobs import visitor_retention


async def walk_in(world: Any, redis: Any, name: str, when: dt.datetime, photo: bool = True) -> Any:
    return await gate.register_walk_in(
        deps_for(world, redis),
        principal_of(world, "guard"),
        gate.WalkInForm(unit_id=world.unit_ids[0], name=name, phone="+919812300045", plate="DL3CAB1234"),
        jpeg() if photo else None,
        now=when,
    )


async def test_retention_deletes_exactly_the_old_visitors_and_their_photos(
    world: Any, other_world: Any, redis: Any, settings: Any
) -> None:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    old_day = (now - dt.timedelta(days=200)).replace(hour=12, minute=0, second=0)
    old = [await walk_in(world, redis, f"Old {i}", old_day + dt.timedelta(minutes=i)) for i in range(3)]
    edge = await walk_in(world, redis, "Edge", now - dt.timedelta(days=179, hours=23))
    fresh = await walk_in(world, redis, "Fresh", now - dt.timedelta(days=2))
    # Another site keeps a year: its 200-day-old visitor stays.
    await sitecfg.save(other_world.site_id, sitecfg.SettingsInput(config=sitecfg.VisitorSettings(), retention_days=365))
    theirs = await walk_in(other_world, redis, "Theirs", old_day)

    deps, occupant = deps_for(world, redis), principal_of(world, "occupant")
    old_pass = await create_pass(
        deps,
        occupant,
        NewPass(
            unit_id=world.unit_ids[0],
            kind="guest",
            visitor_name="Old Pass",
            visitor_phone="+919812300046",
            one_time=OneTime(valid_from=old_day, valid_until=old_day + dt.timedelta(hours=3)),
        ),
        now=old_day,
    )
    long_running = await create_pass(
        deps,
        occupant,
        NewPass(
            unit_id=world.unit_ids[0],
            kind="daily_help",
            visitor_name="Still Working",
            recurring=Recurring(
                days=[1, 2, 3], start="07:00", end="09:00", valid_from=old_day, valid_until=now + dt.timedelta(days=100)
            ),
        ),
        now=old_day,
    )
    camera = AnprCamera(site=world.site_id, name="Gate cam", gate="main", token_hash="0" * 64, created_at=old_day)
    await camera.save()
    for when in (old_day, now):
        await AnprRead(
            site=world.site_id,
            camera=camera.id,
            plate_encrypted="x",
            plate_index="y",
            confidence=0.9,
            direction="in",
            outcome="unknown",
            created_at=when,
        ).save()
    photos = {
        created.visit.id: (await Visit.select(Visit.photo_key).where(Visit.id == created.visit.id).first())["photo_key"]
        for created in [*old, edge, fresh, theirs]
    }
    assert all(path_for(key, settings).exists() for key in photos.values())

    _, classes = load_registries()
    assert classes["visitor_records"].default_days == 180
    ctx = {"settings": settings, "redis": redis}
    removed = await visitor_retention(ctx, now=now)
    assert removed >= 3 + 1 + 1  # other test sites may hold old records too

    remaining = {
        r["id"] for r in await Visit.select(Visit.id).where(Visit.site.is_in([world.site_id, other_world.site_id]))
    }
    assert remaining == {edge.visit.id, fresh.visit.id, theirs.visit.id}
    for created in old:
        assert not path_for(photos[created.visit.id], settings).exists()
    for created in (edge, fresh, theirs):
        assert path_for(photos[created.visit.id], settings).exists()
    passes = {r["id"] for r in await VisitorPass.select(VisitorPass.id).where(VisitorPass.site == world.site_id)}
    assert old_pass.visitor_pass.id not in passes and long_running.visitor_pass.id in passes
    reads = await AnprRead.select(AnprRead.created_at).where(AnprRead.site == world.site_id)
    assert [r["created_at"] for r in reads] == [now]

    counts = await VisitorDailyCount.select().where(VisitorDailyCount.site == world.site_id)
    assert [(c["day"], c["kind"], c["source"], c["visits"]) for c in counts] == [
        (old_day.date(), "guest", "walk_in", 3)
    ]
    # Running again (arq re-runs; the privacy cron may drive it too) deletes and counts nothing more.
    await visitor_retention(ctx, now=now)
    again = await VisitorDailyCount.select(VisitorDailyCount.visits).where(VisitorDailyCount.site == world.site_id)
    assert [c["visits"] for c in again] == [3]
    assert {r["id"] for r in await Visit.select(Visit.id).where(Visit.site == world.site_id)} == {
        edge.visit.id,
        fresh.visit.id,
    }
