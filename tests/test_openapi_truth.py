"""The OpenAPI document describes what the server really answers (issue #22 point 7).

schemathesis (tests/test_api_fuzz.py) checks it by sampling; these pin the rules down directly.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest

from app.auth.roles import PUBLIC_KEY
from app.openapi.problems import answers_pages
from notifications.service import NotificationRequest, create_notification
from schema.notifications import Notification

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def document(app: Any) -> dict[str, Any]:
    schema: dict[str, Any] = app.openapi_schema.to_schema()
    return schema


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method.upper(), operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
    ]


def page_operations(app: Any) -> set[tuple[str, str]]:
    return {
        (route.path_format, method)
        for route in app.routes
        for handler in getattr(route, "route_handlers", ())
        for method in handler.http_methods
        if answers_pages(handler)
    }


def test_every_error_answer_is_a_problem_document_or_a_page(app: Any, document: dict[str, Any]) -> None:
    pages = page_operations(app)
    assert {("/guard", "GET"), ("/login", "POST"), ("/v/a/{token}", "POST")} <= pages
    wrong = [
        f"{method} {path} {status}: {sorted(response.get('content', {}))}"
        for path, method, operation in operations(document)
        for status, response in operation["responses"].items()
        if int(status) >= 400
        and set(response.get("content", {})) != ({"text/html"} if (path, method) in pages else {PROBLEM})
    ]
    assert wrong == []


def test_a_page_documents_its_sign_in_redirect(document: dict[str, Any]) -> None:
    responses = document["paths"]["/guard"]["get"]["responses"]
    assert {"303", "403"} <= set(responses) and "401" not in responses


def public_operations(app: Any) -> set[tuple[str, str]]:
    return {
        (route.path_format, method)
        for route in app.routes
        for handler in getattr(route, "route_handlers", ())
        for method in handler.http_methods
        if handler.opt.get(PUBLIC_KEY)
    }


def test_every_operation_lists_the_statuses_of_the_layers_around_it(app: Any, document: dict[str, Any]) -> None:
    public, pages = public_operations(app), page_operations(app)
    missing = []
    for path, method, operation in operations(document):
        if (path, method) in pages:
            continue  # refusals as pages: test_a_page_documents_its_sign_in_redirect
        statuses = {int(s) for s in operation["responses"]}
        expected = {400, 422, 503}
        if (path, method) not in public:
            expected |= {401, 403}
        elif method != "GET":
            expected.add(401)  # checked by the route itself: a password, a refresh token, a device key
        if "{" in path:
            expected.add(404)
        if method != "GET":
            expected |= {409, 413}
        if not expected <= statuses:
            missing.append(f"{method} {path}: {sorted(expected - statuses)}")
    assert missing == []


def test_rate_limited_operations_document_429(document: dict[str, Any]) -> None:
    for path, method in (
        ("/api/auth/login", "post"),
        ("/api/auth/refresh", "post"),
        ("/api/visitors/gate/verify", "post"),
        ("/api/privacy/exports/{export_id}/download", "get"),
    ):
        assert "429" in document["paths"][path][method]["responses"], path
    assert "429" not in document["paths"]["/api/complaints"]["get"]["responses"]


def test_role_checked_operations_document_401_and_403(document: dict[str, Any]) -> None:
    responses = document["paths"]["/api/complaints/{complaint_id}/assign"]["post"]["responses"]
    assert {"401", "403", "404", "409", "422"} <= set(responses)
    assert "403" not in document["paths"]["/api/auth/login"]["post"]["responses"]


def test_uploads_document_unsupported_files_and_a_full_disk(document: dict[str, Any]) -> None:
    responses = document["paths"]["/api/occupants/import"]["post"]["responses"]
    assert {"415", "507"} <= set(responses)


def test_bodies_that_refuse_unknown_fields_say_so(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    strict = {name for name, schema in schemas.items() if schema.get("additionalProperties") is False}
    # Request bodies that msgspec decodes with forbid_unknown_fields=True ...
    assert {"VerifyInput", "AssignInput"} <= strict
    # ... and answers, which may grow, do not.
    assert "VerifyResult" not in strict


async def test_options_lists_every_method_of_the_path(client: Any, world: Any) -> None:
    # GET and POST of /api/complaints come from two handlers; PATCH joins GET on an occupant.
    for path, methods in (
        ("/api/complaints", {"GET", "POST", "OPTIONS"}),
        (f"/api/occupants/{world.people['occupant']}", {"GET", "PATCH", "OPTIONS"}),
        ("/api/me/dnd", {"GET", "PUT", "OPTIONS"}),
    ):
        response = await client.options(path, headers=world.headers("fm_admin"))
        assert response.status_code == 204
        assert {m.strip() for m in response.headers["allow"].split(",")} == methods, path


async def test_a_method_the_path_does_not_take_names_those_it_does(client: Any, world: Any) -> None:
    response = await client.delete("/api/complaints", headers=world.headers("fm_admin"))
    assert response.status_code == 405
    assert {m.strip() for m in response.headers["allow"].split(",")} >= {"GET", "POST"}


async def test_an_empty_gate_code_or_qr_is_a_problem_not_a_crash(client: Any, world: Any) -> None:
    response = await client.post(
        "/api/visitors/gate/verify", json={"code": None, "qr": ""}, headers=world.headers("guard")
    )
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert "qr" in response.text


async def test_an_empty_announcement_key_is_refused(client: Any, world: Any) -> None:
    body = {
        "audience": {"roles": ["site_admin"]},
        "title": "Water",
        "body": "Off at noon",
        "category": "announcement",
        "channels": ["push"],
        "idempotency_key": "",
    }
    first = await client.post("/api/announcements", json=body, headers=world.headers("fm_admin"))
    assert first.status_code == 400, first.text
    assert "idempotency_key" in first.text


async def test_two_announcements_racing_one_key_make_one(world: Any) -> None:
    request = msgspec.convert(
        {
            "audience": {"roles": ["site_admin"]},
            "title": "Lift",
            "body": "Lift B is back",
            "category": "announcement",
            "channels": ["push"],
            "idempotency_key": "lift-b-back",
        },
        NotificationRequest,
    )
    answers = await asyncio.gather(
        *(
            create_notification(site_id=world.site_id, request=request, created_by=world.people["fm_admin"])
            for _ in range(4)
        )
    )
    assert len({notification_id for notification_id, _ in answers}) == 1
    assert sum(created for _, created in answers) == 1
    rows = await Notification.select(Notification.id).where(
        (Notification.site == world.site_id) & (Notification.idempotency_key == "lift-b-back")
    )
    assert len(rows) == 1


def test_constraints_on_list_items_and_dict_keys_are_documented(document: dict[str, Any]) -> None:
    """What the decoder refuses inside a list or as a key, the document says (schemathesis's
    positive_data_acceptance sends what the document allows and expects it taken)."""
    schemas = document["components"]["schemas"]
    assert schemas["Recurring"]["properties"]["days"]["items"] == {"type": "integer", "minimum": 0, "maximum": 6}
    assert schemas["slots_passes_NewPass"]["properties"]["weekdays"]["items"]["maximum"] == 6
    assert schemas["CategoryInput"]["properties"]["subcategories"]["items"]["pattern"].startswith("^[a-z0-9]")
    overstay = schemas["VisitorSettings"]["properties"]["overstay_minutes"]
    assert set(overstay["propertyNames"]["enum"]) == {"cab", "daily_help", "delivery", "guest", "service"}
    assert overstay["additionalProperties"] == {"type": "integer", "minimum": 1, "maximum": 7 * 24 * 60}


def test_an_upload_part_is_a_file_or_absent_never_null(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for name, field in (("PhotoUpload", "file"), ("WalkInUpload", "photo")):
        assert schemas[name]["properties"][field]["format"] == "binary", name
        assert "oneOf" not in schemas[name]["properties"][field], name


def _numeric_schemas(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, list):
        return [found for item in node for found in _numeric_schemas(item)]
    if not isinstance(node, dict):
        return []
    own = [node] if node.get("type") in ("integer", "number") else []
    return own + [found for value in node.values() for found in _numeric_schemas(value)]


def test_a_bound_of_zero_is_documented(document: dict[str, Any]) -> None:
    """Litestar drops ge=0 as falsy; schemathesis then sends version=-5 as valid and the decoder refuses
    it (a CI failure of make fuzz). Every bounded number in the document is bounded on both sides."""
    schemas = document["components"]["schemas"]
    version = schemas["StatusChange"]["properties"]["version"]["oneOf"][0]
    assert version == {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}
    assert schemas["Rules"]["properties"]["cancel_free_hours"]["oneOf"][0]["minimum"] == 0
    one_sided = [
        schema
        for schema in _numeric_schemas(schemas)
        if "maximum" in schema and "minimum" not in schema and "exclusiveMinimum" not in schema
    ]
    assert one_sided == []
