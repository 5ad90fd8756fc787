"""The HTTP surface of the notification pipeline: announcements, consent, DND, the feed and NCPR."""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import pytest
from arq.connections import ArqRedis

from app.auth.roles import Role
from app.people.directory import directory_for
from notifications import fanout, sender
from notifications.categories import Category, Channel, Urgency
from notifications.channels.in_app import InAppAdapter
from notifications.context import NotifyContext
from notifications.facts import load_facts
from notifications.policy import Action, Decision, Reason, SitePolicy, decide
from notifications.providers import Providers
from realtime.history import read_since
from realtime.topics import user_topic
from schema.notifications import NationalDndEntry
from tests.support.notify import notify_queue
from tests.support.world import World

PROBLEM = "application/problem+json"


@pytest.fixture
async def jobs(settings: Any) -> AsyncIterator[ArqRedis]:
    async with notify_queue(settings) as pool:
        yield pool


async def queued_expands(pool: ArqRedis) -> list[str]:
    return [job.args[0] for job in await pool.queued_jobs() if job.function == "notify_expand"]


def random_mobile() -> str:
    """A valid Indian mobile number, unique enough per test (keyword STOPs match across sites)."""
    return f"+9198{secrets.randbelow(10**8):08d}"


def announcement(world: World, **fields: Any) -> dict[str, Any]:
    return {
        "title": fields.pop("title", "Water shutdown"),
        "body": fields.pop("body", "Tower A water off 10:00-12:00"),
        "category": fields.pop("category", "announcement"),
        "audience": fields.pop("audience", {"unit_ids": [str(world.unit_ids[0])]}),
        "channels": fields.pop("channels", ["in_app", "sms"]),
        **fields,
    }


def in_app_context(world: World) -> NotifyContext:
    from app.redis import create_redis

    settings = world.settings
    providers = Providers({Channel.IN_APP: InAppAdapter()}, {}, None)
    # The client is made per call: connections open lazily on the loop that first uses them.
    return NotifyContext(
        settings=settings, redis=create_redis(settings), directory=directory_for(settings), providers=providers
    )


# ------------------------------------------------------------------------------ announcements


async def test_create_announcement_enqueues_expansion_and_idempotency_key_returns_the_first(
    client: Any, world: World, jobs: ArqRedis
) -> None:
    body = announcement(world, idempotency_key=f"water-{world.slug}")
    first = await client.post("/api/announcements", json=body, headers=world.headers("fm_admin"))
    assert first.status_code == 201, first.text
    notification_id = first.json()["id"]
    assert notification_id in await queued_expands(jobs)

    again = await client.post("/api/announcements", json=body, headers=world.headers("site_admin"))
    assert (again.status_code, again.json()["id"]) == (200, notification_id)
    assert (await queued_expands(jobs)).count(notification_id) == 1

    view = (await client.get(f"/api/announcements/{notification_id}", headers=world.headers("fm_admin"))).json()
    assert (view["status"], view["title"], sorted(view["channels"])) == (
        "scheduled",
        "Water shutdown",
        ["in_app", "sms"],
    )


async def test_scheduled_announcement_is_left_to_the_tick(client: Any, world: World, jobs: ArqRedis) -> None:
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)).isoformat()
    response = await client.post(
        "/api/announcements", json=announcement(world, scheduled_at=later), headers=world.headers("fm_admin")
    )
    assert response.status_code == 201
    assert response.json()["id"] not in await queued_expands(jobs)


async def test_audience_ids_of_another_site_are_422_naming_the_field(
    client: Any, world: World, other_world: World
) -> None:
    body = announcement(world, audience={"unit_ids": [str(world.unit_ids[1]), str(other_world.unit_ids[0])]})
    response = await client.post("/api/announcements", json=body, headers=world.headers("fm_admin"))
    assert response.status_code == 422
    assert response.headers["content-type"].startswith(PROBLEM)
    errors = response.json()["errors"]
    assert [e["field"] for e in errors] == ["audience.unit_ids"]
    assert str(other_world.unit_ids[0]) in errors[0]["message"]

    body = announcement(world, audience={"person_ids": [str(other_world.people["occupant"])]})
    response = await client.post("/api/announcements", json=body, headers=world.headers("fm_admin"))
    assert [e["field"] for e in response.json()["errors"]] == ["audience.person_ids"]

    empty = await client.post(
        "/api/announcements", json=announcement(world, audience={}), headers=world.headers("fm_admin")
    )
    assert (empty.status_code, empty.json()["errors"][0]["field"]) == (422, "audience")


async def test_list_is_newest_first_and_detail_counts_by_channel(
    client: Any, world: World, other_world: World, jobs: ArqRedis
) -> None:
    ids = []
    for title in ("First", "Second", "Third"):
        response = await client.post(
            "/api/announcements", json=announcement(world, title=title), headers=world.headers("fm_admin")
        )
        ids.append(response.json()["id"])
    await client.post("/api/announcements", json=announcement(other_world), headers=other_world.headers("fm_admin"))

    page = (await client.get("/api/announcements?limit=2", headers=world.headers("site_admin"))).json()
    assert page["total"] == 3
    assert [item["title"] for item in page["items"]] == ["Third", "Second"]
    assert all(item["created_by"] == str(world.people["fm_admin"]) for item in page["items"])

    await fanout.expand(in_app_context(world), UUID(ids[0]))
    view = (await client.get(f"/api/announcements/{ids[0]}", headers=world.headers("fm_admin"))).json()
    assert view["status"] == "sending" and view["targeted"] == 1
    # The unit's occupant has no mobile: SMS is suppressed with its reason; in-app waits to be sent.
    assert view["counters"]["by_channel"] == {"in_app": {"pending": 1}, "sms": {"suppressed": 1}}
    assert view["counters"]["suppressed_by_reason"] == {"no_contact_point": 1}
    sending = (await client.get("/api/announcements?status=sending", headers=world.headers("fm_admin"))).json()
    assert [item["id"] for item in sending["items"]] == [ids[0]]


async def test_cancel_then_cancel_again_is_409_and_other_sites_see_404(
    client: Any, world: World, other_world: World, jobs: ArqRedis
) -> None:
    created = await client.post("/api/announcements", json=announcement(world), headers=world.headers("fm_admin"))
    notification_id = created.json()["id"]
    cancelled = await client.post(f"/api/announcements/{notification_id}/cancel", headers=world.headers("fm_admin"))
    assert (cancelled.status_code, cancelled.json()["status"]) == (200, "cancelled")
    again = await client.post(f"/api/announcements/{notification_id}/cancel", headers=world.headers("fm_admin"))
    assert again.status_code == 409
    assert again.headers["content-type"].startswith(PROBLEM)
    foreign = await client.post(f"/api/announcements/{notification_id}/cancel", headers=other_world.headers("fm_admin"))
    assert foreign.status_code == 404
    # Occupants and guards cannot announce.
    refused = await client.post("/api/announcements", json=announcement(world), headers=world.headers("occupant"))
    assert refused.status_code == 403


# ------------------------------------------------------------------------------ consent


async def test_consent_change_is_recorded_in_history_and_shown(client: Any, world: World, settings: Any) -> None:
    headers = world.headers("occupant")
    before = (await client.get("/api/me/notification-preferences?limit=500", headers=headers)).json()["items"]
    assert len(before) == len(Channel) * len(Category)
    promo = next(p for p in before if (p["channel"], p["category"]) == ("sms", "promotional"))
    assert (promo["enabled"], promo["is_default"]) == (False, True)

    body = {
        "preferences": [
            {"channel": "sms", "category": "promotional", "enabled": True},
            {"channel": "whatsapp", "category": "announcement", "enabled": False},
        ],
        "source": "web",
    }
    changed = await client.put("/api/me/notification-preferences", json=body, headers=headers)
    assert changed.status_code == 200, changed.text
    now = {(p["channel"], p["category"]): p for p in changed.json()}
    assert now[("sms", "promotional")]["enabled"] is True
    assert now[("whatsapp", "announcement")] == {
        "channel": "whatsapp",
        "category": "announcement",
        "enabled": False,
        "is_default": False,
    }

    history = (await client.get("/api/me/consent-history", headers=headers)).json()
    assert history["total"] == 2
    assert {(h["channel"], h["category"], h["granted"], h["source"]) for h in history["items"]} == {
        ("sms", "promotional", True, "web"),
        ("whatsapp", "announcement", False, "web"),
    }
    assert all(h["policy_version"] == settings.notify_policy_version for h in history["items"])
    assert all("actor_id" not in h or h["actor_id"] is None for h in history["items"])

    # The same choices again change nothing, so nothing more is recorded.
    await client.put("/api/me/notification-preferences", json=body, headers=headers)
    assert (await client.get("/api/me/consent-history", headers=headers)).json()["total"] == 2

    # Withdrawal is as easy: one call, default source "app".
    withdraw = {"preferences": [{"channel": "sms", "category": "promotional", "enabled": False}]}
    await client.put("/api/me/notification-preferences", json=withdraw, headers=headers)
    latest = (await client.get("/api/me/consent-history?limit=1", headers=headers)).json()
    assert (latest["total"], len(latest["items"])) == (3, 1)
    assert (latest["items"][0]["granted"], latest["items"][0]["source"]) == (False, "app")


async def test_a_pair_given_twice_is_422(client: Any, world: World) -> None:
    body = {
        "preferences": [
            {"channel": "sms", "category": "billing", "enabled": True},
            {"channel": "sms", "category": "billing", "enabled": False},
        ]
    }
    response = await client.put("/api/me/notification-preferences", json=body, headers=world.headers("guard"))
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "preferences[1]"
    bad_source = await client.put(
        "/api/me/notification-preferences", json={"preferences": [], "source": "admin"}, headers=world.headers("guard")
    )
    assert bad_source.status_code == 400


async def test_staff_change_on_behalf_is_recorded_with_actor_and_admin_source(
    client: Any, world: World, other_world: World
) -> None:
    person = world.people["occupant"]
    body = {"preferences": [{"channel": "email", "category": "billing", "enabled": False}]}
    response = await client.put(
        f"/api/people/{person}/notification-preferences", json=body, headers=world.headers("site_admin")
    )
    assert response.status_code == 200, response.text
    shown = (
        await client.get(f"/api/people/{person}/notification-preferences?limit=500", headers=world.headers("fm_admin"))
    ).json()["items"]
    assert next(p for p in shown if (p["channel"], p["category"]) == ("email", "billing"))["enabled"] is False

    own = (await client.get("/api/me/consent-history", headers=world.headers("occupant"))).json()["items"]
    assert [(h["source"], h["actor_id"], h["granted"]) for h in own] == [
        ("admin", str(world.people["site_admin"]), False)
    ]
    staff_view = (await client.get(f"/api/people/{person}/consent-history", headers=world.headers("fm_admin"))).json()
    assert staff_view["items"] == own

    foreign = await client.put(
        f"/api/people/{person}/notification-preferences", json=body, headers=other_world.headers("site_admin")
    )
    assert foreign.status_code == 404
    assert (
        await client.get(f"/api/people/{person}/notification-preferences", headers=world.headers("occupant"))
    ).status_code == 403


# ------------------------------------------------------------------------------ DND


async def test_dnd_round_trip_validation_and_snooze(client: Any, world: World) -> None:
    headers = world.headers("technician")
    initial = (await client.get("/api/me/dnd", headers=headers)).json()
    assert initial == {"timezone": "Asia/Kolkata", "quiet_hours": [], "snooze_until": None}

    quiet = [{"weekday": 0, "start": "22:00", "end": "07:00"}, {"weekday": 5, "start": "13:00", "end": "15:00"}]
    saved = await client.put("/api/me/dnd", json={"timezone": "Europe/Berlin", "quiet_hours": quiet}, headers=headers)
    assert saved.status_code == 200, saved.text
    assert (await client.get("/api/me/dnd", headers=headers)).json() == {
        "timezone": "Europe/Berlin",
        "quiet_hours": quiet,
        "snooze_until": None,
    }

    bad_zone = await client.put("/api/me/dnd", json={"timezone": "Mars/Olympus"}, headers=headers)
    assert bad_zone.status_code == 422
    assert bad_zone.json()["errors"][0]["field"] == "timezone"
    bad_day = await client.put(
        "/api/me/dnd",
        json={"timezone": "UTC", "quiet_hours": [{"weekday": 9, "start": "22:00", "end": "07:00"}]},
        headers=headers,
    )
    assert (bad_day.status_code, bad_day.json()["errors"][0]["field"]) == (422, "quiet_hours[0].weekday")
    bad_time = await client.put(
        "/api/me/dnd",
        json={"timezone": "UTC", "quiet_hours": [{"weekday": 1, "start": "late", "end": "07:00"}]},
        headers=headers,
    )
    assert (bad_time.status_code, bad_time.json()["errors"][0]["field"]) == (422, "quiet_hours[0].start")
    naive = await client.put(
        "/api/me/dnd", json={"timezone": "UTC", "snooze_until": "2030-01-01T10:00:00"}, headers=headers
    )
    assert (naive.status_code, naive.json()["errors"][0]["field"]) == (422, "snooze_until")

    before = dt.datetime.now(dt.UTC)
    snoozed = (await client.post("/api/me/dnd/snooze", json={"minutes": 30}, headers=headers)).json()
    until = dt.datetime.fromisoformat(snoozed["snooze_until"])
    assert before + dt.timedelta(minutes=29) < until < before + dt.timedelta(minutes=31)
    assert (snoozed["timezone"], snoozed["quiet_hours"]) == ("Europe/Berlin", quiet)  # kept
    cleared = (await client.post("/api/me/dnd/snooze", json={"minutes": 0}, headers=headers)).json()
    assert cleared["snooze_until"] is None
    too_long = await client.post("/api/me/dnd/snooze", json={"minutes": 100_000}, headers=headers)
    assert too_long.status_code == 400


# ------------------------------------------------------------------------------ feed


async def _feed_for(client: Any, world: World, titles: list[str], extra_people: list[UUID]) -> list[str]:
    """Announce in-app to the world's occupant (and others) and run the pipeline; returns notification ids."""
    ctx = in_app_context(world)
    ids = []
    audience = {"person_ids": [str(world.people["occupant"]), *(str(p) for p in extra_people)]}
    for title in titles:
        response = await client.post(
            "/api/announcements",
            json=announcement(world, title=title, audience=audience, channels=["in_app"]),
            headers=world.headers("fm_admin"),
        )
        notification_id = UUID(response.json()["id"])
        await fanout.expand(ctx, notification_id)
        await sender.send_pending(ctx, notification_id, Channel.IN_APP)
        ids.append(str(notification_id))
    return ids


async def _published(redis: Any, settings: Any, person_id: UUID) -> list[dict[str, Any]]:
    since = await read_since(redis, settings, user_topic(person_id), 0)
    return [json.loads(frame) for _, frame in since.entries]


async def test_feed_lists_reads_and_reads_all_only_for_the_owner(
    client: Any, world: World, settings: Any, redis: Any, jobs: ArqRedis
) -> None:
    neighbour = await world.add_person("neighbour", frozenset({Role.OCCUPANT}))
    ids = await _feed_for(client, world, ["One", "Two", "Three"], [neighbour])
    headers = world.headers("occupant")

    page = (await client.get("/api/me/notifications", headers=headers)).json()
    assert (page["total"], page["unread"]) == (3, 3)
    assert [item["title"] for item in page["items"]] == ["Three", "Two", "One"]
    assert [item["notification_id"] for item in page["items"]] == ids[::-1]
    first = page["items"][0]
    assert first["category"] == "announcement" and first["read_at"] is None and first["created_at"]

    read = await client.post(f"/api/me/notifications/{first['delivery_id']}/read", headers=headers)
    assert read.status_code == 200, read.text
    read_at = read.json()["read_at"]
    again = await client.post(f"/api/me/notifications/{first['delivery_id']}/read", headers=headers)
    assert (again.status_code, again.json()["read_at"]) == (200, read_at)  # idempotent: first time kept

    unread = (await client.get("/api/me/notifications?unread_only=true", headers=headers)).json()
    assert (unread["total"], unread["unread"]) == (2, 2)
    assert first["delivery_id"] not in {item["delivery_id"] for item in unread["items"]}

    # The neighbour cannot read (or even see) the occupant's entries, and vice versa.
    theirs = (await client.get("/api/me/notifications", headers=world.headers("neighbour"))).json()
    assert theirs["total"] == 3
    stranger = await client.post(
        f"/api/me/notifications/{unread['items'][0]['delivery_id']}/read", headers=world.headers("neighbour")
    )
    assert stranger.status_code == 404
    mine_from_them = await client.post(
        f"/api/me/notifications/{theirs['items'][0]['delivery_id']}/read", headers=headers
    )
    assert mine_from_them.status_code == 404

    everything = await client.post("/api/me/notifications/read-all", headers=headers)
    assert (everything.status_code, everything.json()["marked"]) == (200, 2)
    assert (await client.post("/api/me/notifications/read-all", headers=headers)).json()["marked"] == 0
    final = (await client.get("/api/me/notifications", headers=headers)).json()
    assert final["unread"] == 0 and all(item["read_at"] for item in final["items"])
    assert (await client.get("/api/me/notifications", headers=world.headers("neighbour"))).json()["unread"] == 3

    # The occupant's other devices heard about both reads (and nothing was published for the no-ops).
    events = [
        e for e in await _published(redis, settings, world.people["occupant"]) if e["type"] == "notification.read"
    ]
    assert [(e["data"]["delivery_ids"], e["data"]["all"]) for e in events] == [
        ([first["delivery_id"]], False),
        ([], True),
    ]


# ------------------------------------------------------------------------------ NCPR


def _upload(content: bytes) -> dict[str, Any]:
    return {"files": {"file": ("ncpr.csv", content, "text/csv")}}


async def test_ncpr_import_reports_rows_is_idempotent_and_is_used_by_the_policy(client: Any, world: World) -> None:
    mobile = random_mobile()
    person_id = await world.add_person("listed", frozenset({Role.OCCUPANT}), mobile=mobile)
    local = mobile.removeprefix("+91")  # the site's country code fills in
    csv_text = f"name,phone\nA,{local}\nB,+91 98450 12345\nC,not-a-number\nD,+919845012346\n".encode()
    headers = world.headers("fm_admin")
    first = await client.post("/api/ncpr/import", headers=headers, **_upload(csv_text))
    assert first.status_code == 200, first.text
    report = first.json()
    assert (report["added"], report["already_listed"], report["invalid_count"]) == (3, 0, 1)
    assert [e["line"] for e in report["invalid"]] == [4]
    assert "not-a-number" in report["invalid"][0]["message"]

    again = (await client.post("/api/ncpr/import", headers=headers, **_upload(csv_text))).json()
    assert (again["added"], again["already_listed"]) == (0, 3)
    one_per_line = f"{mobile}\n\n+919845099999\n".encode()
    mixed = (await client.post("/api/ncpr/import", headers=headers, **_upload(one_per_line))).json()
    assert (mixed["added"], mixed["already_listed"], mixed["invalid"]) == (1, 1, [])

    rows = await NationalDndEntry.select().where(NationalDndEntry.site == world.site_id)
    assert len(rows) == 4
    assert all(local not in str(row) for row in rows), "only blind indexes are stored"
    summary = (await client.get("/api/ncpr", headers=headers)).json()
    assert summary["entries"] == 4 and summary["last_imported_at"]

    facts = await load_facts(directory_for(world.settings), world.site_id, "Asia/Kolkata", [person_id])
    assert facts[person_id].on_national_dnd
    # Only promotional messages look at the registry (and at 09:00-21:00 in the person's own timezone), so
    # a sender of anything else reads neither; facts read without them cannot decide a promotion.
    unread = await load_facts(
        directory_for(world.settings), world.site_id, "Asia/Kolkata", [person_id], promotional=False
    )
    assert not unread[person_id].on_national_dnd
    at = dt.datetime.now(dt.UTC)
    unread[person_id].facts(
        channel=Channel.SMS, category=Category.ANNOUNCEMENT, urgency=Urgency.NORMAL, created_at=at, now=at
    )
    for channel in (Channel.SMS, Channel.PUSH):
        with pytest.raises(ValueError, match="national DND"):
            unread[person_id].facts(
                channel=channel, category=Category.PROMOTIONAL, urgency=Urgency.NORMAL, created_at=at, now=at
            )

    cleared = await client.delete("/api/ncpr", headers=world.headers("site_admin"))
    assert (cleared.status_code, cleared.json()) == (200, {"removed": 4})
    assert (await client.get("/api/ncpr", headers=headers)).json()["entries"] == 0


async def test_a_promotion_waits_for_nine_in_the_persons_own_timezone_and_an_announcement_does_not(
    world: World,
) -> None:
    """A person without quiet hours but with a timezone of their own: 07:00 in New York is outside the
    promotional window there (it is 17:30 on the site's clock, Asia/Kolkata)."""
    from notifications.preferences import ConsentChange, change_consent
    from schema.tables import Person

    person_id = await world.add_person("abroad", frozenset({Role.OCCUPANT}), mobile=random_mobile())
    await Person.update({Person.timezone: "America/New_York"}).where(Person.id == person_id)
    await change_consent(  # promotions only with an explicit opt-in
        site_id=world.site_id,
        person_id=person_id,
        changes=[ConsentChange(Channel.SMS, Category.PROMOTIONAL, True)],
        source="app",
        policy_version="test",
    )
    at = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)  # 07:00 in New York
    directory = directory_for(world.settings)
    policy = SitePolicy(timezone="Asia/Kolkata")
    read = await load_facts(directory, world.site_id, "Asia/Kolkata", [person_id], channels=[Channel.SMS])
    promotion = read[person_id].facts(
        channel=Channel.SMS, category=Category.PROMOTIONAL, urgency=Urgency.NORMAL, created_at=at, now=at
    )
    assert decide(promotion, policy) == Decision(
        Action.DEFER, Reason.PROMOTIONAL_HOURS, defer_until=dt.datetime(2026, 12, 7, 14, 0, tzinfo=dt.UTC)
    )
    lean = await load_facts(
        directory, world.site_id, "Asia/Kolkata", [person_id], channels=[Channel.SMS], promotional=False
    )
    announcement = lean[person_id].facts(
        channel=Channel.SMS, category=Category.ANNOUNCEMENT, urgency=Urgency.NORMAL, created_at=at, now=at
    )
    assert decide(announcement, policy) == Decision(Action.SEND)


async def test_ncpr_import_refuses_what_is_not_a_registry(client: Any, world: World, other_world: World) -> None:
    headers = world.headers("site_admin")
    binary = await client.post("/api/ncpr/import", headers=headers, **_upload(b"\xff\xfe\x00\x01garbage"))
    assert (binary.status_code, binary.json()["errors"][0]["field"]) == (422, "file")
    empty = await client.post("/api/ncpr/import", headers=headers, **_upload(b"\n\n"))
    assert (empty.status_code, empty.json()["errors"][0]["field"]) == (422, "file")
    only_header = await client.post("/api/ncpr/import", headers=headers, **_upload(b"phone\n"))
    assert only_header.status_code == 422
    # Another site's list is its own.
    await client.post("/api/ncpr/import", headers=headers, **_upload(b"+919845011111\n"))
    assert (await client.get("/api/ncpr", headers=other_world.headers("fm_admin"))).json()["entries"] == 0
    assert (
        await client.post("/api/ncpr/import", headers=world.headers("occupant"), **_upload(b"x"))
    ).status_code == 403
