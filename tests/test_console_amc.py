"""The maintenance and QR screens in a real browser (real uvicorn, websockets, chromium, no reloads where live):

1. An overdue visit appears on the control room's live board over /ws the moment the reminders cron finds it.
2. The FM team adds an asset and a contract from /control/assets, records a visit with its checklist and
   a photo on the asset's page, and its history shows it; the asset's QR image decodes to its public page.
3. A resident scans a place's code: the public page (no sign-in), "Report a problem" asks to sign in, then
   the report is sent and names the place; axe finds nothing serious on the public, report and asset pages.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
import zxingcpp
from PIL import Image
from playwright.async_api import expect

from app.amc import reminders
from app.amc.schedule import Frequency
from app.complaints import config as complaint_config
from schema.amc import MaintenanceContract
from schema.complaints import Complaint
from tests.support.amc import contract, lift
from tests.support.browser import DESKTOP, PHONE, WALL, screenshot, serious_accessibility_violations, signed_in_page
from tests.support.servers import FAST, InProcessServer
from tests.support.world import PASSWORD, World


@pytest.fixture(scope="module")
async def server(settings: Any) -> AsyncIterator[InProcessServer]:
    running = InProcessServer(settings, FAST)
    await running.start()
    yield running
    await running.stop()


async def test_an_overdue_visit_appears_on_the_live_board(
    server: InProcessServer, world: World, browser: Any, redis: Any, settings: Any
) -> None:
    asset = await lift(world, name="Lift C2")
    today = dt.datetime.now(dt.UTC).date()
    # A visit two days ago, still inside a five-day grace: due, not overdue.
    made = await contract(
        world,
        redis,
        asset.id,
        starts_on=today - dt.timedelta(days=2),
        ends_on=today + dt.timedelta(days=300),
        frequency=Frequency.QUARTERLY,
        grace=5,
    )
    page = await signed_in_page(browser, server.http_url, world, "fm_admin", "/control", viewport=WALL)
    try:
        await expect(page.locator("#conn-state")).to_have_attribute("data-state", "online", timeout=5000)
        await expect(page.locator("#amc-due-count")).to_have_text("1", timeout=5000)
        await expect(page.locator("#amc-overdue-count")).to_have_text("0")
        # Time passes (the grace is shortened under the page, which is told nothing), then the cron runs.
        await MaintenanceContract.update({MaintenanceContract.sla_visit_grace_days: 0}).where(
            MaintenanceContract.id == made.id
        )
        assert await reminders.run(settings, redis, site_ids=[world.site_id]) == 1
        overdue = page.locator("#amc-overdue li.breached")
        await expect(overdue).to_have_count(1, timeout=3000)
        await expect(overdue).to_contain_text("Lift C2")
        await expect(page.locator("#amc-overdue-count")).to_have_text("1")
        # A second run publishes nothing new, and the page keeps one row.
        assert await reminders.run(settings, redis, site_ids=[world.site_id]) == 0
        await expect(overdue).to_have_count(1)
        assert page.script_errors == []  # type: ignore[attr-defined]
        await screenshot(page, "control-maintenance-1920")
    finally:
        await page.context.close()


async def test_assets_contract_and_a_recorded_visit_from_the_control_room(
    server: InProcessServer, world: World, browser: Any
) -> None:
    page = await signed_in_page(browser, server.http_url, world, "fm_admin", "/control/assets", viewport=DESKTOP)
    try:
        form = page.locator('form[data-action="create-asset"]')
        await form.locator('[name="code"]').fill("PUMP-1")
        await form.locator('[name="kind"]').select_option("pump")
        await form.locator('[name="name"]').fill("Borewell pump 1")
        await form.locator('[name="floor"]').fill("B2")
        await form.get_by_role("button", name="Add asset").click()
        await expect(page.locator("#asset-table")).to_contain_text("Borewell pump 1", timeout=5000)
        today = dt.datetime.now(dt.UTC).date()
        contract_form = page.locator('form[data-action="create-contract"]')
        await contract_form.locator('[name="vendor"]').fill("Kirloskar Service")
        await contract_form.locator('[name="starts_on"]').fill((today - dt.timedelta(days=1)).isoformat())
        await contract_form.locator('[name="ends_on"]').fill((today + dt.timedelta(days=360)).isoformat())
        await contract_form.locator('[name="frequency"]').select_option("quarterly")
        await contract_form.locator('[name="cost"]').fill("48,000.50")
        await contract_form.get_by_role("button", name="Add contract and schedule").click()
        await expect(page.locator("#contract-table")).to_contain_text("₹48,000.50", timeout=5000)
        await expect(page.locator("#contract-table")).to_contain_text("0 / 4")
        # A bad amount is refused in the page, by the field.
        await contract_form.locator('[name="vendor"]').fill("Another")
        await contract_form.locator('[name="starts_on"]').fill(today.isoformat())
        await contract_form.locator('[name="ends_on"]').fill(today.isoformat())
        await contract_form.locator('[name="cost"]').fill("12.345")
        await contract_form.get_by_role("button", name="Add contract and schedule").click()
        await expect(contract_form.locator(".error")).to_be_visible()

        await page.get_by_role("link", name="PUMP-1").first.click()
        await page.wait_for_url("**/control/assets/*")
        first = page.locator("#visit-list > li").last  # newest due date first: the last is the first visit
        await expect(first).to_have_attribute("data-state", "due")
        await first.locator('input[name="checklist"]').first.check()
        await first.locator('textarea[name="notes"]').fill("Impeller cleaned; pressure 3.2 bar.")
        await first.locator('input[name="photo"]').set_input_files(
            files=[{"name": "report.png", "mimeType": "image/png", "buffer": _png()}]
        )
        await first.get_by_role("button", name="Save visit").click()
        done = page.locator('#visit-list > li[data-state="done"]')
        await expect(done).to_have_count(1, timeout=5000)
        await expect(done).to_contain_text("Impeller cleaned")
        await expect(done.locator("img.thumb")).to_have_count(1)
        await expect(done).to_contain_text("✓ Pressure and flow")
        qr = page.locator("#asset-qr")
        code = await qr.get_attribute("data-code")
        png = await page.request.get(
            f"{server.http_url}/api/places/{(await qr.get_attribute('src') or '').split('/')[3]}/qr.png"
        )
        assert zxingcpp.read_barcodes(Image.open(io.BytesIO(await png.body())))[0].text.endswith(f"/q/{code}")
        assert await serious_accessibility_violations(page) == []
        assert page.script_errors == []  # type: ignore[attr-defined]
        await screenshot(page, "control-asset-1280")
    finally:
        await page.context.close()


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (30, 90, 160)).save(buffer, format="PNG")
    return buffer.getvalue()


async def test_a_scanned_code_opens_the_place_and_a_report_names_it(
    server: InProcessServer, world: World, browser: Any
) -> None:
    await complaint_config.put_category(world.site_id, complaint_config.CategoryInput(code="lift", name="Lift"))
    asset = await lift(world, name="Lift D1")
    context = await browser.new_context(viewport=PHONE, base_url=server.http_url, is_mobile=True)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        await page.goto(f"/q/{asset.qr_code}")
        await expect(page.locator("h1")).to_have_text("Lift D1")
        await expect(page.locator(".place-where")).to_contain_text("Tower A")
        assert await serious_accessibility_violations(page) == []
        await screenshot(page, "place-public-360")
        await page.get_by_role("link", name="Report a problem").click()
        await page.wait_for_url(re.compile(r"/login\?next=/app/report/"))  # asks to sign in
        await page.fill("#username", world.emails["occupant"])
        await page.fill("#password", PASSWORD)
        await page.click("button[type=submit]")
        await page.wait_for_url(f"**/app/report/{asset.qr_code}")
        await expect(page.locator("#report-place")).to_contain_text("Lift D1")
        assert await serious_accessibility_violations(page) == []
        await page.fill("#r-description", "Lift stops a few cm below the floor")
        await page.get_by_role("button", name="Send").click()
        await expect(page.locator("#report-done")).to_be_visible(timeout=5000)
        complaint_id = await page.locator("#report-done").get_attribute("data-complaint-id")
        row = (
            await Complaint.select(Complaint.asset, Complaint.place, Complaint.raised_by)
            .where(Complaint.id == complaint_id)
            .first()
        )
        assert row == {"asset": asset.id, "place": asset.place_id, "raised_by": world.people["occupant"]}
        assert errors == []
    finally:
        await context.close()


async def test_places_are_added_printed_and_their_codes_replaced(
    server: InProcessServer, world: World, browser: Any
) -> None:
    page = await signed_in_page(browser, server.http_url, world, "fm_admin", "/control/places", viewport=DESKTOP)
    page.on("dialog", lambda dialog: dialog.accept())
    try:
        form = page.locator('form[data-action="create-place"]')
        await form.locator('[name="name"]').fill("Rooftop garden")
        await form.locator('[name="floor"]').fill("Roof")
        await form.locator('[name="directions"]').fill("Lift A1 to the top, then one flight up")
        await form.locator('[name="opens"]').fill("06:00")
        await form.locator('[name="closes"]').fill("21:00")
        await form.get_by_role("button", name="Add place and code").click()
        row = page.locator("#place-table tr", has_text="Rooftop garden")
        await expect(row).to_have_count(1, timeout=5000)
        first_code = await row.get_attribute("data-code")
        assert first_code
        sheet = await page.request.get(
            f"{server.http_url}/api/places/sheet.pdf?place_id={await row.get_attribute('data-place-id')}"
        )
        assert sheet.headers["content-type"] == "application/pdf"
        await row.get_by_role("button", name="Replace code").click()
        await expect(row).not_to_have_attribute("data-code", first_code, timeout=5000)
        await expect(row).to_contain_text("1 revoked")
        gone = await page.request.get(f"{server.http_url}/q/{first_code}")
        assert gone.status == 410
        assert await serious_accessibility_violations(page) == []
        await page.goto("/control/assets")
        assert await serious_accessibility_violations(page) == []
        assert page.script_errors == []  # type: ignore[attr-defined]
        await screenshot(page, "control-assets-1280")
    finally:
        await page.context.close()
