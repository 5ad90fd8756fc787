"""QR mapping: every generated code (PNG, SVG, PDF sheet) decodes back to its URL; the public page shows the
place and nothing about any person; codes survive renames, can be revoked, and scans are counted."""

from __future__ import annotations

import io
import re
import secrets
import warnings
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pypdfium2
import pytest
import zxingcpp
from fpdf import FPDF
from litestar.testing import AsyncTestClient
from PIL import Image

from app.auth.roles import Role
from app.complaints import config as complaint_config
from app.security.ratelimit import RULES
from schema.places import PlaceCode, PlaceScanDay
from tests.support.slots import amenity
from tests.support.world import World

HOURS = {str(day): [["06:00", "10:00"], ["16:00", "22:00"]] for day in range(6)}


def decode_image(image: Image.Image) -> list[str]:
    return sorted(result.text for result in zxingcpp.read_barcodes(image))


def render_pdf(data: bytes, page: int = 0) -> Image.Image:
    return pypdfium2.PdfDocument(data)[page].render(scale=3).to_pil()


def decode_svg(svg: bytes) -> list[str]:
    """Draw the SVG onto a PDF page (fpdf2's own SVG renderer), rasterise it with PDFium, read it."""
    pdf = FPDF(unit="mm", format="A4")
    pdf.add_page()
    with warnings.catch_warnings():  # the served SVG has a width and height rather than a viewBox: fine
        warnings.simplefilter("ignore", UserWarning)
        pdf.image(io.BytesIO(svg), x=20, y=20, w=80)
    return decode_image(render_pdf(bytes(pdf.output())))


async def new_place(client: Any, world: World, **overrides: Any) -> dict[str, Any]:
    body = {
        "kind": "amenity",
        "name": "Gym",
        "building_id": str(world.building_ids[0]),
        "floor": "2",
        "directions": "Take lift A to floor 2, turn right",
        "opening_hours": HOURS,
        "description": "Treadmills, weights and a yoga corner.",
        **overrides,
    }
    made = await client.post("/api/places", json=body, headers=world.headers("fm_admin"))
    assert made.status_code == 201, made.text
    return dict(made.json())


async def test_each_code_decodes_back_to_its_url(client: Any, world: World) -> None:
    headers = world.headers("fm_admin")
    places = [await new_place(client, world, name=f"Place {n}") for n in range(3)]
    for place in places:
        assert re.fullmatch(r"https?://[^/]+/q/[2-9a-z]{12}", place["url"]), place["url"]
        png = await client.get(f"/api/places/{place['id']}/qr.png", headers=headers)
        assert png.status_code == 200 and png.headers["content-type"] == "image/png"
        assert decode_image(Image.open(io.BytesIO(png.content))) == [place["url"]]
        svg = await client.get(f"/api/places/{place['id']}/qr.svg", headers=headers)
        assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
        assert decode_svg(svg.content) == [place["url"]]
    ids = [("place_id", p["id"]) for p in places]
    sheet = await client.get("/api/places/sheet.pdf", params=ids, headers=headers)
    assert sheet.status_code == 200 and sheet.headers["content-type"] == "application/pdf"
    assert decode_image(render_pdf(sheet.content)) == sorted(p["url"] for p in places)
    text = pypdfium2.PdfDocument(sheet.content)[0].get_textpage().get_text_range()
    assert all(p["name"] in text and p["code"] in text for p in places)  # labelled
    # Every active place of the site when none is named; 13 codes take two A4 pages.
    for n in range(10):
        await new_place(client, world, name=f"Shop {n}", kind="shop")
    everything = await client.get("/api/places/sheet.pdf", headers=headers)
    assert len(pypdfium2.PdfDocument(everything.content)) == 2
    unknown = await client.get("/api/places/sheet.pdf", params=[("place_id", world.site_id)], headers=headers)
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "place_ids[0]"
    assert (
        await client.get(f"/api/places/{places[0]['id']}/qr.png", headers=world.headers("occupant"))
    ).status_code == 403


async def test_the_public_page_holds_no_personal_data(client: Any, world: World, settings: Any) -> None:
    await complaint_config.put_category(world.site_id, complaint_config.CategoryInput(code="gym", name="Gym"))
    resource = await amenity(world, code="GYM-1")
    place = await new_place(client, world, resource_id=str(resource.id))
    # The place's last complaint names a person, their phone and their unit.
    await world.add_person(
        "meera",
        frozenset({Role.OCCUPANT}),
        units=[(world.unit_ids[0], "owner")],
        mobile="+919812345678",
    )
    raised = await client.post(
        "/api/complaints",
        json={
            "category": "gym",
            "description": "Meera Iyer of A-101, call 98123 45678: treadmill 2 gives shocks",
            "place_id": place["id"],
        },
        headers=world.headers("meera"),
    )
    assert raised.status_code == 201, raised.text
    page = await client.get(f"/q/{place['code']}", headers={"accept": "text/html"})
    assert page.status_code == 200
    html = page.text
    for shown in (
        "Gym",
        "Tower A",
        "Take lift A to floor 2, turn right",
        "06:00",
        "16:00",
        "Report a problem",
        "Book it",
    ):
        assert shown in html, shown
    assert f'href="/app/report/{place["code"]}"' in html and f'href="/app?book={resource.id}"' in html
    for private in ("Meera", "Iyer", "A-101", "98123", "9812345678", "45678", "shocks", world.emails["meera"]):
        assert private.lower() not in html.lower(), private
    # The site's security headers, and no cookie for an anonymous scan.
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
    assert page.headers["x-frame-options"] == "DENY" and page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer" and page.headers["cache-control"] == "no-store"
    assert "set-cookie" not in page.headers
    assert not re.search(r"<script(?![^>]*(src=|type=\"application/json\"))", html)  # no inline script


async def test_codes_survive_renames_are_revocable_and_scans_are_counted(client: Any, world: World) -> None:
    headers = world.headers("fm_admin")
    place = await new_place(client, world)
    code = place["code"]
    renamed = await client.patch(f"/api/places/{place['id']}", json={"name": "Fitness centre"}, headers=headers)
    assert renamed.json()["code"] == code
    first = await client.get(f"/q/{code}")
    assert first.status_code == 200 and "Fitness centre" in first.text
    await client.get(f"/q/{code}")
    assert (await client.get(f"/api/places/{place['id']}", headers=headers)).json()["scans"] == 2
    days = (await client.get(f"/api/places/{place['id']}/scans", headers=headers)).json()["items"]
    assert [d["scans"] for d in days] == [2]
    # Nothing about the scanner is stored: the counters are the only columns written on a scan.
    assert {c._meta.name for c in PlaceScanDay._meta.columns} == {"id", "site", "place", "day", "scans"}
    assert {c._meta.name for c in PlaceCode._meta.columns} == {
        "id",
        "site",
        "place",
        "code",
        "status",
        "revoked_at",
        "revoked_reason",
        "scans",
        "created_at",
    }
    revoked = await client.post(
        f"/api/places/{place['id']}/revoke", json={"reason": "sticker defaced"}, headers=headers
    )
    new_code = revoked.json()["code"]
    assert new_code and new_code != code
    assert [c["status"] for c in revoked.json()["codes"]] == ["active", "revoked"]
    gone = await client.get(f"/q/{code}")
    assert gone.status_code == 410 and "no longer in use" in gone.text and "Fitness centre" not in gone.text
    assert (await client.get(f"/q/{new_code}")).status_code == 200
    assert (await client.get("/q/" + "z" * 12)).status_code == 404
    assert (await client.get("/q/not-a-code")).status_code == 404
    retired = await client.post(f"/api/places/{place['id']}/retire", headers=headers)
    assert retired.json()["code"] is None
    assert (await client.get(f"/q/{new_code}")).status_code == 410
    restored = await client.post(f"/api/places/{place['id']}/restore", headers=headers)
    assert restored.json()["code"] not in (None, code, new_code)


async def test_a_problem_reported_from_a_code_names_the_place(client: Any, world: World) -> None:
    await complaint_config.put_category(world.site_id, complaint_config.CategoryInput(code="gym", name="Gym"))
    place = await new_place(client, world)
    occupant = await client.post(
        "/api/complaints",
        json={"category": "gym", "description": "AC not cooling", "place_id": place["id"]},
        headers=world.headers("occupant"),
    )
    assert occupant.status_code == 201, occupant.text
    assert occupant.json()["place_id"] == place["id"] and occupant.json()["asset_id"] is None
    assert occupant.json()["location"] == "Gym"
    guard = await client.post(
        "/api/complaints",
        json={"category": "gym", "description": "Door lock broken", "place_id": place["id"], "location": "Gym door"},
        headers=world.headers("guard"),
    )
    assert guard.status_code == 201 and guard.json()["location"] == "Gym door"
    retired = await client.post(f"/api/places/{place['id']}/retire", headers=world.headers("fm_admin"))
    assert retired.status_code == 200
    late = await client.post(
        "/api/complaints",
        json={"category": "gym", "description": "Still broken", "place_id": place["id"]},
        headers=world.headers("occupant"),
    )
    assert late.status_code == 422 and late.json()["errors"][0]["field"] == "place_id"


@pytest.fixture
async def limited(settings: Any) -> AsyncIterator[Any]:
    from app.main import create_app

    own = msgspec.structs.replace(
        settings, rate_limit_scale=1.0, redis_prefix=f"{settings.redis_prefix}rl-{secrets.token_hex(3)}:"
    )
    async with AsyncTestClient(app=create_app(own)) as limited_client:
        yield limited_client


async def test_the_public_page_is_rate_limited_per_address(limited: Any, client: Any, world: World) -> None:
    from tests.test_rate_limits import fresh_window

    place = await new_place(client, world)
    await fresh_window()
    limit = next(rule for rule in RULES if rule.name == "place-page").per_address
    for _ in range(limit):
        assert (await limited.get(f"/q/{place['code']}")).status_code == 200
    over = await limited.get(f"/q/{place['code']}")
    assert over.status_code == 429 and over.json()["extra"]["limit"] == "place-page"
    # Refused scans are not counted: the limit also caps how fast a count can be inflated.
    assert (await client.get(f"/api/places/{place['id']}", headers=world.headers("fm_admin"))).json()["scans"] == limit


async def test_concurrent_scans_are_all_counted(client: Any, world: World) -> None:
    import asyncio

    from app.places import service as place_service

    place = await new_place(client, world)
    state, row = await place_service.resolve_code(place["code"])
    assert state == "active" and row is not None
    await asyncio.gather(*[place_service.count_scan(row) for _ in range(20)])
    view = await place_service.get_place(world.settings, world.site_id, place["id"])
    assert view.scans == 20
    days = await PlaceScanDay.select(PlaceScanDay.scans).where(PlaceScanDay.place == place["id"])
    assert [d["scans"] for d in days] == [20]


async def test_the_public_page_speaks_hindi(client: Any, world: World) -> None:
    place = await new_place(client, world, kind="shop", name="Pharmacy")
    page = await client.get(f"/q/{place['code']}", headers={"accept-language": "hi-IN,hi;q=0.9"})
    assert page.status_code == 200 and '<html lang="hi">' in page.text
    for hindi in ("दुकान", "कहाँ", "टावर", "मंज़िल", "खुलने का समय", "सोमवार", "समस्या बताएँ"):
        assert hindi in page.text, hindi
    for english in ("Where", "Opening hours", "Monday", "Report a problem", "Shop"):
        assert f">{english}<" not in page.text, english
