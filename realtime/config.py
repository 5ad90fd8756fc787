"""Settings of the realtime gateway and its history, from ``OPSHUB_RT_*`` environment variables.

Kept apart from ``app.config.Settings`` because arq workers and web processes both need
the history bounds (the publisher trims), while only web processes need the rest.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import msgspec

from app.config import ConfigError


class RealtimeSettings(msgspec.Struct, frozen=True, kw_only=True):
    # History per topic: a reconnecting client is replayed what it missed within these bounds.
    history_max_len: int = 1000
    history_max_age_seconds: float = 600.0
    # Messages waiting for one client before it is cut off as a slow consumer (close 4008).
    send_queue_max: int = 512
    # At most this many messages are joined into one websocket frame.
    max_batch: int = 64
    # Messages for a client are gathered this long before they are written as one frame: fewer,
    # larger writes when events come fast, for at most this much latency.
    flush_window_seconds: float = 0.005
    # The server pings every client this often and reaps one it has not heard from in idle_timeout.
    heartbeat_seconds: float = 20.0
    idle_timeout_seconds: float = 60.0
    # A gate console's presence outlives a silent process by at most this long.
    presence_ttl_seconds: float = 60.0
    max_topics_per_connection: int = 200
    # How long a close frame may wait behind a full socket before the connection is dropped.
    close_timeout_seconds: float = 5.0


RT_ENV_VARS: dict[str, str] = {
    "history_max_len": "OPSHUB_RT_HISTORY_MAX_LEN",
    "history_max_age_seconds": "OPSHUB_RT_HISTORY_MAX_AGE_SECONDS",
    "send_queue_max": "OPSHUB_RT_SEND_QUEUE_MAX",
    "max_batch": "OPSHUB_RT_MAX_BATCH",
    "flush_window_seconds": "OPSHUB_RT_FLUSH_WINDOW_SECONDS",
    "heartbeat_seconds": "OPSHUB_RT_HEARTBEAT_SECONDS",
    "idle_timeout_seconds": "OPSHUB_RT_IDLE_TIMEOUT_SECONDS",
    "presence_ttl_seconds": "OPSHUB_RT_PRESENCE_TTL_SECONDS",
    "max_topics_per_connection": "OPSHUB_RT_MAX_TOPICS_PER_CONNECTION",
    "close_timeout_seconds": "OPSHUB_RT_CLOSE_TIMEOUT_SECONDS",
}


def load_realtime_settings(environ: Mapping[str, str] | None = None) -> RealtimeSettings:
    environ = os.environ if environ is None else environ
    raw = {field: environ[var] for field, var in RT_ENV_VARS.items() if environ.get(var, "") != ""}
    try:
        settings = msgspec.convert(raw, RealtimeSettings, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"OPSHUB_RT_*: {exc}") from None
    for field in RT_ENV_VARS:
        if getattr(settings, field) <= 0:
            raise ConfigError(f"{RT_ENV_VARS[field]}: must be positive")
    if settings.idle_timeout_seconds <= settings.heartbeat_seconds:
        raise ConfigError("OPSHUB_RT_IDLE_TIMEOUT_SECONDS: must be longer than OPSHUB_RT_HEARTBEAT_SECONDS")
    return settings


_cached: RealtimeSettings | None = None


def get_realtime_settings() -> RealtimeSettings:
    """The process-wide realtime settings, loaded on first use."""
    global _cached
    if _cached is None:
        _cached = load_realtime_settings()
    return _cached
