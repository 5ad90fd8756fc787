"""The escalation ladder under a controlled clock, with the real Twilio SDK against the fake Twilio:
no answer -> SMS with a one-tap link at the configured delay -> a voice call whose TwiML gathers a
digit -> guard prompt; then the callee presses 1 and the signed callback approves the visit."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import httpx
import pytest

from app.visitors import gate, ladder
from app.visitors.approvals import view
from app.visitors.common import VisitorDeps
from notifications import fanout, sender
from notifications.categories import Channel
from notifications.fakes import RunningFakes, running_fakes
from notifications.voice import VoiceCaller
from realtime.client import RealtimeClient
from realtime.topics import site_topic
from schema import visitors_events as ev
from schema.events import Event
from schema.visitors import VisitorApprovalStep
from tests.support.notify import pipeline, settings_for_fakes
from tests.support.servers import FAST, InProcessServer
from tests.support.visitors import add_occupant, principal_of

MOBILE = "+919845012345"


@pytest.fixture
async def fakes() -> AsyncIterator[RunningFakes]:
    async with running_fakes() as running:
        running.twilio.configure(callbacks_enabled=False)
        yield running


@pytest.fixture
async def wired(settings: Any, fakes: RunningFakes) -> AsyncIterator[tuple[InProcessServer, Any]]:
    """The app under uvicorn, its public URL pointing at itself so Twilio's callbacks reach it."""
    server = InProcessServer(settings, FAST)
    app_settings = settings_for_fakes(settings, fakes, public_url=server.http_url)
    server.app.state.settings = app_settings
    await server.start()
    yield server, app_settings
    await server.stop()


async def send_notifications(settings: Any, redis: Any, fakes: RunningFakes, ids: list[str]) -> None:
    """What the notify worker does for these notifications, without a worker process."""
    async with pipeline(settings, redis, fakes) as ctx:
        for notification_id in ids:
            for channel in await fanout.expand(ctx, UUID(notification_id)):
                await sender.send_pending(ctx, UUID(notification_id), Channel(channel))


async def advance(deps: VisitorDeps, voice: VoiceCaller, approval_id: UUID, now: dt.datetime) -> list[str]:
    """The rungs taken for this request (the database is shared with other tests' pending requests)."""
    return [s.action for s in await ladder.advance_ladders(deps, voice, now=now) if s.approval_id == approval_id]


async def steps_of(approval_id: UUID) -> list[tuple[int, str, dt.datetime]]:
    rows = await VisitorApprovalStep.select().where(VisitorApprovalStep.approval == approval_id)
    return sorted((r["step"], r["action"], r["at"]) for r in rows)


async def test_ladder_sms_then_voice_then_guard_prompt_and_the_pressed_digit_approves(
    wired: tuple[InProcessServer, Any], fakes: RunningFakes, world: Any, redis: Any
) -> None:
    server, app_settings = wired
    unit = world.unit_ids[3]
    person = await add_occupant(world, "ladder_occupant", unit, mobile=MOBILE)
    deps = VisitorDeps(settings=app_settings, redis=redis, directory=server.app.state.directory)
    t0 = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=10)
    created = await gate.register_walk_in(
        deps,
        principal_of(world, "guard"),
        gate.WalkInForm(unit_id=unit, name="Suresh Plumber", kind="service"),
        None,
        now=t0,
    )
    approval_id = created.approval_id
    voice = VoiceCaller.from_settings(app_settings)
    try:
        async with RealtimeClient(server.url, world.token("guard"), gate="main") as guard:
            # 44 s: nothing is due yet.
            assert await advance(deps, voice, approval_id, t0 + dt.timedelta(seconds=44)) == []
            # 45 s: SMS with a one-tap link; taking it again at the same moment does nothing.
            at_45 = t0 + dt.timedelta(seconds=45)
            assert await advance(deps, voice, approval_id, at_45) == ["message"]
            assert await advance(deps, voice, approval_id, at_45) == []
            message_step = (await view(world.site_id, approval_id)).steps[1]
            await send_notifications(app_settings, redis, fakes, message_step.detail["notifications"])
            (sms,) = [m for m in fakes.twilio.messages if m.to == MOBILE]
            assert sms.channel == "sms" and "Suresh Plumber" in (sms.body or "")
            assert re.search(re.escape(server.http_url) + r"/v/a/[0-9a-f]{32}\.[0-9a-f]{32}\.\d+\.\S+", sms.body or "")
            assert [c for c in fakes.twilio.calls if c.to == MOBILE] == []

            # 90 s: the voice call, whose TwiML gathers one digit for our signed callback.
            at_90 = t0 + dt.timedelta(seconds=90)
            assert await advance(deps, voice, approval_id, at_90) == ["voice"]
            (call,) = [c for c in fakes.twilio.calls if c.to == MOBILE]
            assert call.to == MOBILE and call.from_ == "+15005550006"
            twiml = call.twiml or ""
            assert '<Gather action="' + server.http_url + "/api/webhooks/twilio/visitor-gather?token=" in twiml
            assert 'numDigits="1"' in twiml and "Press 1 to approve" in twiml and "press 2 to deny" in twiml

            # 150 s: the guard is told to call, with whom to call.
            at_150 = t0 + dt.timedelta(seconds=150)
            assert await advance(deps, voice, approval_id, at_150) == ["guard_prompt"]
            prompts = []
            while len(prompts) < 3:
                message = await guard.recv()
                if isinstance(message, Event) and message.type == ev.APPROVAL_ESCALATED:
                    prompts.append(message)
            assert [p.data["action"] for p in prompts] == ["message", "voice", "guard_prompt"]
            assert prompts[2].topic == site_topic(world.site_id, "gate")
            assert prompts[2].data["call"] == [{"person_id": str(person), "name": "Ladder Occupant", "mobile": MOBILE}]
            # The ladder is over: nothing more to take.
            assert await advance(deps, voice, approval_id, t0 + dt.timedelta(hours=1)) == []

            # The callee presses 1: the fake POSTs the digit, signed, to the Gather's action.
            delivery = await fakes.twilio.press_digits(call.sid, "1")
            assert delivery.status_code == 200, delivery.response_body
            assert "The visitor is approved" in (delivery.response_body or "")
            resolved = None
            while resolved is None:
                message = await guard.recv()
                if isinstance(message, Event) and message.type == ev.APPROVAL_RESOLVED:
                    resolved = message
            assert resolved.data["decision"] == "approved" and resolved.data["decided_via"] == "voice"
    finally:
        await voice.aclose()

    final = await view(world.site_id, approval_id)
    assert (final.status, final.decided_via, final.decided_by) == ("approved", "voice", person)
    assert final.time_to_decision_ms is not None and final.time_to_decision_ms >= 150_000
    assert [(s[0], s[1], s[2] - t0) for s in (await steps_of(approval_id))[:4]] == [
        (0, "push", dt.timedelta(0)),
        (1, "message", dt.timedelta(seconds=45)),
        (2, "voice", dt.timedelta(seconds=90)),
        (3, "guard_prompt", dt.timedelta(seconds=150)),
    ]
    assert (await steps_of(approval_id))[4][1] == "decided"

    # A second press (or a replay) is told it was already answered.
    again = await fakes.twilio.press_digits(call.sid, "2")
    assert "already approved" in (again.response_body or "")


async def test_gather_callback_needs_twilio_signature_and_a_valid_token(
    wired: tuple[InProcessServer, Any], fakes: RunningFakes, world: Any, redis: Any
) -> None:
    server, app_settings = wired
    deps = VisitorDeps(settings=app_settings, redis=redis, directory=server.app.state.directory)
    created = await gate.register_walk_in(
        deps, principal_of(world, "guard"), gate.WalkInForm(unit_id=world.unit_ids[0], name="Unsigned"), None
    )
    url = ladder.gather_url(deps, created.approval_id, world.people["occupant"], 2_000_000_000)
    params = {"CallSid": "CA" + "1" * 32, "Digits": "1"}
    async with httpx.AsyncClient() as http:
        unsigned = await http.post(url, data=params)
        forged = await http.post(url, data=params, headers={"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"})
        tampered_url = url[:-3] + ("aaa" if not url.endswith("aaa") else "bbb")
        signed_bad_token = await http.post(
            tampered_url, data=params, headers={"X-Twilio-Signature": fakes.twilio.sign(tampered_url, params)}
        )
    assert unsigned.status_code == 403 and forged.status_code == 403
    assert signed_bad_token.status_code == 200 and "expired" in signed_bad_token.text
    assert (await view(world.site_id, created.approval_id)).status == "pending"


async def test_one_tap_link_answers_once(
    wired: tuple[InProcessServer, Any], fakes: RunningFakes, world: Any, redis: Any
) -> None:
    server, app_settings = wired
    deps = VisitorDeps(settings=app_settings, redis=redis, directory=server.app.state.directory)
    created = await gate.register_walk_in(
        deps, principal_of(world, "guard"), gate.WalkInForm(unit_id=world.unit_ids[0], name="Link Visitor"), None
    )
    now = int(dt.datetime.now(dt.UTC).timestamp())
    link = ladder.link_url(deps, created.approval_id, world.people["occupant"], now + 600)
    expired = ladder.link_url(deps, created.approval_id, world.people["occupant"], now - 1)
    async with httpx.AsyncClient() as http:
        page = await http.get(link)
        assert page.status_code == 200 and "Link Visitor" in page.text and "Approve" in page.text
        assert (await view(world.site_id, created.approval_id)).status == "pending"  # a GET never decides
        assert (await http.post(expired, data={"decision": "approved"})).status_code == 403
        tampered = link[:-2] + ("xx" if not link.endswith("xx") else "yy")
        assert (await http.post(tampered, data={"decision": "approved"})).status_code == 403
        denied = await http.post(link, data={"decision": "denied"})
        assert denied.status_code == 200 and "denied" in denied.text
        again = await http.post(link, data={"decision": "approved"})
        assert again.status_code == 409 and "already denied" in again.text
    final = await view(world.site_id, created.approval_id)
    assert (final.status, final.decided_via, final.decided_by) == ("denied", "link", world.people["occupant"])
