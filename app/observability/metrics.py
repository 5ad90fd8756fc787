"""The metric families of ``GET /metrics``.

Two kinds, so that a scrape of the web process sees what every process did:

- process-local, kept in this process's ``REGISTRY``: request latency (``asgi``), slow-consumer cuts
  (``realtime.connection``), plus the process's CPU, memory and GC;
- read at scrape time from what all processes share (``scrape``): websocket connections and outbox depth
  from this process's hub, the arq queue depth from Redis, provider errors from a Redis hash that every
  worker increments (``count_provider_errors``), and the ledger's rows by status as a worker last counted
  them (``record_ledger_counts``, every minute): counting them is a scan of the whole ledger, which a year
  of fan-outs makes tens of millions of rows, and a scrape of every process every few seconds must not
  repeat it.

A source that cannot be read leaves its families out and says so in ``opshub_scrape_source_up``.
"""

from __future__ import annotations

import logging
import time
from collections import Counter as Tally
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Final

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from app.config import Settings
    from notifications.categories import Channel
    from notifications.channels.base import Outcome
    from realtime.hub import Hub

logger = logging.getLogger("opshub.observability")

# The exposition format generate_latest writes (the classic text format), for every supported client version.
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

# Ours, not the library's default registry: only what this module registers is exposed.
REGISTRY: Final = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

HTTP_REQUEST_SECONDS: Final = Histogram(
    "opshub_http_request_duration_seconds",
    "HTTP request latency, by method, route template and status.",
    ("method", "route", "status"),
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
SLOW_CONSUMER_CUTS: Final = Counter(
    "opshub_ws_slow_consumer_cuts",
    "Websocket connections closed with 4008 because their outbox outgrew the limit.",
    registry=REGISTRY,
)

# ------------------------------------------------------------------------------ provider errors

# Who answered for each channel; the label says whose error it was.
PROVIDER_OF: Final[dict[str, str]] = {
    "sms": "twilio",
    "whatsapp": "twilio",
    "push": "fcm",
    "email": "smtp",
    "in_app": "in_app",
}
# Outcome codes we set ourselves before asking a provider: not provider errors.
LOCAL_CODES: Final = frozenset({"no_address", "no_device"})
MAX_CODE_LENGTH: Final = 40


def provider_errors_key(settings: Settings) -> str:
    return f"{settings.redis_prefix}metrics:provider_errors"


def provider_error_tally(channel: Channel | str, outcomes: Iterable[Outcome]) -> Tally[str]:
    """Failed and retried outcomes, counted by ``provider|channel|code``."""
    channel = str(channel)
    provider = PROVIDER_OF.get(channel, channel)
    tally: Tally[str] = Tally()
    for outcome in outcomes:
        if outcome.status == "sent" or outcome.provider_code in LOCAL_CODES:
            continue
        code = (outcome.provider_code or "unknown").replace("|", "_")[:MAX_CODE_LENGTH]
        tally[f"{provider}|{channel}|{code}"] += 1
    return tally


async def count_provider_errors(
    redis: Redis, settings: Settings, channel: Channel | str, outcomes: Sequence[Outcome]
) -> None:
    """Add a batch's provider errors to the shared counters (one round trip, none without errors).
    Never raises: a lost increment must not fail a send that has already happened."""
    tally = provider_error_tally(channel, outcomes)
    if not tally:
        return
    key = provider_errors_key(settings)
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for field, count in tally.items():
                pipe.hincrby(key, field, count)
            await pipe.execute()
    except Exception:
        logger.warning("could not count %d provider errors", sum(tally.values()), exc_info=True)


# ------------------------------------------------------------------------------ read at scrape time

LEDGER_STATUSES: Final = (
    "pending",
    "sending",
    "deferred",
    "suppressed",
    "sent",
    "delivered",
    "read",
    "failed",
    "digested",
)


def hub_families(hub: Hub | None) -> list[Metric]:
    connections = GaugeMetricFamily("opshub_ws_connections", "Open websocket connections of this process.")
    consoles = GaugeMetricFamily("opshub_ws_consoles", "Of those, gate consoles.")
    outbox = GaugeMetricFamily("opshub_ws_outbox_messages", "Messages waiting in outboxes, all connections together.")
    largest = GaugeMetricFamily("opshub_ws_outbox_max_messages", "Messages waiting in the fullest outbox.")
    depths = [connection.outbox_depth for connection in hub.connections] if hub is not None else []
    shard_up = GaugeMetricFamily(
        "opshub_realtime_shard_up",
        "Whether this process's hub has its pub/sub connection to the realtime shard (0: lost, its topics wait).",
        labels=["shard"],
    )
    shard_topics = GaugeMetricFamily(
        "opshub_realtime_shard_topics", "Topics this process is subscribed to on the shard.", labels=["shard"]
    )
    shard_outages = CounterMetricFamily(
        "opshub_realtime_shard_outages",
        "Times this process lost its pub/sub connection to the shard.",
        labels=["shard"],
    )
    if hub is not None:
        for link in hub.links:
            name = link.shard.name
            shard_up.add_metric([name], 1 if link.available else 0)
            shard_topics.add_metric([name], len(link.by_channel))
            shard_outages.add_metric([name], link.outages)
    connections.add_metric([], len(depths))
    consoles.add_metric([], len(hub.consoles) if hub is not None else 0)
    outbox.add_metric([], sum(depths))
    largest.add_metric([], max(depths, default=0))
    return [connections, consoles, outbox, largest, shard_up, shard_topics, shard_outages]


def ledger_counts_key(settings: Settings) -> str:
    return f"{settings.redis_prefix}metrics:ledger_statuses"


COUNTED_AT: Final = "counted_at"


async def record_ledger_counts(redis: Redis, settings: Settings) -> dict[str, int]:
    """Count the ledger's rows by status and keep the counts, with when, for every process's scrape.
    Returns the counts."""
    from notifications.ledger import rows_by_status

    counts = {**dict.fromkeys(LEDGER_STATUSES, 0), **await rows_by_status()}
    async with redis.pipeline(transaction=True) as pipe:  # a scrape reads all of one count, never half of two
        pipe.delete(ledger_counts_key(settings))
        pipe.hset(ledger_counts_key(settings), mapping={**counts, COUNTED_AT: repr(time.time())})
        await pipe.execute()
    return counts


def _text(field: bytes | str) -> str:
    """A Redis hash's field name, as text (the client may hand back bytes)."""
    return field.decode() if isinstance(field, bytes) else str(field)


def _ledger_families(stored: dict[Any, Any]) -> list[Metric]:
    """The last count's families; none before a worker first counted."""
    values = {_text(field): count for field, count in stored.items()}
    counted_at = values.pop(COUNTED_AT, None)
    if counted_at is None:
        return []
    ledger = GaugeMetricFamily(
        "opshub_notification_deliveries",
        "Delivery ledger rows by status, all sites, as a worker last counted them.",
        labels=["status"],
    )
    for status, count in sorted(values.items()):
        ledger.add_metric([status], int(count))
    when = GaugeMetricFamily(
        "opshub_notification_deliveries_counted_timestamp_seconds",
        "When a worker last counted the ledger's rows by status (Unix time): an old one means no worker counts.",
    )
    when.add_metric([], float(counted_at))
    return [ledger, when]


async def redis_families(redis: Redis, settings: Settings) -> list[Metric]:
    from workers.main import queue_name

    queue = queue_name(settings)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zcard(queue)
        pipe.hgetall(provider_errors_key(settings))
        pipe.hgetall(ledger_counts_key(settings))
        depth, errors, ledger = await pipe.execute()
    queued = GaugeMetricFamily("opshub_job_queue_depth", "Jobs waiting in the arq queue.", labels=["queue"])
    queued.add_metric([queue], int(depth))
    provider = CounterMetricFamily(
        "opshub_provider_errors",
        "Failed or retried sends, by provider, channel and the provider's code (all workers).",
        labels=["provider", "channel", "code"],
    )
    for field, count in sorted(errors.items()):
        parts = _text(field).split("|", 2)
        if len(parts) == 3:
            provider.add_metric(parts, int(count))
    return [queued, provider, *_ledger_families(ledger)]


async def database_reachable() -> None:
    """Raises unless this process can query its database (the ledger's counts come from Redis)."""
    from schema.notifications import Delivery

    await Delivery.raw("SELECT 1")


class _Snapshot:
    """One scrape: this process's registry and the families read for it."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()
        yield from self.families


async def scrape(state: Any) -> bytes:
    """The exposition text for one scrape of this process (``state`` is the app's)."""
    up = GaugeMetricFamily(
        "opshub_scrape_source_up", "Whether a source could be read for this scrape.", labels=["source"]
    )
    families = hub_families(state.get("realtime"))
    try:
        families += await redis_families(state.redis, state.settings)
        up.add_metric(["redis"], 1)
    except Exception:
        logger.warning("metrics: could not read Redis", exc_info=True)
        up.add_metric(["redis"], 0)
    try:
        await database_reachable()
        up.add_metric(["database"], 1)
    except Exception:
        logger.warning("metrics: could not read the database", exc_info=True)
        up.add_metric(["database"], 0)
    families.append(up)
    return generate_latest(_Snapshot(families))
