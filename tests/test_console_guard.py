"""The guard console at /guard in real chromium against the real app under uvicorn: walk-ins with a
photo answered live, the ladder's rungs as they happen, a dropped connection (queued check-out sent
once, missed answers and arrivals shown on return), pass codes, Hindi, and accessibility.

Occupants and other consoles act through the HTTP API, as their own devices would; the guard's page
is never reloaded: everything it shows after the first load arrived over the websocket."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from playwright.async_api import expect

from app.auth.roles import Role
from app.visitors import alerts, ladder
from app.visitors.common import VisitorDeps
from schema.visitors import Visit, VisitorApproval, VisitorApprovalStep, VisitorPass
from tests.support.browser import (
    CHROMIUM_ARGS,
    DESKTOP,
    PHONE,
    chromium_path,
    screenshot,
    serious_accessibility_violations,
    signed_in_page,
)
from tests.support.servers import FAST, InProcessServer
from tests.support.visitors import add_occupant, jpeg

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


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


def deps_of(server: InProcessServer) -> VisitorDeps:
    state = server.app.state
    return VisitorDeps(settings=state.settings, redis=state.redis, directory=state.directory)


async def open_console(browser: Any, server: InProcessServer, world: Any, viewport: dict[str, int] = DESKTOP) -> Any:
    page = await signed_in_page(browser, server.http_url, world, "guard", "/guard", viewport=viewport)
    await expect(page.locator("#conn-state")).to_have_attribute("data-state", "online", timeout=5000)
    # The unit picker is filled from /api/units once the page has started.
    await expect(page.locator("#walkin-unit option")).to_have_count(len(world.unit_ids) + 1)
    return page


async def walk_in(http: httpx.AsyncClient, world: Any, unit: UUID, name: str, **fields: str) -> dict[str, Any]:
    parts = {"unit_id": str(unit), "name": name, "gate": "main", **fields}
    answer = await http.post(
        "/api/visitors/walk-ins",
        files=[(key, (None, value)) for key, value in parts.items()],  # multipart, as the page sends it
        headers=world.headers("guard"),
    )
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


async def answer(http: httpx.AsyncClient, world: Any, who: str, approval_id: str, decision: str) -> None:
    answered = await http.post(
        f"/api/visitors/approvals/{approval_id}/answer", json={"decision": decision}, headers=world.headers(who)
    )
    assert answered.status_code == 200, answered.text


async def new_pass(http: httpx.AsyncClient, world: Any, name: str, unit: UUID | None = None) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    created = await http.post(
        "/api/visitors/passes",
        json={
            "unit_id": str(unit or world.unit_ids[0]),
            "kind": "guest",
            "visitor_name": name,
            "one_time": {
                "valid_from": (now - dt.timedelta(minutes=5)).isoformat(),
                "valid_until": (now + dt.timedelta(hours=3)).isoformat(),
            },
        },
        headers=world.headers("occupant"),
    )
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    return body


async def check_in_by_code(http: httpx.AsyncClient, world: Any, who: str, code: str) -> str:
    verified = await http.post("/api/visitors/gate/verify", json={"code": code}, headers=world.headers(who))
    assert verified.status_code == 200 and verified.json()["outcome"] == "checked_in", verified.text
    visit_id: str = verified.json()["visit_id"]
    return visit_id


async def test_walk_in_with_a_photo_is_answered_live_and_let_in(
    server: InProcessServer, world: Any, browser: Any, http: httpx.AsyncClient
) -> None:
    page = await open_console(browser, server, world)
    try:
        form = page.locator("form#walkin-form")
        await form.get_by_label("Visitor's name").fill("Ravi Courier")
        await form.get_by_label("Phone").fill("+919876500011")
        await form.get_by_label("Purpose").fill("parcel")
        await form.get_by_label("Find a flat").fill("A-101")
        await expect(form.get_by_label("Unit", exact=True)).to_have_value(str(world.unit_ids[0]))
        await form.get_by_label("Kind").select_option("delivery")
        await form.get_by_label("Vehicle plate").fill("KA01AB1234")
        await form.get_by_label("Photo").set_input_files(
            {"name": "ravi.jpg", "mimeType": "image/jpeg", "buffer": jpeg((64, 48))}
        )
        await expect(page.locator("#walkin-preview")).to_be_visible()
        await form.get_by_role("button", name="Ask the flat").click()

        item = page.locator("#waiting li[data-approval-id]")
        await expect(item).to_have_count(1, timeout=3000)
        await expect(item).to_have_attribute("data-status", "pending")
        await expect(item).to_have_attribute("data-rung", "push")
        await expect(item.locator(".rung")).to_have_text("Asked in the app (push sent)")
        await expect(item.locator("img.thumb")).to_be_visible()
        approval_id = await item.get_attribute("data-approval-id")
        assert approval_id is not None
        visit = await Visit.select().where(Visit.id == UUID(await item.get_attribute("data-visit-id") or "")).first()
        assert visit is not None and visit["photo_key"] and visit["name"] == "Ravi Courier"
        assert visit["kind"] == "delivery" and visit["purpose"] == "parcel"

        await answer(http, world, "occupant", approval_id, "approved")
        await expect(item).to_have_attribute("data-status", "approved", timeout=2000)
        await expect(item.locator(".status-badge")).to_have_text("Approved")
        await expect(item).to_have_class("visitor status-approved fresh")

        # The approved walk-in is let in from the page and is then inside.
        await page.locator("#expected li[data-visit-id]").get_by_role("button", name="Check in").click()
        inside = page.locator(f"#inside li[data-visit-id='{visit['id']}']")
        await expect(inside).to_contain_text("Ravi Courier", timeout=3000)
        await expect(page.locator("#waiting li")).to_have_count(0)
        stored = await Visit.select(Visit.status).where(Visit.id == visit["id"]).first()
        assert stored == {"status": "inside"}
        assert page.script_errors == []
    finally:
        await page.context.close()


async def test_nobody_answers_and_the_page_shows_each_rung_as_it_happens(
    server: InProcessServer, world: Any, browser: Any, http: httpx.AsyncClient
) -> None:
    unit = world.unit_ids[2]
    await add_occupant(world, "rung_occupant", unit, mobile="+919845012345")
    page = await open_console(browser, server, world)
    try:
        created = await walk_in(http, world, unit, "Suresh Plumber", kind="service")
        approval_id = created["approval_id"]
        item = page.locator(f"#waiting li[data-approval-id='{approval_id}']")
        await expect(item).to_have_attribute("data-rung", "push", timeout=2000)
        requested = await VisitorApproval.select(VisitorApproval.requested_at).where(
            VisitorApproval.id == UUID(approval_id)
        )
        t0 = requested[0]["requested_at"]
        deps = deps_of(server)
        # Every toast the page shows, kept (each goes away after a few seconds).
        await page.evaluate(
            """() => {
                window.shownToasts = [];
                new MutationObserver((changes) => changes.forEach((change) => change.addedNodes.forEach(
                    (node) => window.shownToasts.push(node.textContent)))).observe(
                    document.getElementById("toasts"), { childList: true });
            }"""
        )
        # The site's default ladder (45 s SMS, 90 s call, 150 s the guard) under a controlled clock.
        for seconds, rung, text in (
            (45, "message", "SMS sent"),
            (90, "voice", "Calling the flat"),
            (150, "guard_prompt", "Call the flat yourself"),
        ):
            taken = await ladder.advance_ladders(deps, None, now=t0 + dt.timedelta(seconds=seconds))
            assert [s.action for s in taken if str(s.approval_id) == approval_id] == [rung]
            await expect(item).to_have_attribute("data-rung", rung, timeout=2000)
            await expect(item.locator(".rung")).to_have_text(text)
            await expect(item).to_have_attribute("data-status", "pending")
        calls = item.locator(".call-list li")
        await expect(calls).to_have_count(1)
        await expect(calls).to_contain_text("Rung Occupant")
        await expect(calls.get_by_role("link", name="+919845012345")).to_have_attribute("href", "tel:+919845012345")
        await expect(item.locator(".age")).to_have_text(lambda_seconds_pattern())

        # The guard prompt's worker died after publishing it and before recording it done: the rung is run
        # again and publishes its event again, which tells the guard nothing new.
        await VisitorApprovalStep.update(
            {VisitorApprovalStep.state: "started", VisitorApprovalStep.lease_until: t0 + dt.timedelta(seconds=151)}
        ).where((VisitorApprovalStep.approval == UUID(approval_id)) & (VisitorApprovalStep.action == "guard_prompt"))
        rerun = await ladder.advance_ladders(deps, None, now=t0 + dt.timedelta(seconds=200))
        assert [s.action for s in rerun if str(s.approval_id) == approval_id] == ["guard_prompt"]

        # The guard reaches the flat by phone and records the answer.
        await item.get_by_role("button", name="The flat said yes").click()
        await expect(item).to_have_attribute("data-status", "approved", timeout=2000)
        # The answer came after the repeated prompt on the same feed, so the page has seen both by now.
        toasts = await page.evaluate("() => window.shownToasts")
        assert sum("Nobody answered for Suresh Plumber" in text for text in toasts) == 1, toasts
        row = await VisitorApproval.select().where(VisitorApproval.id == UUID(approval_id)).first()
        assert row is not None and (row["status"], row["decided_via"]) == ("approved", "guard")
        # The answer is published before its step row is written (the guard is waiting): poll for it.
        actions: list[str] = []
        for _ in range(40):
            steps = await VisitorApprovalStep.select(VisitorApprovalStep.action).where(
                VisitorApprovalStep.approval == UUID(approval_id)
            )
            actions = sorted(s["action"] for s in steps)
            if "decided" in actions:
                break
            await asyncio.sleep(0.05)
        assert actions == sorted(["push", "message", "voice", "guard_prompt", "decided"])
        assert page.script_errors == []
    finally:
        await page.context.close()


def lambda_seconds_pattern() -> Any:
    import re

    return re.compile(r"^\d+ (s|min \d\d s|h \d+ min)$")


async def test_offline_the_banner_shows_the_check_out_is_queued_and_sent_once_and_nothing_is_missed(
    server: InProcessServer, world: Any, browser: Any, http: httpx.AsyncClient
) -> None:
    await world.add_person("second_guard", frozenset({Role.GUARD}))
    unit = world.unit_ids[0]
    first = await walk_in(http, world, unit, "Meena Tailor")
    second = await walk_in(http, world, unit, "Kiran Electrician")
    leaving_pass = await new_pass(http, world, "Leela Leaving")
    leaving_visit = await check_in_by_code(http, world, "guard", leaving_pass["code"])
    arriving_pass = await new_pass(http, world, "Arun Arriving")

    page = await open_console(browser, server, world)
    try:
        for created in (first, second):
            await expect(page.locator(f"#waiting li[data-approval-id='{created['approval_id']}']")).to_have_attribute(
                "data-status", "pending"
            )
        leaving = page.locator(f"#inside li[data-visit-id='{leaving_visit}']")
        await expect(leaving).to_be_visible()
        await expect(page.locator("#offline-banner")).to_be_hidden()

        await page.context.set_offline(True)
        await expect(page.locator("#offline-banner")).to_be_visible(timeout=2000)
        await expect(page.locator("#conn-state")).to_have_attribute("data-state", "offline")

        # Meanwhile: both walk-ins approved by the flat, a visitor checked in at another console.
        await answer(http, world, "occupant", first["approval_id"], "approved")
        await answer(http, world, "occupant", second["approval_id"], "approved")
        arrived_visit = await check_in_by_code(http, world, "second_guard", arriving_pass["code"])

        # The guard checks someone out while offline: kept, not sent, not lost.
        await leaving.get_by_role("button", name="Check out").click()
        await expect(leaving.get_by_role("button", name="Check-out queued")).to_be_disabled()
        await expect(page.locator("#outbox-state")).to_have_text("1 waiting to be sent")
        queued = json.loads(await page.evaluate("localStorage.getItem('opshub.outbox.guard')"))
        assert [(q["method"], q["path"]) for q in queued] == [
            ("POST", f"/api/visitors/visits/{leaving_visit}/check-out")
        ]
        key = queued[0]["key"]
        still = await Visit.select(Visit.status).where(Visit.id == UUID(leaving_visit)).first()
        assert still == {"status": "inside"}
        # A walk-in cannot wait for the connection: it is refused, clearly, not queued.
        form = page.locator("form#walkin-form")
        await form.get_by_label("Visitor's name").fill("Offline Visitor")
        await form.get_by_label("Unit", exact=True).select_option(str(unit))
        await form.get_by_role("button", name="Ask the flat").click()
        await expect(page.locator("#walkin-status")).to_contain_text("Offline: a walk-in needs the flat's answer now")
        assert len(json.loads(await page.evaluate("localStorage.getItem('opshub.outbox.guard')"))) == 1

        await page.context.set_offline(False)
        await expect(page.locator("#offline-banner")).to_be_hidden(timeout=5000)
        for created in (first, second):
            await expect(page.locator(f"#waiting li[data-approval-id='{created['approval_id']}']")).to_have_attribute(
                "data-status", "approved", timeout=3000
            )
        await expect(page.locator(f"#inside li[data-visit-id='{arrived_visit}']")).to_contain_text("Arun Arriving")
        await expect(leaving).to_have_count(0, timeout=3000)
        await expect(page.locator("#outbox-state")).to_be_hidden()
        assert json.loads(await page.evaluate("localStorage.getItem('opshub.outbox.guard')")) == []

        # Exactly once: the visit left once, and a replay with the same key is answered, not done again.
        left = await Visit.select().where(Visit.id == UUID(leaving_visit)).first()
        assert left is not None and left["status"] == "left" and left["checked_out_at"] is not None
        replay = await http.post(
            f"/api/visitors/visits/{leaving_visit}/check-out",
            headers={**world.headers("guard"), "Idempotency-Key": key},
        )
        assert replay.status_code == 200 and replay.headers.get("idempotent-replayed") == "true", replay.text
        again = await Visit.select().where(Visit.id == UUID(leaving_visit)).first()
        assert again is not None and again["checked_out_at"] == left["checked_out_at"]
        # Without the key the same action is refused: it was done, once.
        fresh = await http.post(f"/api/visitors/visits/{leaving_visit}/check-out", headers=world.headers("guard"))
        assert fresh.status_code == 409
        assert page.script_errors == []
    finally:
        await page.context.close()


async def test_pass_code_typed_refused_and_valid_then_checked_in(
    server: InProcessServer, world: Any, browser: Any, http: httpx.AsyncClient
) -> None:
    page = await open_console(browser, server, world)
    try:
        created = await new_pass(http, world, "Asha Guest")
        pass_id = created["visitor_pass"]["id"]
        expected = page.locator(f"#expected li[data-pass-id='{pass_id}']")
        await expect(expected).to_contain_text("Asha Guest", timeout=3000)
        await expect(expected).to_contain_text("A-101")

        form = page.locator("form#code-form")
        wrong = "000000" if created["code"] != "000000" else "111111"
        await form.get_by_label("Pass code").fill(wrong)
        await form.get_by_role("button", name="Verify").click()
        result = page.locator("#verify-result")
        await expect(result.locator(".result-title")).to_have_text("Not valid")
        await expect(result).to_contain_text("No pass has this code.")

        await expected.get_by_role("button", name="Check in").click()
        await expect(form.get_by_label("Pass code")).to_be_focused()
        await expect(result).to_contain_text("Ask Asha Guest for the pass code")
        await form.get_by_label("Pass code").fill(created["code"])
        await form.get_by_role("button", name="Verify").click()
        await expect(result.locator(".result-title")).to_have_text("Valid pass")
        await expect(result).to_contain_text("Asha Guest")
        await expect(result).to_contain_text("A-101")
        # Checking is not letting in: the pass is still unused until the guard confirms.
        assert (await VisitorPass.select(VisitorPass.status).where(VisitorPass.id == UUID(pass_id)).first()) == {
            "status": "active"
        }
        await result.get_by_role("button", name="Check in").click()
        await expect(result.locator(".result-title")).to_have_text("Checked in")
        visit = await Visit.select().where(Visit.visitor_pass == UUID(pass_id)).first()
        assert visit is not None and visit["status"] == "inside"
        await expect(page.locator(f"#inside li[data-visit-id='{visit['id']}']")).to_contain_text("Asha Guest")
        await expect(expected).to_have_count(0)

        # The one-time pass is spent: the same code again says so.
        await form.get_by_label("Pass code").fill(created["code"])
        await form.get_by_role("button", name="Verify").click()
        await expect(result.locator(".result-title")).to_have_text("Not valid")
        await expect(result).to_contain_text("The pass was already used.")
        assert await Visit.count().where(Visit.visitor_pass == UUID(pass_id)) == 1
        assert page.script_errors == []
    finally:
        await page.context.close()


async def test_switch_to_hindi_and_back(
    server: InProcessServer, world: Any, browser: Any, http: httpx.AsyncClient
) -> None:
    inside_pass = await new_pass(http, world, "Gita Inside")
    await check_in_by_code(http, world, "guard", inside_pass["code"])
    page = await open_console(browser, server, world)
    try:
        await page.get_by_role("link", name="हिन्दी").click()
        await page.wait_for_url("**/guard")
        await expect(page.locator("html")).to_have_attribute("lang", "hi")
        await expect(page.locator("h1")).to_have_text("गेट कंसोल")
        await expect(page.locator("label[for=pass-code]")).to_have_text("पास कोड")
        await expect(page.locator("#walkin-form button[type=submit]")).to_have_text("फ़्लैट से पूछें")
        await expect(page.locator("label[for=walkin-name]")).to_have_text("आगंतुक का नाम")
        # Rendered by the script, from the same catalogue.
        await expect(page.locator("#conn-state")).to_have_text("लाइव", timeout=5000)
        await expect(page.locator("#inside li").get_by_role("button")).to_have_text("चेक आउट")
        await page.locator("#code-form button[type=submit]").click()
        await expect(page.locator("#verify-result .result-title")).to_have_text("पास कोड के 6 अंक टाइप करें।")
        assert page.script_errors == []

        await page.get_by_role("link", name="English").click()
        await page.wait_for_url("**/guard")
        await expect(page.locator("h1")).to_have_text("Gate console")
        await expect(page.locator("#inside li").get_by_role("button")).to_have_text("Check out")
        await expect(page.locator("#conn-state")).to_have_text("Live", timeout=5000)
    finally:
        await page.context.close()


async def test_accessible_at_both_widths_with_content_and_an_overstay_alert(
    server: InProcessServer, world: Any, browser: Any, http: httpx.AsyncClient
) -> None:
    unit = world.unit_ids[0]
    waiting = await walk_in(http, world, unit, "Pending Person", purpose="meeting")
    approved = await walk_in(http, world, unit, "Approved Person", kind="delivery")
    await answer(http, world, "occupant", approved["approval_id"], "approved")
    await new_pass(http, world, "Expected Person")
    staying_pass = await new_pass(http, world, "Staying Long")
    staying = await check_in_by_code(http, world, "guard", staying_pass["code"])

    for viewport, name in ((DESKTOP, "guard-1280"), (PHONE, "guard-360")):
        page = await open_console(browser, server, world, viewport=viewport)
        try:
            await expect(page.locator(f"#waiting li[data-approval-id='{waiting['approval_id']}']")).to_be_visible()
            if name == "guard-1280":
                # 13 hours on: past the guest limit (12 h); the alert reaches the open console.
                alerted = await alerts.check_overstays(
                    deps_of(server), dt.datetime.now(dt.UTC) + dt.timedelta(hours=13)
                )
                assert UUID(staying) in alerted
            alert = page.locator(f"#alerts li[data-visit-id='{staying}']")
            await expect(alert).to_contain_text("Staying Long", timeout=3000)
            await expect(page.locator(f"#inside li[data-visit-id='{staying}'] .badge")).to_have_text("Overstay")
            await page.locator("#code-form").get_by_label("Pass code").fill("12345")
            await page.locator("#code-form").get_by_role("button", name="Verify").click()
            await expect(page.locator("#verify-result .result-title")).to_be_visible()
            assert await serious_accessibility_violations(page) == []
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= viewport["width"], f"horizontal scroll at {viewport['width']} px: {width}"
            await screenshot(page, name)
            assert page.script_errors == []
        finally:
            await page.context.close()


def qr_video(payload: str, path: Path) -> Path:
    """A Y4M clip of a QR code on white, for chromium's fake camera (it loops the file)."""
    import segno
    from PIL import Image

    buffer = io.BytesIO()
    segno.make(payload, error="m").save(buffer, kind="png", scale=6, border=4)
    code = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    width, height = 640, 480
    frame = Image.new("RGB", (width, height), (255, 255, 255))
    frame.paste(code, ((width - code.width) // 2, (height - code.height) // 2))
    y, u, v = frame.convert("YCbCr").split()
    half = (width // 2, height // 2)
    planes = y.tobytes() + u.resize(half).tobytes() + v.resize(half).tobytes()
    path.write_bytes(f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode() + b"FRAME\n" + planes)
    return path


async def test_camera_scans_the_qr_and_takes_the_walk_in_photo(
    server: InProcessServer, world: Any, browser: Any, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    created = await new_pass(http, world, "Qamar Scanned")
    video = qr_video(created["qr_payload"], tmp_path / "qr.y4m")
    # A second chromium whose camera is the clip above (the shared one has no camera).
    camera_browser = await browser.browser_type.launch(
        executable_path=chromium_path(),
        args=[
            *CHROMIUM_ARGS,
            "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={video}",
        ],
    )
    try:
        page = await open_console(camera_browser, server, world)
        # The QR decoder is loaded only when the guard opens the scanner.
        assert await page.evaluate("typeof window.jsQR") == "undefined"
        await page.get_by_role("button", name="Scan QR code").click()
        result = page.locator("#verify-result")
        await expect(result.locator(".result-title")).to_have_text("Valid pass", timeout=15000)
        await expect(result).to_contain_text("Qamar Scanned")
        assert await page.evaluate("typeof window.jsQR") == "function"
        await expect(page.locator("#scanner")).to_be_hidden()
        await result.get_by_role("button", name="Check in").click()
        await expect(result.locator(".result-title")).to_have_text("Checked in")
        visit = await Visit.select().where(Visit.visitor_pass == UUID(created["visitor_pass"]["id"])).first()
        assert visit is not None and visit["status"] == "inside"
        await expect(page.locator(f"#inside li[data-visit-id='{visit['id']}']")).to_be_visible()

        # The walk-in's photo from the camera: a snapshot of the live picture, sent as a JPEG.
        form = page.locator("form#walkin-form")
        await form.get_by_role("button", name="Use the camera").click()
        await expect(page.locator("#camera-video")).to_be_visible()
        for _ in range(100):  # wait_for_function would need eval, which the page's CSP refuses
            if await page.evaluate("document.getElementById('camera-video').videoWidth") > 0:
                break
            await asyncio.sleep(0.05)
        await form.get_by_role("button", name="Take the photo").click()
        await expect(page.locator("#walkin-preview")).to_be_visible()
        await form.get_by_label("Visitor's name").fill("Camera Visitor")
        await form.get_by_label("Unit", exact=True).select_option(str(world.unit_ids[0]))
        await form.get_by_role("button", name="Ask the flat").click()
        item = page.locator("#waiting li[data-approval-id]")
        await expect(item).to_have_attribute("data-status", "pending", timeout=3000)
        await expect(item.locator("img.thumb")).to_be_visible()
        walk_in_visit = (
            await Visit.select().where(Visit.id == UUID(await item.get_attribute("data-visit-id") or "")).first()
        )
        assert walk_in_visit is not None and walk_in_visit["photo_key"].endswith(".jpg")
        photo = await http.get(f"/api/visitors/visits/{walk_in_visit['id']}/photo", headers=world.headers("guard"))
        assert photo.status_code == 200 and photo.content[:3] == b"\xff\xd8\xff"
        assert page.script_errors == []
        await page.context.close()
    finally:
        await camera_browser.close()


async def test_check_in_the_moment_the_answer_shows_is_not_refused(
    server: InProcessServer, world: Any, http: httpx.AsyncClient
) -> None:
    """The answer is published before the visit row follows it; a guard tapping "Check in" in that
    instant (the approval approved, the visit still pending) is let through, and the answered feed
    keeps showing the visitor meanwhile."""
    created = await walk_in(http, world, world.unit_ids[0], "Quick Tap")
    approval_id, visit_id = UUID(created["approval_id"]), UUID(created["visit"]["id"])
    await VisitorApproval.update(
        {VisitorApproval.status: "approved", VisitorApproval.decided_at: dt.datetime.now(dt.UTC)}
    ).where(VisitorApproval.id == approval_id)
    answered = await http.get("/api/visitors/feeds/answered", headers=world.headers("guard"))
    assert [a["id"] for a in answered.json()["items"]] == [str(approval_id)]
    checked_in = await http.post(f"/api/visitors/visits/{visit_id}/check-in", headers=world.headers("guard"))
    assert checked_in.status_code == 200 and checked_in.json()["status"] == "inside", checked_in.text
    # A denied walk-in is never let in, whatever the timing.
    denied = await walk_in(http, world, world.unit_ids[0], "Not Welcome")
    await answer(http, world, "occupant", denied["approval_id"], "denied")
    refused = await http.post(f"/api/visitors/visits/{denied['visit']['id']}/check-in", headers=world.headers("guard"))
    assert refused.status_code == 409
