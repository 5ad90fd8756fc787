"""Real ids of the visitors module in a test world, for the cross-site access test."""

from __future__ import annotations

from uuid import UUID

from tests.support.world import World


async def resource_ids(world: World) -> dict[str, str]:
    return {}


async def seed_person_data(world: World, person_id: UUID) -> None:
    """Give `person_id` (an occupant of world.unit_ids[0], with a mobile, an email and a vehicle)
    data in this module, for the privacy module's export and erasure tests."""
