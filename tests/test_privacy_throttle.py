"""Costly privacy requests are throttled: one export being built per person (asking again answers it),
a per-person budget of export and data-rights requests per window (429 with Retry-After beyond), and
archives deleted once their link has expired."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from app.people.directory import directory_for
from app.privacy.exports import ask_for_export, build_export, download_url, request_export
from schema.privacy import DataExport, DataRightsRequest
from tests.support.world import World
from workers import privacy_jobs


@pytest.fixture
async def limited(settings: Any) -> AsyncIterator[Any]:
    """The app at the real limits (the suite's shared client runs them scaled up), counting on its own."""
    from app.main import create_app

    own = msgspec.structs.replace(
        settings, rate_limit_scale=1.0, redis_prefix=f"{settings.redis_prefix}pl-{secrets.token_hex(3)}:"
    )
    async with AsyncTestClient(app=create_app(own)) as client:
        yield client


async def fresh_window(seconds: int) -> None:
    """Windows are fixed: start the burst well inside one, so it cannot straddle two."""
    left = seconds - time.time() % seconds
    if left < 15:
        await asyncio.sleep(left + 0.5)


async def test_the_21st_export_request_in_the_window_is_refused_with_429_and_retry_after(
    limited: Any, world: World, settings: Any
) -> None:
    per_person, window = settings.privacy_requests_per_window, settings.privacy_request_window_seconds
    assert per_person == 20 and window == 3600  # the defaults this test is about
    await fresh_window(window)
    occupant = world.headers("occupant")
    first = await limited.post("/api/me/exports", headers=occupant)
    assert first.status_code == 202, first.text
    export_id = first.json()["id"]
    # Asking again while it is being built answers the same export: nothing new is filed or built,
    # but each ask counts towards the budget.
    for _ in range(per_person - 1):
        again = await limited.post("/api/me/exports", headers=occupant)
        assert again.status_code == 200, again.text
        assert again.json()["id"] == export_id and again.json()["status"] == "pending"
    refused = await limited.post("/api/me/exports", headers=occupant)
    assert refused.status_code == 429, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    retry_after = int(refused.headers["retry-after"])
    assert 1 <= retry_after <= window
    problem = refused.json()
    assert problem["status"] == 429 and problem["extra"] == {"limit": "privacy", "retry_after_seconds": retry_after}
    # Data-rights requests draw on the same budget.
    filed = await limited.post("/api/me/data-requests", json={"kind": "access"}, headers=occupant)
    assert filed.status_code == 429 and filed.json()["extra"]["limit"] == "privacy"
    # One export row and one export request were made for all those asks.
    person = world.people["occupant"]
    assert await DataExport.count().where(DataExport.person_id == person) == 1
    assert (
        await DataRightsRequest.count().where(
            (DataRightsRequest.person_id == person) & (DataRightsRequest.kind == "export")
        )
        == 1
    )
    # The budget is per person: someone else from the same address is still served.
    other = await limited.post("/api/me/exports", headers=world.headers("guard"))
    assert other.status_code == 202, other.text


async def test_an_export_is_requested_anew_once_the_last_one_is_built(world: World, settings: Any, redis: Any) -> None:
    person = world.people["occupant"]
    first, created = await ask_for_export(settings, site_id=world.site_id, person_id=person, created_by=person)
    assert created
    again, created = await ask_for_export(settings, site_id=world.site_id, person_id=person, created_by=person)
    assert not created and again.id == first.id
    await build_export(settings, redis, directory_for(settings), first.id)
    fresh, created = await ask_for_export(settings, site_id=world.site_id, person_id=person, created_by=person)
    assert created and fresh.id != first.id and fresh.status == "pending"


async def test_concurrent_export_requests_make_one_export(world: World, settings: Any) -> None:
    person = world.people["guard"]
    answers = await asyncio.gather(
        *(ask_for_export(settings, site_id=world.site_id, person_id=person, created_by=person) for _ in range(5))
    )
    assert len({view.id for view, _ in answers}) == 1
    assert sum(created for _, created in answers) == 1
    assert await DataExport.count().where(DataExport.person_id == person) == 1


async def test_expired_archives_are_deleted_by_the_cron_and_their_link_is_gone(
    client: Any, world: World, settings: Any, redis: Any
) -> None:
    person = world.people["occupant"]
    now = dt.datetime.now(dt.UTC)
    made = now - dt.timedelta(days=4)  # its 72-hour link ended a day ago
    old = await request_export(settings, site_id=world.site_id, person_id=person, created_by=person, now=made)
    await build_export(settings, redis, directory_for(settings), old.id, now=made)
    fresh = await request_export(settings, site_id=world.site_id, person_id=person, created_by=person, now=now)
    await build_export(settings, redis, directory_for(settings), fresh.id, now=now)
    rows = {r["id"]: r for r in await DataExport.select().where(DataExport.id.is_in([old.id, fresh.id]))}
    old_file = settings.export_path / rows[old.id]["file_key"]
    fresh_file = settings.export_path / rows[fresh.id]["file_key"]
    assert old_file.exists() and fresh_file.exists()

    ctx = {"settings": settings, "redis": redis}
    assert await privacy_jobs.privacy_expire_exports(ctx, now) >= 1  # other tests' exports may expire too
    assert not old_file.exists() and fresh_file.exists()
    row = await DataExport.select().where(DataExport.id == old.id).first()
    assert row is not None and row["status"] == "expired" and row["file_key"] is None
    assert await privacy_jobs.privacy_expire_exports(ctx, now) == 0  # safe to re-run

    url = urlsplit(download_url(settings, old.id, rows[old.id]["expires_at"]))
    gone = await client.get(f"{url.path}?{url.query}")
    assert gone.status_code == 410
    assert gone.headers["content-type"].startswith("application/problem+json")
    listed = await client.get("/api/me/exports", headers=world.headers("occupant"))
    views = listed.json()
    views = views["items"] if isinstance(views, dict) else views
    assert {v["id"]: v["status"] for v in views} == {str(old.id): "expired", str(fresh.id): "ready"}
    # The worker runs it on a schedule.
    assert any(job.coroutine is privacy_jobs.privacy_expire_exports for job in privacy_jobs.CRON_JOBS)
