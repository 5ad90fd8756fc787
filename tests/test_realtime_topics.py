"""Who may subscribe to which topic: the rules of realtime/topics.py as one matrix, on a real database."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest

from app.auth.principal import Principal
from app.auth.roles import Role
from realtime.topics import (
    RULES,
    TopicError,
    authorize,
    complaint_topic,
    parse_topic,
    personal_topics,
    register_checker,
    site_topic,
    staff_of_object_site,
    unit_topic,
    user_topic,
)
from schema.tables import Occupancy


def principal(world, name: str) -> Principal:  # type: ignore[no-untyped-def]
    return Principal(
        person_id=world.people[name],
        site_id=world.site_id,
        roles=world.roles[name],
        token_id="test",
        expires_at=0,
    )


ROLES = ["occupant", "guard", "technician", "fm_admin", "site_admin", "platform_admin"]
STAFF = {"fm_admin", "site_admin"}


async def test_topic_matrix(world, other_world) -> None:  # type: ignore[no-untyped-def]
    await world.add_person("moved_out", frozenset({Role.OCCUPANT}), units=[(world.unit_ids[1], "tenant")])
    await Occupancy.update({Occupancy.is_active: False}).where(Occupancy.person == world.people["moved_out"])
    callers = {name: principal(world, name) for name in [*ROLES, "moved_out"]}
    callers |= {f"other_{name}": principal(other_world, name) for name in ROLES}
    here = set(ROLES) | {"moved_out"}
    there = {f"other_{name}" for name in ROLES}

    # topic -> who may subscribe (everyone else must be refused)
    matrix: dict[str, set[str]] = {
        user_topic(world.people["occupant"]): {"occupant"},
        user_topic(world.people["guard"]): {"guard"},
        unit_topic(world.unit_ids[0]): {"occupant", "guard", *STAFF},
        unit_topic(world.unit_ids[1]): {"guard", *STAFF},  # not the occupant of unit 0, not the one who moved out
        unit_topic(other_world.unit_ids[0]): {"other_occupant", "other_guard", "other_fm_admin", "other_site_admin"},
        unit_topic(uuid4()): set(),  # no such unit
        complaint_topic(uuid4()): set(),  # until the complaints module registers its check
        site_topic(world.site_id, "gate"): {"guard", *STAFF},
        site_topic(world.site_id, "control"): set(STAFF),
        site_topic(world.site_id, "slots"): here,
        site_topic(other_world.site_id, "gate"): {"other_guard", "other_fm_admin", "other_site_admin"},
        site_topic(other_world.site_id, "control"): {"other_fm_admin", "other_site_admin"},
        site_topic(other_world.site_id, "slots"): there,
    }
    wrong = []
    for topic, allowed in matrix.items():
        for name, caller in callers.items():
            try:
                await authorize(caller, topic)
                granted = True
            except TopicError as exc:
                assert exc.code == "forbidden"
                granted = False
            if granted != (name in allowed):
                wrong.append(f"{name} {'got' if granted else 'was refused'} {topic}")
    assert wrong == []
    # Every declared kind appears in the matrix.
    assert {parse_topic(topic).kind for topic in matrix} == set(RULES)


async def test_complaints_module_can_plug_in_its_check(world, other_world) -> None:  # type: ignore[no-untyped-def]
    complaint_id = uuid4()
    sites = {complaint_id: world.site_id}

    async def complaint_site(object_id: UUID) -> UUID | None:
        return sites.get(object_id)

    previous = register_checker("complaint", staff_of_object_site(complaint_site))
    try:
        topic = complaint_topic(complaint_id)
        await authorize(principal(world, "fm_admin"), topic)
        for caller in [principal(world, "occupant"), principal(other_world, "fm_admin")]:
            with pytest.raises(TopicError):
                await authorize(caller, topic)
    finally:
        register_checker("complaint", previous)
    with pytest.raises(TopicError):
        await authorize(principal(world, "fm_admin"), complaint_topic(complaint_id))


async def test_malformed_topics_are_unknown(world) -> None:  # type: ignore[no-untyped-def]
    caller = principal(world, "fm_admin")
    for name in [
        "",
        "unit:",
        "unit:123",
        f"unit:{str(world.unit_ids[0]).upper()}",  # one object, one spelling, one history
        f"site:{world.site_id}:everything",
        f"site:{world.site_id}",
        f"tower:{uuid4()}",
        f"user:{world.people['fm_admin']}:extra",
    ]:
        with pytest.raises(TopicError) as refused:
            await authorize(caller, name)
        assert refused.value.code == "unknown_topic"


async def test_personal_topics_follow_roles_and_occupancies(world) -> None:  # type: ignore[no-untyped-def]
    await world.add_person(
        "two_homes", frozenset({Role.OCCUPANT}), units=[(world.unit_ids[2], "owner"), (world.unit_ids[3], "tenant")]
    )
    site = world.site_id
    people = world.people
    assert await personal_topics(principal(world, "two_homes")) == [
        user_topic(people["two_homes"]),
        *sorted([unit_topic(world.unit_ids[2]), unit_topic(world.unit_ids[3])]),
    ]
    assert await personal_topics(principal(world, "guard")) == [user_topic(people["guard"]), site_topic(site, "gate")]
    assert await personal_topics(principal(world, "site_admin")) == [
        user_topic(people["site_admin"]),
        site_topic(site, "gate"),
        site_topic(site, "control"),
    ]
    assert await personal_topics(principal(world, "platform_admin")) == [user_topic(people["platform_admin"])]
    # Every personal topic passes the same rules as an explicit subscription.
    for name in ROLES:
        for topic in await personal_topics(principal(world, name)):
            await authorize(principal(world, name), topic)
