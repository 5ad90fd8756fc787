"""Fan-out benchmarks of the notification pipeline, each figure beside its baseline from the same run.

    .venv/bin/python bench/fanout.py overhead  [--recipients 10000] [--database-url postgresql://...]
    .venv/bin/python bench/fanout.py expansion [--recipients 10000] [--database-url ...]
    .venv/bin/python bench/fanout.py workers   [--recipients 100000] --database-url postgresql://...
    .venv/bin/python bench/fanout.py urgent    [--bulk 3000] [--urgent 20]

Against the local fakes, each in a process of its own, as in production (status callbacks off: no web
process runs here to receive them, so a row is final at ``sent``).

- **overhead**: an announcement to N people over push, SMS and WhatsApp, rate limits off, with a
  realistic mix (5 % without the app, 10 % SMS off, 5 % WhatsApp off, 8 % in quiet hours). The pipeline
  (expansion, claims, decisions at send time, the ledger) against the baseline: the same provider calls
  made bare through the same SDKs, with no decisions and no ledger. Target: at most 1.15x the time. Each
  channel is sent on its own, as by its own send job in a worker; both runs use the worker's garbage
  collector setting (``workers.gc_tuning``). The two alternate for ``--rounds`` rounds, each pipeline run
  compared with the baselines beside it, and the median ratio is the figure: the machine's speed drifts.
- **expansion**: decisions per second while an audience of N people x 3 channels is expanded into
  ledger rows (target: at least 30,000/s), against a baseline of the bare insert of the same rows.
- **workers**: N people (100,000 by default) on PostgreSQL, two real ``arq`` worker processes sharing one
  announcement over push and SMS: each worker's peak RSS (target: under 300 MB), rows claimed more than
  once (target: 0), the expansion rate and the time to every row final; the baseline is the same
  announcement with one worker.
- **urgent**: visitor alerts (push and SMS, critical) sent one every half second while a bulk SMS
  announcement fills a provider limit of 20 messages/s, through a real worker: the time from enqueue to
  the fake's receipt, against the same alerts sent with nothing else running (target: p99 within 1.5x).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TEMPLATE_SID = "HX" + "0" * 32


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "scenario", choices=["overhead", "expansion", "workers", "urgent"], nargs="?", default="overhead"
    )
    parser.add_argument("--recipients", type=int, default=None, help="people in the audience")
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    parser.add_argument("--bulk", type=int, default=3000, help="urgent: the bulk announcement's audience")
    parser.add_argument("--urgent", type=int, default=20, help="urgent: visitor alerts sent")
    parser.add_argument("--rounds", type=int, default=3, help="overhead: pipeline and baseline runs, alternating")
    parser.add_argument(
        "--warmup", type=int, default=1, help="overhead: untimed pipeline and baseline runs before the rounds"
    )
    parser.add_argument("--profile", action="store_true", help="overhead: print a cProfile of the first pipeline run")
    return parser.parse_args()


# ------------------------------------------------------------------------------ the environment


def start_fakes(port: int, smtp_port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "notifications.fakes", "--host", "127.0.0.1"]
    process = subprocess.Popen(
        [*command, "--port", str(port), "--smtp-port", str(smtp_port)],
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


def reset_fakes(base: str, **twilio: Any) -> None:
    import httpx

    httpx.post(f"{base}/_fake/reset", timeout=30).raise_for_status()
    httpx.patch(
        f"{base}/twilio/_fake/config", json={"callbacks_enabled": False, **twilio}, timeout=10
    ).raise_for_status()


@contextmanager
def environment(database_url: str | None, **extra: str) -> Iterator[str]:
    """A private redis-server, the fakes in their own process, the database migrated; yields the fakes' URL."""
    from app.devredis import PrivateRedis, free_port
    from notifications.fakes.runner import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, DEFAULT_PROJECT_ID

    tmp = Path(tempfile.mkdtemp(prefix="opshub-bench-"))
    redis_server = PrivateRedis(tmp / "redis")
    redis_url = redis_server.start()
    port, smtp_port = free_port(), free_port()
    fakes = start_fakes(port, smtp_port)
    base = f"http://127.0.0.1:{port}"
    os.environ.update(
        {
            "DATABASE_URL": database_url or f"sqlite:///{tmp / 'bench.sqlite'}",
            "REDIS_URL": redis_url,
            "OPSHUB_VAR_DIR": str(tmp),
            "TWILIO_BASE_URL": f"{base}/twilio",
            "TWILIO_ACCOUNT_SID": DEFAULT_ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": DEFAULT_AUTH_TOKEN,
            "FCM_BASE_URL": f"{base}/fcm",
            "FCM_PROJECT_ID": DEFAULT_PROJECT_ID,
            "FCM_ACCESS_TOKEN": "fake-fcm-access-token",
            "SMTP_PORT": str(smtp_port),
            "OPSHUB_WHATSAPP_TEMPLATE_SID": TEMPLATE_SID,
            "OPSHUB_NOTIFY_RATE_SMS": "0",
            "OPSHUB_NOTIFY_RATE_WHATSAPP": "0",
            "OPSHUB_NOTIFY_RATE_PUSH": "0",
            "OPSHUB_LOG_LEVEL": "WARNING",
            **extra,
        }
    )
    if database_url and database_url.startswith("postgresql"):
        reset_postgres(database_url)
    try:
        subprocess.run(
            [sys.executable, "-m", "app.launcher", "migrate"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL
        )
        reset_fakes(base)
        yield base
    finally:
        fakes.terminate()
        fakes.wait()
        redis_server.stop()


def reset_postgres(database_url: str) -> None:
    """A clean schema, so a run never counts an earlier run's rows."""
    import asyncpg

    async def drop() -> None:
        connection = await asyncpg.connect(database_url)
        try:
            await connection.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        finally:
            await connection.close()

    asyncio.run(drop())


def database_name() -> str:
    return os.environ["DATABASE_URL"].split(":")[0]


# ------------------------------------------------------------------------------ a site of N people


async def build_site(count: int, *, mix: bool = True) -> tuple[Any, list[Any]]:
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
    ids: list[Any] = []
    for start in range(0, count, 5000):
        people = [
            NewPerson(
                full_name=f"P{i}",
                roles=frozenset({Role.OCCUPANT}),
                primary_mobile=f"+9170{i:08d}",
                email=f"p{i}@bench.test",
                unit_links=[UnitLink(unit_id=unit.id, relation="owner")],
            )
            for i in range(start, min(count, start + 5000))
        ]
        ids += await create_people(directory_for(settings), site.id, people)
    devices = [
        Device(site=site.id, person=pid, platform="android", push_token=f"bench-token-{i}")
        for i, pid in enumerate(ids)
        if rng.random() > 0.05
    ]  # 5% have no app installed
    for start in range(0, len(devices), 1000):
        await Device.insert(*devices[start : start + 1000])
    if not mix:
        return site, ids
    # A realistic mix: 10% turned SMS off, 5% turned WhatsApp off, 8% are in quiet hours now.
    for pid in ids:
        roll = rng.random()
        changes = (
            [ConsentChange(Channel.SMS, Category.ANNOUNCEMENT, False)]
            if roll < 0.10
            else [ConsentChange(Channel.WHATSAPP, Category.ANNOUNCEMENT, False)]
            if roll < 0.15
            else []
        )
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


def notify_context() -> Any:
    from app.config import get_settings
    from app.people.directory import directory_for
    from app.redis import create_redis
    from notifications.context import NotifyContext
    from notifications.providers import build_providers

    settings = get_settings()
    redis = create_redis(settings)
    return NotifyContext(
        settings=settings, redis=redis, directory=directory_for(settings), providers=build_providers(settings, redis)
    )


async def announce(site: Any, channels: list[str], **fields: Any) -> Any:
    from notifications.audience import Audience
    from notifications.service import NotificationRequest, create_notification

    notification_id, _ = await create_notification(
        site_id=site.id,
        request=NotificationRequest(
            title=fields.pop("title", "Notice"),
            body=fields.pop("body", "Lift maintenance on Sunday"),
            category=fields.pop("category", "announcement"),
            audience=fields.pop("audience", Audience(everyone=True)),
            channels=channels,  # type: ignore[arg-type]
            **fields,
        ),
    )
    return notification_id


async def ledger_statuses(notification_id: Any) -> Counter[str]:
    from schema.notifications import Delivery

    rows = await Delivery.select(Delivery.status).where(Delivery.notification == notification_id)
    return Counter(r["status"] for r in rows)


# ------------------------------------------------------------------------------ overhead


async def send_until_final(ctx: Any, notification_id: Any, channels: list[Any], expanding: asyncio.Task[Any]) -> None:
    """Send every channel while the audience is still being expanded (as the workers do: a part's first
    rows start its senders), until every row is final; rows a transient failure put back are sent when
    they come due. Each channel on its own, as each has a send job of its own in a worker: one that has
    caught up with the expansion does not wait for the others."""
    from notifications import sender

    async def send_channel(channel: Any) -> None:
        while True:
            await sender.send_pending(ctx, notification_id, channel)
            if not expanding.done():
                await asyncio.sleep(0.02)
                continue
            due = await sender.next_attempt_at(notification_id, channel)
            if due is None:
                return
            await asyncio.sleep(max(0.0, (due - dt.datetime.now(dt.UTC)).total_seconds()))

    await asyncio.gather(*(send_channel(c) for c in channels))


async def run_pipeline(site: Any, channels: list[str]) -> dict[str, Any]:
    from notifications import fanout
    from notifications.categories import Channel

    ctx = notify_context()
    started, started_schedule = time.perf_counter(), main_thread_schedule()
    notification_id = await announce(site, channels)
    expanding = asyncio.create_task(fanout.expand(ctx, notification_id))
    expanding.add_done_callback(lambda _: marks.setdefault("expanded", time.perf_counter()))
    marks: dict[str, float] = {}
    await send_until_final(ctx, notification_id, [Channel(c) for c in channels], expanding)
    await expanding
    finished, schedule = time.perf_counter(), since(started_schedule)
    statuses = await ledger_statuses(notification_id)
    await ctx.providers.aclose()
    await ctx.redis.aclose()
    return {
        "seconds": finished - started,
        "expand_seconds": marks["expanded"] - started,
        "statuses": statuses,
        "main_thread": schedule,
    }


async def run_baseline(sms_count: int, whatsapp_count: int, push_count: int) -> tuple[float, tuple[float, float]]:
    """The same provider calls as the pipeline made, bare: no consent, no DND, no claims, no ledger.

    Each request is built as the adapters build theirs (the push's Android and APNs settings, collapse
    key and data; the SMS's status callback; WhatsApp's approved template outside the 24-hour window), so
    both sides send the same bytes and the difference is the pipeline's own work."""
    import uuid
    import warnings

    from firebase_admin import messaging

    from app.config import get_settings
    from notifications.categories import Channel
    from notifications.channels.base import Outgoing, Recipient
    from notifications.channels.push import FCM_BATCH_LIMIT, PushAdapter
    from notifications.channels.twilio_messaging import TwilioMessagingAdapter
    from notifications.fakes.sdk_wiring import aclose_firebase_app, firebase_app_for_fake, twilio_client_for_fake

    settings = get_settings()
    assert settings.twilio_base_url and settings.fcm_base_url
    twilio = twilio_client_for_fake(settings.twilio_base_url, settings.twilio_account_sid, settings.twilio_auth_token)
    app = firebase_app_for_fake(settings.fcm_base_url, settings.fcm_project_id, name="baseline")
    callback = settings.public_link("/api/webhooks/twilio/status")
    builders = {
        "sms": TwilioMessagingAdapter(
            twilio, channel=Channel.SMS, sender=settings.twilio_sms_from, status_callback_url=callback
        ),
        "whatsapp": TwilioMessagingAdapter(
            twilio,
            channel=Channel.WHATSAPP,
            sender=settings.twilio_whatsapp_from,
            status_callback_url=callback,
            whatsapp_template_sid=settings.whatsapp_template_sid,
        ),
    }
    message = Outgoing(
        notification_id=uuid.uuid4(),
        category="announcement",
        urgency="normal",
        title="Notice",
        body="Lift maintenance on Sunday",
        ttl_seconds=24 * 3600,
    )
    slots = asyncio.Semaphore(64)

    async def text(i: int, channel: str) -> None:
        recipient = Recipient(delivery_id=uuid.uuid4(), person_id=uuid.uuid4(), address=f"+9171{i:08d}")
        async with slots:
            await twilio.messages.create_async(**builders[channel]._params(message, recipient, False))

    async def push() -> None:
        builder = PushAdapter(app)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            messages = [
                builder._message(message, Recipient(delivery_id=uuid.uuid4(), person_id=uuid.uuid4()), f"base-{i}")
                for i in range(push_count)
            ]
        for start in range(0, push_count, FCM_BATCH_LIMIT):
            await messaging.send_each_async(messages[start : start + FCM_BATCH_LIMIT], app=app)

    started, started_schedule = time.perf_counter(), main_thread_schedule()
    await asyncio.gather(
        push(), *(text(i, "sms") for i in range(sms_count)), *(text(i, "whatsapp") for i in range(whatsapp_count))
    )
    elapsed, schedule = time.perf_counter() - started, since(started_schedule)
    await twilio.http_client.close()
    await aclose_firebase_app(app)
    return elapsed, schedule


async def count_at_fakes(base: str) -> tuple[int, int, int, int]:
    """(SMS, WhatsApp, push, duplicates) the fakes received."""
    import httpx

    async with httpx.AsyncClient(timeout=60) as client:
        messages = (await client.get(f"{base}/twilio/_fake/messages")).json()
        pushes = (await client.get(f"{base}/fcm/_fake/messages")).json()
    keys = Counter((m["to"], m.get("body") or m.get("content_sid")) for m in messages)
    push_keys = Counter((p["target"], (p["data"] or {}).get("delivery_id")) for p in pushes)
    duplicates = sum(n - 1 for n in keys.values() if n > 1) + sum(n - 1 for n in push_keys.values() if n > 1)
    whatsapp = sum(1 for m in messages if m["to"].startswith("whatsapp:"))
    return len(messages) - whatsapp, whatsapp, len(pushes), duplicates


async def arrivals_at_fakes(base: str, started_at: float) -> tuple[float, float, float]:
    """Seconds from a run's start (``time.time()``) to the first message of any kind at the fakes (how long
    sending took to begin), to the last SMS or WhatsApp, and to the last push: the run's first phase, while
    texts go out beside a trickle of pushes, and its end, pushes alone. Where the pipeline loses its time
    shows as which of these is later than the baseline's."""
    import httpx

    async with httpx.AsyncClient(timeout=60) as client:
        messages = (await client.get(f"{base}/twilio/_fake/messages")).json()
        pushes = (await client.get(f"{base}/fcm/_fake/messages")).json()
    texts = [dt.datetime.fromisoformat(m["date_created"]).timestamp() for m in messages]
    push = [dt.datetime.fromisoformat(p["received_at"]).timestamp() for p in pushes]
    first = min(texts + push, default=started_at)
    return first - started_at, max(texts, default=started_at) - started_at, max(push, default=started_at) - started_at


def since(started: tuple[float, float]) -> tuple[float, float]:
    now = main_thread_schedule()
    return now[0] - started[0], now[1] - started[1]


def main_thread_schedule() -> tuple[float, float]:
    """(seconds on a core, seconds runnable but waiting for one) of this process's main thread, from Linux's
    schedstat: what a run's time was spent on, beside the time it slept (waiting for I/O or the GIL)."""
    try:
        on_cpu, waiting, _ = Path(f"/proc/self/task/{os.getpid()}/schedstat").read_text().split()
    except OSError:
        return 0.0, 0.0
    return int(on_cpu) / 1e9, int(waiting) / 1e9


async def overhead(args: argparse.Namespace, base: str) -> None:
    """Pipeline and baseline runs alternate (P B P B ...): this machine's speed drifts by up to a quarter
    within minutes, so each pipeline run is compared with the baselines run just before and after it."""
    import statistics

    from app.db import close_database, open_database
    from workers.gc_tuning import tune_garbage_collector

    count = args.recipients or 10_000
    rounds = max(1, args.rounds)
    await open_database()
    pipelines: list[dict[str, Any]] = []
    baselines: list[float] = []
    cpu: dict[str, list[float]] = {"pipeline": [], "baseline": []}
    # The main thread's time on a core and waiting for one (schedstat), per run.
    main_thread: dict[str, list[tuple[float, float]]] = {"pipeline": [], "baseline": []}
    # When the first message, the last text and the last push arrived at the fakes, from the run's start.
    arrivals: dict[str, list[tuple[float, float, float]]] = {"pipeline": [], "baseline": []}
    duplicates_in_all = 0
    try:
        print(f"building a site with {count} recipients ...", flush=True)
        site, _ = await build_site(count)
        tune_garbage_collector()  # as a worker's startup does; the baseline runs under it too
        # A worker imports its modules and opens its connections once, for every job it runs after; the first
        # pipeline run here did that inside its timed window (and the baseline after it found them done).
        for _ in range(max(0, args.warmup)):
            await asyncio.to_thread(reset_fakes, base)
            await run_pipeline(site, ["push", "sms", "whatsapp"])
            sms, whatsapp, pushes, duplicates = await count_at_fakes(base)
            duplicates_in_all += duplicates
            await asyncio.to_thread(reset_fakes, base)
            await run_baseline(sms, whatsapp, pushes)
        for round_ in range(rounds):
            await asyncio.to_thread(reset_fakes, base)
            profiler = None
            if args.profile and round_ == 0:
                import cProfile

                profiler = cProfile.Profile()
                profiler.enable()
            started_cpu, started_at = time.process_time(), time.time()
            pipelines.append(await run_pipeline(site, ["push", "sms", "whatsapp"]))
            cpu["pipeline"].append(time.process_time() - started_cpu)
            main_thread["pipeline"].append(pipelines[-1]["main_thread"])
            if profiler is not None:
                import pstats

                profiler.disable()
                stats = pstats.Stats(profiler)
                stats.sort_stats("cumulative").print_stats(r"notifications|app/|piccolo|aiosqlite", 45)
                stats.sort_stats("tottime").print_stats(70)
            sms, whatsapp, pushes, duplicates = await count_at_fakes(base)
            arrivals["pipeline"].append(await arrivals_at_fakes(base, started_at))
            duplicates_in_all += duplicates
            await asyncio.to_thread(reset_fakes, base)
            started_cpu, started_at = time.process_time(), time.time()
            elapsed, schedule = await run_baseline(sms, whatsapp, pushes)
            arrivals["baseline"].append(await arrivals_at_fakes(base, started_at))
            baselines.append(elapsed)
            cpu["baseline"].append(time.process_time() - started_cpu)
            main_thread["baseline"].append(schedule)
            print(
                f"round {round_ + 1}: pipeline {pipelines[-1]['seconds']:.2f} s, baseline {baselines[-1]:.2f} s; "
                f"duplicates {duplicates}",
                flush=True,
            )
    finally:
        await close_database()
    # Each pipeline run against the mean of the baselines beside it (the one after it, and the one before).
    ratios = [run["seconds"] / statistics.mean(baselines[max(0, i - 1) : i + 1]) for i, run in enumerate(pipelines)]
    result = pipelines[-1]
    rows = sum(result["statuses"].values())
    sends = sms + whatsapp + pushes
    print()
    print(f"database                {database_name()}")
    print(
        f"recipients x channels   {count} x 3 = {rows} ledger rows, {rounds} rounds (pipeline, baseline, ...) "
        f"after {max(0, args.warmup)} untimed"
    )
    print(f"statuses                {dict(result['statuses'])}")
    print(
        f"at the fakes            {sms} SMS, {whatsapp} WhatsApp, {pushes} push each round; "
        f"duplicates {duplicates_in_all} in all rounds"
    )
    for i, run in enumerate(pipelines):
        print(
            f"round {i + 1}                 expand {run['expand_seconds']:.2f} s "
            f"({rows / run['expand_seconds']:.0f} decisions/s); send -> all rows final {run['seconds']:.2f} s; "
            f"baseline {baselines[i]:.2f} s; pipeline / baselines beside it {ratios[i]:.2f}x"
        )
    print(f"baseline: bare SDK      the same {sends} calls; median {statistics.median(baselines):.2f} s")
    print(
        f"pipeline / baseline     median {statistics.median(ratios):.2f}x the time, "
        f"range {min(ratios):.2f}-{max(ratios):.2f}x (target: at most 1.15x)"
    )
    print(
        f"CPU of this process     pipeline {statistics.median(cpu['pipeline']):.1f} s, "
        f"baseline {statistics.median(cpu['baseline']):.1f} s (medians)"
    )
    walls = {"pipeline": [run["seconds"] for run in pipelines], "baseline": baselines}
    for side in ("pipeline", "baseline"):
        on_core = statistics.median(c for c, _ in main_thread[side])
        waiting = statistics.median(w for _, w in main_thread[side])
        print(
            f"main thread, {side:8s} {statistics.median(walls[side]):.2f} s: on a core {on_core:.2f} s, "
            f"waiting for a core {waiting:.2f} s, asleep (I/O, the GIL) the rest (medians)"
        )
    first = {side: statistics.median(f for f, _, _ in arrivals[side]) for side in arrivals}
    texts = {side: statistics.median(t for _, t, _ in arrivals[side]) for side in arrivals}
    last_push = {side: statistics.median(p for _, _, p in arrivals[side]) for side in arrivals}
    print(f"first message at fakes  pipeline {first['pipeline']:.2f} s, baseline {first['baseline']:.2f} s (medians)")
    print(
        f"last text at the fakes  pipeline {texts['pipeline']:.2f} s, baseline {texts['baseline']:.2f} s; "
        f"then pushes alone until pipeline {last_push['pipeline']:.2f} s, baseline {last_push['baseline']:.2f} s "
        "(medians, from the run's start)"
    )
    print("garbage collector       the worker's (workers.gc_tuning), in both runs")


# ------------------------------------------------------------------------------ expansion


async def expansion(args: argparse.Namespace, base: str) -> None:
    from app.db import bulk_insert, close_database, open_database
    from notifications import fanout
    from notifications.ledger import LEDGER_COLUMNS, new_row_id
    from workers.gc_tuning import tune_garbage_collector

    count = args.recipients or 10_000
    await open_database()
    try:
        print(f"building a site with {count} recipients ...", flush=True)
        site, ids = await build_site(count)
        ctx = notify_context()
        tune_garbage_collector()  # as a worker's startup does; the baseline runs under it too
        runs = []
        for _ in range(3):
            notification_id = await announce(site, ["push", "sms", "whatsapp"])
            started = time.perf_counter()
            await fanout.expand(ctx, notification_id)
            runs.append(time.perf_counter() - started)
        # Baseline: the same number of rows, built and inserted bare (no audience, facts or decisions).
        notification_id = await announce(site, ["push", "sms", "whatsapp"], idempotency_key="baseline")
        now = dt.datetime.now(dt.UTC)
        started = time.perf_counter()
        rows = [
            (new_row_id(), site.id, notification_id, pid, channel, "pending", None, None, 0, now, now)
            for pid in ids
            for channel in ("push", "sms", "whatsapp")
        ]
        for start in range(0, len(rows), 3000):
            await bulk_insert("delivery", LEDGER_COLUMNS, rows[start : start + 3000], ignore_conflicts=True)
        bare = time.perf_counter() - started
        await ctx.providers.aclose()
        await ctx.redis.aclose()
    finally:
        await close_database()
    decisions = count * 3
    best = min(runs)
    print()
    print(f"database                {database_name()}")
    print(f"audience                {count} people x 3 channels = {decisions} decisions")
    print(
        f"expansion (3 runs)      {', '.join(f'{r:.2f}' for r in runs)} s; best {best:.2f} s = "
        f"{decisions / best:,.0f} decisions/s (target: at least 30,000/s)"
    )
    print(f"baseline: bare insert   {bare:.2f} s = {decisions / bare:,.0f} rows/s (no audience, facts or decisions)")


# ------------------------------------------------------------------------------ workers


def spawn_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A real arq worker process; its output goes to worker-<pid>.log in the run's directory."""
    command = [sys.executable, "-m", "workers"]
    log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - the worker writes to it until it is stopped
        dir=env["OPSHUB_VAR_DIR"], prefix="worker-", suffix=".log", delete=False
    )
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def run_workers(site: Any, count: int, workers: int, base: str) -> dict[str, Any]:
    from arq import create_pool

    from app.config import get_settings
    from schema.notifications import Delivery, Notification, NotificationPart
    from workers.main import queue_name, redis_settings

    settings = get_settings()
    processes = [spawn_worker(os.environ.copy()) for _ in range(workers)]
    pool = await create_pool(redis_settings(settings), default_queue_name=queue_name(settings))
    try:
        await asyncio.sleep(6)  # the workers import and start
        started = time.perf_counter()
        notification_id = await announce(site, ["push", "sms"])
        await pool.enqueue_job("notify_expand", str(notification_id))
        expanded: float | None = None
        while True:
            await asyncio.sleep(0.5)
            row = await Notification.select(Notification.status).where(Notification.id == notification_id).first()
            if expanded is None and row and row["status"] in ("sending", "completed"):
                expanded = time.perf_counter() - started  # every part expanded (to within the 0.5 s poll)
            if row and row["status"] == "completed":
                break
            if time.perf_counter() - started > 3600:
                raise RuntimeError("the announcement did not complete within an hour")
        elapsed = time.perf_counter() - started
        rss = [peak_rss_mb(p.pid) for p in processes]
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=60)
        await pool.aclose()
    parts = await NotificationPart.select(NotificationPart.finished_at).where(
        NotificationPart.notification == notification_id
    )
    # More than one claim: a retry after a provider's transient error, or rows recovery took back from
    # a sender whose lease ran out. Duplicates are what the fakes received twice.
    twice = await Delivery.count().where((Delivery.notification == notification_id) & (Delivery.attempts > 1))
    rows = await Delivery.count().where(Delivery.notification == notification_id)
    _, _, _, duplicates = await count_at_fakes(base)
    return {
        "seconds": elapsed,
        "expand_seconds": expanded if expanded is not None else float("nan"),
        "rows": rows,
        "claimed_twice": twice,
        "duplicates": duplicates,
        "rss_mb": rss,
        "parts": len(parts),
        "statuses": await ledger_statuses(notification_id),
    }


async def workers_scenario(args: argparse.Namespace, base: str) -> None:
    from app.db import close_database, open_database

    count = args.recipients or 100_000
    await open_database()
    try:
        print(f"building a site with {count} recipients ...", flush=True)
        site, _ = await build_site(count, mix=False)
        results = {}
        for workers in (2, 1):
            await asyncio.to_thread(reset_fakes, base)
            print(f"one announcement, {workers} worker process(es) ...", flush=True)
            results[workers] = await run_workers(site, count, workers, base)
    finally:
        await close_database()
    print()
    print(f"database                {database_name()}")
    for workers, result in results.items():
        print(
            f"{workers} worker(s): {result['rows']} ledger rows in {result['parts']} parts, {dict(result['statuses'])}"
        )
        print(
            f"  expansion (every part) {result['expand_seconds']:.1f} s = "
            f"{result['rows'] / result['expand_seconds']:,.0f} decisions/s"
        )
        print(f"  every row final       {result['seconds']:.1f} s ({result['rows'] / result['seconds']:,.0f} rows/s)")
        print(f"  peak RSS per worker   {', '.join(f'{m:.0f} MB' for m in result['rss_mb'])} (target: under 300 MB)")
        print(f"  claimed more than once {result['claimed_twice']} (retries after provider errors included)")
        print(f"  duplicates at fakes   {result['duplicates']} (target: 0)")


# ------------------------------------------------------------------------------ urgent


async def urgent_latencies(
    base: str, site: Any, people: list[Any], spacing: float, pool: Any, label: str
) -> list[float]:
    """Send a critical visitor alert to each person, one every `spacing` seconds; enqueue -> fake receipt."""
    import httpx

    from notifications.audience import Audience
    from workers.notify_jobs import enqueue_expand

    enqueued: dict[str, float] = {}
    for index, person in enumerate(people):
        notification_id = await announce(
            site,
            ["push", "sms"],
            title="Visitor at the gate",
            body=f"{label} {index} is at gate 1",
            category="visitor",
            urgency="critical",
            audience=Audience(person_ids=[person]),
        )
        enqueued[f"{label} {index} is at gate 1"] = time.time()
        await enqueue_expand(pool, notification_id)
        await asyncio.sleep(spacing)
    latencies: list[float] = []
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(timeout=60) as client:
        while time.monotonic() < deadline:
            sms = [
                m
                for m in (await client.get(f"{base}/twilio/_fake/messages")).json()
                if (m.get("body") or "").split(": ", 1)[-1] in enqueued
            ]
            push = [
                p
                for p in (await client.get(f"{base}/fcm/_fake/messages")).json()
                if ((p.get("notification") or {}).get("body") or "") in enqueued
            ]
            if len(sms) >= len(people) and len(push) >= len(people):
                break
            await asyncio.sleep(0.5)
    for message in sms:
        body = message["body"].split(": ", 1)[-1]
        latencies.append(dt.datetime.fromisoformat(message["date_created"]).timestamp() - enqueued[body])
    for message in push:
        body = message["notification"]["body"]
        latencies.append(dt.datetime.fromisoformat(message["received_at"]).timestamp() - enqueued[body])
    return latencies


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def urgent(args: argparse.Namespace, base: str) -> None:
    from arq import create_pool

    from app.config import get_settings
    from app.db import close_database, open_database
    from workers.main import queue_name, redis_settings

    settings = get_settings()
    await open_database()
    worker = None
    try:
        print(f"building a site with {args.bulk} + {2 * args.urgent} recipients ...", flush=True)
        site, ids = await build_site(args.bulk + 2 * args.urgent, mix=False)
        alone_people, busy_people, crowd = (
            ids[: args.urgent],
            ids[args.urgent : 2 * args.urgent],
            ids[2 * args.urgent :],
        )
        await asyncio.to_thread(reset_fakes, base, sender_rate_per_second=20)
        worker = spawn_worker({**os.environ, "OPSHUB_NOTIFY_RATE_SMS": "20"})
        pool = await create_pool(redis_settings(settings), default_queue_name=queue_name(settings))
        await asyncio.sleep(6)
        print("visitor alerts with nothing else running ...", flush=True)
        alone = await urgent_latencies(base, site, alone_people, 0.5, pool, "Alone")
        from notifications.audience import Audience
        from workers.notify_jobs import enqueue_expand

        bulk_id = await announce(site, ["sms"], audience=Audience(person_ids=crowd))
        await enqueue_expand(pool, bulk_id)
        await asyncio.sleep(5)  # the announcement fills the provider's 20/s
        print("the same alerts during a bulk SMS announcement at 20/s ...", flush=True)
        busy = await urgent_latencies(base, site, busy_people, 0.5, pool, "Busy")
        bulk_sent = (await ledger_statuses(bulk_id))["sent"]
        await pool.aclose()
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=60)
        await close_database()
    print()
    print(f"database                {database_name()}")
    print(
        f"alerts (push + SMS)     {args.urgent} each run; bulk announcement sent {bulk_sent} of {len(crowd)} meanwhile"
    )
    for name, values in (("alone (baseline)", alone), ("under the bulk send", busy)):
        print(
            f"  {name:20} p50 {percentile(values, 50) * 1000:6.0f} ms  p99 {percentile(values, 99) * 1000:6.0f} ms  "
            f"max {max(values) * 1000:6.0f} ms  ({len(values)} deliveries)"
        )
    print(f"p99 ratio               {percentile(busy, 99) / percentile(alone, 99):.2f}x (target: at most 1.5x)")


def main() -> None:
    args = parse_args()
    if args.scenario == "workers" and not (args.database_url or "").startswith("postgresql"):
        raise SystemExit("the workers scenario runs on PostgreSQL: --database-url postgresql://...")
    with environment(args.database_url) as base:
        scenario = {"overhead": overhead, "expansion": expansion, "workers": workers_scenario, "urgent": urgent}[
            args.scenario
        ]
        asyncio.run(scenario(args, base))


if __name__ == "__main__":
    main()
