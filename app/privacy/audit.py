"""The audit log of personal data: who read or changed whose data, when, and through which endpoint.

Recording happens where personal data is decrypted or written (``app.people.directory`` and the
privacy services), not in the routes, so no route can forget it. Who is acting and which endpoint
they came through is carried by a context variable: ``AuditContextMiddleware`` sets it for every
HTTP request from the authenticated principal and the route template (never the query string, which
may hold a phone number); jobs set it with ``acting_as``. Outside any context (the notification
sender resolving addresses) nothing is recorded: the delivery ledger is that access's record.

Rows are only ever inserted. The API offers search and CSV export, nothing that edits or deletes;
the retention engine purges rows older than the site's ``audit_log`` period.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import AsyncIterator, Awaitable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal
from uuid import UUID

import msgspec
from litestar.types import ASGIApp, Receive, Scope, Send
from piccolo.columns.combination import Combinable

from schema.privacy import AuditEvent

# login_failed: a wrong password (or an inactive account) for this person's login (app.auth.service).
AuditAction = Literal["read", "write", "export", "erase", "login_failed"]


@dataclass(slots=True)
class AuditContext:
    actor_id: UUID | None  # None: the system
    actor_roles: str
    method: str
    route: str
    # (subject, action, data) already recorded in this context: one row per request, not per call.
    seen: set[tuple[UUID, str, str]] = field(default_factory=set)


_current: ContextVar[AuditContext | None] = ContextVar("opshub_audit_context", default=None)


def current_context() -> AuditContext | None:
    return _current.get()


@contextmanager
def acting_as(actor_id: UUID | None, *, route: str, method: str = "", roles: str = "") -> Iterator[AuditContext]:
    """Record what the enclosed code reads or writes as done by ``actor_id`` through ``route``."""
    context = AuditContext(actor_id=actor_id, actor_roles=roles, method=method, route=route[:300])
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def record(
    site_id: UUID, subject_ids: Iterable[UUID], action: AuditAction, data: str, *, now: dt.datetime | None = None
) -> int:
    """One row per subject (deduplicated within the current context); nothing outside a context."""
    context = _current.get()
    if context is None:
        return 0
    rows: list[AuditEvent] = []
    at = now or _now()
    for subject in dict.fromkeys(subject_ids):
        key = (subject, action, data)
        if key in context.seen:
            continue
        context.seen.add(key)
        rows.append(
            AuditEvent(
                site=site_id,
                at=at,
                actor_id=context.actor_id,
                actor_roles=context.actor_roles,
                subject_id=subject,
                action=action,
                data=data[:32],
                method=context.method,
                route=context.route,
            )
        )
    # Piccolo's insert joins a transaction the caller may hold (the importer's), so the audit row
    # commits or rolls back with the change it records.
    for start in range(0, len(rows), 500):
        await AuditEvent.insert(*rows[start : start + 500])
    return len(rows)


class AuditContextMiddleware:
    """Sets the audit context of each HTTP request: the principal (set by the bearer middleware,
    which runs before this one) and the route template."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Not a coroutine itself: a websocket is handed straight to the app, so the connection's
        # long-lived task does not keep a suspended frame of this middleware for its whole life.
        if scope["type"] != "http":
            return self.app(scope, receive, send)
        return self._audited(scope, receive, send)

    async def _audited(self, scope: Scope, receive: Receive, send: Send) -> None:
        from app.auth.principal import Principal

        user = scope.get("user")
        actor_id = user.person_id if isinstance(user, Principal) else None
        roles = ",".join(sorted(str(r) for r in user.roles)) if isinstance(user, Principal) else ""
        route = str(scope.get("path_template") or scope.get("path") or "")
        with acting_as(actor_id, route=route, method=str(scope.get("method", "")), roles=roles):
            await self.app(scope, receive, send)


# ------------------------------------------------------------------------------ search and export


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    at: dt.datetime
    actor_id: UUID | None
    actor_roles: str
    subject_id: UUID
    action: str
    data: str
    method: str
    route: str


class AuditPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[AuditEntry]
    total: int
    limit: int
    offset: int


class AuditFilter(msgspec.Struct, frozen=True, kw_only=True):
    person_id: UUID | None = None  # whose data
    actor_id: UUID | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    action: str | None = None


def _condition(site_id: UUID, flt: AuditFilter) -> Combinable:
    condition: Combinable = AuditEvent.site == site_id
    if flt.person_id is not None:
        condition &= AuditEvent.subject_id == flt.person_id
    if flt.actor_id is not None:
        condition &= AuditEvent.actor_id == flt.actor_id
    if flt.since is not None:
        condition &= AuditEvent.at >= flt.since
    if flt.until is not None:
        condition &= AuditEvent.at < flt.until
    if flt.action is not None:
        condition &= AuditEvent.action == flt.action
    return condition


def _entry(row: dict[str, Any]) -> AuditEntry:
    return AuditEntry(
        id=row["id"],
        at=row["at"],
        actor_id=row["actor_id"],
        actor_roles=row["actor_roles"],
        subject_id=row["subject_id"],
        action=row["action"],
        data=row["data"],
        method=row["method"],
        route=row["route"],
    )


async def search(site_id: UUID, flt: AuditFilter, *, limit: int = 50, offset: int = 0) -> AuditPage:
    condition = _condition(site_id, flt)
    rows = (
        await AuditEvent.select()
        .where(condition)
        .order_by(AuditEvent.at, AuditEvent.id, ascending=False)
        .limit(limit)
        .offset(offset)
    )
    total = await AuditEvent.count().where(condition)
    return AuditPage(items=[_entry(r) for r in rows], total=total, limit=limit, offset=offset)


CSV_HEADER = ["at", "actor_id", "actor_roles", "subject_id", "action", "data", "method", "route", "id"]


async def export_csv(site_id: UUID, flt: AuditFilter, batch: int = 1000) -> AsyncIterator[bytes]:
    """The matching entries, oldest first, streamed in batches."""
    condition = _condition(site_id, flt)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_HEADER)
    yield buffer.getvalue().encode()
    offset = 0
    while True:
        rows = (
            await AuditEvent.select()
            .where(condition)
            .order_by(AuditEvent.at, AuditEvent.id)
            .limit(batch)
            .offset(offset)
        )
        if not rows:
            return
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        for row in rows:
            e = _entry(row)
            writer.writerow(
                [
                    e.at.isoformat(),
                    e.actor_id or "",
                    e.actor_roles,
                    e.subject_id,
                    e.action,
                    e.data,
                    e.method,
                    e.route,
                    e.id,
                ]
            )
        yield buffer.getvalue().encode()
        offset += batch
