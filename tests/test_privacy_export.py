"""Data export: one archive (JSON, one CSV per section, a README) with everything held about a
person, built by the arq job, downloaded through a signed link that expires."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import zipfile
from typing import Any
from urllib.parse import urlsplit

from app.people.directory import directory_for
from app.privacy.exports import build_export, download_url, get_export, request_export
from app.privacy.registry import PersonScope, load_registries
from realtime.history import history_key
from realtime.topics import user_topic
from tests.support.privacy import make_subject, seed_everywhere
from tests.support.world import World
from workers import privacy_jobs

# What seed_everywhere gives the subject in the core and notification sections.
EXPECTED = {
    "profile": 1,
    "roles": 1,
    "units": 1,
    "contact_points": 3,
    "vehicles": 1,
    "devices": 1,
    "sessions": 1,
    "notification_preferences": 2,
    "consent_history": 2,
    "do_not_disturb": 1,
    "notifications_received": 2,
    "in_app_feed": 1,
    "data_rights_requests": 2,  # the correction request, and this export's own request
    "data_exports": 1,
}


def _archive(content: bytes) -> tuple[dict[str, Any], dict[str, list[dict[str, str]]], str]:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        document = json.loads(archive.read("data.json"))
        csvs = {
            name.removeprefix("sections/").removesuffix(".csv"): list(
                csv.DictReader(io.StringIO(archive.read(name).decode()))
            )
            for name in archive.namelist()
            if name.startswith("sections/")
        }
        readme = archive.read("README.md").decode()
    return document, csvs, readme


async def test_export_of_a_seeded_person_has_every_section_with_the_right_counts(
    client: Any, world: World, settings: Any, redis: Any
) -> None:
    subject = await make_subject(world)
    await seed_everywhere(world, subject, client, redis, settings)
    requested = await client.post("/api/me/exports", headers=world.headers(subject.key))
    assert requested.status_code == 202, requested.text
    assert requested.json()["status"] == "pending" and requested.json()["download_url"] is None
    export_id = requested.json()["id"]

    assert await privacy_jobs.privacy_export({"settings": settings, "redis": redis}, export_id) == "ready"
    # The person's devices are told on their own topic (ids only, no personal values).
    frames = [json.loads(f[b"f"]) for _, f in await redis.xrange(history_key(settings, user_topic(subject.person_id)))]
    ready = [f for f in frames if f["type"] == "privacy.export.ready"]
    assert [f["data"]["export_id"] for f in ready] == [export_id]
    mine = await client.get("/api/me/exports", headers=world.headers(subject.key))
    view = next(e for e in mine.json()["items"] if e["id"] == export_id)
    assert view["status"] == "ready"
    url = urlsplit(view["download_url"])
    download = await client.get(f"{url.path}?{url.query}")  # no bearer token: the signature is the credential
    assert download.status_code == 200, download.text
    assert download.headers["content-type"] == "application/zip"
    document, csvs, readme = _archive(download.content)

    sections, _ = load_registries()
    assert set(document["sections"]) == set(sections) == set(csvs)
    for name, section in sections.items():
        exported = document["sections"][name]
        assert exported["count"] == len(exported["rows"]) == len(csvs[name]), name
        assert exported["description"] == section.description
        assert f"### {name} ({exported['count']} rows)" in readme and section.description in readme
        assert view["section_counts"][name] == exported["count"]
    counts = {name: s["count"] for name, s in document["sections"].items()}
    assert {name: counts[name] for name in EXPECTED} == EXPECTED

    # Values are the real ones (decrypted), and the other modules' sections hold what their seeds made.
    contact_values = {row["value"] for row in document["sections"]["contact_points"]["rows"]}
    assert contact_values == {subject.mobile, subject.secondary_mobile, subject.email}
    assert csvs["vehicles"][0]["plate"] == subject.plate
    assert document["sections"]["profile"]["rows"][0]["full_name"] == subject.name
    statuses = {(r["channel"], r["status"]) for r in document["sections"]["notifications_received"]["rows"]}
    assert statuses == {("in_app", "read"), ("sms", "delivered")}
    scope = PersonScope(
        site_id=world.site_id,
        person_id=subject.person_id,
        settings=settings,
        directory=directory_for(settings),
        redis=redis,
    )
    # The access log shows the staff member who read their record, and through which endpoint.
    reads = document["sections"]["access_log"]["rows"]
    assert any(
        r["actor_id"] == str(world.people["fm_admin"]) and r["route"] == "/api/occupants/{occupant_id}" for r in reads
    ), [(r["actor_roles"], r["route"]) for r in reads]
    for name, section in sections.items():
        if name in EXPECTED or name == "access_log":
            continue
        # Other modules' sections: as many rows as the module holds for the person right now.
        assert counts[name] == len(await section.export(scope)), name
    other_modules = {
        section.export.__module__ for name, section in sections.items() if name not in EXPECTED and name != "access_log"
    }
    for module in other_modules:
        held = sum(counts[n] for n, s in sections.items() if s.export.__module__ == module)
        assert held > 0, f"{module}: seed_person_data made nothing that its sections export"


async def test_export_link_expires_with_410_and_a_forged_link_is_404(
    client: Any, world: World, settings: Any, redis: Any
) -> None:
    subject = await make_subject(world)
    made = dt.datetime.now(dt.UTC) - dt.timedelta(days=4)  # built 4 days ago: the 72-hour link is over
    view = await request_export(
        settings, site_id=world.site_id, person_id=subject.person_id, created_by=subject.person_id, now=made
    )
    await build_export(settings, redis, directory_for(settings), view.id, now=made)
    built = await get_export(settings, world.site_id, view.id)
    assert built.status == "expired" and built.download_url is None
    assert built.expires_at is not None
    url = urlsplit(download_url(settings, view.id, built.expires_at))
    expired = await client.get(f"{url.path}?{url.query}")
    assert expired.status_code == 410
    assert expired.headers["content-type"].startswith("application/problem+json")
    fresh = await request_export(settings, site_id=world.site_id, person_id=subject.person_id, created_by=None)
    ready = await build_export(settings, redis, directory_for(settings), fresh.id)
    assert ready is not None and ready.download_url is not None
    url = urlsplit(ready.download_url)
    forged = url.query.replace("signature=", "signature=0")
    assert (await client.get(f"{url.path}?{forged}")).status_code == 404
    stretched = url.query.replace("expires=", "expires=9")
    assert (await client.get(f"{url.path}?{stretched}")).status_code == 404
    assert (await client.get(f"{url.path}?{url.query}")).status_code == 200


async def test_exports_are_per_person(client: Any, world: World) -> None:
    mine = await client.post("/api/me/exports", headers=world.headers("occupant"))
    assert mine.status_code == 202
    theirs = await client.get("/api/me/exports", headers=world.headers("guard"))
    assert all(e["id"] != mine.json()["id"] for e in theirs.json()["items"])


async def test_the_tick_builds_an_export_whose_job_was_lost(world: World, settings: Any, redis: Any) -> None:
    long_ago = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    view = await request_export(
        settings, site_id=world.site_id, person_id=world.people["guard"], created_by=None, now=long_ago
    )
    ctx = {"settings": settings, "redis": redis}
    # Within the grace period the tick leaves it to its own job; after it, the tick builds it.
    assert (await privacy_jobs.privacy_tick(ctx, long_ago + dt.timedelta(minutes=1)))["exports"] == 0
    done = await privacy_jobs.privacy_tick(ctx, long_ago + dt.timedelta(minutes=3))
    assert done["exports"] == 1
    built = await get_export(settings, world.site_id, view.id, now=long_ago + dt.timedelta(minutes=4))
    assert built.status == "ready" and built.section_counts["roles"] == 1
