"""Valet requests: park and retrieve with an ETA; every status change reaches the occupant live
(``valet.status_changed`` on their ``user:`` topic and their unit's ``unit:`` topic)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Final, Literal
from uuid import UUID

import msgspec
from piccolo.columns.combination import Combinable
from redis.asyncio import Redis

from app.auth.principal import Principal
from app.config import Settings
from app.errors import Conflict, InvalidInput, NotFound
from app.pagination import Page, page_of
from app.people.directory import cipher_for
from app.people.normalise import normalise_plate
from app.slots.booking import is_staff
from app.slots.passes import _unit_of, audit_plate_reads
from app.slots.resources import now_utc
from realtime.publish import publish
from realtime.topics import unit_topic, user_topic
from schema.slots import ValetRequest
from schema.slots_events import VALET_STATUS_CHANGED, ValetStatusChanged

ValetStatus = Literal[
    "requested", "parking", "parked", "retrieval_requested", "retrieving", "ready", "delivered", "cancelled"
]
TRANSITIONS: Final[dict[str, frozenset[str]]] = {
    "requested": frozenset({"parking", "cancelled"}),
    "parking": frozenset({"parked"}),
    "parked": frozenset({"retrieval_requested", "retrieving"}),
    "retrieval_requested": frozenset({"retrieving", "ready"}),
    "retrieving": frozenset({"ready"}),
    "ready": frozenset({"delivered"}),
    "delivered": frozenset(),
    "cancelled": frozenset(),
}
BASE_RETRIEVAL: Final = dt.timedelta(minutes=8)
PER_CAR_AHEAD: Final = dt.timedelta(minutes=4)


class NewValet(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    plate: Annotated[str, msgspec.Meta(min_length=1, max_length=20)]
    unit_id: UUID | None = None


class ValetUpdate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A new status and/or a bay or ETA correction (status left out: the status stays)."""

    status: ValetStatus | None = None
    bay: Annotated[str, msgspec.Meta(max_length=32)] | None = None
    eta_minutes: Annotated[int, msgspec.Meta(ge=0, le=240)] | None = None


class ValetView(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    plate: str
    unit_id: UUID | None
    person_id: UUID | None
    status: str
    bay: str | None
    eta_at: dt.datetime | None
    allowed_next: list[str]
    created_at: dt.datetime
    updated_at: dt.datetime


def _view(settings: Settings, row: dict[str, Any]) -> ValetView:
    return ValetView(
        id=row["id"],
        plate=cipher_for(settings).decrypt(row["plate_encrypted"]),
        unit_id=row["unit"],
        person_id=row["person"],
        status=row["status"],
        bay=row["bay"],
        eta_at=row["eta_at"],
        allowed_next=sorted(TRANSITIONS.get(row["status"], frozenset())),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def _row(principal: Principal, valet_id: UUID) -> dict[str, Any]:
    row = (
        await ValetRequest.select()
        .where((ValetRequest.site == principal.site_id) & (ValetRequest.id == valet_id))
        .first()
    )
    if row is None or (
        not is_staff(principal) and principal.roles.isdisjoint({"guard"}) and row["person"] != principal.person_id
    ):
        raise NotFound("valet request not found")
    return row


async def _announce(redis: Redis, settings: Settings, row: dict[str, Any]) -> None:
    event = ValetStatusChanged(
        valet_id=row["id"], status=row["status"], bay=row["bay"], eta_at=row["eta_at"], updated_at=row["updated_at"]
    )
    if row["person"] is not None:
        await publish(redis, settings, user_topic(row["person"]), VALET_STATUS_CHANGED, event)
    if row["unit"] is not None:
        await publish(redis, settings, unit_topic(row["unit"]), VALET_STATUS_CHANGED, event)


async def request_valet(
    redis: Redis, settings: Settings, principal: Principal, data: NewValet, now: dt.datetime | None = None
) -> ValetView:
    now = now or now_utc()
    try:
        plate = normalise_plate(data.plate)
    except ValueError as exc:
        raise InvalidInput.for_field("plate", str(exc)) from None
    unit_id = await _unit_of(principal, data.unit_id)
    cipher = cipher_for(settings)
    row = ValetRequest(
        site=principal.site_id,
        person=principal.person_id,
        unit=unit_id,
        plate_encrypted=cipher.encrypt(plate),
        plate_index=cipher.blind_index("plate", plate),
        status="requested",
        created_at=now,
        updated_at=now,
    )
    await row.save()
    saved = await _row(principal, row.id)
    await _announce(redis, settings, saved)
    return _view(settings, saved)


async def _transition(
    redis: Redis,
    settings: Settings,
    principal: Principal,
    valet_id: UUID,
    new: str,
    changes: dict[Any, Any],
    now: dt.datetime,
) -> ValetView:
    row = await _row(principal, valet_id)
    if new not in TRANSITIONS[row["status"]]:
        raise Conflict(
            f"status: {row['status']} cannot become {new}",
            extra={"allowed": sorted(TRANSITIONS[row["status"]])},
        )
    done = (
        await ValetRequest.update({ValetRequest.status: new, ValetRequest.updated_at: now, **changes})
        .where((ValetRequest.id == valet_id) & (ValetRequest.status == row["status"]))
        .returning(ValetRequest.id)
    )
    if not done:
        raise Conflict("status: the request changed meanwhile; reload it")
    saved = await _row(principal, valet_id)
    await _announce(redis, settings, saved)
    return _view(settings, saved)


async def request_retrieval(
    redis: Redis, settings: Settings, principal: Principal, valet_id: UUID, now: dt.datetime | None = None
) -> ValetView:
    """The occupant asks for the car; the ETA counts the retrievals already queued ahead."""
    now = now or now_utc()
    ahead = await ValetRequest.count().where(
        (ValetRequest.site == principal.site_id)
        & ValetRequest.status.is_in(["retrieval_requested", "retrieving"])
        & (ValetRequest.id != valet_id)
    )
    eta = now + BASE_RETRIEVAL + ahead * PER_CAR_AHEAD
    return await _transition(
        redis, settings, principal, valet_id, "retrieval_requested", {ValetRequest.eta_at: eta}, now
    )


async def update_valet(
    redis: Redis,
    settings: Settings,
    principal: Principal,
    valet_id: UUID,
    data: ValetUpdate,
    now: dt.datetime | None = None,
) -> ValetView:
    """Valet staff (guards, FM) move the request along; an ETA in minutes replaces the estimate."""
    now = now or now_utc()
    changes: dict[Any, Any] = {}
    if data.bay is not None:
        changes[ValetRequest.bay] = data.bay
    if data.eta_minutes is not None:
        changes[ValetRequest.eta_at] = now + dt.timedelta(minutes=data.eta_minutes)
    if data.status in ("ready", "delivered"):
        changes.setdefault(ValetRequest.eta_at, now if data.status == "ready" else None)
    if data.status is None:
        row = await _row(principal, valet_id)
        if not changes:
            raise InvalidInput.for_field("status", "give a new status, a bay or an ETA")
        await ValetRequest.update({ValetRequest.updated_at: now, **changes}).where(ValetRequest.id == valet_id)
        saved = await _row(principal, row["id"])
        await _announce(redis, settings, saved)
        return _view(settings, saved)
    return await _transition(redis, settings, principal, valet_id, data.status, changes, now)


async def list_valet(
    settings: Settings, principal: Principal, active_only: bool = True, *, limit: int = 50, offset: int = 0
) -> Page[ValetView]:
    where: list[Combinable] = [ValetRequest.site == principal.site_id]
    if not is_staff(principal) and principal.roles.isdisjoint({"guard"}):
        where.append(ValetRequest.person == principal.person_id)
    if active_only:
        where.append(ValetRequest.status.not_in(["delivered", "cancelled"]))
    total = await ValetRequest.count().where(*where)
    rows = (
        await ValetRequest.select()
        .where(*where)
        .order_by(ValetRequest.created_at)
        .order_by(ValetRequest.id)
        .limit(limit)
        .offset(offset)
    )
    await audit_plate_reads(principal.site_id, rows)
    return page_of([_view(settings, r) for r in rows], total=total, limit=limit, offset=offset)


async def get_valet(settings: Settings, principal: Principal, valet_id: UUID) -> ValetView:
    row = await _row(principal, valet_id)
    await audit_plate_reads(principal.site_id, [row])
    return _view(settings, row)
