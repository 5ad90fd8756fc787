"""Real ids of the AMC tracker and QR mapping in a test world, for the cross-site access test."""

from __future__ import annotations

import datetime as dt
import io
from uuid import UUID

from PIL import Image

from app.amc import visits
from app.amc.schedule import Frequency
from app.auth.principal import Principal
from app.auth.roles import Role
from app.places import service as places
from app.redis import create_redis
from tests.support.amc import contract, lift
from tests.support.slots import principal
from tests.support.world import World


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (20, 120, 60)).save(buffer, format="JPEG")
    return buffer.getvalue()


async def resource_ids(world: World) -> dict[str, str]:
    asset = await lift(world)
    redis = create_redis(world.settings)
    try:
        made = await contract(
            world,
            redis,
            asset.id,
            starts_on=dt.date(2026, 1, 1),
            ends_on=dt.date(2026, 12, 31),
            frequency=Frequency.QUARTERLY,
        )
    finally:
        await redis.aclose()
    visit = (await visits.list_visits(world.site_id, contract_id=made.id, which="all", limit=1, offset=0)).items[0]
    attachment = await visits.add_attachment(world.settings, principal(world, "technician"), visit.id, _jpeg())
    place = await places.create_place(world.settings, world.site_id, places.NewPlace(kind="facility", name="STP"))
    assert place.code is not None
    return {
        "asset_id": str(asset.id),
        "contract_id": str(made.id),
        "visit_id": str(visit.id),
        "attachment_id": str(attachment.id),
        "place_id": str(place.id),
        "code": place.code,
    }


async def seed_person_data(world: World, person_id: UUID) -> None:
    """Give `person_id` data in this module, for the privacy module's export and erasure tests: a visit
    they recorded with a photo (as a technician would)."""
    asset = await lift(world)
    redis = create_redis(world.settings)
    try:
        made = await contract(
            world,
            redis,
            asset.id,
            starts_on=dt.date(2026, 1, 1),
            ends_on=dt.date(2026, 6, 30),
            frequency=Frequency.QUARTERLY,
        )
        visit = (await visits.list_visits(world.site_id, contract_id=made.id, which="all", limit=1, offset=0)).items[0]
        who = Principal(
            person_id=person_id,
            site_id=world.site_id,
            roles=frozenset({Role.TECHNICIAN}),
            token_id="ids",
            expires_at=2**31,
        )
        await visits.complete_visit(world.settings, redis, who, visit.id, visits.VisitReport(notes="Oiled the rails"))
        await visits.add_attachment(world.settings, who, visit.id, _jpeg())
    finally:
        await redis.aclose()
