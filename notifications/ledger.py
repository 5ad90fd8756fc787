"""The delivery ledger: one row per (notification, person, channel), and every change to it.

Exactly-once rests on three things here:
- rows are inserted with ON CONFLICT DO NOTHING against a unique index, so expanding an
  audience twice creates nothing twice;
- a sender claims rows atomically (pending -> sending, with a claim token) before it calls a
  provider, so two workers never send the same row;
- results are written only where the claim is still held, and provider callbacks only move a
  row forward (sent -> delivered -> read), never back.
"""

from __future__ import annotations

import datetime as dt
import secrets
import sqlite3
from collections.abc import Collection, Iterable, Sequence
from typing import Any
from uuid import UUID

import msgspec
from uuid_utils.compat import uuid7

from app.db import (
    any_of,
    bulk_insert,
    current_engine,
    fetch_rows,
    is_sqlite,
    sqlite_write_in_one_trip,
    update_each,
    write_turn,
)
from notifications.categories import Channel
from schema.notifications import Delivery

FINAL_STATUSES = frozenset({"suppressed", "sent", "delivered", "read", "failed", "digested"})
OPEN_STATUSES = frozenset({"pending", "sending", "deferred"})
# Callback statuses in the order a message moves through them; a row never moves backwards.
PROGRESS_RANK = {"pending": 0, "sending": 1, "deferred": 1, "sent": 2, "delivered": 3, "read": 4}
MAX_ATTEMPTS = 5


class Claimed(msgspec.Struct, frozen=True, gc=False):
    delivery_id: UUID
    person_id: UUID
    attempts: int


class Counters(msgspec.Struct):
    by_channel: dict[str, dict[str, int]] = msgspec.field(default_factory=dict)
    suppressed_by_reason: dict[str, int] = msgspec.field(default_factory=dict)
    deferred: int = 0
    sent: int = 0
    delivered: int = 0
    failed: int = 0
    pending: int = 0
    digested: int = 0  # went out inside a person's digest (notifications.digest)


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _uuid(value: Any) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))


def new_row_id() -> UUID:
    """The id of a new ledger row: a UUIDv7, whose leading bits are the time it was made.

    Rows made together have neighbouring ids, so a batch's inserts and updates touch a few pages of the
    primary key's index instead of one page each all over it (random ids did, and each fan-out added
    30,000 of them: the writes cost more the larger the ledger grew)."""
    return uuid7()


LEDGER_COLUMNS = (
    "id",
    "site",
    "notification",
    "person",
    "channel",
    "status",
    "reason",
    "defer_until",
    "attempts",
    "created_at",
    "updated_at",
)


async def insert_rows(rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert ledger rows (tuples in LEDGER_COLUMNS order); a row that already exists is left as it is."""
    await bulk_insert("delivery", LEDGER_COLUMNS, rows, ignore_conflicts=True)


async def existing_people(notification_id: UUID, person_ids: Sequence[UUID]) -> set[UUID]:
    """Who of ``person_ids`` already has rows of this notification (a part expanded again after a crash).
    Read through the driver: once per chunk of an audience, a thousand ids at a time."""
    people, params = any_of("person", person_ids)
    rows = await fetch_rows(
        "delivery", ("person",), f"WHERE notification = {{}} AND {people} GROUP BY person", notification_id, *params
    )
    return {_uuid(row["person"]) for row in rows}


class Claim(msgspec.Struct, frozen=True):
    """Rows moved to ``sending`` under one token, and whether their notification was cancelled by then."""

    token: str
    rows: list[Claimed]
    cancelled: bool


async def claim_batch(notification_id: UUID, channel: Channel, limit: int, now: dt.datetime) -> Claim:
    """Atomically move up to `limit` due pending rows to `sending` under a fresh claim token.

    The notification's status is read in the same statement: a batch of a notification cancelled meanwhile
    is not sent (one round trip a batch where a separate read was another)."""
    token = secrets.token_hex(8)
    # In no particular order: the first due rows the (notification, channel, status) index finds. Ordered by
    # id, every claim sorted all of a channel's pending rows (10,000 for a 10,000-person announcement) to
    # take the first 500.
    due = (
        "FROM delivery WHERE notification = {} AND channel = {} AND status = 'pending' "
        "AND (next_attempt_at IS NULL OR next_attempt_at <= {}) LIMIT {}"
    )
    claim = "UPDATE delivery SET status = 'sending', claim_token = {}, claimed_at = {}, updated_at = {}, "
    status_of_notification = "(SELECT status FROM notification WHERE id = {})"
    if is_sqlite():
        # Picked and claimed in two statements of one step each: UPDATE ... RETURNING hands back a row per
        # step, and each step waited for the GIL again while the event loop was busy (see app.db.fetch_rows).
        # Both, and the transaction around them, in one trip to the connection's thread.
        pick = (
            f"SELECT json_group_array(json_array(id, person, attempts)) AS rows, {status_of_notification} "
            f"AS status FROM (SELECT id, person, attempts {due})"
        ).replace("{}", "?")
        take = (
            claim + "attempts = attempts + 1 WHERE id IN (SELECT json_extract(value, '$[0]') FROM json_each({}))"
        ).replace("{}", "?")

        def pick_and_take(connection: sqlite3.Connection) -> tuple[str, str | None]:
            picked = connection.execute(pick, (notification_id, notification_id, str(channel), now, limit)).fetchone()
            if picked["rows"] != "[]":
                connection.execute(take, (token, now, now, picked["rows"]))
            return picked["rows"], picked["status"]

        found, status = await sqlite_write_in_one_trip(current_engine(), pick_and_take)
        rows = msgspec.json.decode(found, type=list[tuple[UUID, UUID, int]])  # UUIDs parsed in C
        claimed = [Claimed(id_, person, attempts + 1) for id_, person, attempts in rows]
        return Claim(token, claimed, cancelled=status == "cancelled")
    # One statement, atomic on its own: no transaction around it (BEGIN and COMMIT were two more round trips).
    # The subquery's rows are locked and skipped by any other sender's, so claims are disjoint.
    found = await Delivery.raw(
        f"WITH status AS (SELECT {status_of_notification} AS status), claimed AS ("
        + claim
        + f"attempts = attempts + 1 WHERE id IN (SELECT id {due} FOR UPDATE SKIP LOCKED) "
        "RETURNING id, person, attempts) "
        "SELECT claimed.id, claimed.person, claimed.attempts, status.status FROM status LEFT JOIN claimed ON true",
        notification_id,
        token,
        now,
        now,
        notification_id,
        str(channel),
        now,
        limit,
    )
    claimed = [Claimed(_uuid(r["id"]), _uuid(r["person"]), int(r["attempts"])) for r in found if r["id"] is not None]
    return Claim(token, claimed, cancelled=bool(found) and found[0]["status"] == "cancelled")


# Renewals and outcomes are written a batch at a time, each row found by its id (outcomes with values of their
# own, app.db.update_each) and fenced by the claim: only rows this claim still holds in `sending` change.
#
# The fence compares an expression of the status, not the bare column, so that PostgreSQL cannot read the
# rows through the partial index of `sending` rows (ix_delivery_sending_claimed, for recovery's scan by
# claim time) instead of by id. Until a vacuum that index keeps an entry for every row ever claimed, and a
# bitmap scan of it visits them all: after six 10,000-person fan-outs, each batch's outcome read 180,000
# entries and 6,000 pages (70 ms) to change 500 rows (docs/performance.md).
_CLAIMED = "claim_token = {} AND status || '' = 'sending'"


async def renew_claim(token: str, rows: Collection[UUID], now: dt.datetime) -> set[UUID]:
    """Restart the lease of a claim's rows still to send (``rows``, found by id); returns those held (the
    sender's claim keeper).

    Rows recovery gave back after a lease ran out (the database was away, say) are not held any more:
    another sender may be sending them. (The claim's other rows were already recorded suppressed or
    deferred, or their outcome recorded: only those still to send remain.)"""
    if not rows:
        return set()
    ids, params = any_of("id", list(rows))
    async with write_turn():
        renewed = await Delivery.raw(
            f"UPDATE delivery SET claimed_at = {{}} WHERE {ids} AND {_CLAIMED} RETURNING id", now, *params, token
        )
    return {_uuid(row["id"]) for row in renewed}


async def record_sent(token: str, provider_ids: dict[UUID, str | None], now: dt.datetime) -> None:
    await update_each(
        "delivery",
        ("provider_id",),
        list(provider_ids.items()),
        "status = 'sent', sent_at = {}, updated_at = {}, provider_id = o.provider_id",
        _CLAIMED,
        now,
        now,
        token,
    )


async def record_failed(token: str, codes: dict[UUID, str | None], now: dt.datetime) -> None:
    await update_each(
        "delivery",
        ("provider_code",),
        list(codes.items()),
        "status = 'failed', reason = 'provider_error', updated_at = {}, provider_code = o.provider_code",
        _CLAIMED,
        now,
        token,
    )


async def record_retry(
    token: str,
    codes: dict[UUID, str | None],
    next_attempt_at: dt.datetime,
    now: dt.datetime,
    *,
    count_attempt: bool = True,
) -> None:
    """Back to pending until `next_attempt_at`. A provider's throttle (429) is not a failed attempt:
    with ``count_attempt=False`` the claim's increment is given back."""
    refund = "" if count_attempt else ", attempts = attempts - 1"
    await update_each(
        "delivery",
        ("provider_code",),
        list(codes.items()),
        "status = 'pending', next_attempt_at = {}, updated_at = {}, provider_code = o.provider_code" + refund,
        _CLAIMED,
        next_attempt_at,
        now,
        token,
    )


async def record_suppressed(token: str, reasons: dict[UUID, str | None], now: dt.datetime) -> None:
    await update_each(
        "delivery",
        ("reason",),
        list(reasons.items()),
        "status = 'suppressed', updated_at = {}, reason = o.reason",
        _CLAIMED,
        now,
        token,
    )


async def record_deferred(
    token: str, until: dict[UUID, dt.datetime], reason: dict[UUID, str | None], now: dt.datetime
) -> None:
    await update_each(
        "delivery",
        ("defer_until", "reason"),
        [(delivery_id, when, reason[delivery_id]) for delivery_id, when in until.items()],
        "status = 'deferred', defer_until = o.defer_until, updated_at = {}, reason = o.reason",
        _CLAIMED,
        now,
        token,
    )


async def release_claim(
    token: str, ids: Iterable[UUID], now: dt.datetime, *, claimed_before: dt.datetime | None = None
) -> None:
    """Give rows back unsent (e.g. the notification was cancelled meanwhile): they were never sent.

    With ``claimed_before`` (recovery: the rows' lease had ended), only rows whose claim was not renewed
    since: a sender that renews a claim is alive, and may be sending those rows right now."""
    condition = _CLAIMED if claimed_before is None else _CLAIMED + " AND claimed_at < {}"
    await update_each(
        "delivery",
        (),
        [(delivery_id,) for delivery_id in ids],
        "status = 'pending', updated_at = {}",
        condition,
        now,
        token,
        *([] if claimed_before is None else [claimed_before]),
    )


async def advance_from_callback(
    delivery_id: UUID, status: str, provider_id: str | None, provider_code: str | None, now: dt.datetime
) -> bool:
    """Apply a provider status callback; it only ever moves a row forward. Returns whether it moved."""
    if status in ("failed", "undelivered"):
        moved = await Delivery.raw(
            "UPDATE delivery SET status = 'failed', reason = 'provider_error', provider_code = {}, "
            "provider_id = COALESCE(provider_id, {}), updated_at = {} "
            "WHERE id = {} AND status IN ('sending', 'sent') RETURNING id",
            provider_code or status,
            provider_id,
            now,
            delivery_id,
        )
        return bool(moved)
    rank = PROGRESS_RANK.get(status)
    if rank is None or rank < PROGRESS_RANK["sent"]:
        return False
    earlier = [s for s, r in PROGRESS_RANK.items() if r < rank and s not in ("pending", "deferred")]
    placeholders = ", ".join("{}" for _ in earlier)
    # sent_at is kept if already set; the later stamps are set once (assigning a column twice
    # in one UPDATE is an error on PostgreSQL).
    stamp = {"sent": "", "delivered": ", delivered_at = {}", "read": ", read_at = {}"}[status]
    stamp_args = [] if status == "sent" else [now]
    moved = await Delivery.raw(
        f"UPDATE delivery SET status = {{}}, provider_id = COALESCE(provider_id, {{}}), "
        f"sent_at = COALESCE(sent_at, {{}}), updated_at = {{}}{stamp} WHERE id = {{}} AND status IN ({placeholders}) "
        "RETURNING id",
        status,
        provider_id,
        now,
        now,
        *stamp_args,
        delivery_id,
        *earlier,
    )
    return bool(moved)


async def in_doubt(older_than: dt.datetime, limit: int = 1000) -> list[dict[str, Any]]:
    """Rows claimed by a sender that never reported back (it died, or the network did)."""
    rows = await Delivery.raw(
        "SELECT id, notification, person, channel, claim_token, claimed_at FROM delivery "
        "WHERE status = 'sending' AND claimed_at < {} ORDER BY claimed_at LIMIT {}",
        older_than,
        limit,
    )
    return list(rows)


async def counters(notification_id: UUID) -> Counters:
    rows = await Delivery.raw(
        "SELECT channel, status, reason, COUNT(*) AS n FROM delivery WHERE notification = {} "
        "GROUP BY channel, status, reason",
        notification_id,
    )
    result = Counters()
    for row in rows:
        channel, status, n = str(row["channel"]), str(row["status"]), int(row["n"])
        by_status = result.by_channel.setdefault(channel, {})
        by_status[status] = by_status.get(status, 0) + n
        if status == "suppressed":
            reason = str(row["reason"] or "unknown")
            result.suppressed_by_reason[reason] = result.suppressed_by_reason.get(reason, 0) + n
        elif status == "deferred":
            result.deferred += n
        elif status in ("sent", "delivered", "read"):
            result.sent += n
            if status in ("delivered", "read"):
                result.delivered += n
        elif status == "failed":
            result.failed += n
        elif status == "digested":
            result.digested += n
        else:
            result.pending += n
    return result


async def rows_by_status() -> dict[str, int]:
    """How many ledger rows each status has, over every site: a scan of the whole ledger, which grows with a
    year of fan-outs (its retention), so it is run by a worker's cron, not at each metrics scrape."""
    rows = await Delivery.raw("SELECT status, COUNT(*) AS n FROM delivery GROUP BY status")
    return {str(row["status"]): int(row["n"]) for row in rows}


async def open_rows(notification_id: UUID) -> int:
    return await Delivery.count().where(
        (Delivery.notification == notification_id) & Delivery.status.is_in(list(OPEN_STATUSES))
    )
