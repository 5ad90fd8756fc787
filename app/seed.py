"""The demo site that `make run` seeds into an empty database.

Two towers of 100 units each, two occupants per unit (owner and tenant/family), guards,
technicians with skills, FM and site admins, amenities, EV chargers and parking slots.
Only the demo logins get passwords (argon2 is deliberately slow; 400 hashes would not be).
"""

from __future__ import annotations

import random
from uuid import UUID

from app.auth.passwords import hash_password
from app.auth.roles import Role
from app.config import Settings
from app.people.directory import directory_for
from app.people.service import NewPerson, UnitLink, create_people
from schema.tables import Building, Device, Resource, Site, Unit

DEMO_SITE_SLUG = "demo"
DEMO_PASSWORD = "opshub-demo"
DEMO_LOGINS: list[tuple[str, str, str]] = [
    ("fm_admin", "fm@demo.opshub.test", DEMO_PASSWORD),
    ("site_admin", "admin@demo.opshub.test", DEMO_PASSWORD),
    ("guard", "guard1@demo.opshub.test", DEMO_PASSWORD),
    ("technician", "tech1@demo.opshub.test", DEMO_PASSWORD),
    ("occupant", "resident@demo.opshub.test", DEMO_PASSWORD),
    ("platform_admin", "platform@demo.opshub.test", DEMO_PASSWORD),
]
FIRST_NAMES = [
    "Aarav",
    "Diya",
    "Ishaan",
    "Ananya",
    "Vihaan",
    "Saanvi",
    "Arjun",
    "Meera",
    "Kabir",
    "Nisha",
    "Rohan",
    "Priya",
    "Aditya",
    "Kavya",
    "Reyansh",
    "Tara",
    "Vivaan",
    "Zoya",
    "Dev",
    "Isha",
]
LAST_NAMES = ["Sharma", "Iyer", "Reddy", "Nair", "Gupta", "Khan", "Menon", "Das", "Patel", "Rao", "Singh", "Bose"]
SKILLS = ["plumbing", "electrical", "carpentry", "hvac", "lift", "housekeeping"]


async def seed_demo_site_if_empty(settings: Settings) -> bool:
    if await Site.exists():
        return False
    await seed_demo_site(settings)
    return True


async def seed_demo_site(settings: Settings, *, units_per_floor: int = 10, floors: int = 10) -> UUID:
    rng = random.Random(20261122)
    directory = directory_for(settings)
    site = Site(name="Demo Residency", slug=DEMO_SITE_SLUG, timezone="Asia/Kolkata", country_code="IN")
    await site.save()
    unit_ids: list[UUID] = []
    for code in ("A", "B"):
        building = Building(site=site.id, code=code, name=f"Tower {code}")
        await building.save()
        units = [
            Unit(site=site.id, building=building.id, label=f"{code}-{floor}{number:02d}", floor=floor)
            for floor in range(1, floors + 1)
            for number in range(1, units_per_floor + 1)
        ]
        await Unit.insert(*units)
        unit_ids += [u.id for u in units]

    demo_hash = hash_password(DEMO_PASSWORD)
    people: list[NewPerson] = []
    phone_serial = iter(range(9_800_000_000, 9_900_000_000))

    def mobile() -> str:
        return f"+91{next(phone_serial)}"

    def name() -> str:
        return f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"

    for index, unit_id in enumerate(unit_ids):
        is_demo = index == 0
        people.append(
            NewPerson(
                full_name="Riya Resident" if is_demo else name(),
                roles=frozenset({Role.OCCUPANT}),
                primary_mobile=mobile(),
                email="resident@demo.opshub.test" if is_demo else f"owner{index}@demo.opshub.test",
                password_hash=demo_hash if is_demo else None,
                unit_links=[UnitLink(unit_id=unit_id, relation="owner")],
                plates=[f"KA01AB{1000 + index}"],
            )
        )
        people.append(
            NewPerson(
                full_name=name(),
                roles=frozenset({Role.OCCUPANT}),
                primary_mobile=mobile(),
                unit_links=[UnitLink(unit_id=unit_id, relation="tenant" if index % 3 else "family")],
            )
        )
    for number in range(1, 7):
        people.append(
            NewPerson(
                full_name=f"Guard {number}",
                roles=frozenset({Role.GUARD}),
                primary_mobile=mobile(),
                email=f"guard{number}@demo.opshub.test",
                password_hash=demo_hash if number == 1 else None,
            )
        )
    for number in range(1, 9):
        people.append(
            NewPerson(
                full_name=f"Technician {number}",
                roles=frozenset({Role.TECHNICIAN}),
                primary_mobile=mobile(),
                email=f"tech{number}@demo.opshub.test",
                password_hash=demo_hash if number == 1 else None,
                skills=[SKILLS[number % len(SKILLS)], SKILLS[(number + 2) % len(SKILLS)]],
            )
        )
    for role, email, full_name in (
        (Role.FM_ADMIN, "fm@demo.opshub.test", "Farah FM"),
        (Role.SITE_ADMIN, "admin@demo.opshub.test", "Sanjay Site-Admin"),
        (Role.PLATFORM_ADMIN, "platform@demo.opshub.test", "Pat Platform"),
    ):
        people.append(
            NewPerson(
                full_name=full_name,
                roles=frozenset({role}),
                email=email,
                password_hash=demo_hash,
                primary_mobile=mobile(),
            )
        )
    person_ids = await create_people(directory, site.id, people)
    # Owners (every second person, from the first) have the app installed: push has somewhere to go.
    owner_ids = person_ids[: 2 * len(unit_ids) : 2]
    await Device.insert(
        *[
            Device(site=site.id, person=pid, platform="android" if n % 3 else "ios", push_token=f"demo-device-{n}")
            for n, pid in enumerate(owner_ids)
        ]
    )

    resources = [
        Resource(site=site.id, kind="amenity", code="CLUB", name="Clubhouse hall", details={"capacity": 80}),
        Resource(site=site.id, kind="amenity", code="MEET1", name="Meeting room 1", details={"capacity": 10}),
        Resource(site=site.id, kind="amenity", code="COURT1", name="Badminton court", details={"capacity": 4}),
    ]
    resources += [
        Resource(
            site=site.id,
            kind="ev_charger",
            code=f"EV{n}",
            name=f"EV charger {n}",
            details={"connectors": [{"id": 1, "type": "CCS2", "kw": 30}, {"id": 2, "type": "Type2", "kw": 7.4}]},
        )
        for n in range(1, 5)
    ]
    resources += [
        Resource(
            site=site.id,
            kind="parking_slot",
            code=f"P{n:03d}",
            name=f"Visitor parking {n}",
            details={"covered": n % 2 == 0, "ev_capable": n <= 4, "use": "visitor"},
        )
        for n in range(1, 21)
    ]
    await Resource.insert(*resources)
    return site.id
