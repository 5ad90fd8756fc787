"""Free text: control characters are refused in every free-text field (line breaks and tabs only where
text may have lines), and searches take `%` and `_` literally."""

from __future__ import annotations

import types
import typing
from typing import Any

import msgspec
import pytest

from app.text import MULTI_LINE, MULTI_LINE_MESSAGE, ONE_LINE, ONE_LINE_MESSAGE, like_literal, text_error
from schema.complaints import Complaint, ComplaintComment
from schema.tables import Unit
from tests.support import complaints as complaint_support
from tests.support.world import World

# Request-body text that is not free text: identifiers, secrets, contact points, codes and times with
# their own format, and what devices send. Anything else a person types must be marked.
NOT_FREE_TEXT = {
    "username", "password", "site", "refresh_token", "slug", "timezone", "country_code", "locale",
    "email", "mobile", "primary_mobile", "secondary_mobile", "phone", "visitor_phone",
    "plate", "vehicle_plates[]", "idempotency_key", "qr", "code", "gate", "start", "end",
    "daily_from", "daily_until", "currency", "voice_caller_id", "category", "subcategory", "skill",
    "subcategories[]", "skills[]", "stage", "class_name", "preview_id", "unit_id", "kind",
    "lane", "image_ref", "error_code", "info", "slot_code", "bay",
    # billing: codes with a pattern of their own (a GSTIN, an HSN/SAC code, a month, a charge type)
    "gstin", "customer_gstin", "state_code", "invoice_prefix", "hsn_sac", "unit_kind", "charge_type", "period",
    # permits and attendance: keys, type codes, declarations, daily hours, references
    "key", "type", "declarations[]", "daily_start", "daily_end", "reference",
}  # fmt: skip
# Checked by hand after decoding: the walk-in form (multipart, app.visitors.gate.register_walk_in) and
# a person's name (app.occupants.service.clean_name, shared with the importer).
CHECKED_BY_HAND = {
    ("POST", "/api/visitors/walk-ins", "name"),
    ("POST", "/api/visitors/walk-ins", "purpose"),
    ("POST", "/api/occupants", "full_name"),
    ("PATCH", "/api/occupants/{occupant_id:uuid}", "full_name"),
    ("PATCH", "/api/me/data", "full_name"),
    # Must be one of the permit type's attachment keys (app.permits.service.add_attachment).
    ("POST", "/api/permits/{permit_id:uuid}/attachments", "slot"),
}


def _text_fields(tp: Any, path: str, seen: set[type]) -> list[tuple[str, list[msgspec.Meta]]]:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        metas = [m for m in args[1:] if isinstance(m, msgspec.Meta)]
        return [(path, metas)] if args[0] is str else _text_fields(args[0], path, seen)
    if tp is str:
        return [(path, [])]
    if origin in (typing.Union, types.UnionType):
        return [found for arg in args for found in _text_fields(arg, path, seen)]
    if origin in (list, tuple, set, frozenset):
        return [found for arg in args for found in _text_fields(arg, f"{path}[]", seen)]
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct) and tp not in seen:
        hints = typing.get_type_hints(tp, include_extras=True)
        return [
            found
            for field in msgspec.structs.fields(tp)
            for found in _text_fields(hints[field.name], f"{path}.{field.name}" if path else field.name, seen | {tp})
        ]
    return []


def test_every_free_text_field_of_every_request_body_refuses_control_characters(app: Any) -> None:
    unmarked, checked = [], 0
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            data = handler.parsed_fn_signature.parameters.get("data")
            if data is None:
                continue
            body = data.annotation
            for method in handler.http_methods:
                for path, metas in _text_fields(body, "", set()):
                    if path.rsplit(".", 1)[-1] in NOT_FREE_TEXT or (method, route.path, path) in CHECKED_BY_HAND:
                        continue
                    checked += 1
                    if not any(m in (ONE_LINE, MULTI_LINE) for m in metas):
                        unmarked.append(f"{method} {route.path}: {path}")
    assert checked > 25  # the walk found the bodies
    assert unmarked == []


@pytest.mark.parametrize(
    ("value", "one_line", "multi_line"),
    [
        ("Leak under the sink — ünïcode 水漏れ", True, True),
        ("Line one\nLine two\r\n\tindented", False, True),
        ("paragraph\u2029separator", False, True),
        ("trailing line feed\n", False, True),
        ("NUL \x00 inside", False, False),
        ("bell \x07", False, False),
        ("escape \x1b[31m red", False, False),
        ("delete \x7f", False, False),
        ("C1 next line \x85", False, False),
    ],
)
def test_which_characters_free_text_may_hold(value: str, one_line: bool, multi_line: bool) -> None:
    assert (text_error(value) is None) is one_line
    assert (text_error(value, multiline=True) is None) is multi_line


def _refused(response: Any, field: str, message: str) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert {"field": field, "message": message, "source": "body"} in response.json()["errors"], response.json()


async def test_control_characters_are_refused_in_complaints_and_line_breaks_kept(
    client: Any, world: World, settings: Any, redis: Any
) -> None:
    await complaint_support.configure(world)
    occupant = world.headers("occupant")
    body = {"category": "plumbing", "unit_id": str(world.unit_ids[0])}
    nul = await client.post(
        "/api/complaints", json={**body, "description": "Leak\x00 under the sink"}, headers=occupant
    )
    _refused(nul, "description", MULTI_LINE_MESSAGE)
    assert await Complaint.count().where(Complaint.site == world.site_id) == 0
    lines = "Leak under the sink.\nStarted last night;\tgetting worse."
    raised = await client.post("/api/complaints", json={**body, "description": lines}, headers=occupant)
    assert raised.status_code == 201, raised.text
    assert raised.json()["description"] == lines
    complaint_id = raised.json()["id"]
    bell = await client.post(f"/api/complaints/{complaint_id}/comments", json={"body": "ding\x07"}, headers=occupant)
    _refused(bell, "body", MULTI_LINE_MESSAGE)
    assert await ComplaintComment.count().where(ComplaintComment.complaint == complaint_id) == 0
    staff = world.headers("fm_admin")
    guard = world.headers("guard")
    located = await client.post(
        "/api/complaints",
        json={"category": "plumbing", "description": "Lobby tap drips", "location": "Lobby\nTower A"},
        headers=guard,
    )
    _refused(located, "location", ONE_LINE_MESSAGE)
    moved = await client.post(f"/api/complaints/{complaint_id}/assign", json={"note": "on it\x1b[2J"}, headers=staff)
    _refused(moved, "note", MULTI_LINE_MESSAGE)


async def test_control_characters_are_refused_in_visitors_announcements_and_requests(client: Any, world: World) -> None:
    walk_in = await client.post(
        "/api/visitors/walk-ins",
        files={"unit_id": (None, str(world.unit_ids[0])), "name": (None, "Ravi"), "purpose": (None, "Delivery\x00")},
        headers=world.headers("guard"),
    )
    assert walk_in.status_code == 422, walk_in.text
    assert walk_in.json()["errors"] == [{"field": "purpose", "message": ONE_LINE_MESSAGE, "source": "body"}]
    named = await client.post(
        "/api/visitors/walk-ins",
        files={"unit_id": (None, str(world.unit_ids[0])), "name": (None, "Ravi\x1b[0m")},
        headers=world.headers("guard"),
    )
    assert named.status_code == 422 and named.json()["errors"][0]["field"] == "name"
    announcement = {
        "title": "Water\nshutdown",
        "body": "Tower A water off 10:00-12:00",
        "category": "announcement",
        "audience": {"unit_ids": [str(world.unit_ids[0])]},
        "channels": ["in_app"],
    }
    titled = await client.post("/api/announcements", json=announcement, headers=world.headers("fm_admin"))
    _refused(titled, "title", ONE_LINE_MESSAGE)
    bodied = await client.post(
        "/api/announcements",
        json={**announcement, "title": "Water", "body": "off\x00"},
        headers=world.headers("fm_admin"),
    )
    _refused(bodied, "body", MULTI_LINE_MESSAGE)
    request = await client.post(
        "/api/me/data-requests", json={"kind": "access", "details": "all\x00of it"}, headers=world.headers("occupant")
    )
    _refused(request, "details", MULTI_LINE_MESSAGE)
    blocked = await client.post(
        "/api/visitors/blocklist", json={"name": "X\x00", "reason": "abusive"}, headers=world.headers("fm_admin")
    )
    _refused(blocked, "name", ONE_LINE_MESSAGE)
    visitor = await client.post(
        "/api/visitors/passes",
        json={
            "unit_id": str(world.unit_ids[0]),
            "kind": "guest",
            "visitor_name": "Ravi\u2028Kumar",
            "one_time": {"valid_from": "2030-01-01T10:00:00Z", "valid_until": "2030-01-01T12:00:00Z"},
        },
        headers=world.headers("occupant"),
    )
    _refused(visitor, "visitor_name", ONE_LINE_MESSAGE)


# ------------------------------------------------------------------------------ LIKE wildcards


def test_like_wildcards_are_escaped() -> None:
    assert like_literal("50%_off\\") == "50\\%\\_off\\\\"


async def test_searches_take_percent_and_underscore_literally(client: Any, world: World) -> None:
    staff = world.headers("fm_admin")
    for name, mobile in (("Asha 100% Rao", "9812340021"), ("Ravi_Kumar", "9812340022"), ("Back\\slash", "9812340023")):
        made = await client.post(
            "/api/occupants", json={"full_name": name, "primary_mobile": mobile, "units": []}, headers=staff
        )
        assert made.status_code == 201, made.text

    async def names(q: str) -> list[str]:
        found = await client.get("/api/occupants", params={"q": q}, headers=staff)
        assert found.status_code == 200, found.text
        return sorted(item["full_name"] for item in found.json()["items"])

    assert await names("%") == ["Asha 100% Rao"]
    assert await names("_") == ["Ravi_Kumar"]
    assert await names("0% r") == ["Asha 100% Rao"]  # still a case-insensitive substring match
    assert await names("\\") == ["Back\\slash"]
    assert await names("R_v") == []  # "_" is not "any one character"

    await Unit(site=world.site_id, building=world.building_ids[0], label="C_1", floor=1).save()
    units = await client.get("/api/units", params={"q": "_"}, headers=staff)
    assert units.status_code == 200, units.text
    assert [u["label"] for u in units.json()["items"]] == ["C_1"]
    every = await client.get("/api/units", params={"q": "%"}, headers=staff)
    assert every.json()["items"] == []


async def test_a_name_with_a_control_character_is_refused(client: Any, world: World) -> None:
    for name in ("Asha\x00Rao", "Asha\x85Rao"):  # NUL, and a C1 control the old check let through
        made = await client.post(
            "/api/occupants",
            json={"full_name": name, "primary_mobile": "9812340031", "units": []},
            headers=world.headers("fm_admin"),
        )
        assert made.status_code == 422, made.text
        assert made.json()["errors"][0]["field"] == "full_name"
