"""The control-room dashboard in a real browser: real uvicorn, real websockets, chromium, no reloads.

1. An FM admin sends an announcement to one tower from the composer; a real arq worker runs the
   pipeline against the local Twilio/FCM fakes (which send signed status callbacks to the server);
   the page's counters reach their final values and equal the delivery ledger's rows.
2. A guard's walk-in appears in the gate feed as pending with a running age; the occupant's
   answer shows within 2 s.
3. A guard console connecting (gate "main") appears under presence; disconnecting removes it.
4. Complaint counts follow raises and moves; availability follows a booking and a charger status.
5. axe (0 serious/critical) at 360, 1280 and 1920 px with content, and screenshots.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from playwright.async_api import expect

from app.auth.roles import Role
from app.devredis import free_port
from notifications.fakes import running_fakes
from notifications.service import cancel_notification
from realtime.client import RealtimeClient
from schema.notifications import Delivery, Notification
from tests.support.browser import DESKTOP, PHONE, WALL, screenshot, serious_accessibility_violations, signed_in_page
from tests.support.complaints import configure
from tests.support.notify import TEMPLATE_SID, add_recipients, settings_for_fakes
from tests.support.servers import FAST, InProcessServer
from tests.support.slots import charger, device_headers, iso, next_free_times
from tests.support.visitors import jpeg
from tests.support.world import World

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
async def server(settings: Any) -> AsyncIterator[InProcessServer]:
    running = InProcessServer(settings, FAST)
    await running.start()
    yield running
    await running.stop()


class ServerOnPort(InProcessServer):
    """An in-process server on a port chosen beforehand, so its settings can name its own URL
    (the status-callback URL the fake Twilio posts to is built from ``public_url``)."""

    def __init__(self, settings: Any, port: int) -> None:
        super().__init__(settings, FAST)
        self.port = port
        self.url = f"ws://127.0.0.1:{port}/ws"
        self.http_url = f"http://127.0.0.1:{port}"
        self.server.config.port = port


async def walk_in(http: httpx.AsyncClient, world: World, name: str, unit: UUID) -> str:
    created = await http.post(
        "/api/visitors/walk-ins",
        data={"unit_id": str(unit), "name": name, "kind": "delivery", "purpose": "parcel", "gate": "main"},
        files={"photo": ("v.jpg", jpeg(), "image/jpeg")},
        headers=world.headers("guard"),
    )
    assert created.status_code == 201, created.text
    return str(created.json()["approval_id"])


# ------------------------------------------------------------------------------ 1. announcements


def _worker_env(fakes: Any, public_url: str) -> dict[str, str]:
    return {
        **os.environ,
        **fakes.env(),
        "OPSHUB_PUBLIC_URL": public_url,
        "OPSHUB_WHATSAPP_TEMPLATE_SID": TEMPLATE_SID,
        "OPSHUB_NOTIFY_RATE_SMS": "0",
        "OPSHUB_NOTIFY_RATE_WHATSAPP": "0",
        "OPSHUB_NOTIFY_RATE_PUSH": "0",
        "OPSHUB_LOG_LEVEL": "WARNING",
    }


async def _cancel_others(site_id: UUID) -> None:
    """Earlier tests leave notifications no worker sent; the worker here would send them first."""
    rows = await Notification.select(Notification.id, Notification.site).where(
        Notification.status.not_in(["completed", "cancelled"]) & (Notification.site != site_id)
    )
    for row in rows:
        await cancel_notification(row["site"], row["id"])


def fold(statuses: Counter[str]) -> dict[str, int]:
    """The board's counters from a channel's ledger statuses (counted here, not by the page's code)."""
    return {
        "sent": statuses["sent"] + statuses["delivered"] + statuses["read"],
        "delivered": statuses["delivered"] + statuses["read"],
        "failed": statuses["failed"],
        "suppressed": statuses["suppressed"],
        "deferred": statuses["deferred"],
        "pending": statuses["pending"] + statuses["sending"],
    }


async def test_announcement_to_one_tower_counts_up_to_the_ledger(
    world: World, settings: Any, browser: Any, tmp_path: Path
) -> None:
    people = await add_recipients(world, 3)  # tower A (unit 0): mobile, email and a device each
    # The world's occupant (tower A) has no mobile and no device; tower B's resident is not in the audience.
    elsewhere = await world.add_person("tower_b", frozenset({Role.OCCUPANT}), units=[(world.unit_ids[4], "owner")])
    await _cancel_others(world.site_id)
    port = free_port()
    public_url = f"http://127.0.0.1:{port}"
    async with running_fakes() as fakes:
        fakes.twilio.configure(callbacks_enabled=True, callback_delay=0.05)
        running = ServerOnPort(settings_for_fakes(settings, fakes, public_url=public_url), port)
        await running.start()
        log = (tmp_path / "worker.log").open("ab")
        worker = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "workers",
            cwd=ROOT,
            env=_worker_env(fakes, public_url),
            stdout=log,
            stderr=log,
        )
        page = await signed_in_page(browser, running.http_url, world, "fm_admin", "/control", viewport=WALL)
        try:
            await expect(page.locator("#conn-state")).to_have_attribute("data-state", "online", timeout=5000)
            form = page.locator("form#announce-form")
            await form.get_by_label("Title").fill("Water tank cleaning")
            await form.get_by_label("Message").fill("No water in Tower A from 14:00 to 16:00.")
            await form.get_by_label("Tower A").check()
            await form.get_by_label("In-app").uncheck()
            await form.get_by_label("Push").check()
            await form.get_by_label("SMS", exact=True).check()
            await form.get_by_role("button", name="Send").click()

            item = page.locator("#announcements [data-announcement-id]").first
            await expect(item).to_be_visible(timeout=5000)
            notification_id = UUID(await item.get_attribute("data-announcement-id") or "")
            await expect(item).to_have_attribute("data-final", "true", timeout=60_000)
            async with asyncio.timeout(20):
                await fakes.twilio.drain()

            rows = await Delivery.select(Delivery.person, Delivery.channel, Delivery.status).where(
                Delivery.notification == notification_id
            )
            audience = {p.person_id for p in people} | {world.people["occupant"]}
            assert {r["person"] for r in rows} == audience and elsewhere not in {r["person"] for r in rows}
            for channel in ("sms", "push"):
                expected = fold(Counter(r["status"] for r in rows if r["channel"] == channel))
                for name, number in expected.items():
                    counter = item.locator(f'[data-channel="{channel}"] [data-counter="{name}"]')
                    await expect(counter).to_have_text(str(number), timeout=15_000)
            sms = fold(Counter(r["status"] for r in rows if r["channel"] == "sms"))
            # The fakes' callbacks moved every sent SMS to delivered; the occupant without a mobile was suppressed.
            assert sms["delivered"] == 3 and sms["suppressed"] == 1 and sms["pending"] == 0, sms
            assert fold(Counter(r["status"] for r in rows if r["channel"] == "push"))["sent"] == 3
            assert page.script_errors == []  # type: ignore[attr-defined]
        finally:
            await page.context.close()
            worker.terminate()
            await worker.wait()
            log.close()
            await running.stop()


# ------------------------------------------------------------------------------ 2. the gate feed


async def test_walk_in_shows_pending_with_its_age_and_the_answer_within_2s(
    server: InProcessServer, world: World, browser: Any
) -> None:
    page = await signed_in_page(browser, server.http_url, world, "fm_admin", "/control", viewport=DESKTOP)
    try:
        await expect(page.locator("#conn-state")).to_have_attribute("data-state", "online", timeout=5000)
        async with httpx.AsyncClient(base_url=server.http_url) as http:
            approval_id = await walk_in(http, world, "Ravi Kumar", world.unit_ids[0])
            row = page.locator(f'#gate-feed [data-approval-id="{approval_id}"]')
            await expect(row).to_have_attribute("data-status", "pending", timeout=2000)
            await expect(row).to_have_attribute("data-rung", "push")
            await expect(row).to_contain_text("Ravi Kumar")
            timer = row.locator(".timer")
            first = await timer.text_content()
            await expect(timer).not_to_have_text(first or "", timeout=3000)  # the age is running
            answered = await http.post(
                f"/api/visitors/approvals/{approval_id}/answer",
                json={"decision": "approved"},
                headers=world.headers("occupant"),
            )
            assert answered.status_code == 200, answered.text
            await expect(row).to_have_attribute("data-status", "approved", timeout=2000)
            await expect(row).to_contain_text("Approved")
        assert page.script_errors == []  # type: ignore[attr-defined]
    finally:
        await page.context.close()


# ------------------------------------------------------------------------------ 3. presence


async def test_a_guard_console_appears_under_presence_and_goes_away(
    server: InProcessServer, world: World, browser: Any
) -> None:
    await world.add_person("asha_verma", frozenset({Role.GUARD}))
    page = await signed_in_page(browser, server.http_url, world, "fm_admin", "/control", viewport=DESKTOP)
    try:
        await expect(page.locator("#conn-state")).to_have_attribute("data-state", "online", timeout=5000)
        console = page.locator('#presence [data-gate="main"]')
        await expect(console).to_have_count(0)
        async with RealtimeClient(server.url, world.token("asha_verma"), gate="main"):
            await expect(console).to_be_visible(timeout=3000)
            await expect(console).to_have_attribute("data-count", "1")
            await expect(console).to_contain_text("Asha Verma")
            async with RealtimeClient(server.url, world.token("guard"), gate="service-gate"):
                await expect(page.locator('#presence [data-gate="service-gate"]')).to_be_visible(timeout=3000)
            await expect(page.locator('#presence [data-gate="service-gate"]')).to_have_count(0, timeout=3000)
        await expect(console).to_have_count(0, timeout=3000)
        assert page.script_errors == []  # type: ignore[attr-defined]
    finally:
        await page.context.close()


# ------------------------------------------------------------------------------ 4. complaints and slots


async def test_complaint_counts_and_availability_follow_the_api(
    server: InProcessServer, world: World, browser: Any
) -> None:
    await configure(world)
    code = f"EV{world.slug[-4:]}"
    made = await charger(world, code, [(1, 7.4, "Type2"), (2, 7.4, "Type2")])
    page = await signed_in_page(browser, server.http_url, world, "fm_admin", "/control", viewport=DESKTOP)
    try:
        await expect(page.locator("#conn-state")).to_have_attribute("data-state", "online", timeout=5000)
        ev = page.locator('#availability [data-kind="ev_connector"]')
        await expect(ev).to_have_attribute("data-free", "2", timeout=3000)
        assigned = page.locator('#complaints [data-status-count="assigned"]')
        in_progress = page.locator('#complaints [data-status-count="in_progress"]')
        await expect(assigned).to_have_text("0")
        async with httpx.AsyncClient(base_url=server.http_url) as http:
            raised = await http.post(
                "/api/complaints",
                json={
                    "category": "plumbing",
                    "subcategory": "leak",
                    "description": "Leak under the sink",
                    "unit_id": str(world.unit_ids[0]),
                },
                headers=world.headers("occupant"),
            )
            assert raised.status_code == 201, raised.text
            complaint_id = raised.json()["id"]
            assert raised.json()["status"] == "assigned"  # the technician on shift took it
            await expect(assigned).to_have_text("1", timeout=2000)
            await expect(page.locator('#complaints [data-sla="on_track"]')).to_have_text("1")
            moved = await http.post(
                f"/api/complaints/{complaint_id}/transitions",
                json={"to": "in_progress"},
                headers=world.headers("technician"),
            )
            assert moved.status_code == 200, moved.text
            await expect(in_progress).to_have_text("1", timeout=2000)
            await expect(assigned).to_have_text("0")

            # A booking of the next free slot: the connector is free only until it starts.
            resources = (await http.get("/api/slots/availability", headers=world.headers("occupant"))).json()
            connector = next(r for r in resources["resources"] if r["code"] == f"{code}-1")
            free = await next_free_times(http, connector["resource_id"], world.headers("occupant"))
            start = dt.datetime.fromisoformat(free["starts"][0])
            booked = await http.post(
                f"/api/slots/resources/{connector['resource_id']}/bookings",
                json={"starts_at": iso(start), "ends_at": iso(start + dt.timedelta(minutes=free["duration_minutes"]))},
                headers=world.headers("occupant"),
            )
            assert booked.status_code == 201, booked.text
            row = page.locator(f'#availability-list [data-resource-id="{connector["resource_id"]}"]')
            await expect(row).to_have_attribute("data-free-until", "", timeout=1)
            await expect(row).not_to_have_attribute("data-free-until", "", timeout=3000)
            # A car plugs in at the other connector: one connector fewer free now.
            plugged = await http.post(
                "/api/slots/ocpp/status-notification",
                json={"connector_id": 2, "status": "Charging", "timestamp": iso(dt.datetime.now(dt.UTC))},
                headers=device_headers(made),
            )
            assert plugged.status_code == 200, plugged.text
            await expect(ev).to_have_attribute("data-free", "1", timeout=3000)
            await expect(page.locator('#availability-list [data-state="in_use"]')).to_contain_text(f"{code}-2")
        assert page.script_errors == []  # type: ignore[attr-defined]
    finally:
        await page.context.close()


# ------------------------------------------------------------------------------ 5. accessibility


@pytest.mark.parametrize(
    ("viewport", "name"), [(PHONE, "control-360"), (DESKTOP, "control-1280"), (WALL, "control-1920")]
)
async def test_dashboard_is_accessible_with_content(
    server: InProcessServer, world: World, browser: Any, viewport: dict[str, int], name: str
) -> None:
    await configure(world)
    await charger(world, f"EV{world.slug[-4:]}", [(1, 7.4, "Type2")])
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        await walk_in(http, world, "Courier", world.unit_ids[1])
        answered = await walk_in(http, world, "Plumber", world.unit_ids[2])
        await http.post(
            f"/api/visitors/approvals/{answered}/answer", json={"decision": "denied"}, headers=world.headers("guard")
        )
        await http.post(
            "/api/complaints",
            json={"category": "electrical", "description": "Corridor light out", "unit_id": str(world.unit_ids[0])},
            headers=world.headers("occupant"),
        )
        await http.post(
            "/api/announcements",
            json={
                "title": "Lift maintenance",
                "body": "Lift B is closed on Sunday.",
                "category": "announcement",
                "audience": {"building_ids": [str(world.building_ids[1])]},
                "channels": ["push", "sms"],
            },
            headers=world.headers("fm_admin"),
        )
    page = await signed_in_page(browser, server.http_url, world, "fm_admin", "/control", viewport=viewport)
    try:
        await expect(page.locator("#conn-state")).to_have_attribute("data-state", "online", timeout=5000)
        await expect(page.locator("#gate-feed [data-approval-id]")).to_have_count(2, timeout=3000)
        await expect(page.locator("#announcements [data-announcement-id]")).to_have_count(1, timeout=3000)
        await expect(page.locator('#complaints [data-status-count="open"]')).to_have_text("1", timeout=3000)
        await expect(page.locator("#chart-complaints canvas")).to_have_count(1, timeout=3000)
        async with RealtimeClient(server.url, world.token("guard"), gate="main"):
            await expect(page.locator('#presence [data-gate="main"]')).to_be_visible(timeout=3000)
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= viewport["width"], f"horizontal scroll at {viewport['width']} px: {width}"
            assert await serious_accessibility_violations(page) == []
            await screenshot(page, name)
        assert page.script_errors == []  # type: ignore[attr-defined]
    finally:
        await page.context.close()
