"""The control room's reports page in a real browser (real uvicorn, chromium): the FM admin picks a report
and its filters, sees the first rows or a summary, and the export buttons download the same query."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect

from tests.support.browser import DESKTOP, screenshot, serious_accessibility_violations, signed_in_page
from tests.support.reports import seed_month
from tests.support.servers import FAST, InProcessServer
from tests.support.world import World


@pytest.fixture(scope="module")
async def server(settings: Any) -> AsyncIterator[InProcessServer]:
    running = InProcessServer(settings, FAST)
    await running.start()
    yield running
    await running.stop()


async def test_the_reports_page_filters_summarises_and_exports(
    server: InProcessServer, world: World, browser: Any
) -> None:
    seeded = await seed_month(world, size=12)
    page = await signed_in_page(browser, server.http_url, world, "fm_admin", "/control/reports", viewport=DESKTOP)
    try:
        await page.select_option("#rf-report", "complaints")
        await page.fill("#rf-from", "2026-11-01")
        await page.fill("#rf-to", "2026-11-30")
        await page.fill("#rf-category", "plumbing")
        await page.click("#report-form button[type=submit]")
        plumbing = [c for c in seeded.complaints if c["category"] == "plumbing"]
        await expect(page.locator("#report-table tbody tr")).to_have_count(len(plumbing))
        await page.select_option("#rf-by", "status")
        await page.click("#report-form button[type=submit]")
        await expect(page.locator("#report-rows-title")).to_contain_text("By status")
        async with page.expect_download() as downloading:
            await page.click("#export-csv")
        download = await downloading.value
        text = await asyncio.to_thread(Path(await download.path()).read_text)
        rows = list(csv.DictReader(io.StringIO(text)))
        assert sum(int(r["complaints"]) for r in rows) == len(plumbing)
        assert download.suggested_filename == "complaints-by-status.csv"
        await page.fill("#rf-category", "")
        await page.select_option("#rf-report", "notifications")
        await page.click("#report-form button[type=submit]")
        await expect(page.locator("#rf-tower")).to_have_count(0)  # the delivery report takes no tower
        await screenshot(page, "control-reports")
        assert await serious_accessibility_violations(page) == []
        assert page.script_errors == []
    finally:
        await page.context.close()
