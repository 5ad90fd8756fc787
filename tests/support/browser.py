"""A real headless browser for page tests: Debian's chromium driven by Playwright.

Playwright's own browser downloads are not used: ``executable_path`` points at the system's
chromium (``OPSHUB_CHROMIUM``, else ``chromium`` on PATH). Without one the page tests skip,
unless ``OPSHUB_REQUIRE_BROWSER`` is set (CI sets it, after installing chromium), when they fail.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from typing import Any

import pytest


def chromium_path() -> str | None:
    return os.environ.get("OPSHUB_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
async def phone_page() -> AsyncIterator[Any]:
    """A page in a phone-sized browser window, as an occupant opens a link from an SMS."""
    path = chromium_path()
    if path is None:
        if os.environ.get("OPSHUB_REQUIRE_BROWSER"):
            pytest.fail("OPSHUB_REQUIRE_BROWSER is set but no chromium was found (apt-get install chromium)")
        pytest.skip("no chromium on PATH (apt-get install chromium); CI installs it")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        # --no-sandbox: the tests run as root in a container, where chromium's sandbox cannot start.
        browser = await playwright.chromium.launch(executable_path=path, args=["--no-sandbox"])
        try:
            context = await browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
            yield await context.new_page()
        finally:
            await browser.close()
