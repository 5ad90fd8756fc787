"""Helpers for complaint tests: a configured category, technicians on shift, principals and moves."""

from __future__ import annotations

import datetime as dt
from typing import Any
from uuid import UUID

from app.auth.principal import Principal
from app.complaints import config, service
from app.complaints.lifecycle import Status
from app.complaints.sla import Priority
from schema.complaints import Complaint
from tests.support.world import World

# A Wednesday, 10:00 in Asia/Kolkata (04:30 UTC): inside the day shifts the helpers create.
T0 = dt.datetime(2026, 11, 25, 4, 30, tzinfo=dt.UTC)

ALL_DAY = [config.Shift(weekday=d, start="00:00", end="23:59") for d in range(7)] + [
    config.Shift(weekday=d, start="23:59", end="00:01") for d in range(7)
]


def principal(world: World, name: str) -> Principal:
    return Principal(
        person_id=world.people[name],
        site_id=world.site_id,
        roles=world.roles[name],
        token_id=f"test-{name}",
        expires_at=2**31,
    )


async def configure(world: World, *, all_day: bool = True) -> None:
    """Category `plumbing` (skill plumbing; sub-categories leak, blockage; 60/240 min at normal
    priority) and `electrical` (skill electrical); the world's technician on shift all day."""
    await config.put_category(
        world.site_id,
        config.CategoryInput(
            code="plumbing",
            name="Plumbing",
            skill="plumbing",
            subcategories=["leak", "blockage"],
            sla=[config.SlaWindow(priority=Priority.NORMAL, response_minutes=60, resolution_minutes=240)],
        ),
    )
    await config.put_category(
        world.site_id, config.CategoryInput(code="electrical", name="Electrical", skill="electrical")
    )
    if all_day:
        await config.put_shifts(world.site_id, world.people["technician"], config.ShiftsInput(shifts=ALL_DAY))


async def raise_one(
    world: World,
    settings: Any,
    redis: Any,
    *,
    by: str = "occupant",
    now: dt.datetime = T0,
    category: str = "plumbing",
    priority: Priority = Priority.NORMAL,
    unit: int = 0,
) -> service.ComplaintView:
    return await service.raise_complaint(
        settings,
        redis,
        principal(world, by),
        service.NewComplaint(
            category=category,
            subcategory="leak" if category == "plumbing" else None,
            description="Water leaking under the kitchen sink",
            priority=priority,
            unit_id=world.unit_ids[unit],
        ),
        now=now,
    )


async def move(
    world: World, settings: Any, redis: Any, complaint_id: UUID, by: str, to: Status, now: dt.datetime = T0
) -> service.ComplaintView:
    return await service.change_status(
        settings, redis, principal(world, by), complaint_id, service.StatusChange(to=to), now=now
    )


async def drive_to(world: World, settings: Any, redis: Any, state: Status, now: dt.datetime = T0) -> UUID:
    """A fresh complaint of the world's occupant, brought to `state` through the real service."""
    if state is Status.OPEN:
        # Nobody on shift for electrical: it stays open.
        return (await raise_one(world, settings, redis, now=now, category="electrical")).id
    raised = await raise_one(world, settings, redis, now=now)
    cid = raised.id
    assert raised.status == Status.ASSIGNED
    paths: dict[Status, list[tuple[str, Status]]] = {
        Status.ASSIGNED: [],
        Status.IN_PROGRESS: [("technician", Status.IN_PROGRESS)],
        Status.ON_HOLD: [("technician", Status.IN_PROGRESS), ("technician", Status.ON_HOLD)],
        Status.RESOLVED: [("technician", Status.IN_PROGRESS), ("technician", Status.RESOLVED)],
        Status.CLOSED: [
            ("technician", Status.IN_PROGRESS),
            ("technician", Status.RESOLVED),
            ("occupant", Status.CLOSED),
        ],
        Status.REOPENED: [
            ("technician", Status.IN_PROGRESS),
            ("technician", Status.RESOLVED),
            ("occupant", Status.REOPENED),
        ],
        Status.CANCELLED: [("occupant", Status.CANCELLED)],
    }
    for by, to in paths[state]:
        await move(world, settings, redis, cid, by, to, now)
    row = await Complaint.select(Complaint.status).where(Complaint.id == cid).first()
    assert row is not None and row["status"] == str(state)
    return cid
