"""Real ids of the complaints module in a test world, for the cross-site access test."""

from __future__ import annotations

import io
from uuid import UUID

from PIL import Image

from app.auth.principal import Principal
from app.auth.roles import Role
from app.complaints import config, service
from app.redis import create_redis
from tests.support.world import World


def _occupant(world: World, person_id: UUID) -> Principal:
    return Principal(
        person_id=person_id, site_id=world.site_id, roles=frozenset({Role.OCCUPANT}), token_id="ids", expires_at=2**31
    )


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 120, 200)).save(buffer, format="JPEG")
    return buffer.getvalue()


async def _complaint(world: World, person_id: UUID, unit_id: UUID) -> tuple[UUID, UUID]:
    await config.put_category(world.site_id, config.CategoryInput(code="plumbing", name="Plumbing", skill="plumbing"))
    redis = create_redis(world.settings)
    try:
        who = _occupant(world, person_id)
        raised = await service.raise_complaint(
            world.settings,
            redis,
            who,
            service.NewComplaint(category="plumbing", description="Tap dripping all night", unit_id=unit_id),
        )
        await service.add_comment(
            world.settings, redis, who, raised.id, service.NewComment(body="Please come after 6pm")
        )
        photo = await service.add_photo(world.settings, who, raised.id, _jpeg(), "before")
    finally:
        await redis.aclose()
    return raised.id, photo.id


async def resource_ids(world: World) -> dict[str, str]:
    complaint_id, photo_id = await _complaint(world, world.people["occupant"], world.unit_ids[0])
    return {
        "complaint_id": str(complaint_id),
        "photo_id": str(photo_id),
        "technician_id": str(world.people["technician"]),
    }


async def seed_person_data(world: World, person_id: UUID) -> None:
    """Give `person_id` (an occupant of world.unit_ids[0], with a mobile, an email and a vehicle)
    data in this module, for the privacy module's export and erasure tests."""
    await _complaint(world, person_id, world.unit_ids[0])
