"""Fan-out benchmark: a 10,000-recipient announcement over push, SMS and WhatsApp.

    .venv/bin/python bench/fanout.py [--recipients 10000] [--database-url postgresql://...]

Against the local fakes (run in their own process, rate limits off), with a realistic mix
of consent and DND. Prints the time from "send" to every ledger row final, decisions per
second and duplicates (must be zero), and, in the same run, the baseline: the same number
of bare SDK sends with no decisions and no ledger, i.e. what the providers' fakes and
SDKs alone cost on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the pipeline run")
    return parser.parse_args()


def start_fakes(port: int, smtp_port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "notifications.fakes",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--smtp-port",
            str(smtp_port),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import httpx

    for _ in range(100):
        try:
            httpx.get(f"http://127.0.0.1:{port}/_fake/state", timeout=1).raise_for_status()
            return process
        except Exception:
            time.sleep(0.1)
    raise RuntimeError("fakes did not start")


def reset_fakes(base: str) -> None:
    """Empty the fakes' records. No web process runs in the bench to receive Twilio's status
    callbacks, so they are switched off: a row is final at 'sent' here."""
    import httpx

    httpx.post(f"{base}/_fake/reset", timeout=10).raise_for_status()
    httpx.patch(f"{base}/twilio/_fake/config", json={"callbacks_enabled": False}, timeout=10).raise_for_status()


async def build_site(count: int) -> tuple[Any, list[Any]]:
    from app.auth.roles import Role
    from app.config import get_settings
    from app.people.directory import directory_for
    from app.people.service import NewPerson, UnitLink, create_people
    from notifications.categories import Category, Channel
    from notifications.preferences import ConsentChange, QuietHours, change_consent, set_dnd
    from schema.tables import Building, Device, Site, Unit

    settings = get_settings()
    site = Site(name="Bench", slug=f"bench-{random.randrange(10**8)}")
    await site.save()
    building = Building(site=site.id, code="A", name="Tower A")
    await building.save()
    unit = Unit(site=site.id, building=building.id, label="A-1")
    await unit.save()
    rng = random.Random(7)
    people = [
        NewPerson(
            full_name=f"P{i}",
            roles=frozenset({Role.OCCUPANT}),
            primary_mobile=f"+9170{i:08d}",
            email=f"p{i}@bench.test",
            unit_links=[UnitLink(unit_id=unit.id, relation="owner")],
        )
        for i in range(count)
    ]
    ids = await create_people(directory_for(settings), site.id, people)
    devices = [
        Device(site=site.id, person=pid, platform="android", push_token=f"bench-token-{i}")
        for i, pid in enumerate(ids)
        if rng.random() > 0.05
    ]  # 5% have no app installed
    for start in range(0, len(devices), 500):
        await Device.insert(*devices[start : start + 500])
    # A realistic mix: 10% turned SMS off, 5% turned WhatsApp off, 8% are in quiet hours now.
    for pid in ids:
        roll = rng.random()
        if roll < 0.10:
            changes = [ConsentChange(Channel.SMS, Category.ANNOUNCEMENT, False)]
        elif roll < 0.15:
            changes = [ConsentChange(Channel.WHATSAPP, Category.ANNOUNCEMENT, False)]
        else:
            changes = []
        if changes:
            await change_consent(site_id=site.id, person_id=pid, changes=changes, source="app", policy_version="b")
        if rng.random() < 0.08:
            await set_dnd(
                site_id=site.id,
                person_id=pid,
                timezone="UTC",
                quiet_hours=[QuietHours(weekday=d, start="00:00", end="23:59") for d in range(7)],
                snooze_until=None,
            )
    return site, ids


async def run_pipeline(site: Any, ids: list[Any]) -> dict[str, Any]:
    from app.config import get_settings
    from app.people.directory import directory_for
    from app.redis import create_redis
    from notifications import fanout, sender
    from notifications.audience import Audience
    from notifications.categories import Category, Channel
    from notifications.context import NotifyContext
    from notifications.providers import build_providers
    from notifications.service import NotificationRequest, create_notification
    from schema.notifications import Delivery

    settings = get_settings()
    redis = create_redis(settings)
    providers = build_providers(settings, redis)
    ctx = NotifyContext(settings=settings, redis=redis, directory=directory_for(settings), providers=providers)
    started = time.perf_counter()
    notification_id, _ = await create_notification(
        site_id=site.id,
        request=NotificationRequest(
            title="Notice",
            body="Lift maintenance on Sunday",
            category=Category.ANNOUNCEMENT,
            audience=Audience(everyone=True),
            channels=[Channel.PUSH, Channel.SMS, Channel.WHATSAPP],
        ),
    )
    channels = await fanout.expand(ctx, notification_id)
    expanded = time.perf_counter()
    await asyncio.gather(*(sender.send_pending(ctx, notification_id, c) for c in channels))
    finished = time.perf_counter()
    rows = await Delivery.select(Delivery.status).where(Delivery.notification == notification_id)
    await providers.aclose()
    await redis.aclose()
    return {
        "seconds": finished - started,
        "expand_seconds": expanded - started,
        "rows": len(rows),
        "statuses": Counter(r["status"] for r in rows),
    }


async def run_baseline(count: int) -> float:
    """Bare SDK sends of the same volume: no consent, no DND, no ledger."""
    from firebase_admin import messaging

    from app.config import get_settings
    from notifications.fakes.sdk_wiring import aclose_firebase_app, firebase_app_for_fake, twilio_client_for_fake

    settings = get_settings()
    assert settings.twilio_base_url and settings.fcm_base_url
    twilio = twilio_client_for_fake(settings.twilio_base_url, settings.twilio_account_sid, settings.twilio_auth_token)
    app = firebase_app_for_fake(settings.fcm_base_url, settings.fcm_project_id, name="baseline")
    slots = asyncio.Semaphore(64)

    async def sms(i: int, whatsapp: bool) -> None:
        async with slots:
            to = f"+9171{i:08d}"
            await twilio.messages.create_async(
                to=f"whatsapp:{to}" if whatsapp else to,
                from_="whatsapp:+14155238886" if whatsapp else "OPSHUB",
                body="Notice: Lift maintenance on Sunday",
            )

    async def push() -> None:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            messages = [
                messaging.Message(token=f"base-{i}", notification=messaging.Notification("N", "B"))
                for i in range(count)
            ]
        for start in range(0, count, 500):
            await messaging.send_each_async(messages[start : start + 500], app=app)

    started = time.perf_counter()
    await asyncio.gather(push(), *(sms(i, False) for i in range(count)), *(sms(i, True) for i in range(count)))
    elapsed = time.perf_counter() - started
    await twilio.http_client.close()
    await aclose_firebase_app(app)
    return elapsed


async def count_at_fakes(base: str) -> tuple[int, int, int]:
    import httpx

    async with httpx.AsyncClient(timeout=30) as client:
        messages = (await client.get(f"{base}/twilio/_fake/messages")).json()
        pushes = (await client.get(f"{base}/fcm/_fake/messages")).json()
    keys = Counter((m["to"], m.get("body") or m.get("content_sid")) for m in messages)
    push_keys = Counter((p["target"], (p["data"] or {}).get("delivery_id")) for p in pushes)
    duplicates = sum(n - 1 for n in keys.values() if n > 1) + sum(n - 1 for n in push_keys.values() if n > 1)
    return len(messages), len(pushes), duplicates


def main() -> None:
    args = parse_args()
    from app.devredis import PrivateRedis, free_port

    tmp = Path(tempfile.mkdtemp(prefix="opshub-bench-"))
    redis_server = PrivateRedis(tmp / "redis")
    redis_url = redis_server.start()
    port, smtp_port = free_port(), free_port()
    fakes = start_fakes(port, smtp_port)
    base = f"http://127.0.0.1:{port}"
    reset_fakes(base)
    os.environ.update(
        {
            "DATABASE_URL": args.database_url or f"sqlite:///{tmp / 'bench.sqlite'}",
            "REDIS_URL": redis_url,
            "OPSHUB_VAR_DIR": str(tmp),
            "TWILIO_BASE_URL": f"{base}/twilio",
            "FCM_BASE_URL": f"{base}/fcm",
            "FCM_ACCESS_TOKEN": "fake-fcm-access-token",
            "SMTP_PORT": str(smtp_port),
            "OPSHUB_WHATSAPP_TEMPLATE_SID": "HX" + "0" * 32,
            "OPSHUB_NOTIFY_RATE_SMS": "0",
            "OPSHUB_NOTIFY_RATE_WHATSAPP": "0",
            "OPSHUB_NOTIFY_RATE_PUSH": "0",
            "OPSHUB_LOG_LEVEL": "WARNING",
        }
    )
    # The fakes use their default credentials; match them.
    from notifications.fakes.runner import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, DEFAULT_PROJECT_ID

    os.environ.update(
        {
            "TWILIO_ACCOUNT_SID": DEFAULT_ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": DEFAULT_AUTH_TOKEN,
            "FCM_PROJECT_ID": DEFAULT_PROJECT_ID,
        }
    )
    try:
        subprocess.run(
            [sys.executable, "-m", "app.launcher", "migrate"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL
        )

        async def scenario() -> None:
            from app.db import close_database, open_database

            await open_database()
            try:
                print(f"building a site with {args.recipients} recipients ...", flush=True)
                site, ids = await build_site(args.recipients)
                await asyncio.to_thread(reset_fakes, base)
                if args.profile:
                    import cProfile
                    import pstats

                    profiler = cProfile.Profile()
                    profiler.enable()
                result = await run_pipeline(site, ids)
                if args.profile:
                    profiler.disable()
                    stats = pstats.Stats(profiler)
                    stats.sort_stats("cumulative").print_stats(r"opshub|notifications|app/", 40)
                    stats.sort_stats("tottime").print_stats(25)
                sms_and_wa, pushes, duplicates = await count_at_fakes(base)
                await asyncio.to_thread(reset_fakes, base)
                baseline = await run_baseline(args.recipients)
            finally:
                await close_database()
            decisions = result["rows"]
            final = sum(n for s, n in result["statuses"].items() if s not in ("pending", "sending"))
            print()
            print(f"database                {os.environ['DATABASE_URL'].split(':')[0]}")
            print(f"recipients x channels   {args.recipients} x 3 = {decisions} ledger rows ({final} final)")
            print(f"statuses                {dict(result['statuses'])}")
            print(f"at the fakes            {sms_and_wa} SMS/WhatsApp, {pushes} push; duplicates {duplicates}")
            print(
                f"expand (decide+insert)  {result['expand_seconds']:.2f} s  "
                f"({decisions / result['expand_seconds']:.0f} decisions/s)"
            )
            print(f"send -> all rows final  {result['seconds']:.2f} s  (target < 10 s)")
            sends = sms_and_wa + pushes
            print(f"baseline: bare SDK      {baseline:.2f} s for {args.recipients * 3} sends, no decisions or ledger")
            print(
                f"pipeline / baseline     {result['seconds'] / baseline:.2f}x time "
                f"({sends / result['seconds']:.0f} vs {args.recipients * 3 / baseline:.0f} sends/s)"
            )

        asyncio.run(scenario())
    finally:
        fakes.terminate()
        fakes.wait()
        redis_server.stop()


if __name__ == "__main__":
    main()
