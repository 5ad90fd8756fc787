"""A site can be used: a platform admin creates a site, its buildings, units, staff and first admin
through the API, with validation as problem details; then the cross-site check runs over two sites
built entirely that way and populated in every module."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from app.auth.roles import Role
from tests.support.world import PASSWORD, World
from tests.test_access_matrix import _call, _ops, _resource_ids

STAFF = {
    "guard": ["guard"],
    "technician": ["technician"],
    "fm_admin": ["fm_admin"],
    "site_admin": ["site_admin"],
}


async def api_built_world(client: Any, settings: Any, platform: dict[str, str]) -> World:
    """A site made only through the platform API (site, two towers, eight units, one staff member per
    role incl. the first admin), with an occupant added by that admin through the occupant listing."""
    slug = f"api-{secrets.token_hex(4)}"
    made = await client.post("/api/platform/sites", json={"name": f"API {slug}", "slug": slug}, headers=platform)
    assert made.status_code == 201, made.text
    site_id = made.json()["id"]
    base = f"/api/platform/sites/{site_id}"
    building_ids = []
    for code in ("A", "B"):
        building = await client.post(
            f"{base}/buildings", json={"code": code, "name": f"Tower {code}"}, headers=platform
        )
        assert building.status_code == 201, building.text
        building_ids.append(building.json()["id"])
    units = await client.post(
        f"{base}/units",
        json={
            "units": [
                {"building_id": b, "label": f"{code}-{100 + n}", "floor": 1}
                for b, code in zip(building_ids, ("A", "B"), strict=True)
                for n in range(1, 5)
            ]
        },
        headers=platform,
    )
    assert units.status_code == 201 and units.json()["total"] == 8, units.text
    world = World(
        settings=settings,
        site_id=uuid.UUID(site_id),
        slug=slug,
        building_ids=[uuid.UUID(b) for b in building_ids],
        unit_ids=[uuid.UUID(u["id"]) for u in units.json()["items"]],
    )
    for name, roles in STAFF.items():
        email = f"{name}.{slug}@example.test"
        body: dict[str, Any] = {"full_name": name.title(), "email": email, "roles": roles, "password": PASSWORD}
        if name == "technician":
            body["skills"] = ["plumbing"]
        person = await client.post(f"{base}/staff", json=body, headers=platform)
        assert person.status_code == 201, person.text
        world.people[name] = uuid.UUID(person.json()["id"])
        world.roles[name] = frozenset(Role(r) for r in roles)
        world.emails[name] = email
    # The first admin signs in with the password given and adds an occupant.
    login = await client.post(
        "/api/auth/login", json={"username": world.emails["site_admin"], "password": PASSWORD, "site": slug}
    )
    assert login.status_code == 200, login.text
    admin = {"Authorization": f"Bearer {login.json()['access_token']}"}
    occupant = await client.post(
        "/api/occupants",
        json={
            "full_name": "First Resident",
            "email": f"occupant.{slug}@example.test",
            "units": [{"unit_id": str(world.unit_ids[0]), "relation": "owner"}],
        },
        headers=admin,
    )
    assert occupant.status_code == 201, occupant.text
    world.people["occupant"] = uuid.UUID(occupant.json()["id"])
    world.roles["occupant"] = frozenset({Role.OCCUPANT})
    world.emails["occupant"] = f"occupant.{slug}@example.test"
    # A platform admin is no member of a site's staff; the cross-site check needs one on each site.
    await world.add_person("platform_admin", frozenset({Role.PLATFORM_ADMIN}))
    return world


async def test_a_platform_admin_sets_up_a_usable_site(client: Any, world: World, settings: Any) -> None:
    built = await api_built_world(client, settings, world.headers("platform_admin"))
    # The first admin and the staff work in the new site, and only there.
    admin = built.headers("site_admin")
    site = (await client.get("/api/site", headers=admin)).json()
    assert site["id"] == str(built.site_id) and site["unit_count"] == 8
    assert [b["code"] for b in site["buildings"]] == ["A", "B"]
    listed = (await client.get("/api/units", params={"limit": 50}, headers=built.headers("guard"))).json()
    assert {u["id"] for u in listed["items"]} == {str(u) for u in built.unit_ids}
    for name in ("guard", "technician", "fm_admin"):
        login = await client.post(
            "/api/auth/login", json={"username": built.emails[name], "password": PASSWORD, "site": built.slug}
        )
        assert login.status_code == 200, (name, login.text)
        me = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {login.json()['access_token']}"})
        assert me.json()["roles"] == [name] and me.json()["site_id"] == str(built.site_id)
    shown = (await client.get(f"/api/platform/sites/{built.site_id}", headers=world.headers("platform_admin"))).json()
    assert shown["unit_count"] == 8


async def test_site_setup_is_validated_with_problem_details(client: Any, world: World, other_world: World) -> None:
    platform = world.headers("platform_admin")
    base = f"/api/platform/sites/{world.site_id}"

    async def problem(path: str, body: dict[str, Any], status: int) -> str:
        answer = await client.post(f"{base}/{path}", json=body, headers=platform)
        assert answer.status_code == status, (path, body, answer.status_code, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
        return str(answer.json()["errors"][0]["field"])

    assert await problem("buildings", {"code": "A", "name": "Again"}, 409) == "code"
    assert await problem("buildings", {"code": "no spaces", "name": "X"}, 422) == "code"
    assert await problem("buildings", {"code": "C", "name": "x" * 101}, 400) == "name"
    theirs = str(other_world.building_ids[0])
    mine = str(world.building_ids[0])
    assert await problem("units", {"units": [{"building_id": theirs, "label": "Z-1"}]}, 422) == "units[0].building_id"
    assert (
        await problem(
            "units", {"units": [{"building_id": mine, "label": "Z-1"}, {"building_id": mine, "label": "z-1"}]}, 422
        )
        == "units[1].label"
    )
    assert await problem("units", {"units": [{"building_id": mine, "label": "A-101"}]}, 409) == "units[0].label"
    assert await problem("units", {"units": []}, 400) == "units"
    staff = {"full_name": "New Guard", "email": "new.guard@example.test", "roles": ["guard"], "password": PASSWORD}
    assert await problem("staff", {**staff, "roles": ["occupant"]}, 400) == "roles[0]"
    assert await problem("staff", {**staff, "roles": ["platform_admin"]}, 400) == "roles[0]"
    assert await problem("staff", {**staff, "email": "not-an-email"}, 422) == "email"
    assert await problem("staff", {**staff, "mobile": "12"}, 422) == "mobile"
    assert await problem("staff", {**staff, "skills": ["plumbing"]}, 422) == "skills"
    assert await problem("staff", {**staff, "password": "short"}, 400) == "password"
    assert await problem("staff", {**staff, "email": world.emails["guard"]}, 409) == "email"

    # Only platform admins; an unknown site is a 404.
    for role in ("site_admin", "fm_admin", "guard", "occupant"):
        refused = await client.post(f"{base}/buildings", json={"code": "Q", "name": "Q"}, headers=world.headers(role))
        assert refused.status_code == 403, role
    missing = await client.post(
        f"/api/platform/sites/{uuid.uuid4()}/buildings", json={"code": "Q", "name": "Q"}, headers=platform
    )
    assert missing.status_code == 404
    # Nothing of the refused calls was written.
    site = (await client.get("/api/site", headers=world.headers("site_admin"))).json()
    assert [b["code"] for b in site["buildings"]] == ["A", "B"] and site["unit_count"] == 8


async def test_no_operation_crosses_two_api_built_sites(app: Any, client: Any, world: World, settings: Any) -> None:
    """The access matrix's cross-site check, on two sites made through the API and populated in every
    module: staff of one site, holding real ids of the other, get 404 or 403, never data."""
    platform = world.headers("platform_admin")
    first = await api_built_world(client, settings, platform)
    second = await api_built_world(client, settings, platform)
    ids = await _resource_ids(first)
    crossed = 0
    for op in _ops(app):
        if not op.path_params or op.allowed is None:
            continue
        missing = [p for p in op.path_params if p not in ids]
        assert not missing, f"{op.method} {op.path}: add an id for {missing} in _resource_ids"
        for role in sorted(op.allowed):
            if op.path.startswith("/api/platform/") and role == Role.PLATFORM_ADMIN:
                continue  # platform scope by design: the site is named in the path
            name = f"x-{role}-{crossed}"
            await second.add_person(name, frozenset({role}))
            response = await _call(client, op, op.url(ids), second.headers(name))
            assert response.status_code in (403, 404), (op.method, op.path, role, response.status_code, response.text)
            crossed += 1
    assert crossed > 50
