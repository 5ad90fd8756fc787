"""The estate as deployed, on one machine (issue 21, points 3 and 4): every process on a host of its own.

Hosts are network namespaces joined by veth links to one bridge (``tests/support/netns.py``): the
main Redis (arq, rate limits, sessions), three realtime shards, two web hosts and two worker hosts.
Traffic between them really crosses a link that can be cut (``ip link set down``: no RST, no FIN,
as a pulled cable) or slowed (``tc netem``). The test process plays the clients, the publishers
and the providers (the fakes, bound to the bridge); PostgreSQL stays on the host and is reached
through a TCP proxy on the bridge.

- A web host cut off: its clients notice the silence, reconnect to the other web host and resume
  every topic with no lost and no repeated event.
- A Redis shard partitioned: ``/ready`` says degraded and names it, ``/metrics`` has it down, the
  other shards' topics flow on; once the link is back its topics are replayed what they missed
  (the shard kept its data, so nobody is told to resync; a shard that lost it is shown in
  tests/test_realtime_shards.py).
- A worker host cut off in the middle of a fan-out: the other worker finishes the announcement;
  the ledger has every row once (0 missing, 0 duplicate) and every person got each message once.

Skipped, with the reason, where namespaces cannot be created (not root). The worker test needs
PostgreSQL: a host cut off from the network still reaches a SQLite file, so it would not be cut off.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse
from uuid import uuid4

import httpx
import msgspec
import pytest
from arq import create_pool
from arq.connections import RedisSettings

from app.auth.roles import Role
from app.auth.tokens import issue_access_token
from app.redis import create_redis
from notifications.audience import Audience
from notifications.categories import Category, Channel
from notifications.fakes import running_fakes
from notifications.service import NotificationRequest, create_notification
from realtime import history
from realtime.client import RealtimeClient
from realtime.publish import Publisher
from realtime.server_protocol import UVICORN_WS
from realtime.shards import shard_name, shards_for
from realtime.topics import site_topic, unit_topic
from schema.events import Resync
from schema.notifications import Delivery, Notification
from tests.support.faults import Recorder, TcpProxy, cancel_other_notifications, wait_until, worker_env
from tests.support.netns import Host, Network, Unsupported, wait_for_port
from tests.support.notify import add_recipients
from tests.support.servers import FAST, FAST_ENV
from tests.support.shards import topics_on_every_shard
from tests.support.world import World
from workers.main import queue_name

pytestmark = pytest.mark.netns  # `-m "not netns"` leaves them out where a run must be quick
ROOT = Path(__file__).resolve().parent.parent
IS_POSTGRES = os.environ.get("DATABASE_URL", "").startswith("postgres")
WEB_PORT = 8000


@dataclass
class Estate:
    network: Network
    redis_url: str  # the main Redis: arq, rate limits, sessions
    shard_urls: list[str]
    database_url: str  # as the hosts reach it
    settings: Any  # the test process's view of the same estate
    env: dict[str, str]  # every process's environment
    proxy: TcpProxy | None
    logs: Path

    def host(self, name: str) -> Host:
        return next(h for h in self.network.hosts if h.name == name)


@pytest.fixture(scope="module")
async def estate(settings: Any, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Estate]:
    try:
        network = await asyncio.to_thread(Network.create)
    except Unsupported as exc:
        pytest.skip(f"network namespaces are not available here: {exc}")
    proxy: TcpProxy | None = None
    try:
        tmp = tmp_path_factory.mktemp("estate")
        for name in ("redis", "shard0", "shard1", "shard2", "web1", "web2", "worker1", "worker2"):
            await asyncio.to_thread(network.add_host, name)
        hosts = {h.name: h for h in network.hosts}
        redis_url = await asyncio.to_thread(hosts["redis"].start_redis, tmp / "redis")
        shard_urls = [await asyncio.to_thread(hosts[f"shard{i}"].start_redis, tmp / f"shard{i}") for i in range(3)]
        database_url = settings.database_url
        if IS_POSTGRES:
            parsed = urlparse(settings.database_url)
            proxy = TcpProxy(parsed.hostname or "127.0.0.1", parsed.port or 5432, listen_host=network.gateway)
            await proxy.start()
            netloc = (
                f"{parsed.username}@{network.gateway}:{proxy.port}"
                if parsed.username
                else f"{network.gateway}:{proxy.port}"
            )
            # A host cut off mid-transaction never says goodbye: PostgreSQL ends its idle transaction
            # (and frees the rows it locked) after this long, as docs/deploy.md says to configure.
            database_url = urlunparse(parsed._replace(netloc=netloc, query="idle_in_transaction_session_timeout=3000"))
        shards_value = ",".join(shard_urls)
        env = {
            **os.environ,
            **FAST_ENV,
            "REDIS_URL": redis_url,
            "REALTIME_REDIS_URLS": shards_value,
            "DATABASE_URL": database_url,
            "OPSHUB_DATABASE_POOL_SIZE": "4",
        }
        yield Estate(
            network=network,
            redis_url=redis_url,
            shard_urls=shard_urls,
            database_url=database_url,
            settings=msgspec.structs.replace(settings, redis_url=redis_url, realtime_redis_urls=shards_value),
            env=env,
            proxy=proxy,
            logs=tmp,
        )
    finally:
        if proxy is not None:
            await proxy.aclose()
        await asyncio.to_thread(network.destroy)


async def _start_web(estate: Estate, host: Host) -> str:
    log = (estate.logs / f"{host.name}.log").open("ab")
    process = host.spawn(
        [
            sys.executable,
            *("-m", "uvicorn", "app.main:create_app", "--factory", "--host", host.address, "--port", str(WEB_PORT)),
            *("--ws", UVICORN_WS, "--ws-per-message-deflate", "false", "--log-level", "warning"),
        ],
        env=estate.env,
        log=log,
        cwd=ROOT,
    )
    await wait_for_port(host.address, WEB_PORT, 40, process)
    return f"ws://{host.address}:{WEB_PORT}/ws"


# ---------------------------------------------------------------------------- a web host cut off

CLIENTS = 40


async def test_a_web_host_cut_off_its_clients_resume_on_another_with_no_lost_event(
    estate: Estate, world: World, settings: Any
) -> None:
    web1, web2 = estate.host("web1"), estate.host("web2")
    # The surviving web host's link is a poor one: 20 ms and 1% loss towards it (where the kernel has netem).
    try:
        estate.network.netem(web2, delay_ms=20, loss_percent=1)
        netem = "20 ms, 1% loss on web2's link"
    except Unsupported as exc:
        netem = f"no netem on this kernel ({exc})"
    url1, url2 = await asyncio.gather(_start_web(estate, web1), _start_web(estate, web2))
    topics = [site_topic(world.site_id, "slots"), site_topic(world.site_id, "gate"), unit_topic(world.unit_ids[0])]
    main_redis = create_redis(estate.settings)
    publisher = Publisher(main_redis, estate.settings, FAST)
    published = 0

    async def publish_round() -> None:
        nonlocal published
        for topic in topics:
            await publisher.publish(topic, "slot.availability_changed", {"n": published})
        published += 1

    def everyone_has(count: int) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return all(r.last_seq(t) == count for r in recorders for t in topics)

        return check

    recorders: list[Recorder] = []

    async def join() -> Recorder:
        token, _ = issue_access_token(settings, person_id=uuid4(), site_id=world.site_id, roles=frozenset({Role.GUARD}))
        client = RealtimeClient([url1, url2], token, min_backoff=0.05, max_backoff=0.3, open_timeout=1.5)
        await client.connect()
        for topic in topics:
            await client.subscribe(topic)
        return Recorder(client)

    try:
        recorders = list(await asyncio.gather(*(join() for _ in range(CLIENTS))))
        for _ in range(5):
            await publish_round()
        await wait_until(everyone_has(5), 15, "the first events")
        estate.network.cut(web1)  # the web host is gone from the network; its clients are not told
        for _ in range(10):  # committed while the clients are moving
            await publish_round()
            await asyncio.sleep(0.1)

        async def all_moved() -> bool:
            return all(r.client.connects == 2 and r.client.connected for r in recorders)

        await wait_until(all_moved, 20, "every client to reconnect to the other web host")
        for _ in range(5):
            await publish_round()
        await wait_until(everyone_has(20), 20, "every client to resume")
        await asyncio.sleep(0.3)  # a duplicate would arrive now
    finally:
        await asyncio.gather(*(r.stop() for r in recorders))
        await main_redis.aclose()
        estate.network.restore(web1)
        web1.kill_all()
        web2.kill_all()
    print(f"\n{CLIENTS} clients moved from web1 to web2; {netem}")
    for recorder in recorders:
        assert recorder.client.url == url2
        for topic in topics:
            assert [e.data["n"] for e in recorder.events(topic)] == list(range(20)), topic
        assert not [m for m in recorder.messages if isinstance(m, Resync)]


# ---------------------------------------------------------------------------- a Redis shard partitioned


async def test_a_partitioned_shard_holds_only_its_topics_and_is_reported_degraded(
    estate: Estate, world: World, settings: Any
) -> None:
    web1, shard1 = estate.host("web1"), estate.host("shard1")
    url = await _start_web(estate, web1)
    http_base = f"http://{web1.address}:{WEB_PORT}"
    placed = await topics_on_every_shard(world, estate.shard_urls, per_shard=1)
    topics = [t for per_shard in placed for t in per_shard]
    held, others = placed[1], [t for t in topics if t not in placed[1]]
    main_redis = create_redis(estate.settings)
    publisher = Publisher(main_redis, estate.settings, FAST)
    published = dict.fromkeys(topics, 0)
    refused: Counter[str] = Counter()
    stop = asyncio.Event()

    async def publish_steadily(topic: str) -> None:
        # One task per topic: a publish waiting on the partitioned shard holds up only its own topic.
        while not stop.is_set():
            try:
                published[topic] = await publisher.publish(topic, "slot.availability_changed", {})
            except Exception:
                refused[topic] += 1
            await asyncio.sleep(0.03)

    async def readiness() -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=http_base, timeout=5) as http:
            return dict((await http.get("/ready")).json())

    async def at(count: dict[str, int], which: list[str]) -> bool:
        return all((r.last_seq(t) or 0) >= count[t] for r in recorders for t in which)

    recorders: list[Recorder] = []
    publishers: list[asyncio.Task[None]] = []
    try:
        for _ in range(10):
            client = RealtimeClient(url, world.token("fm_admin"), min_backoff=0.05, max_backoff=0.3)
            await client.connect()
            for topic in topics:
                await client.subscribe(topic)
            recorders.append(Recorder(client))
        publishers = [asyncio.create_task(publish_steadily(t)) for t in topics]
        await wait_until(lambda: at(dict.fromkeys(topics, 5), topics), 15, "the first events")
        estate.network.cut(shard1)

        async def degraded() -> bool:
            body = await readiness()
            return body["status"] == "degraded" and [s["up"] for s in body["realtime_shards"]] == [True, False, True]

        await wait_until(degraded, 20, "/ready to report the partitioned shard")
        async with httpx.AsyncClient(base_url=http_base, headers=world.headers("platform_admin")) as http:
            metrics = (await http.get("/metrics")).text
        assert f'opshub_realtime_shard_up{{shard="{shard_name(estate.shard_urls[1])}"}} 0.0' in metrics
        mark = dict(published)
        await wait_until(lambda: at({t: mark[t] + 10 for t in others}, others), 15, "the other shards' topics to flow")
        estate.network.restore(shard1)
        await wait_until(lambda: _ready_ok(readiness), 30, "/ready to be ok again")
        await asyncio.sleep(0.5)
        stop.set()
        await asyncio.gather(*publishers)
        # A publish whose reply the cut swallowed may still have happened: the shard has the last word.
        ring = shards_for(main_redis, estate.settings)
        for topic in topics:
            since = await history.read_since(ring.for_topic(topic).redis, estate.settings, topic, None)
            published[topic] = since.position.seq
        await wait_until(lambda: at(published, topics), 20, "every client to catch up")
        await asyncio.sleep(0.3)
    finally:
        stop.set()
        await asyncio.gather(*publishers, return_exceptions=True)
        await asyncio.gather(*(r.stop() for r in recorders))
        await main_redis.aclose()
        estate.network.restore(shard1)
        web1.kill_all()
    assert refused[held[0]] > 0 and not any(refused[t] for t in others), refused
    for recorder in recorders:
        assert recorder.client.connects == 1  # never disconnected
        for topic in topics:
            # The shard kept its data: what its topic missed while cut off is replayed, no resync.
            seqs = [e.seq for e in recorder.events(topic)]
            assert seqs == list(range(1, len(seqs) + 1)), topic  # no gap, no duplicate
            # A publish refused during the cut may land later still: its socket was closed with the
            # command unsent, and the kernel goes on retransmitting it once the network is back.
            late = refused[topic]
            assert published[topic] <= len(seqs) <= published[topic] + late, (topic, late)
        assert not [m for m in recorder.messages if isinstance(m, Resync)]


async def _ready_ok(readiness: Callable[[], Awaitable[dict[str, Any]]]) -> bool:
    try:
        return bool((await readiness())["status"] == "ok")
    except httpx.HTTPError:
        return False


# ---------------------------------------------------------------------------- a worker host cut off

RECIPIENTS = 400


@pytest.mark.skipif(
    not IS_POSTGRES,
    reason="a worker host cut off from the network still reaches a SQLite file on this machine: needs PostgreSQL",
)
async def test_a_worker_host_cut_off_mid_fan_out_the_other_finishes_with_no_missing_or_duplicate_row(
    estate: Estate, world: World
) -> None:
    people = await add_recipients(world, RECIPIENTS)
    await cancel_other_notifications(world.site_id)
    worker1, worker2 = estate.host("worker1"), estate.host("worker2")
    async with running_fakes(host=estate.network.gateway) as fakes:
        fakes.twilio.configure(callbacks_enabled=False)  # in-flight sends are settled by asking Twilio
        env = {
            **worker_env(fakes),
            **{k: v for k, v in estate.env.items() if k in ("REDIS_URL", "REALTIME_REDIS_URLS", "DATABASE_URL")},
            # Paced, so the fan-out lasts long enough to be cut in the middle (the pace is shared by both workers).
            "OPSHUB_NOTIFY_RATE_SMS": "150",
            "OPSHUB_LOG_LEVEL": "INFO",
        }
        logs = {h.name: estate.logs / f"{h.name}.log" for h in (worker1, worker2)}
        for host in (worker1, worker2):
            host.spawn(
                [sys.executable, "-m", "workers"],
                env=env,
                log=logs[host.name].open("ab"),
                cwd=ROOT,
            )
        pool = await create_pool(
            RedisSettings.from_dsn(estate.redis_url), default_queue_name=queue_name(estate.settings)
        )
        try:

            async def both_started() -> bool:
                return (
                    all("Starting worker" in p.read_text(errors="replace") for p in logs.values() if p.exists())
                    and len([p for p in logs.values() if p.exists()]) == 2
                )

            await wait_until(both_started, 40, "both workers to start")
            notification_id, _ = await create_notification(
                site_id=world.site_id,
                request=NotificationRequest(
                    title="Lifts",
                    body="Lift B is under maintenance from 10:00 to 12:00",
                    category=Category.ANNOUNCEMENT,
                    audience=Audience(person_ids=[p.person_id for p in people]),
                    channels=[Channel.PUSH, Channel.SMS],
                ),
            )
            await pool.enqueue_job("notify_expand", str(notification_id))

            async def sms_mid_way() -> bool:
                sent = await _count(notification_id, "sms", ["sent"])
                return sent >= RECIPIENTS // 4 and any(_sms_jobs_running(logs[h.name]) for h in (worker1, worker2))

            await wait_until(sms_mid_way, 40, "a worker to be in the middle of sending the SMSs")
            # The worker running an SMS sender job (arq gives jobs to whoever asks first) is the one cut off.
            cut, survivor = sorted((worker1, worker2), key=lambda h: _sms_jobs_running(logs[h.name]), reverse=True)
            estate.network.cut(cut)
            at_cut = await _count(notification_id, "sms", ["sent"])
            assert at_cut < RECIPIENTS, "the fan-out ended before the cut"
            jobs_at_cut = _sms_jobs_running(logs[cut.name])
            assert jobs_at_cut > 0
            survivor_before = _rows_sent(logs[survivor.name])

            async def finished() -> bool:
                row = await Notification.select(Notification.status).where(Notification.id == notification_id).first()
                return row is not None and row["status"] == "completed"

            await wait_until(finished, 60, "the other worker to finish the announcement")
            finished_by_survivor = _rows_sent(logs[survivor.name]) - survivor_before
            assert finished_by_survivor > 0, "the other worker sent nothing after the cut"
        finally:
            await pool.aclose()
            for host in (worker1, worker2):
                host.kill_all()  # the cut one still cut off: it never comes back to this announcement
                estate.network.restore(host)
        sms = Counter(m.to for m in fakes.twilio.messages if m.channel == "sms")
        push_shown = Counter(m.target for m in fakes.fcm.messages)
        push_tags = {(m.target, m.message["android"]["notification"]["tag"]) for m in fakes.fcm.messages}
    rows = await Delivery.select(Delivery.person, Delivery.channel, Delivery.status).where(
        Delivery.notification == notification_id
    )
    per_person = Counter((r["person"], r["channel"]) for r in rows)
    missing = [(p.person_id, c) for p in people for c in ("sms", "push") if per_person[(p.person_id, c)] == 0]
    duplicate = [key for key, n in per_person.items() if n > 1]
    assert missing == [] and duplicate == [], (len(missing), len(duplicate))
    assert Counter((r["channel"], r["status"]) for r in rows) == {
        ("sms", "sent"): RECIPIENTS,
        ("push", "sent"): RECIPIENTS,
    }
    assert all(sms[p.mobile] == 1 for p in people), Counter(sms.values())
    # A push re-sent after the cut carries the same tag (the delivery id): the device shows it once.
    assert len(push_tags) == RECIPIENTS and all(push_shown[p.token] >= 1 for p in people)
    print(
        f"\ncut {cut.name} with {at_cut} SMS sent, {jobs_at_cut} SMS sender job(s) running on it; "
        f"{survivor.name} sent {finished_by_survivor} rows after the cut; "
        f"push repeats at the transport: {sum(push_shown.values()) - RECIPIENTS}"
    )


_ROWS_SENT = re.compile(r"sent (\d+) rows of notification")
_SMS_JOB_STARTED = re.compile(r"→ (\w+):notify_send\('[^']*', 'sms'")
_JOB_ENDED = re.compile(r"← (\w+):notify_send")


def _sms_jobs_running(log: Path) -> int:
    """SMS sender jobs the worker has started and not finished, from arq's own log lines."""
    if not log.exists():
        return 0
    text = log.read_text(errors="replace")
    return len(set(_SMS_JOB_STARTED.findall(text)) - set(_JOB_ENDED.findall(text)))


def _rows_sent(log: Path) -> int:
    if not log.exists():
        return 0
    return sum(int(m.group(1)) for m in _ROWS_SENT.finditer(log.read_text(errors="replace")))


async def _count(notification_id: Any, channel: str, statuses: list[str]) -> int:
    return await Delivery.count().where(
        (Delivery.notification == notification_id) & (Delivery.channel == channel) & Delivery.status.is_in(statuses)
    )
