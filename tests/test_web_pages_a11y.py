"""axe-core on the pages that are not a console (sign-in, account, forbidden, not found, the one-tap
link page) at 360 and 1280 px: 0 serious or critical violations. The consoles have their own."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

from app.visitors import gate, ladder
from tests.support.browser import DESKTOP, PHONE, serious_accessibility_violations, signed_in_page
from tests.support.servers import FAST, InProcessServer
from tests.support.visitors import deps_for, principal_of


@pytest.fixture(scope="module")
async def server(settings: Any) -> AsyncIterator[InProcessServer]:
    running = InProcessServer(settings, FAST)
    running.app.state.settings = msgspec.structs.replace(settings, public_url=running.http_url)
    await running.start()
    yield running
    await running.stop()


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["360", "1280"])
async def test_the_other_pages_pass_axe(
    server: InProcessServer, world: Any, redis: Any, browser: Any, viewport: dict[str, int]
) -> None:
    context = await browser.new_context(viewport=viewport, base_url=server.http_url)
    try:
        page = await context.new_page()
        await page.goto("/login")
        assert await serious_accessibility_violations(page) == []

        deps = deps_for(world, redis, server.app.state.settings)
        created = await gate.register_walk_in(
            deps, principal_of(world, "guard"), gate.WalkInForm(unit_id=world.unit_ids[0], name="Sunil"), None
        )
        expires = int(dt.datetime.now(dt.UTC).timestamp()) + 600
        await page.goto(ladder.link_url(deps, created.approval_id, world.people["occupant"], expires))
        assert await page.get_by_role("button", name="Approve").count() == 1
        assert await serious_accessibility_violations(page) == []
    finally:
        await context.close()

    signed_in = await signed_in_page(browser, server.http_url, world, "technician", "/account", viewport=viewport)
    try:
        assert await serious_accessibility_violations(signed_in) == []
        for path, status in (("/control", 403), ("/no-such-page", 404)):
            response = await signed_in.goto(path)
            assert response is not None and response.status == status
            assert await serious_accessibility_violations(signed_in) == [], path
        # Only the refused documents themselves are logged (chromium reports a 403/404 page load).
        assert all("Failed to load resource" in error for error in signed_in.script_errors)
    finally:
        await signed_in.context.close()
