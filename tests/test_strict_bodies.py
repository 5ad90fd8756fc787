"""JSON bodies are held to their declared types strictly (issue #22): `0` is not `false`, `"5"` is not
`5`. Litestar's own conversion is lax (it also converts query strings), so without app.input_guard's
strict pass these bodies were taken and guessed at."""

from __future__ import annotations

from typing import Any, Literal

import msgspec
import pytest

from app.input_guard import strict_body_error
from schema.complaints import Complaint
from tests.support.complaints import configure
from tests.support.world import World

CHARGER = {
    "code": "EV-S1",
    "name": "Strict charger",
    "connectors": [{"connector_no": 1, "power_kw": 7.4, "connector_type": "Type2"}],
}


def problem_field(response: Any) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    [error] = response.json()["errors"]
    return dict(error)


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"work_order": 0}, "work_order", "Expected `bool`, got `int`"),
        ({"work_order": "true"}, "work_order", "Expected `bool`, got `str`"),
        ({"unit_id": None, "location": "Lobby", "category": "plumbing", "priority": 1}, "priority", None),
    ],
)
async def test_a_lax_body_is_refused_naming_its_field_and_writes_nothing(
    client: Any, world: World, change: dict[str, Any], field: str, message: str | None
) -> None:
    body = {"category": "plumbing", "description": "A leak under the sink", "unit_id": str(world.unit_ids[0])}
    before = await Complaint.count().where(Complaint.site == world.site_id)
    answer = await client.post("/api/complaints", json={**body, **change}, headers=world.headers("occupant"))
    error = problem_field(answer)
    assert error["field"] == field and error["source"] == "body"
    if message:
        assert error["message"] == message
    assert await Complaint.count().where(Complaint.site == world.site_id) == before


async def test_the_same_body_with_its_declared_types_is_taken(client: Any, world: World) -> None:
    await configure(world)
    body = {
        "category": "plumbing",
        "description": "A leak under the sink",
        "unit_id": str(world.unit_ids[0]),
        "work_order": False,
    }
    answer = await client.post("/api/complaints", json=body, headers=world.headers("occupant"))
    assert answer.status_code == 201, answer.text


async def test_a_number_sent_as_text_inside_a_list_is_named_by_its_place(client: Any, world: World) -> None:
    connectors = [{**CHARGER["connectors"][0], "connector_no": "1"}]  # type: ignore[dict-item]
    answer = await client.post(
        "/api/slots/chargers", json={**CHARGER, "connectors": connectors}, headers=world.headers("fm_admin")
    )
    error = problem_field(answer)
    assert error["field"] == "connectors[0].connector_no"
    assert error["message"] == "Expected `int`, got `str`"
    taken = await client.post("/api/slots/chargers", json=CHARGER, headers=world.headers("fm_admin"))
    assert taken.status_code == 201, taken.text


async def test_a_missing_member_is_named_itself(client: Any, world: World) -> None:
    missing = await client.post(
        "/api/complaints", json={"description": "no category"}, headers=world.headers("occupant")
    )
    assert missing.status_code == 400
    assert [e["field"] for e in missing.json()["errors"]] == ["category"]


async def test_the_strict_pass_runs_after_the_callers_role_is_checked(client: Any, world: World) -> None:
    refused = await client.post("/api/slots/chargers", json={**CHARGER, "code": 5}, headers=world.headers("occupant"))
    assert refused.status_code == 403


class Inner(msgspec.Struct):
    flag: bool


class Outer(msgspec.Struct):
    items: list[Inner]


def test_strict_body_error_names_nested_places_and_leaves_decode_errors_alone() -> None:
    assert strict_body_error(b'{"items": [{"flag": true}, {"flag": 1}]}', Outer) is not None
    error = strict_body_error(b'{"items": [{"flag": true}, {"flag": 1}]}', Outer)
    assert error is not None and error.field == "items[1].flag"
    assert strict_body_error(b'{"items": [{"flag": true}]}', Outer) is None
    assert strict_body_error(b'{"items": [', Outer) is None  # malformed JSON: the framework's 400
    wrong = strict_body_error(b'{"items": "x"}', Outer)
    assert wrong is not None and wrong.field == "items"
    missing = strict_body_error(b'{"items": [{}]}', Outer)
    assert missing is not None and missing.field == "items[0].flag"


async def test_options_with_a_json_body_answers_its_allow_list(client: Any, world: World) -> None:
    """OPTIONS has no body of its own: a JSON one sent with it is not held to any route's types."""
    answer = await client.request(
        "OPTIONS", "/api/visitors/passes", content=b'{"visitor_name": 5}', headers={"content-type": "application/json"}
    )
    assert answer.status_code == 204, answer.text
    assert "POST" in answer.headers["allow"]


async def test_a_number_without_a_fraction_is_an_integer_as_json_schema_says(client: Any, world: World) -> None:
    taken = await client.post("/api/me/dnd/snooze", json={"minutes": 60.0}, headers=world.headers("occupant"))
    assert taken.status_code < 300, taken.text
    refused = await client.post("/api/me/dnd/snooze", json={"minutes": 60.5}, headers=world.headers("occupant"))
    assert problem_field(refused)["field"] == "minutes"


def test_the_digits_of_a_float_are_not_a_long_integer() -> None:
    from app.input_guard import json_body_error

    assert json_body_error(b'{"a": 3.9643873429107496e+16}') is None
    assert json_body_error(b'{"a": 1.00000000000000000001}') is None
    assert json_body_error(b'{"a": 39643873429107496123}') is not None
    assert json_body_error(b"[1, -39643873429107496123]") is not None
    assert json_body_error(b'{"a": "39643873429107496123"}') is None  # inside a string


async def test_a_date_in_the_query_string_must_be_written_as_one(client: Any, world: World) -> None:
    """Litestar read `until=0.5` as half a second after 1970 (schemathesis found it)."""
    headers = world.headers("fm_admin")
    refused = await client.get("/api/complaints/reports/sla.csv", params={"until": "0.5"}, headers=headers)
    assert refused.status_code == 400, refused.text
    [error] = refused.json()["errors"]
    assert error["field"] == "until" and error["source"] == "query"
    taken = await client.get(
        "/api/complaints/reports/sla.csv", params={"until": "2026-12-31T00:00:00+05:30"}, headers=headers
    )
    assert taken.status_code == 200, taken.text


async def test_a_text_part_where_a_file_is_due_is_named_as_not_a_file(client: Any, world: World) -> None:
    answer = await client.post(
        "/api/visitors/walk-ins",
        files={
            "unit_id": (None, str(world.unit_ids[0])),
            "name": (None, "Ravi"),
            "kind": (None, "guest"),
            "photo": (None, "null"),
        },
        headers=world.headers("guard"),
    )
    assert answer.status_code == 400, answer.text
    [error] = answer.json()["errors"]
    assert error["field"] == "photo" and error["message"] == "must be a file (a form part with a filename)"


def test_a_bad_dict_key_is_named_by_its_dict() -> None:
    class Settings(msgspec.Struct):
        limits: dict[Literal["a", "b"], int]

    error = strict_body_error(b'{"limits": {"z": 1}}', Settings)
    assert error is not None
    assert error.field == "limits" and error.message.endswith("(a key)"), error
