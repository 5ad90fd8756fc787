"""The realtime wire format: every message between the websocket gateway and its clients.

Messages are JSON objects with an ``op`` tag. The server may put several messages into
one websocket text frame as a JSON array (``ServerFrame``) when a client has more than
one queued; clients must accept both shapes. docs/realtime.md describes the protocol.
"""

from __future__ import annotations

import re
from enum import IntEnum
from typing import Any, Final, Literal
from uuid import UUID

import msgspec

# Event types are dotted lower-case names: "<module object>.<what happened>".
EVENT_TYPE_PATTERN: Final = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")

# The catalogue of event types known so far; modules add theirs here when they publish new ones.
COMPLAINT_STATUS_CHANGED: Final = "complaint.status_changed"
VISITOR_ARRIVED: Final = "visitor.arrived"
VISITOR_APPROVAL_REQUESTED: Final = "visitor.approval_requested"
SLOT_AVAILABILITY_CHANGED: Final = "slot.availability_changed"
ANNOUNCEMENT_PROGRESS: Final = "announcement.progress"
PRESENCE_CHANGED: Final = "presence.changed"
PERMIT_CHANGED: Final = "permit.changed"  # and permit.entered, permit.left, permit.gate_refused
ATTENDANCE_PUNCHED: Final = "attendance.punched"  # and attendance.late, .absent, .corrected
# The topic now lives on another realtime shard (``python -m realtime.rebalance``); it comes as the
# first event of a new epoch, so subscribers get ``resync`` just before it and refetch.
TOPIC_MOVED: Final = "topic.moved"


# ---------------------------------------------------------------------------- server -> client


class Event(msgspec.Struct, frozen=True, kw_only=True, tag="event", tag_field="op"):
    """Something that happened on a topic, after its database transaction committed.

    ``seq`` increases by exactly one per topic within one ``epoch``; a new epoch means the
    topic's history was lost (Redis flushed or restarted) and numbering started again.
    ``ts`` is the publish time in Unix seconds (microsecond precision).
    """

    topic: str
    epoch: str
    seq: int
    type: str
    ts: float
    data: Any


class Welcome(msgspec.Struct, frozen=True, kw_only=True, tag="welcome", tag_field="op"):
    """First message on every connection."""

    connection_id: str
    person_id: UUID
    site_id: UUID
    roles: list[str]
    expires_at: int  # the access token's expiry (Unix seconds): send "refresh" before it
    heartbeat_seconds: float  # the server pings this often; silence for 2-3x means a dead link
    personal_topics: list[str]  # subscribed automatically unless the URL says auto=0
    gate: str | None = None  # set when this connection registered as a gate console


class Subscribed(msgspec.Struct, frozen=True, kw_only=True, tag="subscribed", tag_field="op"):
    """The subscription is live. ``missed`` events (replayed from history) follow, then live ones."""

    topic: str
    epoch: str | None  # None while the topic has never had an event
    seq: int  # the topic's sequence number when the subscription took effect
    missed: int = 0


class Resync(msgspec.Struct, frozen=True, kw_only=True, tag="resync", tag_field="op"):
    """The missed events cannot be replayed: refetch the state over REST, then apply events after ``seq``.

    The subscription stays live. ``reason`` is ``history_gone`` (the history no longer
    reaches back to the client's last sequence) or ``epoch_changed`` (the history was lost).
    """

    topic: str
    epoch: str | None
    seq: int
    reason: Literal["history_gone", "epoch_changed"]


class Unsubscribed(msgspec.Struct, frozen=True, kw_only=True, tag="unsubscribed", tag_field="op"):
    topic: str
    reason: Literal["client", "forbidden"] = "client"


class ErrorReply(msgspec.Struct, frozen=True, kw_only=True, tag="error", tag_field="op"):
    """A refused request; the connection stays open. Codes are listed in docs/realtime.md."""

    code: str
    message: str
    topic: str | None = None


class TokenRefreshed(msgspec.Struct, frozen=True, kw_only=True, tag="token_refreshed", tag_field="op"):
    expires_at: int


class Console(msgspec.Struct, frozen=True, kw_only=True):
    """A guard console online at a gate."""

    gate: str
    person_id: UUID
    connection_id: str
    since: float  # Unix seconds


class PresenceSnapshot(msgspec.Struct, frozen=True, kw_only=True, tag="presence", tag_field="op"):
    """Every gate console online on a site; sent after subscribing to ``site:{id}:control``."""

    site_id: UUID
    consoles: list[Console]


class PresenceChanged(msgspec.Struct, frozen=True, kw_only=True):
    """Data of a ``presence.changed`` event on ``site:{id}:control``; apply by connection_id."""

    change: Literal["joined", "left"]
    console: Console


# ------------------------------------------------------------------------------- both ways


class Ping(msgspec.Struct, frozen=True, kw_only=True, tag="ping", tag_field="op"):
    """Heartbeat, sent by either side; the other answers with a Pong carrying the same id."""

    id: str | None = None


class Pong(msgspec.Struct, frozen=True, kw_only=True, tag="pong", tag_field="op"):
    id: str | None = None


# ---------------------------------------------------------------------------- client -> server


class Subscribe(msgspec.Struct, frozen=True, kw_only=True, tag="subscribe", tag_field="op"):
    """Subscribe to a topic; with ``last_seq`` (and its ``epoch``) the missed events are replayed."""

    topic: str
    last_seq: int | None = None
    epoch: str | None = None


class Unsubscribe(msgspec.Struct, frozen=True, kw_only=True, tag="unsubscribe", tag_field="op"):
    topic: str


class Refresh(msgspec.Struct, frozen=True, kw_only=True, tag="refresh", tag_field="op"):
    """A fresh access token for the same person, sent before the current one expires."""

    token: str


ServerMessage = (
    Event | Welcome | Subscribed | Resync | Unsubscribed | ErrorReply | TokenRefreshed | PresenceSnapshot | Ping | Pong
)
ServerFrame = ServerMessage | list[ServerMessage]
ClientMessage = Subscribe | Unsubscribe | Refresh | Ping | Pong

server_frame_decoder: Final = msgspec.json.Decoder(ServerFrame)
client_message_decoder: Final = msgspec.json.Decoder(ClientMessage)


def decode_server_frame(frame: str | bytes) -> list[ServerMessage]:
    """The messages in one websocket frame, in order."""
    decoded = server_frame_decoder.decode(frame)
    return decoded if isinstance(decoded, list) else [decoded]


class CloseCode(IntEnum):
    """Websocket close codes used by the gateway (docs/realtime.md explains what a client does with each)."""

    NORMAL = 1000
    INTERNAL_ERROR = 1011  # unexpected server error: reconnect with backoff
    SERVICE_RESTART = 1012  # this web process is shutting down: reconnect (to another one) and resume
    TRY_AGAIN_LATER = 1013  # the gateway lost Redis: reconnect with backoff and resume
    BAD_REQUEST = 4000  # malformed connection parameters (e.g. an invalid gate name)
    UNAUTHORIZED = 4001  # token missing or invalid: log in again
    TOKEN_REVOKED = 4003  # token revoked (logout, deactivation): log in again
    TOKEN_EXPIRED = 4004  # token expired: refresh it, then reconnect and resume
    SLOW_CONSUMER = 4008  # the client did not read fast enough: reconnect and resume
    HEARTBEAT_TIMEOUT = 4009  # nothing heard from the client for too long: reconnect and resume
    FORBIDDEN = 4403  # the connection asked for something its role may not have (e.g. a gate console)
