"""One API shape: every list endpoint answers one page, ``{items, total, limit, offset}``, and honours
``limit`` and ``offset``.

The list endpoints are found from the app's OpenAPI document, not from a list kept here: a new GET
route that answers a bare list fails ``test_no_get_route_answers_a_bare_list``, and a new list
endpoint is called by ``test_every_list_endpoint_pages_the_same_way`` on a seeded site (it fails until
its path parameters have a seeded value below).
"""

from __future__ import annotations

import datetime as dt
import importlib
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
from litestar.routes import HTTPRoute

from app.attendance import config as attendance_config
from app.auth.roles import Role, is_framework_handler
from app.people.directory import cipher_for, directory_for
from app.privacy import exports
from app.slots import booking as slot_booking
from app.slots import passes as parking
from app.slots import valet
from app.slots.availability import AvailabilityFeed
from app.visitors import approvals, gate
from schema.jsonvalue import as_list
from schema.permits import PermitEntry
from schema.visitors import VisitorApprovalStep, VisitorMessage, VisitorPass
from tests.support import billing as billing_support
from tests.support import complaints as complaint_support
from tests.support import slots as slot_support
from tests.support.ids_attendance import staff_with_punches
from tests.support.ids_permits import approved_vendor_permit
from tests.support.routes import PARAM, Operation, operations
from tests.support.visitors import add_occupant, deps_for, one_time_pass, principal_of
from tests.support.world import World

PAGE_FIELDS = {"items", "total", "limit", "offset"}
# Whom to ask when several roles may call a list: the one that sees the seeded rows.
ROLE_ORDER = ("site_admin", "fm_admin", "guard", "technician", "occupant", "platform_admin")
# Lists whose rows the seeded site cannot have: retention runs come from the purge cron. Their page
# shape and the echo of limit/offset are still checked.
# The delivery report's rows are the ledger of sent notifications, which this seed does not send.
UNSEEDED = {"/api/privacy/retention/runs", "/api/me/notifications", "/api/reports/notifications"}


def _resolve(schema: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _answer_schema(operation: Operation, document: dict[str, Any]) -> dict[str, Any] | None:
    ok = operation.operation.get("responses", {}).get("200", {})
    body = ok.get("content", {}).get("application/json")
    return _resolve(body["schema"], document) if body and "schema" in body else None


def _is_page(schema: dict[str, Any], document: dict[str, Any]) -> bool:
    items = schema.get("properties", {}).get("items")
    return items is not None and _resolve(items, document).get("type") == "array"


def list_operations(app: Any) -> list[Operation]:
    document = app.openapi_schema.to_schema()
    found = []
    for operation in operations(app):
        schema = _answer_schema(operation, document) if operation.method == "GET" else None
        if schema is not None and (schema.get("type") == "array" or _is_page(schema, document)):
            found.append(operation)
    return found


def test_no_get_route_answers_a_bare_list(app: Any) -> None:
    document = app.openapi_schema.to_schema()
    bare = []
    for operation in operations(app):
        schema = _answer_schema(operation, document) if operation.method == "GET" else None
        if schema is not None and schema.get("type") == "array":
            bare.append(operation.path)
    assert bare == [], f"GET routes answering a bare list instead of a Page: {bare}"


def test_every_page_declares_the_four_fields_and_takes_limit_and_offset(app: Any) -> None:
    document = app.openapi_schema.to_schema()
    pages = list_operations(app)
    assert len(pages) >= 30, [o.path for o in pages]
    for operation in pages:
        schema = _answer_schema(operation, document)
        assert schema is not None
        assert set(schema.get("required", [])) >= PAGE_FIELDS, (operation.path, schema.get("required"))
        for name in ("total", "limit", "offset"):
            assert schema["properties"][name].get("type") == "integer", (operation.path, name)
        query = {p["name"] for p in operation.operation.get("parameters", []) if p.get("in") == "query"}
        assert {"limit", "offset"} <= query, (operation.path, sorted(query))


# ------------------------------------------------------------------------------ the seeded site


async def _seed(world: World, settings: Any, redis: Any, client: Any) -> dict[str, str]:
    """Two or more rows behind every list endpoint; returns the values of the lists' path parameters."""
    staff, occupant = world.headers("fm_admin"), world.headers("occupant")
    await add_occupant(world, "second_occupant", world.unit_ids[0], mobile="+919812345678")
    await world.add_person("second_technician", frozenset({Role.TECHNICIAN}), skills=("plumbing",))

    # complaints: two raised (both auto-assigned to the technician on shift), two comments on one
    await complaint_support.configure(world)
    raised = [await complaint_support.raise_one(world, settings, redis) for _ in range(2)]
    for body in ("First note", "Second note"):
        made = await client.post(f"/api/complaints/{raised[0].id}/comments", json={"body": body}, headers=occupant)
        assert made.status_code == 201, made.text
    assert raised[0].assignee_id == world.people["technician"]

    # visitors: two passes, two blocks, six walk-ins (two waiting, two answered, two inside)
    now = dt.datetime.now(dt.UTC)
    for name in ("Asha Guest", "Bala Guest"):
        await one_time_pass(world, redis, start=now - dt.timedelta(minutes=5), visitor_name=name)
    for phone in ("+919800000001", "+919800000002"):
        made = await client.post("/api/visitors/blocklist", json={"phone": phone, "reason": "test"}, headers=staff)
        assert made.status_code == 201, made.text
    deps, guard = deps_for(world, redis), principal_of(world, "guard")
    walk_ins = [
        await gate.register_walk_in(deps, guard, gate.WalkInForm(unit_id=world.unit_ids[0], name=f"Walk {n}"), None)
        for n in range(6)
    ]
    for created in walk_ins[2:]:
        await approvals.answer(deps, world.site_id, created.approval_id, "approved", person_id=None, via="guard")
    for created in walk_ins[4:]:
        await gate.check_in(deps, guard, created.visit.id)
    prompted = walk_ins[0].approval_id
    await VisitorApprovalStep(site=world.site_id, approval=prompted, step=3, action="guard_prompt", at=now).save()

    # slots: two amenities, two bookings, two parking passes, two valet requests
    for code in ("CLUB-A", "CLUB-B"):
        await slot_support.amenity(world, code=code)
    club = (await slot_support.amenity(world, code="CLUB-C")).id
    feed = AvailabilityFeed(redis, settings)
    for hour in (10, 12):
        request = slot_booking.NewBooking(
            starts_at=slot_support.local(1, hour), ends_at=slot_support.local(1, hour + 1)
        )
        await slot_booking.book(feed, slot_support.principal(world, "occupant"), club, request)
    for plate in ("KA01AB1234", "KA01AB5678"):
        await parking.create_pass(settings, slot_support.principal(world, "occupant"), parking.NewPass(plate=plate))
        await valet.request_valet(
            redis, settings, slot_support.principal(world, "occupant"), valet.NewValet(plate=plate)
        )

    # AMC and QR: two assets with a contract each (quarterly: four visits), two places, two days of scans
    from app.amc.schedule import Frequency
    from app.places import service as place_service
    from schema.places import PlaceScanDay
    from tests.support import amc as amc_support

    for name in ("Lift A1", "Lift B1"):
        asset = await amc_support.lift(world, name=name)
        await amc_support.contract(
            world,
            redis,
            asset.id,
            starts_on=dt.date(2026, 1, 1),
            ends_on=dt.date(2026, 12, 31),
            frequency=Frequency.QUARTERLY,
        )
    gym = await place_service.create_place(settings, world.site_id, place_service.NewPlace(kind="amenity", name="Gym"))
    await place_service.create_place(settings, world.site_id, place_service.NewPlace(kind="shop", name="Pharmacy"))
    for day in (dt.date(2026, 12, 1), dt.date(2026, 12, 2)):
        await PlaceScanDay.insert(PlaceScanDay(site=world.site_id, place=gym.id, day=day, scans=3))

    # notifications: two announcements (scheduled later: nothing is sent), two consent changes
    later = (now + dt.timedelta(hours=2)).isoformat()
    for title in ("Water", "Power"):
        body = {
            "title": title,
            "body": "Tower A off 10:00-12:00",
            "category": "announcement",
            "audience": {"unit_ids": [str(world.unit_ids[0])]},
            "channels": ["in_app"],
            "scheduled_at": later,
        }
        made = await client.post("/api/announcements", json=body, headers=staff)
        assert made.status_code == 201, made.text
    for enabled in (False, True):
        choice = {"channel": "sms", "category": "announcement", "enabled": enabled}
        changed = await client.put("/api/me/notification-preferences", json={"preferences": [choice]}, headers=occupant)
        assert changed.status_code == 200, changed.text

    # privacy: two requests and two exports of the occupant
    for details in ("a copy of my data", "another copy"):
        made = await client.post("/api/me/data-requests", json={"kind": "access", "details": details}, headers=occupant)
        assert made.status_code == 201, made.text
    for _ in range(2):  # one open export per person: the first is built before the second is asked for
        made = await client.post("/api/me/exports", json={}, headers=occupant)
        assert made.status_code == 202, made.text
        await exports.build_export(settings, redis, directory_for(settings), UUID(made.json()["id"]))

    # billing: two invoices of one unit and a second unit's (two defaulters), two receipts, two credit notes
    # on one invoice, two runs, two rates, two reconciliations
    invoice_id = await billing_support.seed_two_of_everything(world)

    # permits: two approved vendor permits valid now (the gate's list for today), two entries under the first
    permits = [
        await approved_vendor_permit(world, settings, redis, start=now - dt.timedelta(hours=1), phone=phone)
        for phone in ("+919800000011", "+919800000012")
    ]
    for _ in range(2):
        await PermitEntry(site=world.site_id, permit=permits[0].id, checked_in_at=now).save()

    # attendance: two shifts, two staff on the roster, each checked in and out this hour
    staff_ids = await staff_with_punches(world, settings, redis, ("Savitri", "Kiran"))

    # reports: two scheduled reports of the site admin
    for frequency in ("weekly", "monthly"):
        subscribed = await client.post(
            "/api/reports/subscriptions",
            json={"report": "complaints", "frequency": frequency},
            headers=world.headers("site_admin"),
        )
        assert subscribed.status_code == 201, subscribed.text

    return {
        "invoice_id": str(invoice_id),
        "staff_id": str(staff_ids[0]),
        "permit_id": str(permits[0].id),
        "complaint_id": str(raised[0].id),
        "person_id": str(world.people["occupant"]),
        "approval_id": str(prompted),
        "place_id": str(gym.id),
    }


def _caller(world: World, operation: Operation) -> str:
    if operation.path.startswith("/api/me/"):
        return "occupant"
    assert operation.allowed, f"{operation.path}: a public list endpoint"
    for name in ROLE_ORDER:
        if world.roles[name] & operation.allowed:
            return name
    raise AssertionError(f"{operation.path}: no seeded role may call it ({sorted(operation.allowed)})")


async def _page(client: Any, url: str, headers: dict[str, str], limit: int, offset: int) -> dict[str, Any]:
    joiner = "&" if "?" in url else "?"
    response = await client.get(f"{url}{joiner}limit={limit}&offset={offset}", headers=headers)
    assert response.status_code == 200, (url, response.text)
    body = response.json()
    assert isinstance(body, dict), f"{url} answered {type(body).__name__}, not a page"
    assert set(body) >= PAGE_FIELDS, (url, sorted(body))
    assert isinstance(body["items"], list) and isinstance(body["total"], int), url
    assert (body["limit"], body["offset"]) == (limit, offset), (url, body["limit"], body["offset"])
    assert len(body["items"]) == max(0, min(limit, body["total"] - offset)), (url, len(body["items"]), body["total"])
    return body


@pytest.mark.usefixtures("redis")
async def test_every_list_endpoint_pages_the_same_way(
    app: Any, client: Any, world: World, settings: Any, redis: Any
) -> None:
    values = await _seed(world, settings, redis, client)
    seen, paged = [], []
    for operation in list_operations(app):
        missing = [p for p in operation.path_params if p not in values]
        assert not missing, f"{operation.path}: seed a value for {missing} in _seed"
        url = operation.url(values)
        headers = world.headers(_caller(world, operation))
        first_two = await _page(client, url, headers, limit=2, offset=0)
        first = await _page(client, url, headers, limit=1, offset=0)
        second = await _page(client, url, headers, limit=1, offset=1)
        beyond = await _page(client, url, headers, limit=1, offset=first_two["total"])
        assert first["total"] == second["total"] == first_two["total"] == beyond["total"], url
        assert beyond["items"] == [], url
        seen.append(operation.path)
        if first_two["total"] >= 2:
            assert first["items"] == first_two["items"][:1], url
            assert second["items"] == first_two["items"][1:2], url
            assert first["items"] != second["items"], url
            paged.append(operation.path)
    unpaged = sorted(set(seen) - set(paged))
    assert set(unpaged) <= UNSEEDED, f"seed two rows behind {sorted(set(unpaged) - UNSEEDED)}"
    assert len(seen) >= 30, seen


async def test_limit_beyond_the_bound_is_a_query_error_on_every_list(app: Any, client: Any, world: World) -> None:
    """The bound is the same for every list (Limit: 1-500), and the error names the query parameter."""
    pages = [o for o in list_operations(app) if not o.path_params]
    for operation in pages:
        headers = world.headers(_caller(world, operation))
        response = await client.get(f"{operation.path}?limit=501", headers=headers)
        assert response.status_code == 400, (operation.path, response.text)
        assert response.json()["errors"] == [
            {"field": "limit", "message": "Expected `int` <= 500", "source": "query"}
        ], operation.path


# ------------------------------------------------------------------------------ every route documented


def test_every_route_is_in_the_openapi_document_with_its_own_access(app: Any) -> None:
    """Pages, provider webhooks, the ANPR cameras' and the devices' endpoints included; each operation
    names how a caller gets in, and the schemes it names are defined."""
    document = app.openapi_schema.to_schema()
    schemes = document["components"]["securitySchemes"]
    documented = {(o.method, o.path): o for o in operations(app)}
    missing = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        path = PARAM.sub(lambda m: "{" + m.group(1) + "}", route.path)
        for handler in route.route_handlers:
            if is_framework_handler(handler):  # static files and the docs' assets: Litestar's file routers
                continue
            for method in handler.http_methods - {"OPTIONS", "HEAD"}:
                if (method, path) not in documented:
                    missing.append(f"{method} {path}")
    assert missing == [], f"routes missing from the OpenAPI document: {missing}"
    for operation in documented.values():
        assert "Access: " in operation.operation.get("description", ""), (operation.method, operation.path)
        for requirement in operation.operation.get("security", []):
            assert set(requirement) <= set(schemes), (operation.path, requirement)

    def security(method: str, path: str) -> list[dict[str, Any]]:
        return list(documented[(method, path)].operation.get("security", []))

    assert security("POST", "/api/visitors/anpr") == [{"camera_key": []}]
    for webhook in (
        "/api/webhooks/twilio/status",
        "/api/webhooks/twilio/inbound",
        "/api/webhooks/twilio/visitor-gather",
    ):
        assert security("POST", webhook) == [{"twilio_signature": []}], webhook
    assert security("POST", "/api/slots/ocpp/status-notification") == [{"device_token": []}]
    assert security("GET", "/api/privacy/exports/{export_id}/download") == [{"signed_link": []}]
    for page in ("/guard", "/app", "/control", "/account"):
        # A page opens for its session cookie, and for a bearer token of the role (schemathesis found that
        # the document said cookie only).
        assert security("GET", page) == [{"bearer": []}, {"session": []}], page
    assert security("GET", "/api/units") == [{"bearer": []}, {"session": []}]
    assert security("GET", "/login") == [] and security("GET", "/health") == []
    assert "signed token in the path" in documented[("GET", "/v/a/{token}")].operation["description"]
    assert schemes["twilio_signature"] == {
        "type": "apiKey",
        "description": schemes["twilio_signature"]["description"],
        "name": "X-Twilio-Signature",
        "in": "header",
    }


# ------------------------------------------------------------------------------ one weekday numbering


async def test_every_weekday_field_takes_0_to_6(client: Any, world: World) -> None:
    """Visitor passes, parking passes, technician shifts and quiet hours: 0 = Monday ... 6 = Sunday."""
    occupant, staff = world.headers("occupant"), world.headers("fm_admin")
    until = (dt.datetime.now(dt.UTC) + dt.timedelta(days=10)).isoformat()

    async def visitor_pass(day: int) -> Any:
        recurring = {"days": [day], "start": "07:00", "end": "11:00", "valid_until": until}
        body = {"unit_id": str(world.unit_ids[0]), "kind": "guest", "visitor_name": "V", "recurring": recurring}
        return await client.post("/api/visitors/passes", json=body, headers=occupant)

    async def parking_pass(day: int) -> Any:
        body = {"plate": f"KA01AB{1000 + day}", "kind": "recurring", "weekdays": [day]}
        body |= {"daily_from": "08:00", "daily_until": "18:00"}
        return await client.post("/api/slots/passes", json=body, headers=occupant)

    async def shift(day: int) -> Any:
        body = {"shifts": [{"weekday": day, "start": "08:00", "end": "16:00"}]}
        url = f"/api/complaints/config/technicians/{world.people['technician']}/shifts"
        return await client.put(url, json=body, headers=staff)

    async def quiet_hours(day: int) -> Any:
        body = {"timezone": "Asia/Kolkata", "quiet_hours": [{"weekday": day, "start": "22:00", "end": "23:00"}]}
        return await client.put("/api/me/dnd", json=body, headers=occupant)

    for name, send in (("visitor pass", visitor_pass), ("parking pass", parking_pass), ("shift", shift)):
        for day in (0, 6):
            answer = await send(day)
            assert answer.status_code in (200, 201), (name, day, answer.text)
        refused = await send(7)
        assert refused.status_code in (400, 422), (name, refused.text)
    for day in (0, 6):
        assert (await quiet_hours(day)).status_code == 200, day
    assert (await quiet_hours(7)).status_code in (400, 422)


async def test_a_recurring_visitor_pass_counts_weekdays_from_monday_0(
    client: Any, world: World, settings: Any, redis: Any
) -> None:
    zone = ZoneInfo("Asia/Kolkata")  # the world's site timezone
    now = dt.datetime.now(dt.UTC)
    today = now.astimezone(zone).weekday()
    occupant = world.headers("occupant")

    def recurring(days: list[int], name: str) -> dict[str, Any]:
        return {
            "unit_id": str(world.unit_ids[0]),
            "kind": "daily_help",
            "visitor_name": name,
            "recurring": {
                "days": days,
                "start": "00:00",
                "end": "23:59",
                "valid_until": (now + dt.timedelta(days=10)).isoformat(),
            },
        }

    made = await client.post("/api/visitors/passes", json=recurring([today], "Today Tara"), headers=occupant)
    assert made.status_code == 201, made.text
    assert made.json()["visitor_pass"]["days"] == [today]
    other = await client.post(
        "/api/visitors/passes", json=recurring([(today + 1) % 7], "Tomorrow Tom"), headers=occupant
    )
    assert other.status_code == 201, other.text
    expected = await client.get("/api/visitors/feeds/expected", headers=world.headers("guard"))
    names = [e["name"] for e in expected.json()["items"]]
    assert "Today Tara" in names and "Tomorrow Tom" not in names
    # The gate admits on the same numbering: today's pass verifies, tomorrow's is outside its days.
    guard = world.headers("guard")
    admitted = await client.post(
        "/api/visitors/gate/verify", json={"code": made.json()["code"], "check_in": False}, headers=guard
    )
    refused = await client.post(
        "/api/visitors/gate/verify", json={"code": other.json()["code"], "check_in": False}, headers=guard
    )
    assert admitted.json()["outcome"] != "refused" and refused.json()["reason"] == "outside_hours", (
        admitted.text,
        refused.text,
    )
    seven = await client.post("/api/visitors/passes", json=recurring([7], "Sunday Sam"), headers=occupant)
    assert seven.status_code == 400 and seven.json()["errors"][0]["field"] == "recurring.days[0]", seven.text


async def test_the_migration_renumbers_stored_iso_weekdays(world: World) -> None:
    migration = importlib.import_module("schema.piccolo_migrations.opshub_0016_pass_weekdays")
    now = dt.datetime.now(dt.UTC)
    made = {}
    for name, days in (("iso", [1, 2, 3, 4, 5, 7]), ("none", [])):
        row = VisitorPass(
            site=world.site_id,
            unit=world.unit_ids[0],
            created_by=world.people["occupant"],
            kind="guest",
            visitor_name=name,
            code_hash=f"hash-{name}-{world.slug}",
            schedule="recurring" if days else "one_time",
            valid_from=now,
            valid_until=now + dt.timedelta(days=1),
            days=days,
            status="active",
            created_at=now,
        )
        await row.save()
        made[name] = row.id
    manager = await migration.forwards()
    await manager.run()
    stored = {
        r["id"]: as_list(r["days"])
        for r in await VisitorPass.select(VisitorPass.id, VisitorPass.days).where(VisitorPass.site == world.site_id)
    }
    assert stored[made["iso"]] == [0, 1, 2, 3, 4, 6]
    assert stored[made["none"]] == []


# ------------------------------------------------------------------------------ errors name what is wrong


async def test_a_missing_body_says_the_body_is_missing(client: Any, world: World) -> None:
    for content in (None, b""):
        kwargs: dict[str, Any] = {"headers": {**world.headers("fm_admin"), "content-type": "application/json"}}
        if content is not None:
            kwargs["content"] = content
        response = await client.post("/api/visitors/blocklist", **kwargs)
        assert response.status_code == 400, response.text
        problem = response.json()
        assert problem["errors"] == [{"field": "body", "message": "the request body is missing", "source": "body"}]
        assert problem["detail"] == "body: the request body is missing"
    wrong = await client.post("/api/visitors/blocklist", content=b"[1, 2]", headers=kwargs["headers"])
    assert [(e["field"], e["source"]) for e in wrong.json()["errors"]] == [("body", "body")], wrong.text


async def test_query_parameter_errors_name_source_query(client: Any, world: World) -> None:
    await complaint_support.configure(world)
    staff = world.headers("fm_admin")
    cases = [
        "/api/complaints?category=no-such-category",  # checked by the service, not by Litestar
        "/api/slots/reports/utilisation.csv?from=2026-02-01&to=2026-01-01",
        "/api/complaints/reports/sla.csv?since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z",
        "/api/slots/passes/check?plate=%21%21",
        "/api/complaints?status=bogus",  # checked by Litestar
    ]
    for url in cases:
        response = await client.get(url, headers=staff)
        assert response.status_code in (400, 422), (url, response.text)
        assert [e["source"] for e in response.json()["errors"]] == ["query"], (url, response.text)


# ------------------------------------------------------------------------------ content types


async def test_every_csv_answers_text_csv_with_one_charset(app: Any, client: Any, world: World) -> None:
    query = {"from": "2026-01-01", "to": "2026-01-31"}
    csv_routes = []
    for operation in operations(app):
        content = operation.operation.get("responses", {}).get("200", {}).get("content", {})
        if operation.method == "GET" and any(kind.startswith("text/csv") for kind in content):
            csv_routes.append(operation)
    assert len(csv_routes) >= 5, [o.path for o in csv_routes]
    member = await attendance_config.add_staff(
        world.settings, world.site_id, attendance_config.StaffInput(name="Savitri", category="housekeeping")
    )
    # per-unit and per-person CSVs (a unit's statement, the monthly attendance sheet)
    path_values = {"unit_id": str(world.unit_ids[0]), "staff_id": str(member.id)}
    for operation in csv_routes:
        required = [
            p["name"] for p in operation.operation.get("parameters", []) if p.get("in") == "query" and p["required"]
        ]
        params = "&".join(f"{name}={query[name]}" for name in required)
        role = _caller(world, operation)
        response = await client.get(f"{operation.url(path_values)}?{params}", headers=world.headers(role))
        assert response.status_code == 200, (operation.path, response.text)
        assert response.headers["content-type"] == "text/csv; charset=utf-8", operation.path


# ------------------------------------------------------------------------------ times in site time


async def test_pass_messages_show_the_sites_wall_clock(client: Any, world: World, settings: Any) -> None:
    zone = ZoneInfo("Asia/Kolkata")  # the world's site timezone
    start = dt.datetime.now(zone).replace(minute=0, second=0, microsecond=0) + dt.timedelta(days=1)
    start = start.replace(hour=9)
    one_time = {
        "unit_id": str(world.unit_ids[0]),
        "kind": "guest",
        "visitor_name": "Asha",
        "visitor_phone": "+919812345671",
        "send_via": "sms",
        "one_time": {"valid_from": start.isoformat(), "valid_until": (start + dt.timedelta(hours=3)).isoformat()},
    }
    recurring = {
        **{k: v for k, v in one_time.items() if k != "one_time"},
        "visitor_name": "Lakshmi",
        "recurring": {
            "days": [0, 2, 4],
            "start": "07:00",
            "end": "11:00",
            "valid_until": (start + dt.timedelta(days=30)).isoformat(),
        },
    }
    texts = {}
    for body in (one_time, recurring):
        made = await client.post("/api/visitors/passes", json=body, headers=world.headers("occupant"))
        assert made.status_code == 201, made.text
        row = (
            await VisitorMessage.select(VisitorMessage.body_encrypted)
            .where(VisitorMessage.visitor_pass == UUID(made.json()["visitor_pass"]["id"]))
            .first()
        )
        assert row is not None
        texts[body["visitor_name"]] = cipher_for(settings).decrypt(row["body_encrypted"])
    end = start + dt.timedelta(hours=3)
    assert f"({start:%d %b} 09:00-{end:%d %b} 12:00 IST)" in texts["Asha"], texts["Asha"]
    assert "UTC" not in texts["Asha"]
    until = start + dt.timedelta(days=30)
    assert f"(Mon, Wed, Fri 07:00-11:00 IST, until {until:%d %b})" in texts["Lakshmi"], texts["Lakshmi"]
