"""Suite-wide route guarantees, derived from the OpenAPI schema so new routes are covered:

- every operation is called with every role, and allow/deny matches its declaration;
- no operation lets a person of one site reach a resource of another;
- malformed, mistyped and oversized bodies give 4xx problem details, never 500.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from app.auth.roles import ALL_ROLES, Role
from tests.support.routes import Operation, operations
from tests.support.world import World

PROBLEM = "application/problem+json"


def _resolve(app: Any, schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return _resolve(app, app.openapi_schema.to_schema()["components"]["schemas"][name])
    return schema


def wrong_types_for(app: Any, schema: dict[str, Any]) -> dict[str, Any]:
    """A body giving every declared property a value of a type it does not accept."""
    resolved = _resolve(app, schema)
    if "oneOf" in resolved or "anyOf" in resolved:  # e.g. Struct | None: take the struct
        options = [_resolve(app, o) for o in resolved.get("oneOf", resolved.get("anyOf", []))]
        resolved = next((o for o in options if o.get("properties")), resolved)
    body: dict[str, Any] = {}
    for name, prop in resolved.get("properties", {}).items():
        types = json.dumps(_resolve(app, prop))
        body[name] = {"not": "acceptable"} if '"object"' not in types else 12345
    assert body, f"no properties in {resolved}"
    return body


def _ops(app: Any) -> list[Operation]:
    return operations(app)


async def _call(client: Any, op: Operation, url: str, headers: dict[str, str], body: Any = None) -> Any:
    kwargs: dict[str, Any] = {"headers": headers}
    if op.json_body_schema is not None and op.method in {"POST", "PUT", "PATCH"}:
        kwargs["json"] = body if body is not None else {}
    return await client.request(op.method, url, **kwargs)


def _random_path_values(op: Operation) -> dict[str, str]:
    return {name: str(uuid.uuid4()) for name in op.path_params}


def test_every_operation_declares_its_roles(app: Any) -> None:
    ops = _ops(app)
    assert len(ops) >= 8
    for op in ops:
        assert op.allowed is None or op.allowed, f"{op.method} {op.path} allows nobody"


async def test_role_matrix(app: Any, client: Any, world: World) -> None:
    """Each role, on each operation: 403 exactly when the declaration leaves the role out."""
    checked = 0
    for op in _ops(app):
        for role in sorted(ALL_ROLES):
            # A fresh person per call: some operations (logout) revoke the caller's own tokens.
            name = f"{role}-{checked}"
            await world.add_person(name, frozenset({Role(role)}))
            response = await _call(client, op, op.url(_random_path_values(op)), world.headers(name))
            if op.own_auth == "metrics_token" and role == "platform_admin":
                # The one own-auth route a sign-in may open: a platform admin reads the metrics.
                assert response.status_code == 200, (op.method, op.path, role, response.status_code)
            elif op.own_auth is not None:
                # A bearer token is not this route's credential: the request is refused, never served.
                assert 400 <= response.status_code < 500, (op.method, op.path, role, response.status_code)
            elif op.allowed is not None and role not in op.allowed:
                assert response.status_code == 403, (op.method, op.path, role, response.status_code)
                # Pages answer their refusal as a page (tests/test_web_shell.py); the API as a problem.
                assert response.headers["content-type"].startswith("text/html" if op.page else PROBLEM)
            elif not op.page:
                assert response.status_code not in (401, 403), (op.method, op.path, role, response.text)
            # A page's form posted without its CSRF token is refused: tests/test_web_security.py.
            assert response.status_code < 500, (op.method, op.path, role, response.text)
            checked += 1
    assert checked >= 8 * len(ALL_ROLES)


async def test_anonymous_callers_are_refused_on_every_protected_operation(app: Any, client: Any) -> None:
    for op in _ops(app):
        if op.allowed is None:
            continue
        if op.page:  # a page sends a signed-out visitor to the sign-in page
            client.cookies.clear()  # no session cookie left by an earlier test
            url = op.url(_random_path_values(op))
            response = await client.request(op.method, url, follow_redirects=False)
            assert response.status_code == 303, (op.method, op.path, response.status_code)
            assert response.headers["location"].startswith("/login"), (op.path, response.headers["location"])
            continue
        response = await _call(client, op, op.url(_random_path_values(op)), {})
        assert response.status_code == 401, (op.method, op.path)
        assert response.headers["content-type"].startswith(PROBLEM)


async def _resource_ids(world: World) -> dict[str, str]:
    """A real id in `world` for each path parameter name used by the API.

    A new path parameter without an entry here fails the cross-site test: add one.
    """
    from notifications.audience import Audience
    from notifications.categories import Category, Channel
    from notifications.service import NotificationRequest, create_notification
    from schema.notifications import Delivery

    notification_id, _ = await create_notification(
        site_id=world.site_id,
        request=NotificationRequest(
            title="Water",
            body="Off at 10",
            category=Category.ANNOUNCEMENT,
            audience=Audience(everyone=True),
            channels=[Channel.IN_APP],
        ),
    )
    delivery = Delivery(
        site=world.site_id,
        notification=notification_id,
        person=world.people["occupant"],
        channel=str(Channel.IN_APP),
        status="sent",
    )
    await delivery.save()
    from tests.support import (
        ids_amc,
        ids_attendance,
        ids_billing,
        ids_complaints,
        ids_permits,
        ids_privacy,
        ids_reports,
        ids_slots,
        ids_visitors,
    )

    module_ids: dict[str, str] = {}
    for module in (
        ids_visitors,
        ids_complaints,
        ids_slots,
        ids_privacy,
        ids_billing,
        ids_permits,
        ids_attendance,
        ids_amc,
        ids_reports,
    ):
        module_ids.update(await module.resource_ids(world))
    return module_ids | {
        "site_id": str(world.site_id),
        "unit_id": str(world.unit_ids[0]),
        "building_id": str(world.building_ids[0]),
        "person_id": str(world.people["occupant"]),
        "occupant_id": str(world.people["occupant"]),
        "notification_id": str(notification_id),
        "delivery_id": str(delivery.id),
    }


async def test_no_operation_crosses_sites(app: Any, client: Any, world: World, other_world: World) -> None:
    """Staff of another site, holding real ids of this site, get 404 or 403, never data."""
    ids = await _resource_ids(world)
    crossed = 0
    for op in _ops(app):
        if not op.path_params or op.allowed is None:
            continue
        missing = [p for p in op.path_params if p not in ids]
        assert not missing, f"{op.method} {op.path}: add an id for {missing} in _resource_ids"
        for role in sorted(op.allowed):
            if op.path.startswith("/api/platform/") and role == Role.PLATFORM_ADMIN:
                continue  # platform scope by design: the site is named in the path (app.sites.setup)
            name = f"x-{role}-{crossed}"
            await other_world.add_person(name, frozenset({role}))
            response = await _call(client, op, op.url(ids), other_world.headers(name))
            assert response.status_code in (403, 404), (op.method, op.path, role, response.status_code, response.text)
            crossed += 1
    assert crossed > 0


@pytest.mark.parametrize(
    ("label", "content", "content_type"),
    [
        ("malformed json", b'{"broken": ', "application/json"),
        ("wrong top-level type", b"[1, 2, 3]", "application/json"),
        ("wrong field types", b"<derived from each operation's schema>", "application/json"),
        ("not json at all", b"\xff\xfe\x00garbage", "application/json"),
    ],
)
async def test_bad_bodies_are_4xx_problems(
    app: Any, client: Any, world: World, label: str, content: bytes, content_type: str
) -> None:
    tried = 0
    for op in _ops(app):
        if op.json_body_schema is None:
            continue
        role = "platform_admin" if op.allowed is None else sorted(op.allowed)[0]
        name = f"bad-{role}-{tried}"
        await world.add_person(name, frozenset({Role(role)}))
        if label == "wrong field types":
            content = json.dumps(wrong_types_for(app, op.json_body_schema)).encode()
        response = await client.request(
            op.method,
            op.url(_random_path_values(op)),
            content=content,
            headers={**world.headers(name), "content-type": content_type},
        )
        assert 400 <= response.status_code < 500, (label, op.method, op.path, response.status_code, response.text)
        assert response.headers["content-type"].startswith(PROBLEM), (op.path, response.headers)
        problem = response.json()
        assert problem["status"] == response.status_code
        assert problem["title"]
        tried += 1
    assert tried > 0


async def test_field_errors_name_the_field(client: Any, world: World) -> None:
    response = await client.post(
        "/api/platform/sites",
        json={"name": "X", "slug": 42},
        headers=world.headers("platform_admin"),
    )
    assert response.status_code == 400
    problem = response.json()
    assert any(error["field"] == "slug" for error in problem["errors"]), problem


async def test_oversized_body_is_413_problem(client: Any, world: World, settings: Any) -> None:
    big = b'{"username": "' + b"x" * (settings.max_request_body_bytes + 10) + b'", "password": "p"}'
    response = await client.post("/api/auth/login", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.headers["content-type"].startswith(PROBLEM)


async def test_unknown_route_is_404_problem(client: Any) -> None:
    response = await client.get("/api/no-such-thing")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith(PROBLEM)


async def test_api_docs_are_served_without_a_cdn(client: Any) -> None:
    page = await client.get("/schema/swagger")
    assert page.status_code == 200
    assert "cdn." not in page.text and "unpkg" not in page.text
    assert (await client.get("/schema/assets/swagger-ui-bundle.js")).status_code == 200
    schema = (await client.get("/schema/openapi.json")).json()
    assert schema["paths"]["/api/auth/login"]["post"]
