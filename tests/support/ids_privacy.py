"""Real ids of the privacy module in a test world, for the cross-site access test."""

from __future__ import annotations

from app.privacy.exports import request_export
from app.privacy.requests import create_request
from tests.support.world import World


async def resource_ids(world: World) -> dict[str, str]:
    occupant = world.people["occupant"]
    request = await create_request(site_id=world.site_id, person_id=occupant, kind="erasure", created_by=occupant)
    export = await request_export(world.settings, site_id=world.site_id, person_id=occupant, created_by=occupant)
    return {"request_id": str(request.id), "export_id": str(export.id)}
