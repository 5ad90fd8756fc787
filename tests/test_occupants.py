"""The occupant listing over HTTP: CRUD, unit links, search and pagination, deactivation,
site isolation, roles, and bad input as problem details."""

from __future__ import annotations

import datetime as dt
from typing import Any
from uuid import UUID, uuid4

import pytest

from app.occupants import service
from app.people.directory import directory_for
from schema.tables import ContactPoint, Occupancy, Person, Vehicle
from tests.support.world import PASSWORD, World

PROBLEM = "application/problem+json"
NON_STAFF = ["occupant", "guard", "technician", "platform_admin"]


def staff(world: World, who: str = "fm_admin") -> dict[str, str]:
    return world.headers(who)


async def create(client: Any, world: World, **body: Any) -> dict[str, Any]:
    payload = {"full_name": "Asha Rao", "primary_mobile": "98123 40001", "units": [], **body}
    response = await client.post("/api/occupants", json=payload, headers=staff(world))
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def assert_problem(response: Any, status: int, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    if field is not None:
        assert field in {e["field"] for e in problem.get("errors") or []}, problem
    return problem


# ---------------------------------------------------------------- create, read, update


async def test_create_normalises_and_reads_back(client: Any, world: World) -> None:
    created = await create(
        client,
        world,
        full_name="  Asha Rao ",
        primary_mobile="098123 40001",
        secondary_mobile="+91 98123 40002",
        email=" Asha@Example.TEST ",
        vehicle_plates=["ka 01 ab 1234", "KA-01-AB-1234", "mh12 x 9"],
        units=[{"unit_id": str(world.unit_ids[1]), "relation": "tenant"}],
    )
    assert created["full_name"] == "Asha Rao"
    assert created["primary_mobile"] == "+919812340001"
    assert created["secondary_mobile"] == "+919812340002"
    assert created["email"] == "asha@example.test"
    assert created["vehicle_plates"] == ["KA01AB1234", "MH12X9"]
    [link] = created["units"]
    assert (link["unit_label"], link["building_code"], link["relation"], link["is_active"]) == (
        "A-102",
        "A",
        "tenant",
        True,
    )
    assert link["started_on"] is not None
    read = await client.get(f"/api/occupants/{created['id']}", headers=staff(world))
    assert read.json() == created
    # Stored encrypted: the plain number is nowhere in the row.
    stored = await ContactPoint.select(ContactPoint.value_encrypted).where(ContactPoint.person == UUID(created["id"]))
    assert all("9812340001" not in row["value_encrypted"] for row in stored)


async def test_update_changes_only_what_is_given(client: Any, world: World) -> None:
    created = await create(client, world, email="a@example.test", vehicle_plates=["KA01AB1234"])
    url = f"/api/occupants/{created['id']}"
    response = await client.patch(
        url, json={"full_name": "Asha R.", "secondary_mobile": "9812340009"}, headers=staff(world)
    )
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["full_name"] == "Asha R."
    assert updated["secondary_mobile"] == "+919812340009"
    assert (updated["primary_mobile"], updated["email"], updated["vehicle_plates"]) == (
        "+919812340001",
        "a@example.test",
        ["KA01AB1234"],
    )
    assert dt.datetime.fromisoformat(updated["updated_at"]) > dt.datetime.fromisoformat(created["updated_at"])

    cleared = (await client.patch(url, json={"email": None, "vehicle_plates": []}, headers=staff(world))).json()
    assert cleared["email"] is None and cleared["vehicle_plates"] == []
    assert await Vehicle.count().where(Vehicle.person == UUID(created["id"])) == 0

    same = (await client.patch(url, json={"full_name": "Asha R."}, headers=staff(world))).json()
    assert same["updated_at"] == cleared["updated_at"], "an update that changes nothing writes nothing"


async def test_update_may_not_remove_the_last_identifier(client: Any, world: World) -> None:
    created = await create(client, world)
    response = await client.patch(
        f"/api/occupants/{created['id']}", json={"primary_mobile": None}, headers=staff(world)
    )
    assert_problem(response, 422, "primary_mobile")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"primary_mobile": "12345"}, "primary_mobile"),
        ({"primary_mobile": None, "email": None}, "primary_mobile"),
        ({"email": "not-an-email"}, "email"),
        ({"secondary_mobile": "+91 98123 40001"}, "secondary_mobile"),
        ({"vehicle_plates": ["X"]}, "vehicle_plates"),
        ({"full_name": "   "}, "full_name"),
        ({"full_name": "Two\nLines"}, "full_name"),
        ({"units": [{"unit_id": str(uuid4()), "relation": "owner"}]}, "units[0].unit_id"),
    ],
)
async def test_create_rejects_bad_values_naming_the_field(
    client: Any, world: World, body: dict[str, Any], field: str
) -> None:
    payload = {"full_name": "Asha", "primary_mobile": "9812340001", **body}
    assert_problem(await client.post("/api/occupants", json=payload, headers=staff(world)), 422, field)


async def test_unit_of_another_site_is_not_accepted(client: Any, world: World, other_world: World) -> None:
    payload = {
        "full_name": "A",
        "primary_mobile": "9812340001",
        "units": [{"unit_id": str(other_world.unit_ids[0]), "relation": "owner"}],
    }
    assert_problem(await client.post("/api/occupants", json=payload, headers=staff(world)), 422, "units[0].unit_id")


async def test_identifiers_are_unique_per_site(client: Any, world: World, other_world: World) -> None:
    await create(client, world, email="same@example.test")
    again = await client.post(
        "/api/occupants", json={"full_name": "B", "primary_mobile": "+919812340001"}, headers=staff(world)
    )
    assert_problem(again, 409, "primary_mobile")
    staff_email = await client.post(
        "/api/occupants", json={"full_name": "B", "email": world.emails["guard"]}, headers=staff(world)
    )
    assert_problem(staff_email, 409, "email")
    # Another site is another namespace.
    elsewhere = await client.post(
        "/api/occupants", json={"full_name": "B", "primary_mobile": "9812340001"}, headers=staff(other_world)
    )
    assert elsewhere.status_code == 201
    second = await create(client, world, full_name="C", primary_mobile="9812340005")
    clash = await client.patch(
        f"/api/occupants/{second['id']}", json={"email": "same@example.test"}, headers=staff(world)
    )
    assert_problem(clash, 409, "email")


@pytest.mark.parametrize(
    ("content", "status"),
    [
        (b'{"full_name": ', 400),
        (b"[1, 2]", 400),
        (b'{"full_name": 42}', 400),
        (b'{"full_name": "A", "units": "A-101"}', 400),
        (b'{"full_name": "A", "units": [{"unit_id": "not-a-uuid", "relation": "owner"}]}', 400),
        (
            b'{"full_name": "A", "units": [{"unit_id": "00000000-0000-0000-0000-000000000000", "relation": "boss"}]}',
            400,
        ),
        (b'{"full_name": "A", "shoe_size": 9}', 400),
        (b"\xff\xfe\x00garbage", 400),
    ],
)
async def test_malformed_bodies_are_4xx_problems(client: Any, world: World, content: bytes, status: int) -> None:
    response = await client.post(
        "/api/occupants", content=content, headers={**staff(world), "content-type": "application/json"}
    )
    problem = assert_problem(response, status)
    assert problem["title"]


async def test_wrong_type_names_the_field(client: Any, world: World) -> None:
    response = await client.post("/api/occupants", json={"full_name": 42}, headers=staff(world))
    assert_problem(response, 400, "full_name")
    created = await create(client, world)
    response = await client.patch(
        f"/api/occupants/{created['id']}", json={"vehicle_plates": "KA01"}, headers=staff(world)
    )
    assert_problem(response, 400, "vehicle_plates")


async def test_oversized_body_is_413(client: Any, world: World, settings: Any) -> None:
    big = b'{"full_name": "' + b"x" * (settings.max_request_body_bytes + 10) + b'"}'
    response = await client.post(
        "/api/occupants", content=big, headers={**staff(world), "content-type": "application/json"}
    )
    assert_problem(response, 413)


async def test_bad_query_parameters_are_problems(client: Any, world: World) -> None:
    assert_problem(await client.get("/api/occupants", params={"phone": "abc"}, headers=staff(world)), 422, "phone")
    assert_problem(await client.get("/api/occupants", params={"email": "x"}, headers=staff(world)), 422, "email")
    assert_problem(await client.get("/api/occupants", params={"limit": 0}, headers=staff(world)), 400, "limit")
    assert_problem(await client.get("/api/occupants", params={"relation": "boss"}, headers=staff(world)), 400)
    assert_problem(await client.get("/api/occupants", params={"building_id": "x"}, headers=staff(world)), 400)
    assert_problem(await client.get("/api/occupants", params={"q": "x" * 201}, headers=staff(world)), 400, "q")


# ---------------------------------------------------------------- unit links


async def test_link_relink_and_end_units(client: Any, world: World) -> None:
    created = await create(client, world, units=[{"unit_id": str(world.unit_ids[0]), "relation": "owner"}])
    base = f"/api/occupants/{created['id']}/units"
    second = world.unit_ids[5]

    new_without_relation = await client.put(f"{base}/{second}", json={}, headers=staff(world))
    assert_problem(new_without_relation, 422, "relation")

    linked = (await client.put(f"{base}/{second}", json={"relation": "tenant"}, headers=staff(world))).json()
    assert {(u["unit_label"], u["relation"], u["is_active"]) for u in linked["units"]} == {
        ("A-101", "owner", True),
        ("B-102", "tenant", True),
    }
    changed = (await client.put(f"{base}/{second}", json={"relation": "family"}, headers=staff(world))).json()
    assert ("B-102", "family") in {(u["unit_label"], u["relation"]) for u in changed["units"]}

    assert (await client.delete(f"{base}/{second}", headers=staff(world))).status_code == 204
    ended = (await client.get(f"/api/occupants/{created['id']}", headers=staff(world))).json()
    [b102] = [u for u in ended["units"] if u["unit_label"] == "B-102"]
    assert (b102["is_active"], b102["ended_on"] is not None) == (False, True)
    assert_problem(await client.delete(f"{base}/{second}", headers=staff(world)), 404)

    # Re-linking an ended link reopens it, keeping its relation when none is given.
    reopened = (await client.put(f"{base}/{second}", json={}, headers=staff(world))).json()
    [b102] = [u for u in reopened["units"] if u["unit_label"] == "B-102"]
    assert (b102["is_active"], b102["relation"], b102["ended_on"]) == (True, "family", None)
    assert await Occupancy.count().where(Occupancy.person == UUID(created["id"])) == 2


async def test_link_to_unknown_or_foreign_unit_is_404(client: Any, world: World, other_world: World) -> None:
    created = await create(client, world)
    for unit_id in (uuid4(), other_world.unit_ids[0]):
        response = await client.put(
            f"/api/occupants/{created['id']}/units/{unit_id}", json={"relation": "owner"}, headers=staff(world)
        )
        assert_problem(response, 404)


# ---------------------------------------------------------------- search and pagination


async def test_search_filters(client: Any, world: World) -> None:
    u = world.unit_ids  # A-101..A-104, B-101..B-104
    meera = await create(
        client,
        world,
        full_name="Meera Iyer",
        primary_mobile="9812340011",
        email="meera@example.test",
        units=[{"unit_id": str(u[4]), "relation": "tenant"}],
    )
    kabir = await create(
        client,
        world,
        full_name="Kabir Iyer",
        primary_mobile="9812340012",
        secondary_mobile="9812340013",
        units=[{"unit_id": str(u[1]), "relation": "owner"}],
    )
    gone = await create(
        client,
        world,
        full_name="Old Tenant",
        primary_mobile="9812340014",
        units=[{"unit_id": str(u[4]), "relation": "tenant"}],
    )
    await client.post(f"/api/occupants/{gone['id']}/deactivate", headers=staff(world))

    async def names(**params: Any) -> list[str]:
        response = await client.get("/api/occupants", params=params, headers=staff(world))
        assert response.status_code == 200, response.text
        return [item["full_name"] for item in response.json()["items"]]

    assert await names(q="iyer") == ["Kabir Iyer", "Meera Iyer"]
    assert await names(unit="B-101") == ["Meera Iyer"]
    assert await names(unit="b-101") == ["Meera Iyer"]
    assert await names(unit="B-101", active=False) == ["Old Tenant"]
    assert await names(building_id=str(world.building_ids[1])) == ["Meera Iyer"]
    assert await names(relation="owner") == ["Kabir Iyer", "Occupant"]
    assert await names(active=False) == ["Old Tenant"]
    assert await names(active=True, q="o") == ["Occupant"]
    assert await names(phone="098123 40013") == ["Kabir Iyer"]  # any of their mobiles
    assert await names(phone="+919812340099") == []
    assert await names(email="MEERA@example.test") == ["Meera Iyer"]
    assert await names(email="meera@example.test", relation="owner") == []
    # Staff are not occupants and never listed.
    assert await names() == ["Kabir Iyer", "Meera Iyer", "Occupant", "Old Tenant"]
    page = (await client.get("/api/occupants", params={"q": "Meera"}, headers=staff(world))).json()
    assert page["items"][0]["id"] == meera["id"] and page["items"][0]["units"][0]["unit_label"] == "B-101"
    assert kabir["secondary_mobile"] == "+919812340013"


async def test_pagination(client: Any, world: World) -> None:
    for i in range(7):
        await create(client, world, full_name=f"Page Person {i}", primary_mobile=f"98123400{20 + i}")
    seen: list[str] = []
    for offset in (0, 3, 6):
        page = (
            await client.get(
                "/api/occupants", params={"q": "Page Person", "limit": 3, "offset": offset}, headers=staff(world)
            )
        ).json()
        assert (page["total"], page["limit"], page["offset"]) == (7, 3, offset)
        seen += [item["full_name"] for item in page["items"]]
    assert seen == [f"Page Person {i}" for i in range(7)]


async def test_service_is_callable_without_http(world: World, settings: Any) -> None:
    directory = directory_for(settings)
    view = await service.create_occupant(
        directory, world.site_id, service.NewOccupant(full_name="Direct", email="direct@example.test")
    )
    page = await service.list_occupants(
        directory, world.site_id, service.OccupantFilter(email="direct@example.test"), limit=10, offset=0
    )
    assert [item.id for item in page.items] == [view.id]


# ---------------------------------------------------------------- deactivation


async def test_deactivate_ends_links_and_sessions_then_reactivate(client: Any, world: World) -> None:
    occupant = world.people["occupant"]
    login = await client.post("/api/auth/login", json={"username": world.emails["occupant"], "password": PASSWORD})
    tokens = login.json()
    own = {"Authorization": f"Bearer {tokens['access_token']}"}
    minted = world.headers("occupant")  # a second access token, issued before deactivation
    assert (await client.get("/api/auth/me", headers=own)).status_code == 200

    response = await client.post(f"/api/occupants/{occupant}/deactivate", headers=staff(world))
    assert response.status_code == 200, response.text
    view = response.json()
    assert view["is_active"] is False and view["deactivated_at"] is not None
    assert all(not u["is_active"] and u["ended_on"] for u in view["units"])

    assert (await client.get("/api/auth/me", headers=own)).status_code == 401
    assert (await client.get("/api/auth/me", headers=minted)).status_code == 401
    refreshed = await client.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 401
    relogin = await client.post("/api/auth/login", json={"username": world.emails["occupant"], "password": PASSWORD})
    assert relogin.status_code == 401

    again = await client.post(f"/api/occupants/{occupant}/deactivate", headers=staff(world))
    assert again.json()["deactivated_at"] == view["deactivated_at"], "deactivating twice changes nothing"
    linking = await client.put(
        f"/api/occupants/{occupant}/units/{world.unit_ids[0]}", json={"relation": "owner"}, headers=staff(world)
    )
    assert_problem(linking, 409)

    back = (await client.post(f"/api/occupants/{occupant}/reactivate", headers=staff(world))).json()
    assert back["is_active"] is True and back["deactivated_at"] is None
    assert all(not u["is_active"] for u in back["units"]), "links stay ended until linked again"
    relogin = await client.post("/api/auth/login", json={"username": world.emails["occupant"], "password": PASSWORD})
    assert relogin.status_code == 200


# ---------------------------------------------------------------- sites and roles


async def test_another_sites_occupant_is_not_found(client: Any, world: World, other_world: World) -> None:
    target = world.people["occupant"]
    before = await Person.select().where(Person.id == target).first()
    foreign = staff(other_world)
    calls = [
        ("GET", f"/api/occupants/{target}", None),
        ("PATCH", f"/api/occupants/{target}", {"full_name": "Hijacked"}),
        ("POST", f"/api/occupants/{target}/deactivate", None),
        ("POST", f"/api/occupants/{target}/reactivate", None),
        ("PUT", f"/api/occupants/{target}/units/{world.unit_ids[0]}", {"relation": "tenant"}),
        ("PUT", f"/api/occupants/{target}/units/{other_world.unit_ids[0]}", {"relation": "tenant"}),
        ("DELETE", f"/api/occupants/{target}/units/{world.unit_ids[0]}", None),
    ]
    for method, url, body in calls:
        kwargs: dict[str, Any] = {"headers": foreign} if body is None else {"headers": foreign, "json": body}
        assert_problem(await client.request(method, url, **kwargs), 404)
    assert await Person.select().where(Person.id == target).first() == before
    assert await Occupancy.count().where((Occupancy.person == target) & Occupancy.is_active.eq(True)) == 1
    listing = (await client.get("/api/occupants", headers=foreign)).json()
    assert str(target) not in {item["id"] for item in listing["items"]}
    by_email = (await client.get("/api/occupants", params={"email": world.emails["occupant"]}, headers=foreign)).json()
    assert by_email["total"] == 0


async def test_staff_accounts_are_not_occupants(client: Any, world: World) -> None:
    guard = world.people["guard"]
    assert_problem(await client.get(f"/api/occupants/{guard}", headers=staff(world)), 404)
    assert_problem(await client.post(f"/api/occupants/{guard}/deactivate", headers=staff(world)), 404)


@pytest.mark.parametrize("role", NON_STAFF)
async def test_non_staff_roles_are_forbidden(client: Any, world: World, role: str) -> None:
    headers = world.headers(role)
    occupant = world.people["occupant"]
    calls = [
        ("GET", "/api/occupants", None),
        ("POST", "/api/occupants", {"full_name": "X", "primary_mobile": "9812340031"}),
        ("GET", f"/api/occupants/{occupant}", None),
        ("PATCH", f"/api/occupants/{occupant}", {"full_name": "X"}),
        ("POST", f"/api/occupants/{occupant}/deactivate", None),
        ("POST", f"/api/occupants/{occupant}/reactivate", None),
        ("PUT", f"/api/occupants/{occupant}/units/{world.unit_ids[1]}", {"relation": "owner"}),
        ("DELETE", f"/api/occupants/{occupant}/units/{world.unit_ids[0]}", None),
        ("GET", "/api/occupants/export.csv", None),
    ]
    for method, url, body in calls:
        kwargs: dict[str, Any] = {"headers": headers} if body is None else {"headers": headers, "json": body}
        assert_problem(await client.request(method, url, **kwargs), 403)
    person = await Person.select(Person.full_name, Person.is_active).where(Person.id == occupant).first()
    assert person == {"full_name": "Occupant", "is_active": True}


async def test_site_admin_has_the_same_access(client: Any, world: World) -> None:
    response = await client.post(
        "/api/occupants",
        json={"full_name": "By Admin", "email": "admin-made@example.test"},
        headers=staff(world, "site_admin"),
    )
    assert response.status_code == 201
    occupant = world.people["occupant"]
    deactivated = await client.post(f"/api/occupants/{occupant}/deactivate", headers=staff(world, "site_admin"))
    assert deactivated.status_code == 200
