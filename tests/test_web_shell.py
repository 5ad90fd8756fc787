"""The pages' shell: sign-in with an HttpOnly session cookie, CSRF, security headers, role pages, the
websocket on the session, idempotent replays."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.support.browser import signed_in_page
from tests.support.servers import FAST, InProcessServer


@pytest.fixture(scope="module")
async def server(settings: Any) -> AsyncIterator[InProcessServer]:
    running = InProcessServer(settings, FAST)
    await running.start()
    yield running
    await running.stop()


async def test_guard_page_goes_live_over_the_session_cookie(server: InProcessServer, world: Any, browser: Any) -> None:
    page = await signed_in_page(browser, server.http_url, world, "guard", "/guard")
    try:
        await page.wait_for_selector("#conn-state[data-state=online]", timeout=5000)
        cookies = await page.context.cookies()
        session = next(c for c in cookies if c["name"] == "opshub_session")
        assert session["httpOnly"] and session["sameSite"] == "Strict"
        assert await page.evaluate("document.cookie") == ""
        assert page.script_errors == []  # type: ignore[attr-defined]
    finally:
        await page.context.close()
