"""A real headless browser for page tests: Debian's chromium driven by Playwright.

Playwright's own browser downloads are not used: ``executable_path`` points at the system's
chromium (``OPSHUB_CHROMIUM``, else ``chromium`` on PATH). Without one the page tests skip,
unless ``OPSHUB_REQUIRE_BROWSER`` is set (CI sets it, after installing chromium), when they fail.

``browser`` is one chromium for the whole run; each test opens its own contexts (one per person, as
separate phones and tablets would be), signed in with ``signed_in_page``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Screenshots the page tests take, for people to look at (gitignored; the README shows copies in docs/).
SCREENSHOT_DIR = ROOT / "test-artifacts" / "screenshots"
PHONE = {"width": 360, "height": 780}
DESKTOP = {"width": 1280, "height": 860}
WALL = {"width": 1920, "height": 1080}
# No background networking: this machine has no internet, and chromium would keep trying.
CHROMIUM_ARGS = [
    "--no-sandbox",  # the tests run as root in a container, where chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    return os.environ.get("OPSHUB_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def require_chromium() -> str:
    path = chromium_path()
    if path is None:
        if os.environ.get("OPSHUB_REQUIRE_BROWSER"):
            pytest.fail("OPSHUB_REQUIRE_BROWSER is set but no chromium was found (apt-get install chromium)")
        pytest.skip("no chromium on PATH (apt-get install chromium); CI installs it")
    return path


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Any]:
    path = require_chromium()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def phone_page(browser: Any) -> AsyncIterator[Any]:
    """A page in a phone-sized browser window, as an occupant opens a link from an SMS."""
    context = await browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        yield await context.new_page()
    finally:
        await context.close()


async def signed_in_page(
    browser: Any,
    base_url: str,
    world: Any,
    person: str,
    path: str,
    *,
    viewport: dict[str, int] | None = None,
    locale: str = "en-IN",
) -> Any:
    """A new browser context (its own cookies, like a separate device) signed in as ``person``,
    through the real sign-in form, with ``path`` open. Close it with ``await page.context.close()``."""
    from tests.support.world import PASSWORD

    context = await browser.new_context(viewport=viewport or DESKTOP, locale=locale, base_url=base_url)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.script_errors = errors  # type: ignore[attr-defined]
    await page.goto(f"/login?next={path}")
    await page.fill("#username", world.emails[person])
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"**{path}")
    return page


async def screenshot(page: Any, name: str) -> Path:
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    target = SCREENSHOT_DIR / f"{name}.png"
    await page.screenshot(path=str(target), full_page=True)
    return target


async def serious_accessibility_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now (axe is injected over CDP,
    so the page's CSP is not loosened for it)."""
    from axe_playwright_python.async_playwright import Axe

    results = await Axe().run(page)
    return [
        {"id": v["id"], "impact": v["impact"], "help": v["help"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in results.response["violations"]
        if v.get("impact") in ("serious", "critical")
    ]


async def open_occupant_section(page: Any, name: str) -> None:
    """Open a section of the occupant app (/app) as a person would: its tab in the bar, or on a phone, for
    the sections kept behind "More" (Permits, Bills, Settings), More first and then the tab in its sheet."""
    tab = page.get_by_role("tab", name=name)
    if not await tab.is_visible():
        await page.locator("#occ-more").click()
    await tab.click()


async def loaded_width(image: Any) -> int:
    """An <img>'s natural width once it has loaded (0 if it failed). Visible means laid out: on a busy
    machine the picture itself may still be on its way."""
    return int(
        await image.evaluate(
            "img => img.complete ? img.naturalWidth : new Promise(done => {"
            " img.addEventListener('load', () => done(img.naturalWidth));"
            " img.addEventListener('error', () => done(0)); })"
        )
    )
