"""Real ids of the slots module in a test world, for the cross-site access test."""

from __future__ import annotations

from uuid import UUID

from app.slots import booking, passes, valet
from app.slots.availability import AvailabilityFeed
from app.slots.resources import now_utc
from tests.support.slots import amenity, local, principal
from tests.support.world import World


async def _feed(world: World) -> AvailabilityFeed:
    from app.redis import create_redis

    return AvailabilityFeed(create_redis(world.settings), world.settings)


async def resource_ids(world: World) -> dict[str, str]:
    resource = await amenity(world, fee_minor=50000)
    feed = await _feed(world)
    try:
        made = await booking.book(
            feed,
            principal(world, "occupant"),
            resource.id,
            booking.NewBooking(starts_at=local(2, 10), ends_at=local(2, 11)),
        )
        parking = await passes.create_pass(
            world.settings, principal(world, "occupant"), passes.NewPass(plate="KA01AB1234")
        )
        request = await valet.request_valet(
            feed.redis, world.settings, principal(world, "occupant"), valet.NewValet(plate="KA01AB1234")
        )
    finally:
        await feed.redis.aclose()
    return {
        "resource_id": str(resource.id),
        "booking_id": str(made.id),
        "pass_id": str(parking.id),
        "valet_id": str(request.id),
    }


async def seed_person_data(world: World, person_id: UUID) -> None:
    """Give `person_id` (an occupant of world.unit_ids[0], with a mobile, an email and a vehicle)
    data in this module, for the privacy module's export and erasure tests."""
    from app.auth.roles import Role
    from tests.support.slots import TZ  # noqa: F401 - the site clock the times are on

    who = principal(world, "occupant")
    who = type(who)(
        person_id=person_id,
        site_id=world.site_id,
        roles=frozenset({Role.OCCUPANT}),
        token_id=who.token_id,
        expires_at=who.expires_at,
    )
    paid = await amenity(world, fee_minor=25000)
    free = await amenity(world)
    feed = await _feed(world)
    try:
        await booking.book(feed, who, paid.id, booking.NewBooking(starts_at=local(3, 10), ends_at=local(3, 11)))
        await booking.book(
            feed, who, free.id, booking.NewBooking(starts_at=local(3, 12), ends_at=local(3, 13), note="Birthday party")
        )
        await passes.create_pass(world.settings, who, passes.NewPass(plate="MH12XY9876", unit_id=world.unit_ids[0]))
        await valet.request_valet(
            feed.redis,
            world.settings,
            who,
            valet.NewValet(plate="MH12XY9876", unit_id=world.unit_ids[0]),
            now=now_utc(),
        )
    finally:
        await feed.redis.aclose()
