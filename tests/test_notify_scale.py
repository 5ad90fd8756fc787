"""NOTIFY when it is busy (#17), with real arq worker processes, real Redis and the fakes:

- a guard's walk-ins reach their flats within 2 s while a 10,000-recipient SMS announcement fills the
  provider's 20 messages/s, and the announcement still ends with every row sent once;
- two workers share one large announcement: its audience is expanded in parts and sent in slots, and
  every ledger row is claimed once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

from notifications.fakes import RunningFakes, running_fakes
from schema.notifications import Delivery, Notification, NotificationPart
from tests.support.faults import cancel_other_notifications, log_of, wait_until, worker_env, workers
from tests.support.notify import Recipient, add_recipients
from tests.support.visitors import jpeg
from tests.support.world import World, build_world

CROWD = 10_000
FLATS = 10
SMS_RATE = 20


async def _status(notification_id: Any) -> str:
    row = await Notification.select(Notification.status).where(Notification.id == notification_id).first()
    return str(row["status"]) if row else ""


def _arrivals(fakes: RunningFakes, person: Recipient) -> tuple[dt.datetime | None, dt.datetime | None]:
    push = next((m.received_at for m in fakes.fcm.messages if m.target == person.token), None)
    sms = next((m.date_created for m in fakes.twilio.messages if m.to == person.mobile), None)
    return push, sms


async def test_walk_ins_reach_their_flats_within_2_s_while_a_10k_sms_announcement_runs(
    client: Any, settings: Any, tmp_dir: Path
) -> None:
    world: World = await build_world(settings, units_per_building=6)
    crowd = await add_recipients(world, CROWD, unit=world.unit_ids[0])
    flats = [(await add_recipients(world, 1, start=CROWD + i, unit=world.unit_ids[1 + i]))[0] for i in range(FLATS)]
    # This site texts the flat together with the push: its ladder's first rung is due at once.
    config = (await client.get("/api/visitors/settings", headers=world.headers("site_admin"))).json()["config"]
    config["ladder"], config["message_channels"] = [{"after_seconds": 0, "action": "message"}], ["sms"]
    saved = await client.put("/api/visitors/settings", json={"config": config}, headers=world.headers("site_admin"))
    assert saved.status_code == 200, saved.text
    await cancel_other_notifications(world.site_id)

    async with running_fakes() as fakes:
        # The provider enforces the rate too; status callbacks would find no web server here.
        fakes.twilio.configure(callbacks_enabled=False, sender_rate_per_second=SMS_RATE)
        # A claim is a few seconds of sends at 20/s: the lease is the default, not the fault tests' 2 s.
        env = worker_env(fakes, OPSHUB_NOTIFY_RATE_SMS=str(SMS_RATE), OPSHUB_NOTIFY_CLAIM_LEASE_SECONDS="120")
        async with workers(env, tmp_dir / "worker.log"):
            created = await client.post(
                "/api/announcements",
                json={
                    "title": "Water",
                    "body": "Tower A water off 10:00-12:00",
                    "category": "announcement",
                    "audience": {"unit_ids": [str(world.unit_ids[0])]},
                    "channels": ["sms"],
                },
                headers=world.headers("fm_admin"),
            )
            assert created.status_code == 201, created.text
            announcement = created.json()["id"]
            mobiles = {p.mobile for p in crowd}

            async def announcement_under_way() -> bool:
                return sum(1 for m in fakes.twilio.messages if m.to in mobiles) >= 2 * SMS_RATE

            await wait_until(announcement_under_way, 180, "the announcement to fill the SMS rate")

            registered: list[dt.datetime] = []
            for index in range(FLATS):
                registered.append(dt.datetime.now(dt.UTC))
                answer = await client.post(
                    "/api/visitors/walk-ins",
                    data={"unit_id": str(world.unit_ids[1 + index]), "name": f"Visitor {index}", "kind": "guest"},
                    files={"photo": ("v.jpg", jpeg(), "image/jpeg")},
                    headers=world.headers("guard"),
                )
                assert answer.status_code == 201, answer.text
                await asyncio.sleep(0.5)

            async def every_flat_told() -> bool:
                return all(None not in _arrivals(fakes, flat) for flat in flats)

            await wait_until(every_flat_told, 30, "every flat's push and SMS")
            latencies = []
            for flat, at in zip(flats, registered, strict=True):
                push, sms = _arrivals(fakes, flat)
                assert push is not None and sms is not None
                latencies += [(push - at).total_seconds(), (sms - at).total_seconds()]
            sent_so_far = sum(1 for m in fakes.twilio.messages if m.to in mobiles)
            assert await _status(announcement) == "sending", "the announcement should still be sending"
            assert sent_so_far < CROWD

            # 9,000 messages more at 20/s would take 8 minutes: the provider grants more throughput, and
            # the platform operator raises the live rate to match, as after a short-code upgrade.
            fakes.twilio.configure(sender_rate_per_second=None)
            raised = await client.put(
                "/api/platform/notify/rates", json={"sms": 2000}, headers=world.headers("platform_admin")
            )
            assert raised.status_code == 200, raised.text

            async def completed() -> bool:
                return await _status(announcement) == "completed"

            await wait_until(completed, 300, "the announcement to complete", every=0.5)
            await client.put(
                "/api/platform/notify/rates", json={"reset": ["sms"]}, headers=world.headers("platform_admin")
            )
        refused = sum(fakes.twilio.limits.stats.refused.values())
        sms_to = Counter(m.to for m in fakes.twilio.messages)

    print(
        f"\nwalk-in alerts (push and SMS) under a {SMS_RATE}/s announcement: p50 {statistics.median(latencies):.2f} s, "
        f"max {max(latencies):.2f} s; {sent_so_far} announcement SMS sent by then; provider refusals: {refused}"
    )
    assert max(latencies) <= 2.0, sorted(latencies)
    assert all(sms_to[p.mobile] == 1 for p in crowd), "every announcement SMS exactly once"
    assert all(sms_to[f.mobile] == 1 for f in flats)
    rows = await Delivery.select(Delivery.person, Delivery.status, Delivery.reason).where(
        Delivery.notification == announcement
    )
    crowd_ids = {p.person_id for p in crowd}
    assert Counter(r["status"] for r in rows if r["person"] in crowd_ids) == {"sent": CROWD}
    # The unit's other occupant (the world's own) has no mobile: suppressed, as final as sent.
    assert {(r["status"], r["reason"]) for r in rows if r["person"] not in crowd_ids} <= {
        ("suppressed", "no_contact_point")
    }


async def test_two_workers_share_a_large_announcement_and_claim_every_row_once(
    settings: Any, client: Any, tmp_dir: Path
) -> None:
    world: World = await build_world(settings)
    people = await add_recipients(world, 3000)
    await cancel_other_notifications(world.site_id)
    async with running_fakes() as fakes:
        fakes.twilio.configure(callbacks_enabled=False)
        env = worker_env(
            fakes,
            OPSHUB_NOTIFY_PART_SIZE="500",
            OPSHUB_NOTIFY_CLAIM_LEASE_SECONDS="120",
            OPSHUB_LOG_LEVEL="INFO",
            OPSHUB_LOG_FORMAT="json",
        )
        log_path = tmp_dir / "workers.log"
        started = time.monotonic()
        async with workers(env, log_path, count=2) as running:

            async def both_started() -> bool:
                return all("Starting worker" in _read(log_of(log_path, index)) for index in range(2))

            await wait_until(both_started, 60, "both workers to start")
            created = await client.post(
                "/api/announcements",
                json={
                    "title": "Lift",
                    "body": "Lift B is back in service",
                    "category": "announcement",
                    "audience": {"everyone": True},
                    "channels": ["push", "sms"],
                },
                headers=world.headers("fm_admin"),
            )
            assert created.status_code == 201, created.text
            notification_id = created.json()["id"]

            async def completed() -> bool:
                return await _status(notification_id) == "completed"

            await wait_until(completed, 240, "the announcement to complete", every=0.25)
            assert len(running) == 2
        elapsed = time.monotonic() - started
        sms_to = Counter(m.to for m in fakes.twilio.messages)
        push_to = Counter(m.target for m in fakes.fcm.messages)

    parts = await NotificationPart.select(NotificationPart.part, NotificationPart.people).where(
        NotificationPart.notification == notification_id
    )
    everyone = await Notification.select(Notification.targeted, Notification.parts).where(
        Notification.id == notification_id
    )
    assert everyone[0]["parts"] == len(parts) >= 6 and sorted(p["part"] for p in parts) == list(range(len(parts)))
    assert sum(p["people"] for p in parts) == everyone[0]["targeted"] >= 3000
    rows = await Delivery.select(Delivery.person, Delivery.channel, Delivery.status, Delivery.attempts).where(
        Delivery.notification == notification_id
    )
    mine = [r for r in rows if r["person"] in {p.person_id for p in people}]
    assert Counter((r["channel"], r["status"]) for r in mine) == {("push", "sent"): 3000, ("sms", "sent"): 3000}
    assert {r["attempts"] for r in mine} == {1}, "a row was claimed more than once"
    assert all(sms_to[p.mobile] == 1 for p in people) and all(push_to[p.token] == 1 for p in people)
    # Both processes took a share: each logs the parts it expanded and the rows it sent.
    shares = [_work_logged(log_of(log_path, index)) for index in range(2)]
    print(f"\n3,000 people x 2 channels by two workers in {elapsed:.1f} s; (parts, rows sent) each: {shares}")
    assert all(parts > 0 or sent > 0 for parts, sent in shares), shares
    assert sum(parts for parts, _ in shares) >= len(parts)


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _work_logged(path: Path) -> tuple[int, int]:
    """(parts expanded, rows sent) by one worker, from its log's JSON lines."""
    import json

    expanded = sent = 0
    for line in path.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        if record.get("logger") != "opshub.notify.jobs":
            continue
        if record.get("event") == "part_expanded":
            expanded += 1
        elif record.get("event") == "rows_sent":
            sent += int(record.get("rows", 0))
    return expanded, sent
