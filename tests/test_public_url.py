"""Links follow the port: a web process bound to a non-default PORT hands out links and callbacks
to that port (one-tap approval links, Twilio status callbacks, the voice <Gather> action, export
downloads), and they work; OPSHUB_PUBLIC_URL, when set, wins."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import httpx
import pytest

from app.config import Settings, load_settings
from app.devredis import free_port
from app.launcher import public_url_env
from app.people.directory import directory_for
from app.privacy import exports
from app.visitors import gate, ladder
from app.visitors.approvals import view
from app.visitors.common import VisitorDeps
from notifications import fanout, sender
from notifications.categories import Channel
from notifications.fakes import RunningFakes, running_fakes
from notifications.voice import VoiceCaller
from schema.notifications import Delivery
from tests.support.notify import pipeline
from tests.support.servers import SubprocessServer
from tests.support.visitors import add_occupant, principal_of
from tests.support.world import World


def test_public_url_is_derived_from_host_and_port_unless_set() -> None:
    assert load_settings({"PORT": "8122"}).public_url == "http://127.0.0.1:8122"
    assert load_settings({"HOST": "0.0.0.0", "PORT": "8122"}).public_url == "http://127.0.0.1:8122"
    assert load_settings({"HOST": "::", "PORT": "8122"}).public_url == "http://[::1]:8122"
    assert load_settings({"HOST": "hub.local", "PORT": "9000"}).public_url == "http://hub.local:9000"
    explicit = load_settings({"PORT": "8122", "OPSHUB_PUBLIC_URL": "https://hub.example.org/"})
    assert explicit.public_url == "https://hub.example.org/"
    assert explicit.public_link("/v/a/x") == "https://hub.example.org/v/a/x"
    assert Settings(port=8123).public_link("api/x") == "http://127.0.0.1:8123/api/x"


def test_launcher_pins_the_web_url_for_the_worker() -> None:
    """honcho gives the worker PORT + 100: with the launcher's env it still links to the web port."""
    web = load_settings({"PORT": "8122"})
    worker = load_settings({"PORT": "8222", **public_url_env(web)})
    assert worker.public_url == "http://127.0.0.1:8122"


def test_a_public_url_that_is_no_url_stops_start_up() -> None:
    from app.config import ConfigError

    with pytest.raises(ConfigError) as raised:
        load_settings({"OPSHUB_PUBLIC_URL": "hub.example.org"})
    assert "OPSHUB_PUBLIC_URL" in str(raised.value.code)


@pytest.fixture
async def fakes() -> AsyncIterator[RunningFakes]:
    async with running_fakes() as running:
        running.twilio.configure(callbacks_enabled=True, callback_delay=0.01)
        yield running


@pytest.fixture
async def web(fakes: RunningFakes) -> AsyncIterator[tuple[SubprocessServer, Settings]]:
    """The web process on a free, non-default port given as PORT (no OPSHUB_PUBLIC_URL), and the
    settings a worker started by the launcher beside it would have."""
    port = free_port()
    env = {**fakes.env(), "PORT": str(port)}
    assert "OPSHUB_PUBLIC_URL" not in os.environ
    server = SubprocessServer(port=port, env=env)
    await server.start()
    web_settings = load_settings(server.env)
    assert web_settings.public_url == f"http://127.0.0.1:{port}"
    worker_env = {**server.env, "PORT": str(port + 100), **public_url_env(web_settings)}
    worker_settings = load_settings(worker_env)
    try:
        yield server, worker_settings
    finally:
        await server.stop()


async def test_links_and_callbacks_follow_a_non_default_port(
    web: tuple[SubprocessServer, Settings], fakes: RunningFakes, world: World, redis: Any
) -> None:
    server, worker_settings = web
    base = f"http://127.0.0.1:{server.port}"
    deps = VisitorDeps(settings=worker_settings, redis=redis, directory=directory_for(worker_settings))
    link_mobile, voice_mobile = "+919845012301", "+919845012302"
    await add_occupant(world, "link_occupant", world.unit_ids[3], mobile=link_mobile)
    voice_person = await add_occupant(world, "voice_occupant", world.unit_ids[4], mobile=voice_mobile)
    t0 = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=10)
    by_link = await gate.register_walk_in(
        deps, principal_of(world, "guard"), gate.WalkInForm(unit_id=world.unit_ids[3], name="Link Guest"), None, now=t0
    )
    by_voice = await gate.register_walk_in(
        deps, principal_of(world, "guard"), gate.WalkInForm(unit_id=world.unit_ids[4], name="Voice Guest"), None, now=t0
    )
    ours = {by_link.approval_id, by_voice.approval_id}
    voice = VoiceCaller.from_settings(worker_settings)
    try:
        # What the worker does: the SMS rung (one-tap link), then the voice rung (<Gather> action).
        taken = await ladder.advance_ladders(deps, voice, now=t0 + dt.timedelta(seconds=45))
        assert sorted(s.action for s in taken if s.approval_id in ours) == ["message", "message"]
        message_step = (await view(world.site_id, by_link.approval_id)).steps[1]
        notification_ids = [UUID(n) for n in message_step.detail["notifications"]]
        async with pipeline(worker_settings, redis, fakes) as ctx:
            for notification_id in notification_ids:
                for channel in await fanout.expand(ctx, notification_id):
                    await sender.send_pending(ctx, notification_id, Channel(channel))
        taken = await ladder.advance_ladders(deps, voice, now=t0 + dt.timedelta(seconds=90))
        assert sorted(s.action for s in taken if s.approval_id in ours) == ["voice", "voice"]
    finally:
        await voice.aclose()

    # The Twilio status callback is ours on that port, and its `delivered` is recorded by the web process.
    (sms,) = [m for m in fakes.twilio.messages if m.to == link_mobile]
    assert (sms.status_callback or "").startswith(f"{base}/api/webhooks/twilio/status?")
    async with asyncio.timeout(15):
        await fakes.twilio.drain()
    callbacks = [
        w for w in fakes.twilio.webhooks if w.kind == "message-status" and w.params.get("MessageSid") == sms.sid
    ]
    assert [w.params["MessageStatus"] for w in callbacks] == ["sent", "delivered"]
    assert all(w.status_code == 204 for w in callbacks), [(w.status_code, w.error) for w in callbacks]
    rows = await Delivery.select(Delivery.status).where(Delivery.notification.is_in(notification_ids))
    assert {r["status"] for r in rows} == {"delivered"}

    # The one-tap link points at that port, and a POST to it decides.
    found = re.search(r"(http://\S+/v/a/\S+)", sms.body or "")
    assert found is not None and found.group(1).startswith(f"{base}/v/a/"), sms.body
    async with httpx.AsyncClient(timeout=10) as http:
        answered = await http.post(found.group(1), data={"decision": "approved"})
    assert answered.status_code == 200, answered.text
    link_final = await view(world.site_id, by_link.approval_id)
    assert (link_final.status, link_final.decided_via) == ("approved", "link")

    # The voice call's <Gather> action is on that port, and a pressed digit decides.
    (call,) = [c for c in fakes.twilio.calls if c.to == voice_mobile]
    assert f'<Gather action="{base}/api/webhooks/twilio/visitor-gather?token=' in (call.twiml or "")
    pressed = await fakes.twilio.press_digits(call.sid, "1")
    assert pressed.status_code == 200 and "approved" in (pressed.response_body or ""), pressed.response_body
    voice_final = await view(world.site_id, by_voice.approval_id)
    assert (voice_final.status, voice_final.decided_via, voice_final.decided_by) == ("approved", "voice", voice_person)

    # An export's download link, as the web process hands it out, is on that port and downloads.
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        requested = await http.post("/api/me/exports", headers=world.headers("occupant"))
        assert requested.status_code == 202, requested.text
        export_id = UUID(requested.json()["id"])
        await exports.build_export(worker_settings, redis, directory_for(worker_settings), export_id)
        listed = await http.get("/api/me/exports", headers=world.headers("occupant"))
        items = listed.json()["items"]
        (mine,) = [e for e in items if e["id"] == str(export_id)]
        assert mine["download_url"].startswith(f"{base}/api/privacy/exports/{export_id}/download?"), mine
        download = await http.get(mine["download_url"])
    assert download.status_code == 200 and download.content[:2] == b"PK"
