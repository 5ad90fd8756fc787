"""Real ids of the visitors module in a test world, for the cross-site access test."""

from __future__ import annotations

from tests.support.world import World


async def resource_ids(world: World) -> dict[str, str]:
    return {}
