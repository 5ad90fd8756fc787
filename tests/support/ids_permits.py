"""Real ids of the permits module in a test world, for the cross-site access test and the privacy tests."""

from __future__ import annotations

import datetime as dt
from typing import Any
from uuid import UUID

from app.auth.principal import Principal
from app.auth.roles import Role
from app.people.directory import directory_for
from app.permits import service, types
from app.redis import create_redis
from schema.permits import PermitEntry
from schema.tables import Person
from tests.support.permits import jpeg, principal
from tests.support.world import World


async def resource_ids(world: World) -> dict[str, str]:
    await types.ensure_defaults(world.site_id)
    fit_out = await types.get_type(world.site_id, "fit_out")
    redis = create_redis(world.settings)
    try:
        who = principal(world, "occupant")
        start = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
        draft = await service.apply(
            world.settings,
            redis,
            who,
            service.PermitInput(
                type="fit_out",
                title="Kitchen remodel",
                unit_id=world.unit_ids[0],
                valid_from=start,
                valid_until=start + dt.timedelta(days=2),
                values={"scope_of_work": "Tiles", "contractor": "Sharma", "debris": "contractor removes daily"},
                declarations=["hours", "structure", "damage"],
                people=[service.PersonInput(name="Ravi Kumar", phone="+919812345670")],
            ),
        )
        attachment = await service.add_attachment(world.settings, who, draft.id, "drawing", jpeg())
        await service.submit(world.settings, redis, who, draft.id, service.VersionInput())
    finally:
        await redis.aclose()
    entry = PermitEntry(site=world.site_id, permit=draft.id, checked_in_at=dt.datetime.now(dt.UTC))
    await entry.save()
    return {
        "type_id": str(fit_out.id),
        "permit_id": str(draft.id),
        "attachment_id": str(attachment.id),
        "entry_id": str(entry.id),
    }


async def seed_person_data(world: World, person_id: UUID) -> None:
    """Give `person_id` (an occupant of world.unit_ids[0], with a mobile, an email and a vehicle)
    data in this module, for the privacy module's export and erasure tests: a submitted fit-out whose
    title and fields name them, with their own car named on it and a drawing attached."""
    directory = directory_for(world.settings)
    person = await Person.select(Person.full_name).where(Person.id == person_id).first()
    name = person["full_name"] if person else "Someone"
    plates = [v.plate for v in (await directory.vehicles_for(world.site_id, [person_id])).get(person_id, [])]
    who = Principal(
        person_id=person_id, site_id=world.site_id, roles=frozenset({Role.OCCUPANT}), token_id="seed", expires_at=0
    )
    redis = create_redis(world.settings)
    try:
        start = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
        draft = await service.apply(
            world.settings,
            redis,
            who,
            service.PermitInput(
                type="fit_out",
                title=f"Bathroom for {name}",
                unit_id=world.unit_ids[0],
                valid_from=start,
                valid_until=start + dt.timedelta(days=2),
                values={
                    "scope_of_work": f"Retile; call {name} before starting",
                    "contractor": "Sharma",
                    "debris": "contractor removes daily",
                },
                declarations=["hours", "structure", "damage"],
                people=[service.PersonInput(name="Ravi Kumar", phone="+919812345671")],
                vehicles=[service.VehicleInput(plate=plate, description="own car") for plate in plates],
            ),
        )
        await service.add_attachment(world.settings, who, draft.id, "drawing", jpeg())
        await service.submit(world.settings, redis, who, draft.id, service.VersionInput())
    finally:
        await redis.aclose()


async def approved_vendor_permit(
    world: World,
    settings: Any,
    redis: Any,
    *,
    start: dt.datetime,
    hours: int = 8,
    phone: str = "+919800000003",
    plate: str | None = None,
    now: dt.datetime | None = None,
) -> service.PermitView:
    """A vendor-access permit of the world's occupant, approved by its FM admin (the type's one step)."""
    who = principal(world, "occupant")
    draft = await service.apply(
        settings,
        redis,
        who,
        service.PermitInput(
            type="vendor_access",
            title="AC servicing",
            unit_id=world.unit_ids[0],
            valid_from=start,
            valid_until=start + dt.timedelta(hours=hours),
            values={"vendor": "CoolAir", "purpose": "Service the ACs"},
            declarations=["escort"],
            people=[service.PersonInput(name="Anil Vendor", phone=phone)],
            vehicles=[service.VehicleInput(plate=plate, description="van")] if plate else [],
        ),
        now=now,
    )
    await service.submit(settings, redis, who, draft.id, service.VersionInput(), now=now)
    return await service.decide(
        settings, redis, principal(world, "fm_admin"), draft.id, service.DecisionInput(decision="approve"), now=now
    )
