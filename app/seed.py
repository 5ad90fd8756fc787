"""The demo site that `make run` seeds into an empty database.

Two towers of 100 units each, two occupants per unit (owner and tenant/family), guards,
technicians with skills, FM and site admins, amenities, EV chargers and parking slots, two permits
and the staff attendance roster.
Only the demo logins get passwords (argon2 is deliberately slow; 400 hashes would not be).
"""

from __future__ import annotations

import random
from uuid import UUID

from app.auth.passwords import hash_password
from app.auth.roles import Role
from app.complaints import config as complaint_config
from app.config import Settings
from app.people.directory import directory_for
from app.people.service import NewPerson, UnitLink, create_people
from app.slots import resources as slot_resources
from schema.tables import Building, Device, Site, Unit

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

    technician_ids = [pid for pid, person in zip(person_ids, people, strict=True) if Role.TECHNICIAN in person.roles]
    await seed_complaint_setup(site.id, technician_ids)
    await seed_bookable_resources(site.id)
    await seed_billing(site.id, unit_ids[:12])
    by_email = {person.email: pid for pid, person in zip(person_ids, people, strict=True) if person.email}
    await seed_operations(settings, site.id, unit_ids[0], by_email)
    await seed_maintenance(settings, site.id)
    return site.id


COMPLAINT_CATEGORIES: list[tuple[str, str, str, list[str]]] = [
    ("plumbing", "Plumbing", "plumbing", ["leak", "blockage", "low-pressure"]),
    ("electrical", "Electrical", "electrical", ["power-outage", "wiring", "fixture"]),
    ("carpentry", "Carpentry", "carpentry", ["door", "window", "furniture"]),
    ("hvac", "Air conditioning", "hvac", ["not-cooling", "noise", "leak"]),
    ("lift", "Lift", "lift", ["stuck", "door", "noise"]),
    ("housekeeping", "Housekeeping", "housekeeping", ["common-area", "garbage", "pest-control"]),
]


async def seed_complaint_setup(site_id: UUID, technician_ids: list[UUID]) -> None:
    """Categories with the default SLA windows, and shifts round the clock: the first half of the
    technicians on days, the rest on nights (each half holds every skill)."""
    for code, name, skill, subcategories in COMPLAINT_CATEGORIES:
        await complaint_config.put_category(
            site_id, complaint_config.CategoryInput(code=code, name=name, skill=skill, subcategories=subcategories)
        )
    day = [complaint_config.Shift(weekday=d, start="08:00", end="20:00") for d in range(7)]
    night = [complaint_config.Shift(weekday=d, start="20:00", end="08:00") for d in range(7)]
    for number, technician_id in enumerate(technician_ids, start=1):
        shifts = day if number <= len(technician_ids) // 2 else night
        await complaint_config.put_shifts(site_id, technician_id, complaint_config.ShiftsInput(shifts=shifts))


async def seed_bookable_resources(site_id: UUID) -> None:
    """Amenities with different rules, EV chargers with two connectors each, visitor parking and valet."""
    Rules, NewResource = slot_resources.Rules, slot_resources.NewResource
    amenities = [
        (
            "CLUB",
            "Clubhouse hall",
            Rules(
                slot_minutes=60,
                min_minutes=120,
                max_minutes=360,
                buffer_minutes=60,
                advance_days=60,
                fee_minor=250000,
                needs_approval=True,
                quota_per_week=1,
            ),
        ),
        ("MEET1", "Meeting room 1", Rules(slot_minutes=30, min_minutes=30, max_minutes=180, quota_per_day=2)),
        (
            "COURT1",
            "Badminton court",
            Rules(slot_minutes=60, min_minutes=60, max_minutes=60, quota_per_day=1, advance_days=7),
        ),
    ]
    for code, name, rules in amenities:
        await slot_resources.create_resource(
            site_id, NewResource(category="amenity", code=code, name=name, rules=rules)
        )
    for number in range(1, 5):
        await slot_resources.create_charger(
            site_id,
            slot_resources.NewCharger(
                code=f"EV{number}",
                name=f"EV charger {number}",
                connectors=[
                    slot_resources.NewConnector(connector_no=1, power_kw=30, connector_type="CCS2"),
                    slot_resources.NewConnector(connector_no=2, power_kw=7.4, connector_type="Type2"),
                ],
            ),
        )
    for number in range(1, 21):
        await slot_resources.create_resource(
            site_id,
            NewResource(
                category="parking_slot",
                code=f"P{number:03d}",
                name=f"Visitor parking {number}",
                covered=number % 2 == 0,
                ev_capable=number <= 4,
                allocation="visitor",
            ),
        )
    await slot_resources.create_resource(site_id, NewResource(category="valet", code="VALET", name="Valet desk"))


async def seed_billing(site_id: UUID, unit_ids: list[UUID]) -> None:
    """Billing set up (18 % GST, INR 3,500 a month), last month's invoices for a few units, some of them
    paid in full or in part at the office, so the control room shows collections, ageing and defaulters.
    The monthly cron (``billing_monthly``) issues this month's invoices on the site's run day."""
    import datetime as dt

    from app.billing import setup as billing_setup
    from app.billing.charges import NewCharge, add_charge
    from app.billing.invoicing import issue_invoice
    from app.billing.payments import ProviderPayment, record_capture

    await billing_setup.ensure_site(site_id)
    await billing_setup.change_settings(
        site_id,
        billing_setup.SettingsChange(
            legal_name="Demo Residency Apartment Owners Association",
            address="1 Demo Road, Bengaluru 560001",
            gstin="29AABCD1234E1Z5",
            state_code="29",
        ),
    )
    await billing_setup.set_rate(
        site_id, billing_setup.RateChange(unit_kind="residential", basis="per_unit", amount_minor=350_000)
    )
    today = await billing_setup.site_today(site_id)
    last_month = (today.replace(day=1) - dt.timedelta(days=1)).replace(day=1)
    for index, unit_id in enumerate(unit_ids):
        await add_charge(
            site_id,
            NewCharge(
                unit_id=unit_id,
                description=f"Maintenance {last_month:%Y-%m}",
                unit_price_minor=350_000,
                charge_type="maintenance",
            ),
        )
        issued = await issue_invoice(site_id, unit_id, last_month, period=last_month.strftime("%Y-%m"))
        if issued is None or isinstance(issued, str) or index % 3 == 2:
            continue  # every third unit has not paid
        amount = issued.total_minor if index % 3 == 0 else issued.total_minor // 2
        await record_capture(
            "cash",
            ProviderPayment(
                id=f"manual:demo-{unit_id}",
                order_id=None,
                amount_minor=amount,
                currency="INR",
                status="captured",
                method="cash",
                refunded_minor=0,
                created_at=0,
            ),
            site_id=site_id,
            unit_id=unit_id,
            method="cash",
            paid_on=last_month + dt.timedelta(days=5),
        )


async def seed_operations(settings: Settings, site_id: UUID, unit_id: UUID, by_email: dict[str, UUID]) -> None:
    """Permits and staff attendance: the resident's fit-out waiting for the FM manager, a vendor's permit
    approved for today (the guard can check +91 98111 00001 or KA05MN4321 at the gate), a geofence,
    three shifts and four staff on the roster."""
    import datetime as dt
    import io

    from PIL import Image

    from app.attendance import config as attendance
    from app.auth.principal import Principal
    from app.permits import service as permits
    from app.permits import types as permit_types
    from app.redis import create_redis

    def principal(email: str, role: Role) -> Principal:
        return Principal(
            person_id=by_email[email], site_id=site_id, roles=frozenset({role}), token_id="seed", expires_at=0
        )

    resident = principal("resident@demo.opshub.test", Role.OCCUPANT)
    fm = principal("fm@demo.opshub.test", Role.FM_ADMIN)
    now = dt.datetime.now(dt.UTC)
    drawing = io.BytesIO()
    Image.new("RGB", (320, 200), (235, 235, 225)).save(drawing, format="JPEG")
    await permit_types.ensure_defaults(site_id)
    redis = create_redis(settings)
    try:
        fit_out = await permits.apply(
            settings,
            redis,
            resident,
            permits.PermitInput(
                type="fit_out",
                title="Kitchen remodel",
                unit_id=unit_id,
                valid_from=now + dt.timedelta(days=2),
                valid_until=now + dt.timedelta(days=9),
                values={
                    "scope_of_work": "New counter top, wall tiles and two power points",
                    "contractor": "Sharma Interiors",
                    "structural_changes": False,
                    "debris": "contractor removes daily",
                },
                declarations=["hours", "structure", "damage"],
                people=[permits.PersonInput(name="Ravi Kumar", phone="+919811100002")],
            ),
        )
        await permits.add_attachment(settings, resident, fit_out.id, "drawing", drawing.getvalue())
        await permits.submit(settings, redis, resident, fit_out.id, permits.VersionInput())
        vendor = await permits.apply(
            settings,
            redis,
            resident,
            permits.PermitInput(
                type="vendor_access",
                title="AC servicing",
                unit_id=unit_id,
                valid_from=now - dt.timedelta(hours=1),
                valid_until=now + dt.timedelta(hours=10),
                values={"vendor": "CoolAir", "purpose": "Service the two split ACs"},
                declarations=["escort"],
                people=[permits.PersonInput(name="Anil (CoolAir)", phone="+919811100001")],
                vehicles=[permits.VehicleInput(plate="KA05MN4321", description="CoolAir van")],
            ),
        )
        await permits.submit(settings, redis, resident, vendor.id, permits.VersionInput())
        await permits.decide(settings, redis, fm, vendor.id, permits.DecisionInput(decision="approve"))
    finally:
        await redis.aclose()

    await attendance.save_settings(
        site_id,
        attendance.SettingsInput(
            geofence=attendance.Geofence(latitude=12.9716, longitude=77.5946, radius_m=250),
            supervisor_id=fm.person_id,
        ),
    )
    shifts = {
        code: await attendance.add_shift(site_id, attendance.ShiftInput(code=code, name=name, start=start, end=end))
        for code, name, start, end in (
            ("morning", "Morning", "06:00", "14:00"),
            ("evening", "Evening", "14:00", "22:00"),
            ("night", "Night", "22:00", "06:00"),
        )
    }
    staff = [
        ("Guard 1", "guard", by_email["guard1@demo.opshub.test"], None, "morning", range(7)),
        ("Guard 2", "guard", by_email["guard2@demo.opshub.test"], None, "evening", range(7)),
        ("Guard 3", "guard", by_email["guard3@demo.opshub.test"], None, "night", range(7)),
        ("Lakshmi", "housekeeping", None, "+919811100003", "morning", range(6)),
    ]
    for name, category, person, phone, shift, days in staff:
        member = await attendance.add_staff(
            settings,
            site_id,
            attendance.StaffInput(name=name, category=category, person_id=person, phone=phone),  # type: ignore[arg-type]
        )
        await attendance.put_roster(
            site_id,
            member.id,
            attendance.RosterInput(entries=[attendance.RosterItem(weekday=d, shift_id=shifts[shift].id) for d in days]),
        )
    # The first technician's roster is their complaint shifts (days), read by attendance as they are.
    await attendance.add_staff(
        settings,
        site_id,
        attendance.StaffInput(name="Technician 1", category="technician", person_id=by_email["tech1@demo.opshub.test"]),
    )


async def seed_maintenance(settings: Settings, site_id: UUID) -> None:
    """A few assets under contract (one visit overdue, one contract about to end, past visits recorded),
    an EV charger linked from SLOTS, and places with QR codes: the control room's maintenance screens
    and the public place pages have something to show."""
    import datetime as dt

    from app.amc import assets, contracts
    from app.amc.schedule import Frequency
    from app.places import service as places
    from schema.amc import ServiceVisit
    from schema.tables import Resource

    towers = {
        row["code"]: row["id"]
        for row in await Building.select(Building.id, Building.code).where(Building.site == site_id)
    }
    charger = await Resource.select(Resource.id).where((Resource.site == site_id) & (Resource.code == "EV1")).first()
    today = dt.datetime.now(dt.UTC).date()
    year_ago = today - dt.timedelta(days=365)
    made: dict[str, UUID] = {}
    for code, name, kind, tower, floor, where in (
        ("LIFT-A1", "Lift A1", "lift", "A", "G", "Main lobby, left"),
        ("LIFT-B1", "Lift B1", "lift", "B", "G", "Main lobby, right"),
        ("DG-1", "DG set 1 (500 kVA)", "dg_set", "B", "B1", "Behind the STP"),
        ("FIRE-P1", "Fire pump room", "fire_system", "A", "B2", "Next to the water tank"),
        ("CCTV-NVR", "CCTV recorder", "cctv", "A", "G", "Security room"),
    ):
        view = await assets.create_asset(
            settings,
            site_id,
            assets.NewAsset(code=code, name=name, kind=kind, building_id=towers[tower], floor=floor, location=where),  # type: ignore[arg-type]
        )
        made[code] = view.id
    if charger is not None:
        view = await assets.create_asset(
            settings,
            site_id,
            assets.NewAsset(code="EVC-1", name="EV charger 1", kind="ev_charger", charger_id=charger["id"], floor="B1"),
        )
        made["EVC-1"] = view.id
    plans = [
        (
            "LIFT-A1",
            "Otis Elevator Co.",
            Frequency.MONTHLY,
            year_ago + dt.timedelta(days=30),
            today + dt.timedelta(days=30),
            14_400_000,
        ),
        (
            "LIFT-B1",
            "Otis Elevator Co.",
            Frequency.MONTHLY,
            year_ago + dt.timedelta(days=40),
            today + dt.timedelta(days=300),
            14_400_000,
        ),
        (
            "DG-1",
            "Cummins Sales & Service",
            Frequency.QUARTERLY,
            year_ago + dt.timedelta(days=20),
            today + dt.timedelta(days=20),
            9_000_000,
        ),
        (
            "FIRE-P1",
            "SafeGuard Fire Systems",
            Frequency.HALF_YEARLY,
            today - dt.timedelta(days=100),
            today + dt.timedelta(days=265),
            6_500_000,
        ),
        (
            "EVC-1",
            "ChargeGrid Services",
            Frequency.QUARTERLY,
            today - dt.timedelta(days=10),
            today + dt.timedelta(days=355),
            2_400_000,
        ),
    ]
    for code, vendor, frequency, starts, ends, cost in plans:
        if code not in made:
            continue
        contract_id = await contracts.write_contract(
            site_id,
            None,
            contracts.NewContract(
                asset_id=made[code],
                vendor=vendor,
                starts_on=starts,
                ends_on=ends,
                frequency=frequency,
                cost_paise=cost,
                sla_response_hours=4,
                sla_visit_grace_days=3,
            ),
        )
        # Past visits were done on their day, except the lift A1's most recent one: overdue on the board.
        past = (
            await ServiceVisit.select(ServiceVisit.id, ServiceVisit.due_on)
            .where((ServiceVisit.contract == contract_id) & (ServiceVisit.due_on < today - dt.timedelta(days=3)))
            .order_by(ServiceVisit.due_on)
        )
        keep_open = past[-1]["id"] if code == "LIFT-A1" and past else None
        for visit in past:
            if visit["id"] == keep_open:
                continue
            await ServiceVisit.update(
                {
                    ServiceVisit.status: "done",
                    ServiceVisit.completed_on: visit["due_on"],
                    ServiceVisit.completed_at: dt.datetime.combine(visit["due_on"], dt.time(6), tzinfo=dt.UTC),
                    ServiceVisit.notes: "Routine service; all checks passed.",
                    ServiceVisit.checklist: [{"item": "Functional test", "ok": True, "remark": ""}],
                }
            ).where(ServiceVisit.id == visit["id"])
    club = await Resource.select(Resource.id).where((Resource.site == site_id) & (Resource.code == "CLUB")).first()
    gym_hours = {str(day): [["05:30", "10:00"], ["16:00", "22:00"]] for day in range(7)}
    for new in (
        places.NewPlace(
            kind="amenity",
            name="Clubhouse hall",
            building_id=towers["A"],
            floor="G",
            directions="Past the pool, first door on the left",
            opening_hours={str(day): [["08:00", "22:00"]] for day in range(7)},
            resource_id=club["id"] if club else None,
        ),
        places.NewPlace(
            kind="amenity",
            name="Gym",
            building_id=towers["B"],
            floor="2",
            directions="Lift B1 to floor 2, turn right",
            opening_hours=gym_hours,
        ),
        places.NewPlace(
            kind="shop",
            name="Pharmacy",
            floor="G",
            directions="Shopping arcade, shop 4",
            opening_hours={str(day): [["09:00", "21:00"]] for day in range(6)},
        ),
        places.NewPlace(
            kind="facility",
            name="Sewage treatment plant",
            floor="B1",
            directions="Service road behind Tower B",
            description="Staff only beyond the gate.",
        ),
    ):
        await places.create_place(settings, site_id, new)
