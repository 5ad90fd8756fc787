"""Permits and staff attendance on the consoles, in real chromium against the real app under uvicorn.

- The guard console checks vendors against their permits: one named on a permit that is valid now is
  shown with the permit and let in; one whose permit starts later, or ended, is refused with the reason.
  The guard checks staff in at the gate. Nothing is reloaded: the lists follow the gate topic.
- The occupant applies for a permit, follows its steps live, and resubmits it when it is sent back.
- The control room decides permits from its queue and sees late staff on its board live.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from playwright.async_api import expect

from app.attendance.alerts import check_attendance
from schema.attendance import Punch
from schema.permits import PermitEntry
from tests.support.attendance import rostered
from tests.support.browser import (
    DESKTOP,
    PHONE,
    open_occupant_section,
    screenshot,
    serious_accessibility_violations,
    signed_in_page,
)
from tests.support.ids_permits import approved_vendor_permit
from tests.support.servers import FAST, InProcessServer

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

# A moment (ms since the epoch) as a datetime-local input's value, in the browser's own clock.
LOCAL_INPUT = """(ms) => {
  const d = new Date(ms), p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}"""


@pytest.fixture(scope="module")
async def server(settings: Any) -> AsyncIterator[InProcessServer]:
    running = InProcessServer(settings, FAST)
    await running.start()
    yield running
    await running.stop()


@pytest.fixture
async def http(server: InProcessServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as client:
        yield client


async def open_guard(browser: Any, server: InProcessServer, world: Any) -> Any:
    page = await signed_in_page(browser, server.http_url, world, "guard", "/guard", viewport=DESKTOP)
    await expect(page.locator("#conn-state")).to_have_attribute("data-state", "online", timeout=5000)
    return page


async def test_the_guard_lets_a_vendor_in_only_inside_the_permits_window(
    server: InProcessServer, world: Any, browser: Any, settings: Any, redis: Any
) -> None:
    now = dt.datetime.now(dt.UTC)
    valid = await approved_vendor_permit(
        world, settings, redis, start=now - dt.timedelta(hours=1), phone="+919800000101", plate="KA05MN4321"
    )
    later = await approved_vendor_permit(
        world, settings, redis, start=now + dt.timedelta(days=2), phone="+919800000102"
    )
    three_days_ago = now - dt.timedelta(days=3)
    ended = await approved_vendor_permit(
        world, settings, redis, start=three_days_ago, phone="+919800000103", now=three_days_ago - dt.timedelta(hours=1)
    )
    page = await open_guard(browser, server, world)
    try:
        today = page.locator("#permits-today li[data-permit-id]")
        await expect(today).to_have_count(1, timeout=3000)
        await expect(today).to_have_attribute("data-permit-id", str(valid.id))
        query = page.get_by_label("Vendor's mobile, vehicle plate or permit number")
        result = page.locator("#permit-result .result")

        # Before its window: refused, with when it starts.
        await query.fill("98000 00102")
        await page.get_by_role("button", name="Check permit").click()
        await expect(result).to_have_attribute("data-outcome", "refused", timeout=3000)
        await expect(result).to_have_attribute("data-reason", "not_yet_valid")
        await expect(result.locator("[data-role=reason]")).to_contain_text(f"Permit {later.reference} is not valid yet")
        await expect(result.get_by_role("button", name="Let in")).to_have_count(0)

        # After it: refused, with when it ended.
        await query.fill("+91 98000 00103")
        await page.get_by_role("button", name="Check permit").click()
        await expect(result).to_have_attribute("data-reason", "expired", timeout=3000)
        await expect(result.locator("[data-role=reason]")).to_contain_text(f"Permit {ended.reference} has expired")

        # Inside it: recognised by the plate, the permit shown, then the vendor let in.
        await query.fill("ka 05 mn 4321")
        await page.get_by_role("button", name="Check permit").click()
        await expect(result).to_have_attribute("data-outcome", "valid", timeout=3000)
        card = result.locator(".permit-card")
        await expect(card).to_have_attribute("data-reference", valid.reference)
        await expect(card).to_contain_text("AC servicing")
        await expect(card).to_contain_text("A-101")
        await expect(card).to_contain_text("Approved by Fm Admin (FM desk)")
        await screenshot(page, "guard-permit-valid")
        assert await serious_accessibility_violations(page) == []
        await card.get_by_role("button", name="Let Anil Vendor in").click()
        await expect(result).to_have_attribute("data-outcome", "checked_in", timeout=3000)
        await expect(card.locator("li[data-inside='1']")).to_contain_text("Anil Vendor")
        await expect(today.locator(".badge")).to_have_text("1 inside", timeout=3000)
        entries = await PermitEntry.select().where(PermitEntry.permit == valid.id)
        assert len(entries) == 1 and entries[0]["gate"] == "main"
        assert page.script_errors == []
    finally:
        await page.context.close()


async def test_the_guard_checks_staff_in_and_the_list_follows_live(
    server: InProcessServer, world: Any, browser: Any, http: httpx.AsyncClient, settings: Any
) -> None:
    member = await rostered(
        world, settings, "Savitri Housekeeping", weekdays=tuple(range(7)), start="00:00", end="23:59"
    )
    page = await open_guard(browser, server, world)
    try:
        row = page.locator(f"#staff-list li[data-staff-id='{member}']")
        await expect(row).to_have_attribute("data-inside", "0", timeout=3000)
        await row.get_by_role("button", name="Check Savitri Housekeeping in").click()
        await expect(row).to_have_attribute("data-inside", "1", timeout=3000)
        punches = await Punch.select(Punch.kind, Punch.source, Punch.gate).where(Punch.staff == member)
        assert punches == [{"kind": "in", "source": "gate", "gate": "main"}]
        # Another guard checks them out from elsewhere: this console follows.
        out = await http.post(
            f"/api/attendance/staff/{member}/punch", json={"kind": "out"}, headers=world.headers("fm_admin")
        )
        assert out.status_code == 201, out.text
        await expect(row).to_have_attribute("data-inside", "0", timeout=3000)
        assert page.script_errors == []
    finally:
        await page.context.close()


async def test_an_occupant_applies_follows_and_resubmits_a_permit(
    server: InProcessServer, world: Any, browser: Any, http: httpx.AsyncClient
) -> None:
    page = await signed_in_page(browser, server.http_url, world, "occupant", "/app", viewport=PHONE)
    try:
        await expect(page.locator("#conn-state")).to_have_attribute("data-state", "online", timeout=5000)
        await open_occupant_section(page, "Permits")
        form = page.locator("form#permit-form")
        await form.get_by_label("Permit type").select_option("vendor_access")
        await form.get_by_label("What is it for").fill("AC servicing")
        start = (dt.datetime.now() + dt.timedelta(days=1)).replace(hour=10, minute=0, second=0, microsecond=0)
        await form.get_by_label("Starts").fill(start.strftime("%Y-%m-%dT%H:%M"))
        await form.get_by_label("Ends").fill((start + dt.timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M"))
        await form.get_by_label("Vendor (company)").fill("CoolAir")
        await form.get_by_label("Purpose").fill("Service the split ACs")
        await form.get_by_label("The vendor's people stay in the areas of the work.").check()
        await form.get_by_label("Name of person 1").fill("Anil Vendor")
        await form.get_by_label("Mobile of person 1").fill("+919800000201")
        await form.get_by_role("button", name="Submit for approval").click()
        item = page.locator("#permits li[data-permit-id]")
        await expect(item).to_have_count(1, timeout=3000)
        await expect(item).to_have_attribute("data-status", "pending")
        permit_id = await item.get_attribute("data-permit-id")

        # The FM desk sends it back: the app shows why, live; the occupant edits and resubmits.
        back = await http.post(
            f"/api/permits/{permit_id}/decision",
            json={"decision": "send_back", "reason": "Name the second technician too"},
            headers=world.headers("fm_admin"),
        )
        assert back.status_code == 200, back.text
        await expect(item).to_have_attribute("data-status", "changes_requested", timeout=3000)
        await item.get_by_role("button", name="Open").click()
        detail = page.locator("#permit-detail")
        await expect(detail).to_contain_text("Name the second technician too")
        await detail.get_by_role("button", name="Edit and resubmit").click()
        await form.get_by_label("Name of person 2").fill("Ravi Vendor")
        await form.get_by_role("button", name="Resubmit for approval").click()
        await expect(item).to_have_attribute("data-status", "pending", timeout=3000)
        approved = await http.post(
            f"/api/permits/{permit_id}/decision", json={"decision": "approve"}, headers=world.headers("fm_admin")
        )
        assert approved.status_code == 200, approved.text
        await expect(item).to_have_attribute("data-status", "approved", timeout=3000)
        await expect(page.locator("#permit-detail .steps li")).to_have_count(4, timeout=3000)
        await screenshot(page, "occupant-permit-360")
        assert await serious_accessibility_violations(page) == []
        assert page.script_errors == []
    finally:
        await page.context.close()


async def test_the_control_room_decides_permits_and_sees_late_staff_live(
    server: InProcessServer, world: Any, browser: Any, settings: Any, redis: Any
) -> None:
    now = dt.datetime.now(dt.UTC)
    permit = await _pending_vendor_permit(world, settings, redis, now)
    page = await signed_in_page(
        browser, server.http_url, world, "fm_admin", "/control", viewport={"width": 1920, "height": 1080}
    )
    try:
        await expect(page.locator("#conn-state")).to_have_attribute("data-state", "online", timeout=5000)
        queued = page.locator(f"#permit-queue li[data-permit-id='{permit.id}']")
        await expect(queued).to_have_attribute("data-status", "pending", timeout=3000)
        await queued.get_by_role("button", name="Approve").click()
        await expect(page.locator(f"#permit-queue li[data-permit-id='{permit.id}']")).to_have_count(0, timeout=3000)

        # A shift began 30 minutes ago (site time) and nobody came: the board shows them late, live.
        began = now.astimezone(dt.timezone(dt.timedelta(hours=5, minutes=30))) - dt.timedelta(minutes=30)
        start, end = began.strftime("%H:%M"), (began + dt.timedelta(hours=3)).strftime("%H:%M")
        member = await rostered(
            world, settings, "Suresh Guard", category="guard", weekdays=(began.weekday(),), start=start, end=end
        )
        await check_attendance(settings, redis, now)
        row = page.locator(f"#attendance-board li[data-staff-id='{member}']")
        await expect(row).to_have_attribute("data-state", "not_arrived", timeout=5000)
        await expect(page.locator("#attendance-alerts li")).to_contain_text("Suresh Guard is late")
        # The sheet of the month for them, from the page, with its CSV link.
        await page.get_by_label("Staff member").select_option(str(member))
        await page.get_by_role("button", name="Show the sheet").click()
        await expect(page.locator("#sheet-rows tr")).not_to_have_count(0, timeout=3000)
        await expect(page.locator("#sheet-csv")).to_have_attribute(
            "href", re.compile(rf"/api/attendance/staff/{member}/sheet.csv\?month=\d{{4}}-\d\d")
        )
        # A supervisor adds the check-in the guard missed, with the reason; the record shows both.
        await page.get_by_label("Reason for a correction").fill("Came by the service gate")
        missed = (began + dt.timedelta(minutes=5)).timestamp() * 1000
        await page.get_by_label("When").fill(await page.evaluate(LOCAL_INPUT, missed))
        await page.get_by_role("button", name="Add the missed one").click()
        added = page.locator("#sheet-punches li[data-source='correction']")
        await expect(added).to_contain_text("Came by the service gate", timeout=3000)
        stored = await Punch.select(Punch.source, Punch.kind).where(Punch.staff == member)
        assert stored == [{"source": "correction", "kind": "in"}]
        await screenshot(page, "control-operations-1920")
        assert await serious_accessibility_violations(page) == []
        assert page.script_errors == []
    finally:
        await page.context.close()


async def _pending_vendor_permit(world: Any, settings: Any, redis: Any, now: dt.datetime) -> Any:
    from app.permits import service
    from tests.support.permits import principal

    who = principal(world, "occupant")
    draft = await service.apply(
        settings,
        redis,
        who,
        service.PermitInput(
            type="vendor_access",
            title="Pest control",
            unit_id=world.unit_ids[0],
            valid_from=now + dt.timedelta(days=1),
            valid_until=now + dt.timedelta(days=1, hours=4),
            values={"vendor": "BugsGone", "purpose": "Kitchen"},
            declarations=["escort"],
        ),
    )
    return await service.submit(settings, redis, who, draft.id, service.VersionInput())


async def test_a_guard_checks_in_from_their_phone_only_inside_the_geofence(
    server: InProcessServer, world: Any, browser: Any, settings: Any
) -> None:
    from app.attendance import config as cfg
    from tests.support.attendance import FAR, NEAR, geofenced

    await geofenced(world)
    await cfg.add_staff(
        settings, world.site_id, cfg.StaffInput(name="Ramesh", category="guard", person_id=world.people["guard"])
    )
    page = await signed_in_page(browser, server.http_url, world, "guard", "/attendance", viewport=PHONE)
    try:
        await page.context.grant_permissions(["geolocation"], origin=server.http_url)
        await page.context.set_geolocation({"latitude": FAR[0], "longitude": FAR[1], "accuracy": 15})
        await expect(page.locator("#me-status")).to_have_text("Ramesh: not checked in", timeout=5000)
        await expect(page.locator("#me-purpose")).to_contain_text("the position itself is not kept")
        await page.get_by_role("button", name="Check in here").click()
        refused = page.locator("#me-result .result")
        await expect(refused).to_have_attribute("data-reason", "outside_geofence", timeout=5000)
        await expect(refused).to_contain_text("You are 1201 m from the site; check-ins are taken within 200 m.")
        assert await Punch.count().where(Punch.site == world.site_id) == 0
        await page.context.set_geolocation({"latitude": NEAR[0], "longitude": NEAR[1], "accuracy": 15})
        await page.get_by_role("button", name="Check in here").click()
        await expect(page.locator("#me-result .result-title")).to_have_text("Checked in", timeout=5000)
        await expect(page.locator("#me-status")).to_have_attribute("data-inside", "1")
        await expect(page.get_by_role("button", name="Check out here")).to_be_visible()
        assert await serious_accessibility_violations(page) == []
        stored = await Punch.select(Punch.source, Punch.inside_geofence, Punch.accuracy_m).where(
            Punch.site == world.site_id
        )
        assert stored == [{"source": "phone", "inside_geofence": True, "accuracy_m": 15.0}]
        # The refusal is a 422 the page expects (the browser logs it as a failed load); nothing else.
        assert [e for e in page.script_errors if "status of 422" not in e] == []
    finally:
        await page.context.close()
