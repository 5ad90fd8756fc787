"""The suite-wide route guarantees (tests/test_access_matrix.py), run on the visitors routes alone,
so this module's routes are checked even while another module's are still failing."""

from __future__ import annotations

import json
import uuid
from typing import Any

from app.auth.roles import ALL_ROLES, Role
from tests.support.ids_visitors import resource_ids
from tests.support.routes import Operation, operations
from tests.support.world import World
from tests.test_access_matrix import PROBLEM, wrong_types_for


def mine(app: Any) -> list[Operation]:
    ops = [op for op in operations(app) if op.path.startswith("/api/visitors")]
    assert len(ops) >= 15
    return ops


async def _call(client: Any, op: Operation, url: str, headers: dict[str, str], body: Any = None) -> Any:
    kwargs: dict[str, Any] = {"headers": headers}
    if op.json_body_schema is not None and op.method in {"POST", "PUT", "PATCH"}:
        kwargs["json"] = body if body is not None else {}
    return await client.request(op.method, url, **kwargs)


async def test_visitor_routes_role_matrix(app: Any, client: Any, world: World) -> None:
    checked = 0
    for op in mine(app):
        for role in sorted(ALL_ROLES):
            name = f"v-{role}-{checked}"
            await world.add_person(name, frozenset({Role(role)}))
            url = op.url({p: str(uuid.uuid4()) for p in op.path_params})
            response = await _call(client, op, url, world.headers(name))
            if op.own_auth is not None:  # a bearer token is not its credential (the ANPR camera key)
                assert 400 <= response.status_code < 500, (op.method, op.path, role, response.status_code)
            elif op.allowed is None or role in op.allowed:
                assert response.status_code not in (401, 403), (op.method, op.path, role, response.text)
            else:
                assert response.status_code == 403, (op.method, op.path, role, response.status_code)
            assert response.status_code < 500, (op.method, op.path, role, response.text)
            checked += 1


async def test_visitor_routes_do_not_cross_sites(app: Any, client: Any, world: World, other_world: World) -> None:
    ids = await resource_ids(world)
    crossed = 0
    for op in mine(app):
        if not op.path_params or op.allowed is None:
            continue
        for role in sorted(op.allowed):
            name = f"vx-{role}-{crossed}"
            await other_world.add_person(name, frozenset({role}))
            response = await _call(client, op, op.url(ids), other_world.headers(name))
            assert response.status_code in (403, 404), (op.method, op.path, role, response.status_code, response.text)
            crossed += 1
    assert crossed >= 10


async def test_visitor_routes_refuse_bad_bodies(app: Any, client: Any, world: World) -> None:
    bodies = [b'{"broken": ', b"[1, 2, 3]", b"\xff\xfe\x00garbage", None]
    for op in mine(app):
        if op.json_body_schema is None:
            continue
        role = sorted(op.allowed or {Role.PLATFORM_ADMIN})[0]
        name = f"vb-{role}-{op.path}-{op.method}"
        await world.add_person(name, frozenset({Role(role)}))
        for content in bodies:
            payload = content if content is not None else json.dumps(wrong_types_for(app, op.json_body_schema)).encode()
            response = await client.request(
                op.method,
                op.url({p: str(uuid.uuid4()) for p in op.path_params}),
                content=payload,
                headers={**world.headers(name), "content-type": "application/json"},
            )
            assert 400 <= response.status_code < 500, (op.path, content, response.status_code, response.text)
            assert response.headers["content-type"].startswith(PROBLEM)
