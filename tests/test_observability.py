"""Observability: JSON log lines carrying the request id (into jobs and websocket sessions), and /metrics.

Real parts throughout: the app through its ASGI interface, a real arq worker on a queue of its own, a
uvicorn server for websockets, the Twilio fake for provider errors, and the database and Redis the
metrics read at scrape time.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import httpx
import msgspec
import pytest
import websockets
from arq import create_pool
from arq.worker import Worker
from prometheus_client.parser import text_string_to_metric_families

from app.config import ConfigError, load_settings
from app.observability.jobs import ORIGIN_KEY, deserialize_job, serialize_job
from app.observability.logs import JsonFormatter, configure_logging, request_id_var
from notifications import fanout, sender
from notifications.audience import Audience
from notifications.categories import Category, Channel
from notifications.fakes import running_fakes
from notifications.service import NotificationRequest, create_notification
from realtime.publish import Publisher
from realtime.topics import site_topic
from schema.events import CloseCode, Subscribed, Welcome, decode_server_frame
from schema.notifications import Delivery
from tests.support.notify import add_recipients, pipeline
from tests.support.servers import FAST, InProcessServer
from tests.support.world import World
from workers import maintenance
from workers.main import WorkerSettings, queue_name, redis_settings

PROBLEM = "application/problem+json"
METRICS_TOKEN = "metrics-token-for-the-observability-tests-0123456789"


# ---------------------------------------------------------------------------- helpers


class Lines(logging.Handler):
    """Every record logged anywhere, as the JSON line our formatter makes of it, parsed back."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))

    def where(self, **fields: Any) -> list[dict[str, Any]]:
        return [line for line in self.lines if all(line.get(k) == v for k, v in fields.items())]


@contextmanager
def captured(*debug_loggers: str) -> Iterator[Lines]:
    handler = Lines()
    root = logging.getLogger()
    root.addHandler(handler)
    levels = {name: logging.getLogger(name).level for name in debug_loggers}
    for name in debug_loggers:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in an exposition (None when absent)."""
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and all(found.labels.get(k) == v for k, v in labels.items()):
                return float(found.value)
    return None


async def scrape(client: Any, headers: dict[str, str]) -> str:
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return str(response.text)


def requests_seen(text: str, route: str, status: str = "200") -> float:
    value = sample(text, "opshub_http_request_duration_seconds_count", method="GET", route=route, status=status)
    return value or 0.0


@pytest.fixture(scope="module")
async def gateway(settings: Any) -> AsyncIterator[InProcessServer]:
    """A web process with a metrics token configured, serving HTTP and /ws on a real port."""
    # FAST's short outbox limit, but heartbeats slow enough for a client that stops reading to outlast them.
    realtime = msgspec.structs.replace(FAST, heartbeat_seconds=10.0, idle_timeout_seconds=60.0)
    server = InProcessServer(msgspec.structs.replace(settings, metrics_token=METRICS_TOKEN), realtime)
    await server.start()
    yield server
    await server.stop()


# ---------------------------------------------------------------------------- logs


async def test_request_log_line_is_json_with_the_callers_request_id(client: Any) -> None:
    with captured() as logs:
        response = await client.get("/health", headers={"X-Request-ID": "lb-7f3a.2:abc"})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "lb-7f3a.2:abc"
    [line] = logs.where(logger="opshub.access", request_id="lb-7f3a.2:abc")
    assert (line["level"], line["message"], line["route"], line["status"]) == (
        "INFO",
        "GET /health 200",
        "/health",
        200,
    )
    assert line["ts"].endswith("+00:00") and line["duration_ms"] >= 0


@pytest.mark.parametrize("offered", ["", "has space", "x" * 129, "semi;colon", "-leading-dash"])
async def test_an_unsafe_request_id_is_replaced_by_a_new_one(client: Any, offered: str) -> None:
    with captured() as logs:
        response = await client.get("/health", headers={"X-Request-ID": offered})
    issued = response.headers["x-request-id"]
    assert issued != offered and len(issued) == 32 and int(issued, 16) >= 0
    assert logs.where(logger="opshub.access", request_id=issued)


async def test_an_unmatched_path_and_a_refused_request_are_logged_by_route_template(client: Any, world: World) -> None:
    with captured() as logs:
        missing = await client.get("/no/such/page/secret-token-123", headers={"X-Request-ID": "req-404"})
        refused = await client.get(
            f"/api/units/{world.unit_ids[0]}", headers={"X-Request-ID": "req-401", "Authorization": "Bearer nonsense"}
        )
    assert (missing.status_code, missing.headers["x-request-id"]) == (404, "req-404")
    assert (refused.status_code, refused.headers["x-request-id"]) == (401, "req-401")
    [line] = logs.where(logger="opshub.access", request_id="req-404")
    assert (line["route"], line["status"]) == ("<unmatched>", 404)
    assert "secret-token" not in json.dumps(logs.where(logger="opshub.access"))  # the raw path is never logged
    [line] = logs.where(logger="opshub.access", request_id="req-401")
    assert (line["route"], line["status"]) == ("/api/units/{unit_id}", 401)


def test_configured_logging_writes_one_json_object_per_line_to_stderr(capsys: Any, settings: Any) -> None:
    configure_logging("INFO", "json")
    token = request_id_var.set("req-stderr")
    try:
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("opshub.test").exception("it failed for %s", "unit A-101", extra={"unit": "A-101"})
    finally:
        request_id_var.reset(token)
    [line] = [json.loads(text) for text in capsys.readouterr().err.splitlines() if '"opshub.test"' in text]
    assert {k: line[k] for k in ("level", "logger", "message", "request_id", "unit")} == {
        "level": "ERROR",
        "logger": "opshub.test",
        "message": "it failed for unit A-101",
        "request_id": "req-stderr",
        "unit": "A-101",
    }
    assert "ValueError: boom" in line["exc_info"]

    configure_logging("INFO", "text")  # the developer's format replaces the JSON handler, not adds to it
    try:
        logging.getLogger("opshub.test").warning("plain")
        [text] = [t for t in capsys.readouterr().err.splitlines() if "opshub.test" in t]
        assert text.endswith("WARNING opshub.test: plain")
    finally:
        configure_logging(settings.log_level, settings.log_format)


# ---------------------------------------------------------------------------- jobs


async def test_a_job_enqueued_by_a_request_logs_that_requests_id(client: Any, world: World, settings: Any) -> None:
    shared = queue_name(settings)
    private = f"{shared}:observability-test"
    pool = await create_pool(
        redis_settings(settings),
        default_queue_name=private,
        job_serializer=serialize_job,
        job_deserializer=deserialize_job,
    )
    try:
        admin = world.headers("platform_admin")
        before = sample(await scrape(client, admin), "opshub_job_queue_depth", queue=shared) or 0.0
        body = {
            "title": "Lift maintenance",
            "body": "Tower A lift off 14:00-15:00",
            "category": "announcement",
            "audience": {"unit_ids": [str(world.unit_ids[0])]},
            "channels": ["in_app"],
        }
        created = await client.post(
            "/api/announcements", json=body, headers={**world.headers("fm_admin"), "X-Request-ID": "req-announce-1"}
        )
        assert created.status_code == 201, created.text
        assert sample(await scrape(client, admin), "opshub_job_queue_depth", queue=shared) == before + 1
        # The request's job, moved to a queue of its own (the job's payload stays where it is).
        [job] = [j for j in await pool.queued_jobs(queue_name=shared) if j.args == (created.json()["id"],)]
        assert job.function == "notify_expand"
        score = await pool.zscore(shared, job.job_id)
        assert score is not None and await pool.zrem(shared, job.job_id) == 1
        await pool.zadd(private, {job.job_id: score})

        worker = Worker(
            functions=WorkerSettings.functions,
            redis_pool=pool,
            queue_name=private,
            burst=True,
            poll_delay=0.05,
            on_startup=WorkerSettings.on_startup,
            on_job_start=WorkerSettings.on_job_start,
            job_serializer=WorkerSettings.job_serializer,
            job_deserializer=WorkerSettings.job_deserializer,
        )
        with captured() as logs:
            try:
                await worker.main()
            finally:
                notify = worker.ctx.get("notify")
                if notify is not None:
                    await notify.providers.aclose()
        # notify_expand, then the notify_send jobs it enqueued: one per sender slot of a bulk channel.
        assert worker.jobs_complete == 1 + settings.notify_senders_per_channel and worker.jobs_failed == 0
    finally:
        await pool.aclose()
    expand_lines = logs.where(job_id=job.job_id)
    assert expand_lines and all(line["request_id"] == "req-announce-1" for line in expand_lines)
    assert any("notify_expand" in line["message"] for line in expand_lines)
    # The job the job enqueued carries the request's id too.
    send_lines = [
        line for line in logs.lines if "notify_send" in line["message"] and line.get("job_id") not in (None, job.job_id)
    ]
    assert send_lines and all(line["request_id"] == "req-announce-1" for line in send_lines)
    assert {line["job_id"] for line in send_lines} != {job.job_id}


async def test_a_scrape_reads_the_ledger_as_a_worker_last_counted_it_not_the_ledger_itself(
    client: Any, world: World, settings: Any, redis: Any
) -> None:
    """Counting the ledger by status scans all of it (a year of fan-outs: tens of millions of rows), so a
    worker's cron counts it once a minute and every process's scrape reads that count from Redis."""
    from app.observability.metrics import ledger_counts_key
    from notifications.ledger import LEDGER_COLUMNS, insert_rows, new_row_id, now_utc

    admin = world.headers("platform_admin")
    assert any(
        job.coroutine is maintenance.count_ledger_statuses and job.run_at_startup and job.unique
        for job in WorkerSettings.cron_jobs
    )
    await redis.delete(ledger_counts_key(settings))
    never_counted = await scrape(client, admin)
    assert sample(never_counted, "opshub_notification_deliveries", status="pending") is None
    assert sample(never_counted, "opshub_notification_deliveries_counted_timestamp_seconds") is None
    assert sample(never_counted, "opshub_scrape_source_up", source="database") == 1

    started = now_utc().timestamp()
    counted = await maintenance.count_ledger_statuses({"redis": redis, "settings": settings})
    finished = now_utc().timestamp()
    first = await scrape(client, admin)
    for status, count in counted.items():
        assert sample(first, "opshub_notification_deliveries", status=status) == count, status
    counted_at = sample(first, "opshub_notification_deliveries_counted_timestamp_seconds")
    assert counted_at is not None and started <= counted_at <= finished

    # The ledger changes; the scrape still says what was counted, until the next count.
    [recipient] = await add_recipients(world, 1)
    notification_id, _ = await create_notification(
        site_id=world.site_id,
        request=NotificationRequest(
            title="Water",
            body="Tower B water off",
            category=Category.ANNOUNCEMENT,
            audience=Audience(person_ids=[recipient.person_id]),
            channels=[Channel.SMS],
        ),
    )
    row = dict.fromkeys(LEDGER_COLUMNS)
    now = now_utc()
    row.update(
        id=new_row_id(),
        site=world.site_id,
        notification=UUID(str(notification_id)),
        person=recipient.person_id,
        channel="sms",
        status="pending",
        attempts=0,
        created_at=now,
        updated_at=now,
    )
    await insert_rows([tuple(row.values())])
    unchanged = await scrape(client, admin)
    assert sample(unchanged, "opshub_notification_deliveries", status="pending") == counted["pending"]
    assert sample(unchanged, "opshub_notification_deliveries_counted_timestamp_seconds") == counted_at
    recounted = await maintenance.count_ledger_statuses({"redis": redis, "settings": settings})
    assert recounted["pending"] >= counted["pending"] + 1
    latest = await scrape(client, admin)
    assert sample(latest, "opshub_notification_deliveries", status="pending") == recounted["pending"]


def test_a_job_enqueued_outside_any_request_carries_no_id() -> None:
    payload = {"t": 1, "f": "notify_tick", "a": (), "k": {}, "et": 0}
    assert ORIGIN_KEY not in deserialize_job(serialize_job(payload))
    token = request_id_var.set("req-x")
    try:
        assert deserialize_job(serialize_job(payload))[ORIGIN_KEY] == "req-x"
    finally:
        request_id_var.reset(token)


# ---------------------------------------------------------------------------- websocket sessions


async def test_a_websocket_session_logs_its_session_and_upgrade_request_ids(
    gateway: InProcessServer, world: World
) -> None:
    with captured("opshub.realtime") as logs:
        async with websockets.connect(
            f"{gateway.url}?token={world.token('guard')}", additional_headers={"X-Request-ID": "req-ws-upgrade"}
        ) as ws:
            assert ws.response is not None and ws.response.headers["x-request-id"] == "req-ws-upgrade"
            welcome = decode_server_frame(await ws.recv())[0]
            assert isinstance(welcome, Welcome)
            await ws.send('{"op": "subscribe", "topic": "site:not-a-uuid:slots"}')
            await ws.recv()
        for _ in range(100):
            if logs.where(message=f"realtime session closed ({CloseCode.NORMAL} )"):
                break
            await asyncio.sleep(0.02)
    session = logs.where(ws_session=welcome.connection_id)
    assert [line["message"] for line in session] == [
        "realtime session opened",
        f"realtime session closed ({CloseCode.NORMAL} )",
    ]
    assert all(line["request_id"] == "req-ws-upgrade" for line in session)
    assert session[0]["person_id"] == str(world.people["guard"])


# ---------------------------------------------------------------------------- /metrics access


async def test_metrics_refuse_anonymous_and_other_roles(client: Any, world: World) -> None:
    anonymous = await client.get("/metrics")
    assert anonymous.status_code == 401 and anonymous.headers["content-type"].startswith(PROBLEM)
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    for name in ("occupant", "guard", "fm_admin", "site_admin"):
        refused = await client.get("/metrics", headers=world.headers(name))
        assert refused.status_code == 403 and refused.headers["content-type"].startswith(PROBLEM), name
    # No metrics token is configured in this app: a guessed one is just a bad bearer token.
    guessed = await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert guessed.status_code == 401 and guessed.headers["content-type"].startswith(PROBLEM)
    admin = await client.get("/metrics", headers=world.headers("platform_admin"))
    assert admin.status_code == 200 and "opshub_http_request_duration_seconds" in admin.text
    # In the document with the credential it takes, like every route.
    assert client.app.openapi_schema.to_schema()["paths"]["/metrics"]["get"]["security"] == [{"metrics_token": []}]


async def test_metrics_accept_the_configured_token(gateway: InProcessServer, world: World) -> None:
    async with httpx.AsyncClient(base_url=gateway.http_url) as http:
        accepted = await http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert accepted.status_code == 200 and accepted.headers["x-request-id"]
        wrong = await http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN[:-1]}x"})
        assert wrong.status_code == 401 and wrong.headers["content-type"].startswith(PROBLEM)
        occupant = await http.get("/metrics", headers=world.headers("occupant"))
        assert occupant.status_code == 403
        assert (await http.get("/metrics", headers=world.headers("platform_admin"))).status_code == 200


def test_a_short_metrics_token_is_refused_at_start_up() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings({"OPSHUB_METRICS_TOKEN": "short"})
    assert "OPSHUB_METRICS_TOKEN" in raised.value.message


# ---------------------------------------------------------------------------- metric families


async def test_request_latency_counts_each_request_by_route_template(client: Any, world: World) -> None:
    admin = world.headers("platform_admin")
    before = await scrape(client, admin)
    for _ in range(3):
        assert (await client.get("/health")).status_code == 200
    refused = await client.get(f"/api/platform/sites/{world.site_id}", headers=world.headers("occupant"))
    assert refused.status_code == 403
    after = await scrape(client, admin)
    assert requests_seen(after, "/health") == requests_seen(before, "/health") + 3
    route = "/api/platform/sites/{site_id}"
    assert requests_seen(after, route, "403") == requests_seen(before, route, "403") + 1
    assert sample(after, "opshub_http_request_duration_seconds_bucket", route="/health", le="+Inf") is not None
    assert sample(after, "process_resident_memory_bytes") is not None


async def test_websocket_gauges_outbox_depth_and_slow_consumer_cuts(
    gateway: InProcessServer, world: World, redis: Any, settings: Any
) -> None:
    token = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    topic = site_topic(world.site_id, "slots")
    async with httpx.AsyncClient(base_url=gateway.http_url, headers=token) as http:
        idle = await scrape(http, {})
        cuts = sample(idle, "opshub_ws_slow_consumer_cuts_total") or 0.0
        # A client that stops reading: a tiny receive buffer and no reads fill the server's socket.
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.setblocking(False)
        await asyncio.get_running_loop().sock_connect(raw, ("127.0.0.1", gateway.port))
        slow = await websockets.connect(
            f"{gateway.url}?token={world.token('guard')}", sock=raw, compression=None, max_queue=1, max_size=None
        )
        try:
            await slow.send(msgspec.json.encode({"op": "subscribe", "topic": topic}).decode())
            async with asyncio.timeout(5):
                while not any(isinstance(m, Subscribed) for m in decode_server_frame(await slow.recv())):
                    pass
            connected = await scrape(http, {})
            assert sample(connected, "opshub_ws_connections") == sample(idle, "opshub_ws_connections") + 1  # type: ignore[operator]
            [connection] = [c for c in gateway.hub.connections if c.principal.person_id == world.people["guard"]]

            publisher, blob, sent = Publisher(redis, settings), "x" * 16_000, 0
            async with asyncio.timeout(30):
                # Until the socket is full and messages wait (still there well after the 5 ms flush window),
                # and a scrape sees them: the kernel may grow its send buffer and take a backlog in between.
                while True:
                    for _ in range(5):
                        await publisher.publish(topic, "slot.availability_changed", {"n": sent, "blob": blob})
                        sent += 1
                    await asyncio.sleep(0.1)
                    if connection.outbox_depth > 0:
                        backlog = await scrape(http, {})
                        if (sample(backlog, "opshub_ws_outbox_messages") or 0) > 0:
                            break
            # One connection: the deepest outbox is the only one.
            assert sample(backlog, "opshub_ws_outbox_max_messages") == sample(backlog, "opshub_ws_outbox_messages")

            async with asyncio.timeout(30):
                while connection in gateway.hub.connections:  # until it outgrows the limit and is cut
                    await publisher.publish(topic, "slot.availability_changed", {"n": sent, "blob": blob})
                    sent += 1
                    await asyncio.sleep(0.005)
            cut = await scrape(http, {})
            assert sample(cut, "opshub_ws_slow_consumer_cuts_total") == cuts + 1
            assert sample(cut, "opshub_ws_connections") == sample(idle, "opshub_ws_connections")
            assert sample(cut, "opshub_ws_outbox_messages") == 0
        finally:
            slow.transport.abort()


async def test_provider_errors_from_the_twilio_fake_and_ledger_rows_by_status(
    client: Any, world: World, settings: Any, redis: Any
) -> None:
    admin = world.headers("platform_admin")
    labels = {"provider": "twilio", "channel": "sms", "code": "20429"}
    await maintenance.count_ledger_statuses({"redis": redis, "settings": settings})
    before = await scrape(client, admin)
    errors_before = sample(before, "opshub_provider_errors_total", **labels) or 0.0
    recipients = await add_recipients(world, 3)
    async with running_fakes() as fakes:
        fakes.twilio.configure(callbacks_enabled=False)
        fakes.twilio.fail_next(2, 429)
        with captured() as logs:
            async with pipeline(settings, redis, fakes) as ctx:
                request = NotificationRequest(
                    title="Water",
                    body="Tower A water off 10:00-12:00",
                    category=Category.ANNOUNCEMENT,
                    audience=Audience(person_ids=[r.person_id for r in recipients]),
                    channels=[Channel.SMS],
                )
                notification_id, _ = await create_notification(site_id=world.site_id, request=request)
                for channel in await fanout.expand(ctx, notification_id):
                    await sender.send_pending(ctx, notification_id, channel)
    # The SDK's own INFO lines (every request, with its parameters) are held back.
    assert logs.lines and not [line for line in logs.lines if line["logger"].startswith(("twilio", "httpx"))]
    after = await scrape(client, admin)
    assert sample(after, "opshub_provider_errors_total", **labels) == errors_before + 2
    # Ledger rows by status, all sites: what the database held when the worker's cron last counted.
    counted = await maintenance.count_ledger_statuses({"redis": redis, "settings": settings})
    after = await scrape(client, admin)
    rows = await Delivery.raw("SELECT status, COUNT(*) AS n FROM delivery GROUP BY status")
    in_db = {str(row["status"]): int(row["n"]) for row in rows}
    for status in ("pending", "sent", "failed", "suppressed", "deferred"):
        assert sample(after, "opshub_notification_deliveries", status=status) == in_db.get(status, 0), status
        assert counted[status] == in_db.get(status, 0), status
    mine = await Delivery.select(Delivery.status).where(Delivery.notification == UUID(str(notification_id)))
    assert sorted(r["status"] for r in mine) == ["pending", "pending", "sent"]  # two wait for their retry
    pending = sample(after, "opshub_notification_deliveries", status="pending") or 0.0
    assert pending >= (sample(before, "opshub_notification_deliveries", status="pending") or 0.0) + 2
    assert sample(after, "opshub_scrape_source_up", source="database") == 1
    assert sample(after, "opshub_scrape_source_up", source="redis") == 1
