"""The one-tap approval page, as an occupant meets it: a link from an SMS opened in a phone's
browser (real headless chromium), a tap on Approve, and the guard's console told at once."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

from app.visitors import gate, ladder
from app.visitors.approvals import view
from app.visitors.common import VisitorDeps
from realtime.client import RealtimeClient
from realtime.topics import site_topic
from schema import visitors_events as ev
from schema.events import Event
from tests.support.servers import FAST, InProcessServer
from tests.support.visitors import principal_of


@pytest.fixture
async def server(settings: Any) -> AsyncIterator[InProcessServer]:
    """The app under uvicorn, with its public URL pointing at itself (the links it signs open it)."""
    running = InProcessServer(settings, FAST)
    running.app.state.settings = msgspec.structs.replace(settings, public_url=running.http_url)
    await running.start()
    yield running
    await running.stop()


async def _resolved(guard: RealtimeClient, topic: str) -> Event:
    async with asyncio.timeout(5):
        while True:
            message = await guard.recv()
            if isinstance(message, Event) and message.topic == topic and message.type == ev.APPROVAL_RESOLVED:
                return message


async def test_occupant_approves_from_the_link_page_and_the_guard_sees_it(
    server: InProcessServer, world: Any, redis: Any, phone_page: Any
) -> None:
    deps = VisitorDeps(settings=server.app.state.settings, redis=redis, directory=server.app.state.directory)
    created = await gate.register_walk_in(
        deps,
        principal_of(world, "guard"),
        gate.WalkInForm(unit_id=world.unit_ids[0], name="Sunil Plumber", purpose="tap repair"),
        None,
    )
    expires = int(dt.datetime.now(dt.UTC).timestamp()) + 600
    link = ladder.link_url(deps, created.approval_id, world.people["occupant"], expires)
    gate_topic = site_topic(world.site_id, "gate")

    async with RealtimeClient(server.url, world.token("guard"), gate="main") as guard:
        await phone_page.goto(link)
        body = phone_page.locator("body")
        assert "Sunil Plumber (tap repair) is waiting at the gate." in await body.inner_text()
        assert await phone_page.get_by_role("button").all_inner_texts() == ["Approve", "Deny", "Leave at gate"]
        # Opening the page decided nothing (link previewers open links too).
        assert (await view(world.site_id, created.approval_id)).status == "pending"

        await phone_page.get_by_role("button", name="Approve").click()
        await phone_page.wait_for_selector("text=Thank you")
        assert "The visitor was approved. The guard has been told." in await body.inner_text()
        resolved = await _resolved(guard, gate_topic)
        assert resolved.data["decision"] == "approved" and resolved.data["decided_via"] == "link"

    # The same link again (the back button, a second tap): it says what happened and changes nothing.
    await phone_page.goto(link)
    assert "was already approved" in await phone_page.locator("body").inner_text()
    final = await view(world.site_id, created.approval_id)
    assert (final.status, final.decided_via, final.decided_by) == ("approved", "link", world.people["occupant"])


async def test_an_expired_link_says_so_in_the_browser(
    server: InProcessServer, world: Any, redis: Any, phone_page: Any
) -> None:
    deps = VisitorDeps(settings=server.app.state.settings, redis=redis, directory=server.app.state.directory)
    created = await gate.register_walk_in(
        deps, principal_of(world, "guard"), gate.WalkInForm(unit_id=world.unit_ids[0], name="Late Visitor"), None
    )
    expired = ladder.link_url(deps, created.approval_id, world.people["occupant"], 1)
    response = await phone_page.goto(expired)
    assert response is not None and response.status == 403
    assert "Link not usable" in await phone_page.locator("h1").inner_text()
    assert await phone_page.get_by_role("button").count() == 0
