"""Data-rights requests: access, correction, export, erasure and objection, as tracked records.

Each request must be acknowledged within 7 days and completed within 30 (``ACK_WITHIN``,
``COMPLETE_WITHIN``). ``check_deadlines`` (run by an arq cron) alerts the site's admins through
the notification pipeline before each deadline passes and again when it has passed; every alert
has an idempotency key per request and alert kind, so a re-run never alerts twice. The records
hold ids, dates and outcomes only, and are kept at least 3 years (retention class
``data_rights_requests``).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, Final, Literal
from uuid import UUID

import msgspec
from piccolo.columns.combination import Combinable

from app.auth.roles import Role
from app.errors import Conflict, InvalidInput, NotFound
from schema.jsonvalue import as_list
from schema.privacy import DataRightsRequest
from schema.tables import Person

logger = logging.getLogger("opshub.privacy.requests")

RequestKind = Literal["access", "correction", "export", "erasure", "objection"]
RequestStatus = Literal["open", "acknowledged", "approved", "erasing", "completed", "rejected"]
CLOSED: Final = ("completed", "rejected")
ACK_WITHIN: Final = dt.timedelta(days=7)
COMPLETE_WITHIN: Final = dt.timedelta(days=30)
# Alerts go out this long before a deadline (and again once it has passed).
ACK_WARNING: Final = dt.timedelta(days=2)
COMPLETE_WARNING: Final = dt.timedelta(days=5)
AlertKind = Literal["ack_due_soon", "ack_overdue", "completion_due_soon", "completion_overdue"]


class DataRequestView(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    person_id: UUID
    kind: RequestKind
    status: RequestStatus
    details: str
    created_at: dt.datetime
    ack_due_at: dt.datetime
    due_at: dt.datetime
    acknowledged_at: dt.datetime | None
    completed_at: dt.datetime | None
    approved_at: dt.datetime | None
    reviewed_at: dt.datetime | None = None  # erasure: when a site admin opened the review
    resolution: str
    legal_holds: list[str]
    outcome: dict[str, Any]
    export_id: UUID | None


class DataRequestPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[DataRequestView]
    total: int
    limit: int
    offset: int


class Alert(msgspec.Struct, frozen=True):
    request_id: UUID
    kind: AlertKind
    notification_id: UUID


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def view(row: dict[str, Any]) -> DataRequestView:
    outcome = row["outcome"]
    if isinstance(outcome, str):
        outcome = msgspec.json.decode(outcome or "{}")
    return DataRequestView(
        id=row["id"],
        person_id=row["person_id"],
        kind=row["kind"],
        status=row["status"],
        details=row["details"],
        created_at=row["created_at"],
        ack_due_at=row["ack_due_at"],
        due_at=row["due_at"],
        acknowledged_at=row["acknowledged_at"],
        completed_at=row["completed_at"],
        approved_at=row["approved_at"],
        reviewed_at=row.get("reviewed_at"),
        resolution=row["resolution"],
        legal_holds=[str(h) for h in as_list(row["legal_holds"])],
        outcome=dict(outcome or {}),
        export_id=row["export_id"],
    )


async def create_request(
    *,
    site_id: UUID,
    person_id: UUID,
    kind: RequestKind,
    details: str = "",
    created_by: UUID | None = None,
    acknowledged: bool = False,
    now: dt.datetime | None = None,
) -> DataRequestView:
    now = now or now_utc()
    if not await Person.exists().where((Person.site == site_id) & (Person.id == person_id)):
        raise NotFound("person not found")
    row = DataRightsRequest(
        site=site_id,
        person_id=person_id,
        kind=kind,
        status="acknowledged" if acknowledged else "open",
        details=details,
        created_by=created_by,
        created_at=now,
        ack_due_at=now + ACK_WITHIN,
        due_at=now + COMPLETE_WITHIN,
        acknowledged_at=now if acknowledged else None,
    )
    await row.save()
    return await get_request(site_id, row.id)


async def _row(site_id: UUID, request_id: UUID) -> dict[str, Any]:
    row = (
        await DataRightsRequest.select()
        .where((DataRightsRequest.site == site_id) & (DataRightsRequest.id == request_id))
        .first()
    )
    if row is None:
        raise NotFound("data-rights request not found")
    return row


async def get_request(site_id: UUID, request_id: UUID) -> DataRequestView:
    return view(await _row(site_id, request_id))


async def list_requests(
    site_id: UUID,
    *,
    person_id: UUID | None = None,
    status: str | None = None,
    kind: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> DataRequestPage:
    condition: Combinable = DataRightsRequest.site == site_id
    if person_id is not None:
        condition &= DataRightsRequest.person_id == person_id
    if status is not None:
        condition &= DataRightsRequest.status == status
    if kind is not None:
        condition &= DataRightsRequest.kind == kind
    rows = (
        await DataRightsRequest.select()
        .where(condition)
        .order_by(DataRightsRequest.created_at, DataRightsRequest.id, ascending=False)
        .limit(limit)
        .offset(offset)
    )
    total = await DataRightsRequest.count().where(condition)
    return DataRequestPage(items=[view(r) for r in rows], total=total, limit=limit, offset=offset)


async def acknowledge(
    site_id: UUID, request_id: UUID, actor_id: UUID, now: dt.datetime | None = None
) -> DataRequestView:
    row = await _row(site_id, request_id)
    if row["status"] in CLOSED:
        raise Conflict(f"request is already {row['status']}")
    if row["acknowledged_at"] is None:
        await DataRightsRequest.update(
            {
                DataRightsRequest.acknowledged_at: now or now_utc(),
                DataRightsRequest.status: "acknowledged" if row["status"] == "open" else row["status"],
                DataRightsRequest.handled_by: actor_id,
            }
        ).where(DataRightsRequest.id == request_id)
    return await get_request(site_id, request_id)


async def close(
    site_id: UUID,
    request_id: UUID,
    actor_id: UUID | None,
    *,
    outcome: Literal["completed", "rejected"],
    resolution: str,
    now: dt.datetime | None = None,
) -> DataRequestView:
    now = now or now_utc()
    row = await _row(site_id, request_id)
    if row["status"] in CLOSED:
        raise Conflict(f"request is already {row['status']}")
    if row["kind"] == "erasure" and outcome == "completed":
        raise Conflict("an erasure is completed by approving it (the erasure job completes it)")
    if outcome == "rejected" and not resolution.strip():
        raise InvalidInput.for_field("resolution", "say why the request is rejected")
    await DataRightsRequest.update(
        {
            DataRightsRequest.status: outcome,
            DataRightsRequest.completed_at: now,
            DataRightsRequest.acknowledged_at: row["acknowledged_at"] or now,
            DataRightsRequest.handled_by: actor_id,
            DataRightsRequest.resolution: resolution,
        }
    ).where(DataRightsRequest.id == request_id)
    return await get_request(site_id, request_id)


# ------------------------------------------------------------------------------ deadlines


def due_alerts(row: dict[str, Any], now: dt.datetime) -> list[AlertKind]:
    """The alerts this open request should have had by ``now`` and has not had yet."""
    kinds: list[AlertKind] = []
    if row["acknowledged_at"] is None:
        if now >= row["ack_due_at"] and row["ack_overdue_at"] is None:
            kinds.append("ack_overdue")
        elif now >= row["ack_due_at"] - ACK_WARNING and row["ack_warned_at"] is None and now < row["ack_due_at"]:
            kinds.append("ack_due_soon")
    if row["completed_at"] is None:
        if now >= row["due_at"] and row["due_overdue_at"] is None:
            kinds.append("completion_overdue")
        elif now >= row["due_at"] - COMPLETE_WARNING and row["due_warned_at"] is None and now < row["due_at"]:
            kinds.append("completion_due_soon")
    return kinds


_MARK = {
    "ack_due_soon": DataRightsRequest.ack_warned_at,
    "ack_overdue": DataRightsRequest.ack_overdue_at,
    "completion_due_soon": DataRightsRequest.due_warned_at,
    "completion_overdue": DataRightsRequest.due_overdue_at,
}
_TEXT = {
    "ack_due_soon": ("Data-rights request to acknowledge", "must be acknowledged by"),
    "ack_overdue": ("Data-rights request not acknowledged", "was due for acknowledgement on"),
    "completion_due_soon": ("Data-rights request due soon", "must be completed by"),
    "completion_overdue": ("Data-rights request overdue", "was due for completion on"),
}


def alert_key(request_id: UUID, kind: str) -> str:
    return f"privacy:{request_id}:{kind}"


async def check_deadlines(now: dt.datetime | None = None) -> list[Alert]:
    """Alert each site's admins about requests nearing or past a deadline; safe to run any number of times."""
    from notifications.audience import Audience
    from notifications.categories import Category, Channel, Urgency
    from notifications.service import NotificationRequest, create_notification

    now = now or now_utc()
    rows = await DataRightsRequest.select().where(
        DataRightsRequest.status.not_in(list(CLOSED))
        & (
            (DataRightsRequest.acknowledged_at.is_null() & (DataRightsRequest.ack_due_at <= now + ACK_WARNING))
            | (DataRightsRequest.due_at <= now + COMPLETE_WARNING)
        )
    )
    sent: list[Alert] = []
    for row in rows:
        for kind in due_alerts(row, now):
            title, verb = _TEXT[kind]
            deadline = row["ack_due_at"] if kind.startswith("ack") else row["due_at"]
            request = NotificationRequest(
                title=title,
                body=f"The {row['kind']} request {row['id']} {verb} {deadline:%Y-%m-%d %H:%M} UTC.",
                category=Category.ANNOUNCEMENT,
                audience=Audience(roles=[Role.SITE_ADMIN]),
                channels=[Channel.IN_APP, Channel.EMAIL],
                urgency=Urgency.HIGH,
                idempotency_key=alert_key(row["id"], kind),
            )
            notification_id, _ = await create_notification(
                site_id=row["site"],
                request=request,
                kind="event",
                data={"request_id": str(row["id"]), "alert": kind},
                now=now,
            )
            await DataRightsRequest.update({_MARK[kind]: now}).where(DataRightsRequest.id == row["id"])
            sent.append(Alert(request_id=row["id"], kind=kind, notification_id=notification_id))
            logger.info("data-rights request %s: %s alert", row["id"], kind)
    return sent
