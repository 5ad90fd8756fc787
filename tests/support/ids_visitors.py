"""Real ids of the visitors module in a test world, for the cross-site access test."""

from __future__ import annotations

import datetime as dt
from uuid import UUID

from app.auth.principal import Principal
from app.visitors import blocklist, gate
from app.visitors.approvals import answer
from app.visitors.passes import NewPass, OneTime, Recurring, create_pass
from tests.support.visitors import deps_for, jpeg, principal_of
from tests.support.world import World


async def resource_ids(world: World) -> dict[str, str]:
    from app.redis import create_redis

    redis = create_redis(world.settings)
    try:
        deps = deps_for(world, redis)
        now = dt.datetime.now(dt.UTC)
        created = await create_pass(
            deps,
            principal_of(world, "occupant"),
            NewPass(
                unit_id=world.unit_ids[0],
                kind="guest",
                visitor_name="Cross Site",
                one_time=OneTime(valid_from=now, valid_until=now + dt.timedelta(hours=2)),
            ),
        )
        walk_in = await gate.register_walk_in(
            deps,
            principal_of(world, "guard"),
            gate.WalkInForm(unit_id=world.unit_ids[0], name="Walk In", purpose="parcel"),
            jpeg(),
        )
        block = await blocklist.add(
            world.settings, principal_of(world, "fm_admin"), blocklist.NewBlock(phone="+919812345678", reason="test")
        )
    finally:
        await redis.aclose()
    return {
        "pass_id": str(created.visitor_pass.id),
        "approval_id": str(walk_in.approval_id),
        "visit_id": str(walk_in.visit.id),
        "block_id": str(block.id),
    }


async def seed_person_data(world: World, person_id: UUID) -> None:
    """Give `person_id` (an occupant of world.unit_ids[0], with a mobile, an email and a vehicle)
    data in this module, for the privacy module's export and erasure tests."""
    from app.redis import create_redis

    redis = create_redis(world.settings)
    try:
        deps = deps_for(world, redis)
        now = dt.datetime.now(dt.UTC)
        me = Principal(
            person_id=person_id,
            site_id=world.site_id,
            roles=world.roles.get("occupant", frozenset()),
            token_id="seed",
            expires_at=0,
        )
        await create_pass(
            deps,
            me,
            NewPass(
                unit_id=world.unit_ids[0],
                kind="daily_help",
                visitor_name="Meena Help",
                visitor_phone="+919811122233",
                recurring=Recurring(
                    days=[1, 2, 3, 4, 5], start="07:00", end="11:00", valid_until=now + dt.timedelta(days=90)
                ),
            ),
        )
        walk_in = await gate.register_walk_in(
            deps, principal_of(world, "guard"), gate.WalkInForm(unit_id=world.unit_ids[0], name="Ravi Courier"), None
        )
        await answer(deps, world.site_id, walk_in.approval_id, "approved", person_id=person_id, via="app")
    finally:
        await redis.aclose()
