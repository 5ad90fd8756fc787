"""Real ids of the staff attendance module in a test world, for the cross-site test, the list-shape test
and the privacy tests."""

from __future__ import annotations

import datetime as dt
from typing import Any
from uuid import UUID

from app.attendance import config as cfg
from app.attendance import punches
from app.auth.principal import Principal
from app.auth.roles import Role
from app.redis import create_redis
from tests.support.permits import principal
from tests.support.world import World


async def staff_with_punches(world: World, settings: Any, redis: Any, names: tuple[str, ...]) -> list[UUID]:
    """Staff on a morning and an evening shift, each checked in and out at the gate in the last hour."""
    shifts = {s.code: s for s in await cfg.list_shifts(world.site_id)}
    for code, start, end in (("morning", "06:00", "14:00"), ("evening", "14:00", "22:00")):
        if code not in shifts:
            shifts[code] = await cfg.add_shift(
                world.site_id, cfg.ShiftInput(code=code, name=code.title(), start=start, end=end)
            )
    ids = []
    now = dt.datetime.now(dt.UTC)
    for name in names:
        member = await cfg.add_staff(settings, world.site_id, cfg.StaffInput(name=name, category="housekeeping"))
        await cfg.put_roster(
            world.site_id,
            member.id,
            cfg.RosterInput(entries=[cfg.RosterItem(weekday=d, shift_id=shifts["morning"].id) for d in range(7)]),
        )
        guard = principal(world, "guard")
        for kind, minutes in (("in", 50), ("out", 10)):
            await punches.at_gate(
                settings,
                redis,
                guard,
                member.id,
                punches.GatePunchInput(kind=kind),
                now=now - dt.timedelta(minutes=minutes),  # type: ignore[arg-type]
            )
        ids.append(member.id)
    return ids


async def resource_ids(world: World) -> dict[str, str]:
    redis = create_redis(world.settings)
    try:
        (staff_id,) = await staff_with_punches(world, world.settings, redis, ("Savitri",))
    finally:
        await redis.aclose()
    shift = (await cfg.list_shifts(world.site_id))[0]
    return {"staff_id": str(staff_id), "shift_id": str(shift.id)}


async def seed_person_data(world: World, person_id: UUID) -> None:
    """Give `person_id` data in this module, for the privacy module's export and erasure tests: they are
    on the staff list (linked to their account, with their name), and were checked in and out at the gate."""
    from schema.tables import Person

    person = await Person.select(Person.full_name).where(Person.id == person_id).first()
    redis = create_redis(world.settings)
    try:
        member = await cfg.add_staff(
            world.settings,
            world.site_id,
            cfg.StaffInput(
                name=person["full_name"] if person else "Someone", category="housekeeping", person_id=person_id
            ),
        )
        guard = Principal(
            person_id=world.people["guard"],
            site_id=world.site_id,
            roles=frozenset({Role.GUARD}),
            token_id="seed",
            expires_at=0,
        )
        now = dt.datetime.now(dt.UTC)
        for kind, minutes in (("in", 30), ("out", 5)):
            await punches.at_gate(
                world.settings,
                redis,
                guard,
                member.id,
                punches.GatePunchInput(kind=kind),  # type: ignore[arg-type]
                now=now - dt.timedelta(minutes=minutes),
            )
    finally:
        await redis.aclose()
