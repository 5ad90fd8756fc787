"""Billing in the consoles, in headless chromium against a real server and the fake Razorpay:

an occupant opens Bills, sees what is due, pays through the fake's hosted checkout, comes back to the app
and sees the receipt; the control room, open meanwhile in another browser context, shows the collected
figure move without a reload (billing.collected over /ws), and the ageing and defaulters boards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import expect

from app.devredis import free_port
from notifications.fakes import RunningFakes, running_fakes
from schema.billing import Payment
from tests.support.billing import configure, monthly_run
from tests.support.browser import (
    PHONE,
    WALL,
    open_occupant_section,
    screenshot,
    serious_accessibility_violations,
    signed_in_page,
)
from tests.support.servers import FAST, InProcessServer
from tests.test_billing_payments import billing_settings


@pytest.fixture(scope="module")
async def served(settings: Any) -> AsyncIterator[tuple[InProcessServer, RunningFakes]]:
    async with running_fakes() as fakes:
        port = free_port()
        server = InProcessServer(billing_settings(settings, fakes, f"http://127.0.0.1:{port}"), FAST)
        server.port = port
        server.http_url = f"http://127.0.0.1:{port}"
        server.url = f"ws://127.0.0.1:{port}/ws"
        server.server.config.port = port
        await server.start()
        fakes.razorpay.configure(webhook_url=f"{server.http_url}/api/webhooks/razorpay")
        try:
            yield server, fakes
        finally:
            await server.stop()


async def test_occupant_pays_through_the_checkout_and_the_control_room_sees_it_live(
    served: tuple[InProcessServer, RunningFakes], world: Any, browser: Any
) -> None:
    server, fakes = served
    await configure(world)
    result = await monthly_run(world)
    invoice = next(i for i in result.issued if i.unit_id == world.unit_ids[0])
    control = await signed_in_page(browser, server.http_url, world, "fm_admin", "/control", viewport=WALL)
    occupant = await signed_in_page(browser, server.http_url, world, "occupant", "/app", viewport=PHONE)
    try:
        await expect(control.locator("#conn-state")).to_have_attribute("data-state", "online", timeout=5000)
        collected = control.locator("#billing-collected")
        await expect(collected).to_have_attribute("data-collected", "0", timeout=5000)
        ageing = control.locator('#billing-ageing [data-bucket="not_due"]')
        await expect(ageing).to_have_attribute("data-amount", str(295_000 * len(result.issued)), timeout=5000)

        await open_occupant_section(occupant, "Bills")
        await expect(occupant.locator("#dues")).to_have_attribute("data-outstanding", "295000", timeout=5000)
        row = occupant.locator(f'#invoices [data-invoice-id="{invoice.invoice_id}"]')
        await expect(row).to_have_attribute("data-status", "open")
        await expect(row).to_contain_text(invoice.number)
        assert await serious_accessibility_violations(occupant) == []
        await screenshot(occupant, "occupant-bills-360")

        await occupant.locator("#pay-dues").click()
        # The provider's hosted checkout (the fake), then back to the app with the payment recorded.
        await occupant.wait_for_url(f"{fakes.razorpay_url}/v1/checkout/embedded**", timeout=10_000)
        await expect(occupant.locator("#amount")).to_have_text("INR 2,950.00")
        await occupant.get_by_role("button", name="Pay INR 2,950.00").click()
        await occupant.wait_for_url(f"{server.http_url}/app?section=bills", timeout=15_000)
        await expect(occupant.locator("#dues")).to_have_attribute("data-outstanding", "0", timeout=10_000)
        await expect(occupant.locator('#receipts [data-receipt-number="RCT/26-27/00001"]')).to_be_visible(
            timeout=10_000
        )
        await expect(row).to_have_attribute("data-status", "paid")
        receipt = occupant.locator('#receipts [data-receipt-number="RCT/26-27/00001"] a')
        assert (await receipt.get_attribute("href") or "").endswith("/pdf")

        # The control room, never reloaded, shows the money collected.
        await expect(collected).to_have_attribute("data-collected", "295000", timeout=10_000)
        await expect(control.locator("#billing-payments")).to_contain_text("1")
        await screenshot(control, "control-billing-1920")
        async with __import__("asyncio").timeout(20):
            await fakes.razorpay.drain()
        assert await Payment.count().where(Payment.site == world.site_id) == 1
        assert occupant.script_errors == []  # type: ignore[attr-defined]
        assert control.script_errors == []  # type: ignore[attr-defined]
    finally:
        await occupant.context.close()
        await control.context.close()
