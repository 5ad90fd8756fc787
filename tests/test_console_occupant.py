"""The occupant app (/app) in a real browser: several phones at once, live over /ws, no reloads.

Each test opens its own browser contexts (separate devices) against one in-process uvicorn; staff,
guards and technicians act through the HTTP API, as their own consoles would.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import httpx
import pytest
from arq import create_pool
from arq.connections import RedisSettings
from arq.constants import job_key_prefix

from app.people.directory import directory_for
from app.privacy import exports
from notifications import fanout, sender
from notifications.categories import Channel
from notifications.channels.in_app import InAppAdapter
from notifications.context import NotifyContext
from notifications.live import feed_announcer
from notifications.providers import Providers
from schema.privacy import DataExport
from schema.visitors import VisitorApproval
from tests.support.browser import (
    DESKTOP,
    PHONE,
    loaded_width,
    open_occupant_section,
    screenshot,
    serious_accessibility_violations,
    signed_in_page,
)
from tests.support.complaints import ALL_DAY
from tests.support.servers import FAST, InProcessServer
from tests.support.slots import next_free_times
from tests.support.visitors import add_occupant, jpeg
from workers.main import queue_name

LIVE = 2000  # ms: what "live" means on these pages


@pytest.fixture(scope="module")
async def server(settings: Any) -> AsyncIterator[InProcessServer]:
    running = InProcessServer(settings, FAST)
    await running.start()
    yield running
    await running.stop()
    # Jobs the web app enqueued for a worker (none runs here): a later test runs a real worker on this queue.
    pool = await create_pool(RedisSettings.from_dsn(settings.redis_url), default_queue_name=queue_name(settings))
    try:
        for job in await pool.queued_jobs():
            await pool.zrem(queue_name(settings), job.job_id)
            await pool.delete(job_key_prefix + job.job_id)
    finally:
        await pool.aclose()


@pytest.fixture
async def http(server: InProcessServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as client:
        yield client


async def open_app(
    browser: Any, server: InProcessServer, world: Any, person: str, viewport: dict[str, int] = PHONE
) -> Any:
    page = await signed_in_page(browser, server.http_url, world, person, "/app", viewport=viewport)
    await page.wait_for_selector("#conn-state[data-state=online]", timeout=5000)
    return page


async def tab(page: Any, name: str) -> None:
    await open_occupant_section(page, name)


def no_errors(*pages: Any) -> None:
    for page in pages:
        assert page.script_errors == [], page.script_errors


# ------------------------------------------------------------------ 1. a visitor at the gate


async def test_two_occupants_see_the_walk_in_and_the_first_answer_resolves_both(
    server: InProcessServer, world: Any, browser: Any, http: httpx.AsyncClient
) -> None:
    from playwright.async_api import expect

    unit = world.unit_ids[1]
    await add_occupant(world, "asha", unit)
    await add_occupant(world, "ravi", unit)
    first = await open_app(browser, server, world, "asha")
    second = await open_app(browser, server, world, "ravi")
    try:
        created = await http.post(
            "/api/visitors/walk-ins",
            data={
                "unit_id": str(unit),
                "name": "Kiran Courier",
                "purpose": "parcel",
                "kind": "delivery",
                "gate": "main",
            },
            files={"photo": ("kiran.jpg", jpeg((48, 48)), "image/jpeg")},
            headers=world.headers("guard"),
        )
        assert created.status_code == 201, created.text
        approval_id = created.json()["approval_id"]
        cards = [page.locator(f"[data-approval-id='{approval_id}']") for page in (first, second)]
        for card in cards:
            await expect(card).to_have_attribute("data-status", "pending", timeout=LIVE)
            await expect(card).to_contain_text("Kiran Courier")
            await expect(card).to_contain_text("parcel")
            photo = card.get_by_role("img", name="Photo of Kiran Courier")
            await expect(photo).to_be_visible()
            # The photo really loaded (the API answered it to this occupant's session).
            assert await loaded_width(photo) == 48
            for name in ("Approve", "Deny", "Leave at gate"):
                await expect(card.get_by_role("button", name=name)).to_be_visible()

        await cards[0].get_by_role("button", name="Approve").click()
        await expect(cards[0]).to_have_attribute("data-status", "approved", timeout=LIVE)
        await expect(cards[0]).to_contain_text("Approved by you")
        await expect(cards[1]).to_have_attribute("data-status", "approved", timeout=LIVE)
        await expect(cards[1]).to_contain_text("Approved by Asha")
        await expect(cards[1].get_by_role("button", name="Approve")).to_have_count(0)

        row = await VisitorApproval.select().where(VisitorApproval.id == UUID(approval_id)).first()
        assert row is not None and row["status"] == "approved" and row["decided_by"] == world.people["asha"]
        assert row["decided_via"] == "app"
        no_errors(first, second)
    finally:
        await first.context.close()
        await second.context.close()


# ------------------------------------------------------------------ 4. pre-approval and the pass


async def test_pre_approving_a_visitor_shows_the_code_and_a_qr_that_loads(
    server: InProcessServer, world: Any, browser: Any, http: httpx.AsyncClient
) -> None:
    from playwright.async_api import expect

    page = await open_app(browser, server, world, "occupant")
    try:
        await tab(page, "Visitors")
        await page.get_by_label("Visitor's name").fill("Meera Guest")
        await page.get_by_label("Who is it").select_option("guest")
        await page.get_by_role("button", name="Create pass").click()
        code = page.locator("#pass-code")
        await expect(code).to_have_text(__import__("re").compile(r"^\d{6}$"), timeout=LIVE)
        qr = page.get_by_role("img", name="QR code of the pass for Meera Guest")
        await expect(qr).to_be_visible()
        assert await loaded_width(qr) > 0
        source = await qr.get_attribute("src")
        assert source and source.startswith("/v/qr/") and source.endswith(".svg")
        answer = await page.request.get(source)
        assert answer.status == 200 and answer.headers["content-type"].startswith("image/svg+xml")
        # The code is the pass's: the gate accepts it.
        verified = await http.post(
            "/api/visitors/gate/verify",
            json={"code": await code.text_content(), "gate": "main"},
            headers=world.headers("guard"),
        )
        assert verified.status_code == 200 and verified.json()["outcome"] == "checked_in", verified.text
        await expect(page.locator("#passes [data-status=active]")).to_contain_text("Meera Guest")
        # Share: no Web Share API in headless chromium, so the pass is copied (or shown to copy).
        await page.context.grant_permissions(["clipboard-read", "clipboard-write"])
        await page.get_by_role("button", name="Share pass").click()
        await expect(page.locator("#pass-share-status")).not_to_be_empty()
        no_errors(page)
    finally:
        await page.context.close()


# ------------------------------------------------------------------ 2. bookings, live


async def test_booking_the_last_free_charger_shows_taken_on_another_phone(
    server: InProcessServer, world: Any, browser: Any, http: httpx.AsyncClient
) -> None:
    from playwright.async_api import expect

    always = {str(day): [["00:00", "24:00"]] for day in range(7)}
    made = await http.post(
        "/api/slots/chargers",
        json={
            "code": "EV-B1",
            "name": "Basement charger",
            "connectors": [
                {"connector_no": 1, "power_kw": 7.4, "connector_type": "Type2"},
                {"connector_no": 2, "power_kw": 22, "connector_type": "CCS2"},
            ],
            "rules": {"opening_hours": always, "slot_minutes": 60, "min_minutes": 60, "max_minutes": 120},
        },
        headers=world.headers("fm_admin"),
    )
    assert made.status_code == 201, made.text
    first_id, last_id = (c["id"] for c in sorted(made.json()["connectors"], key=lambda c: c["connector_no"]))
    # Someone already holds connector 1 at the first free hour: connector 2 is the last one free then.
    free = await next_free_times(http, first_id, world.headers("occupant"))
    start = dt.datetime.fromisoformat(free["starts"][0])
    held = await http.post(
        f"/api/slots/resources/{first_id}/bookings",
        json={"starts_at": start.isoformat(), "ends_at": (start + dt.timedelta(hours=1)).isoformat()},
        headers=world.headers("occupant"),
    )
    assert held.status_code == 201, held.text

    await add_occupant(world, "booker", world.unit_ids[3])
    await add_occupant(world, "watcher", world.unit_ids[4])
    booker = await open_app(browser, server, world, "booker")
    watcher = await open_app(browser, server, world, "watcher")
    try:
        for page in (booker, watcher):
            await tab(page, "Bookings")
            await page.locator("#slot-date").fill(free["date"])  # today's, or tomorrow's late at night
            await expect(page.locator(f"[data-resource-id='{first_id}']")).to_have_attribute("data-free", "0")
            await expect(page.locator(f"[data-resource-id='{first_id}']")).to_contain_text("Taken")
            await expect(page.locator(f"[data-resource-id='{last_id}']")).to_have_attribute("data-free", "1")
            await expect(page.locator(f"[data-resource-id='{last_id}']")).to_contain_text("Free")

        await booker.locator(f"[data-resource-id='{last_id}']").get_by_role("button", name="Book").click()
        watched = watcher.locator(f"[data-resource-id='{last_id}']")
        await expect(watched).to_have_attribute("data-free", "0", timeout=LIVE)
        await expect(watched).to_contain_text("Taken")
        await expect(watched.get_by_role("button", name="Book")).to_be_disabled()

        mine = (await http.get("/api/slots/bookings?mine=true", headers=world.headers("booker"))).json()["items"]
        assert [(b["resource_id"], b["starts_at"]) for b in mine] == [
            (last_id, free["starts"][0].replace("+00:00", "Z"))
        ] or (len(mine) == 1 and mine[0]["resource_id"] == last_id)
        # Cancelling from my bookings frees it again on the other phone, live.
        listed = booker.locator(f"#bookings [data-booking-id='{mine[0]['id']}']")
        await expect(listed).to_contain_text("Confirmed")
        await listed.get_by_role("button", name="Cancel").click()
        await expect(watched).to_have_attribute("data-free", "1", timeout=LIVE)
        await expect(listed).to_have_attribute("data-status", "cancelled", timeout=LIVE)
        no_errors(booker, watcher)
    finally:
        await booker.context.close()
        await watcher.context.close()


# ------------------------------------------------------------------ 3. a complaint, followed live


async def test_a_complaint_raised_with_a_photo_follows_its_states_live_without_internal_notes(
    server: InProcessServer, world: Any, browser: Any, http: httpx.AsyncClient, tmp_path: Any
) -> None:
    from playwright.async_api import expect

    from app.complaints import config

    await config.put_category(
        world.site_id, config.CategoryInput(code="plumbing", name="Plumbing", skill="plumbing", subcategories=["leak"])
    )
    photo = tmp_path / "sink.jpg"
    photo.write_bytes(jpeg((32, 32)))
    page = await open_app(browser, server, world, "occupant")
    try:
        await tab(page, "Complaints")
        await page.get_by_label("Category").select_option("plumbing")
        await page.get_by_label("What kind").select_option("leak")
        await page.get_by_label("What is wrong").fill("Water leaking under the kitchen sink")
        await page.get_by_label("Photos (optional)").set_input_files(str(photo))
        await page.get_by_role("button", name="Submit complaint").click()
        item = page.locator("#complaints [data-complaint-id]")
        await expect(item).to_have_count(1, timeout=LIVE)
        complaint_id = await item.get_attribute("data-complaint-id")
        detail = page.locator("#complaint-detail")
        await expect(detail).to_have_attribute("data-detail-id", str(complaint_id))
        await expect(detail.get_by_role("img", name="Photo of the problem")).to_be_visible(timeout=LIVE)
        found = (await http.get(f"/api/complaints/{complaint_id}", headers=world.headers("fm_admin"))).json()
        assert len(found["photos"]) == 1 and found["complaint"]["unit_id"] == str(world.unit_ids[0])

        async def moved(response: httpx.Response, status: str) -> None:
            assert response.status_code == 200, response.text
            await expect(item).to_have_attribute("data-status", status, timeout=LIVE)
            await expect(detail).to_have_attribute("data-detail-status", status, timeout=LIVE)

        current = found["complaint"]["status"]
        if current == "open":  # nobody on shift to take it automatically: the FM team assigns
            await moved(
                await http.post(
                    f"/api/complaints/{complaint_id}/assign",
                    json={"technician_id": str(world.people["technician"])},
                    headers=world.headers("fm_admin"),
                ),
                "assigned",
            )
        await expect(detail).to_contain_text("Technician")
        technician = world.headers("technician")
        await moved(
            await http.post(
                f"/api/complaints/{complaint_id}/transitions", json={"to": "in_progress"}, headers=technician
            ),
            "in_progress",
        )
        note = await http.post(
            f"/api/complaints/{complaint_id}/comments",
            json={"body": "STAFF-ONLY: the resident broke the trap", "internal": True},
            headers=world.headers("fm_admin"),
        )
        assert note.status_code == 201, note.text
        public = await http.post(
            f"/api/complaints/{complaint_id}/comments", json={"body": "Plumber arriving at four"}, headers=technician
        )
        assert public.status_code == 201, public.text
        await expect(detail).to_contain_text("Plumber arriving at four", timeout=LIVE)
        await moved(
            await http.post(f"/api/complaints/{complaint_id}/transitions", json={"to": "resolved"}, headers=technician),
            "resolved",
        )
        assert "STAFF-ONLY" not in await page.content()

        # Rate it, then reopen it: both from the page.
        await detail.get_by_label("4", exact=True).check()
        await detail.get_by_role("button", name="Rate").click()
        await expect(detail).to_contain_text("You rated it 4 of 5.", timeout=LIVE)
        await detail.get_by_role("button", name="Reopen").click()
        await expect(item).to_have_attribute("data-status", "reopened", timeout=LIVE)
        after = (await http.get(f"/api/complaints/{complaint_id}", headers=world.headers("fm_admin"))).json()
        assert after["complaint"]["status"] == "reopened" and after["complaint"]["rating"] == 4
        # My own comment goes through too, and the internal note never reached the page. The detail is
        # redrawn when the reopen's event arrives: write the comment after that, not into the old form.
        await expect(detail).to_have_attribute("data-detail-status", "reopened", timeout=LIVE)
        await expect(detail).to_contain_text("Reopened · ", timeout=LIVE)
        await detail.get_by_label("Add a comment").fill("It is leaking again")
        await detail.get_by_role("button", name="Send comment").click()
        await expect(detail).to_contain_text("It is leaking again", timeout=LIVE)
        assert "STAFF-ONLY" not in await page.content()
        no_errors(page)
    finally:
        await page.context.close()


# ------------------------------------------------------------------ 5. preferences


async def test_preferences_quiet_hours_and_snooze_are_saved_and_in_the_consent_history(
    server: InProcessServer, world: Any, browser: Any, http: httpx.AsyncClient
) -> None:
    from playwright.async_api import expect

    page = await open_app(browser, server, world, "occupant")
    headers = world.headers("occupant")
    try:
        await tab(page, "Settings")
        toggle = page.locator("#pref-sms-announcement")
        await expect(toggle).to_be_checked()
        await toggle.uncheck()
        entry = page.locator("#consent-history li[data-channel=sms][data-category=announcement][data-granted=false]")
        await expect(entry).to_have_count(1, timeout=LIVE)
        await expect(entry).to_contain_text("withdrawn")
        prefs = (await http.get("/api/me/notification-preferences?limit=500", headers=headers)).json()["items"]
        assert next(p for p in prefs if (p["channel"], p["category"]) == ("sms", "announcement"))["enabled"] is False
        history = (await http.get("/api/me/consent-history", headers=headers)).json()["items"]
        assert (history[0]["channel"], history[0]["category"], history[0]["granted"], history[0]["source"]) == (
            "sms",
            "announcement",
            False,
            "app",
        )

        await page.get_by_label("From", exact=True).fill("23:00")
        await page.get_by_label("To", exact=True).fill("06:30")
        await page.get_by_label("Time zone").select_option("Asia/Kolkata")
        await page.get_by_role("button", name="Save quiet hours").click()
        await expect(page.locator("#dnd-summary")).to_contain_text("23:00", timeout=LIVE)
        dnd = (await http.get("/api/me/dnd", headers=headers)).json()
        assert dnd["timezone"] == "Asia/Kolkata"
        assert sorted((w["weekday"], w["start"], w["end"]) for w in dnd["quiet_hours"]) == [
            (day, "23:00", "06:30") for day in range(7)
        ]

        before = dt.datetime.now(dt.UTC)
        await page.get_by_label("Pause messages for").select_option("60")
        await page.get_by_role("button", name="Snooze", exact=True).click()
        await expect(page.locator("#snooze-state")).to_have_attribute("data-snoozed", "true", timeout=LIVE)
        until = dt.datetime.fromisoformat((await http.get("/api/me/dnd", headers=headers)).json()["snooze_until"])
        assert before + dt.timedelta(minutes=59) < until < before + dt.timedelta(minutes=61)
        await page.get_by_role("button", name="Stop snoozing").click()
        await expect(page.locator("#snooze-state")).to_have_attribute("data-snoozed", "false", timeout=LIVE)
        assert (await http.get("/api/me/dnd", headers=headers)).json()["snooze_until"] is None
        no_errors(page)
    finally:
        await page.context.close()


# ------------------------------------------------------------------ 6. my data


async def test_my_data_export_becomes_downloadable_and_erasure_shows_its_status(
    server: InProcessServer, world: Any, browser: Any, http: httpx.AsyncClient, redis: Any, settings: Any
) -> None:
    from playwright.async_api import expect

    page = await open_app(browser, server, world, "occupant")
    try:
        await tab(page, "Settings")
        await expect(page.locator("#mydata")).to_contain_text("Occupant")
        await page.get_by_role("button", name="Request export").click()
        pending = page.locator("#exports li[data-status=pending]")
        await expect(pending).to_have_count(1, timeout=LIVE)
        export_id = UUID(str(await pending.get_attribute("data-export-id")))
        # What the worker's privacy_export job does (no worker runs in this test).
        built = await exports.build_export(settings, redis, directory_for(settings), export_id)
        assert built is not None and built.status == "ready"
        link = page.locator(f"#exports li[data-export-id='{export_id}'] a")
        await expect(link).to_be_visible(timeout=LIVE)
        download = await page.request.get(str(await link.get_attribute("href")))
        assert download.status == 200 and download.headers["content-type"] == "application/zip"
        assert (await DataExport.select(DataExport.status).where(DataExport.id == export_id).first()) == {
            "status": "ready"
        }

        await page.get_by_label("Anything we should know (optional)").fill("Moving out")
        await page.get_by_role("button", name="Request erasure").click()
        erasure = page.locator("#data-requests li[data-kind=erasure]")
        await expect(erasure).to_have_attribute("data-status", "open", timeout=LIVE)
        request_id = await erasure.get_attribute("data-request-id")
        acknowledged = await http.post(
            f"/api/privacy/requests/{request_id}/acknowledge", headers=world.headers("site_admin")
        )
        assert acknowledged.status_code == 200, acknowledged.text
        await expect(erasure).to_have_attribute("data-status", "acknowledged", timeout=LIVE)
        await expect(erasure).to_contain_text("Acknowledged")
        no_errors(page)
    finally:
        await page.context.close()


# ------------------------------------------------------------------ 7. the notification feed


async def test_a_new_notification_arrives_live_and_reading_it_lowers_the_badge(
    server: InProcessServer, world: Any, browser: Any, http: httpx.AsyncClient, redis: Any, settings: Any
) -> None:
    from playwright.async_api import expect

    page = await open_app(browser, server, world, "occupant")
    other_device = await open_app(browser, server, world, "occupant", DESKTOP)
    try:
        badge = page.locator("#unread-count")
        await expect(badge).to_have_text("0")
        created = await http.post(
            "/api/announcements",
            json={
                "title": "Water off at ten",
                "body": "Tower A water is off 10:00-12:00",
                "category": "announcement",
                "audience": {"person_ids": [str(world.people["occupant"])]},
                "channels": ["in_app"],
            },
            headers=world.headers("fm_admin"),
        )
        assert created.status_code == 201, created.text
        # What the worker's notify jobs do, with the in-app channel announcing on the person's topic.
        ctx = NotifyContext(
            settings=settings,
            redis=redis,
            directory=directory_for(settings),
            providers=Providers({Channel.IN_APP: InAppAdapter(feed_announcer(redis, settings))}, {}, None),
        )
        await fanout.expand(ctx, UUID(created.json()["id"]))
        await sender.send_pending(ctx, UUID(created.json()["id"]), Channel.IN_APP)
        await expect(badge).to_have_text("1", timeout=LIVE)
        await expect(other_device.locator("#unread-count")).to_have_text("1", timeout=LIVE)
        entry = page.locator("#feed li", has_text="Water off at ten")
        await expect(entry).to_have_attribute("data-read", "false")
        await entry.get_by_role("button", name="Mark read").click()
        await expect(badge).to_have_text("0", timeout=LIVE)
        await expect(entry).to_have_attribute("data-read", "true")
        # The other device hears of the read and clears its badge too.
        await expect(other_device.locator("#unread-count")).to_have_text("0", timeout=LIVE)
        feed = (await http.get("/api/me/notifications?unread_only=true", headers=world.headers("occupant"))).json()
        assert feed["unread"] == 0
        no_errors(page, other_device)
    finally:
        await page.context.close()
        await other_device.context.close()


# ------------------------------------------------------------------ 8. accessibility and screenshots


async def test_every_section_passes_axe_at_phone_and_desktop_widths(
    server: InProcessServer, world: Any, browser: Any, http: httpx.AsyncClient
) -> None:
    from playwright.async_api import expect

    from app.complaints import config

    await config.put_category(
        world.site_id, config.CategoryInput(code="electrical", name="Electrical", skill="electrical")
    )
    await config.put_shifts(world.site_id, world.people["technician"], config.ShiftsInput(shifts=ALL_DAY))
    raised = await http.post(
        "/api/complaints",
        json={"category": "electrical", "description": "Corridor light flickers", "unit_id": str(world.unit_ids[0])},
        headers=world.headers("occupant"),
    )
    assert raised.status_code == 201, raised.text
    await http.post(
        "/api/slots/resources",
        json={"category": "amenity", "code": "POOL", "name": "Swimming pool"},
        headers=world.headers("fm_admin"),
    )
    await http.post("/api/me/data-requests", json={"kind": "erasure", "details": ""}, headers=world.headers("occupant"))
    for viewport, name in ((PHONE, "occupant-360"), (DESKTOP, "occupant-1280")):
        page = await open_app(browser, server, world, "occupant", viewport)
        try:
            walk_in = await http.post(
                "/api/visitors/walk-ins",
                data={"unit_id": str(world.unit_ids[0]), "name": f"Visitor {name}", "kind": "guest"},
                files={"photo": ("v.jpg", jpeg(), "image/jpeg")},
                headers=world.headers("guard"),
            )
            assert walk_in.status_code == 201, walk_in.text
            await expect(page.locator(f"[data-approval-id='{walk_in.json()['approval_id']}']")).to_be_visible(
                timeout=LIVE
            )
            await expect(page.locator(f"[data-complaint-id='{raised.json()['id']}']")).to_have_count(1)
            await screenshot(page, name)
            for section in ("Home", "Visitors", "Complaints", "Bookings", "Permits", "Bills", "Settings"):
                await tab(page, section)
                await expect(page.locator(f"#panel-{section.lower()}")).to_be_visible()
                if section == "Complaints":
                    await page.locator(f"[data-complaint-id='{raised.json()['id']}']").get_by_role("button").click()
                    await expect(page.locator("#complaint-detail")).to_be_visible()
                if section == "Bookings":
                    await expect(page.locator("#resources [data-resource-id]")).to_have_count(1)
                if section == "Settings":
                    await expect(page.locator("#prefs input")).not_to_have_count(0)
                if section == "Permits":
                    await expect(page.locator("#p-type option")).to_have_count(6)
                await screenshot(page, f"{name}-{section.lower()}")
                assert await serious_accessibility_violations(page) == [], (name, section)
                # Nothing wider than the phone: no sideways scrolling.
                assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), (name, section)
            if viewport is PHONE:  # the sheet of the sections behind "More", open
                await page.locator("#occ-more").click()
                await expect(page.locator("#occ-extra")).to_be_visible()
                await screenshot(page, f"{name}-more")
                assert await serious_accessibility_violations(page) == [], (name, "More")
            no_errors(page)
        finally:
            await page.context.close()


SECTIONS = ("home", "visitors", "complaints", "bookings", "permits", "bills", "settings")
BEHIND_MORE = ("permits", "bills", "settings")

# Each visible tab (and More): inside the screen, at least 44 px square, its label on one line (no word
# broken in two) and not cut or overflowing.
BAR_FITS = """() => [...document.querySelectorAll('.occ-bar [role="tab"], #occ-more')].map((item) => {
  const box = item.getBoundingClientRect();
  const label = item.querySelector(".occ-label");
  const text = document.createRange();
  text.selectNodeContents(label);
  const lines = new Set([...text.getClientRects()].filter((r) => r.width > 0).map((r) => Math.round(r.top)));
  const edge = label.getBoundingClientRect();
  return {
    id: item.id,
    text: label.textContent,
    inside: box.left >= 0 && box.right <= window.innerWidth + 0.5,
    big: box.width >= 44 && box.height >= 44,
    label: lines.size === 1 && edge.left >= box.left - 0.5 && edge.right <= box.right + 0.5
      && item.scrollWidth <= item.clientWidth,
  };
})"""


@pytest.mark.parametrize("locale", ["en-IN", "hi-IN"])
async def test_seven_sections_on_a_360_px_phone_a_bar_of_four_and_more(
    server: InProcessServer, world: Any, browser: Any, locale: str
) -> None:
    """On a 360 px phone, in English and in Hindi: a bar of four tabs and More that fit without cutting a
    label; More opens the other three and then names the one open; every section opens from its link
    (?section=) and the address follows the open section; the keyboard reaches every section; axe finds
    nothing serious with the sheet open. From 900 px all seven are tabs and More is gone."""
    from playwright.async_api import expect

    page = await signed_in_page(browser, server.http_url, world, "occupant", "/app", viewport=PHONE, locale=locale)
    try:
        await expect(page.locator("html")).to_have_attribute("lang", locale[:2])
        more, sheet = page.locator("#occ-more"), page.locator("#occ-extra")
        tab = {key: page.locator(f'[role="tab"][data-tab="{key}"]') for key in SECTIONS}
        assert await page.locator('[role="tablist"] [role="tab"]').count() == len(SECTIONS)
        for key in SECTIONS:
            await expect(tab[key]).to_be_visible(visible=key not in BEHIND_MORE)
        fits = await page.evaluate(BAR_FITS)
        assert len(fits) == 5 and all(item["inside"] and item["big"] and item["label"] for item in fits), fits
        await screenshot(page, f"occupant-360-{locale}-bar")

        # every section from its link; the sheet's sections are named on More
        for key in SECTIONS:
            await page.goto(f"/app?section={key}")
            await expect(tab[key]).to_have_attribute("aria-selected", "true")
            await expect(page.locator(f"#panel-{key}")).to_be_visible()
            assert await page.locator(".occ-panel:not([hidden])").count() == 1, key
            label = await tab[key].locator(".occ-label").text_content()
            if key in BEHIND_MORE:
                await expect(more).to_have_class("occ-more current")
                await expect(more).to_contain_text(label or "")
                fits = await page.evaluate(BAR_FITS)  # More names the section now: still one line
                assert all(item["label"] for item in fits), fits
            else:
                await expect(more).not_to_have_class("occ-more current")
        assert page.url.endswith("?section=settings")

        # More opens the sheet; a tab there opens its section, closes the sheet and More names it
        await page.goto("/app")
        await expect(sheet).to_be_hidden()
        await more.click()
        await expect(more).to_have_attribute("aria-expanded", "true")
        await expect(sheet).to_be_visible()
        await tab["bills"].click()
        await expect(sheet).to_be_hidden()
        await expect(page.locator("#panel-bills")).to_be_visible()
        await expect(more).to_contain_text(await tab["bills"].locator(".occ-label").text_content() or "")
        assert page.url.endswith("?section=bills")
        # a tap outside closes it
        await more.click()
        await expect(sheet).to_be_visible()
        await page.locator(".occ-title").click()
        await expect(sheet).to_be_hidden()

        # the keyboard: arrows walk all seven tabs, opening and closing the sheet on the way; Escape closes
        await tab["bookings"].click()
        await tab["bookings"].press("ArrowRight")
        await expect(tab["permits"]).to_be_focused()
        await expect(tab["permits"]).to_have_attribute("aria-selected", "true")
        await expect(more).to_have_attribute("aria-expanded", "true")
        await tab["permits"].press("ArrowDown")
        await expect(tab["bills"]).to_be_focused()
        await tab["bills"].press("Escape")
        await expect(sheet).to_be_hidden()
        await expect(more).to_be_focused()
        await more.press("ArrowUp")
        await expect(tab["bills"]).to_be_focused()
        await tab["bills"].press("End")
        await expect(tab["settings"]).to_have_attribute("aria-selected", "true")
        await tab["settings"].press("ArrowRight")
        await expect(tab["home"]).to_be_focused()
        await expect(sheet).to_be_hidden()
        await expect(page.locator("#panel-home")).to_be_visible()

        await more.click()
        await screenshot(page, f"occupant-360-{locale}-more")
        assert await serious_accessibility_violations(page) == [], locale
        assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

        await page.set_viewport_size(DESKTOP)
        await expect(more).to_be_hidden()
        for key in SECTIONS:
            await expect(tab[key]).to_be_visible()
        row = await page.evaluate(
            """() => [...document.querySelectorAll('[role="tab"]')].map((item) => {
              const box = item.getBoundingClientRect();
              return [box.left, box.right, box.top, item.scrollWidth <= item.clientWidth];
            })"""
        )
        # one row, in order, none overlapping the next, no label overflowing its tab
        assert all(fits for *_, fits in row), row
        assert all(a[1] <= b[0] + 0.5 and a[2] == b[2] for a, b in itertools.pairwise(row)), row
        await screenshot(page, f"occupant-1280-{locale}-tabs")
        no_errors(page)
    finally:
        await page.context.close()


async def test_a_visitor_who_arrived_before_the_app_opened_is_waiting_there_and_only_for_the_unit(
    server: InProcessServer, world: Any, browser: Any, http: httpx.AsyncClient
) -> None:
    from playwright.async_api import expect

    unit = world.unit_ids[5]
    await add_occupant(world, "late_opener", unit)
    await add_occupant(world, "flatmate", unit)
    await add_occupant(world, "neighbour", world.unit_ids[6])
    walk_ins = []
    for name in ("Early Electrician", "Answered Aunt"):
        created = await http.post(
            "/api/visitors/walk-ins",
            files={"unit_id": (None, str(unit)), "name": (None, name), "kind": (None, "service")},
            headers=world.headers("guard"),
        )
        assert created.status_code == 201, created.text
        walk_ins.append(created.json()["approval_id"])
    answered = await http.post(
        f"/api/visitors/approvals/{walk_ins[1]}/answer", json={"decision": "denied"}, headers=world.headers("flatmate")
    )
    assert answered.status_code == 200 and answered.json()["decided_by_name"] == "Flatmate", answered.text
    # The occupant list: this unit's requests, newest first; nothing for a neighbour's phone.
    mine = (await http.get("/api/visitors/approvals", headers=world.headers("late_opener"))).json()["items"]
    assert [a["id"] for a in mine] == [walk_ins[1], walk_ins[0]]
    assert (await http.get("/api/visitors/approvals", headers=world.headers("neighbour"))).json()["items"] == []
    assert (await http.get("/api/visitors/approvals", headers=world.headers("guard"))).status_code == 403

    page = await open_app(browser, server, world, "late_opener")
    try:
        waiting = page.locator(f"[data-approval-id='{walk_ins[0]}']")
        await expect(waiting).to_have_attribute("data-status", "pending")
        done = page.locator(f"[data-approval-id='{walk_ins[1]}']")
        await expect(done).to_have_attribute("data-status", "denied")
        await expect(done).to_contain_text("Denied by Flatmate")
        await waiting.get_by_role("button", name="Leave at gate").click()
        await expect(waiting).to_have_attribute("data-status", "leave_at_gate", timeout=LIVE)
        row = (
            await VisitorApproval.select(VisitorApproval.status).where(VisitorApproval.id == UUID(walk_ins[0])).first()
        )
        assert row == {"status": "leave_at_gate"}
        no_errors(page)
    finally:
        await page.context.close()
