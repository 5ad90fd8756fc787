"""A worker SIGKILLed in the middle of a visitor ladder rung, then restarted (issue 16, point 6).

A walk-in's request to a unit of three occupants climbs the site's default ladder (push at once,
SMS, voice call, guard prompt), backdated so that every rung is due. The first worker is a real
`arq` process that kills itself (SIGKILL, the fault point ``OPSHUB_FAULT_KILL_AT``) inside the
SMS rung: right after claiming it, or after its first occupant's message. A second worker,
started on the same database and Redis, must finish that rung and the rest of the ladder.

Afterwards the SMS rung is recorded once and finished, each occupant got exactly one SMS and one
push at the fake Twilio and FCM servers (reached through the real SDKs) and exactly one voice
call, and the guard prompt was taken.

Then, under a controlled clock and without a worker process: what a dead worker leaves behind
(a rung claimed and ``started``, a call recorded as being dialled) is taken again only once its
lease is over, a call in doubt is not dialled again, a rung whose request was answered
meanwhile is closed without sending, and one that keeps killing its worker is closed after its
last attempt.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, NamedTuple
from uuid import UUID

import pytest

from app.db import is_sqlite
from app.faults import KILL_AT_ENV
from app.visitors import approvals, gate, ladder, sitecfg
from app.visitors.common import VisitorDeps
from notifications.fakes import RunningFakes, running_fakes
from notifications.voice import VoiceCaller
from schema.jsonvalue import as_dict
from schema.notifications import Notification
from schema.visitors import VisitorApproval, VisitorApprovalStep
from tests.support.faults import cancel_other_notifications, start_worker, stop_worker, wait_until, worker_env
from tests.support.notify import add_recipients, settings_for_fakes
from tests.support.visitors import add_occupant, deps_for, principal_of
from tests.support.world import World

OCCUPANTS = 3
LEASE_SECONDS = 2


async def _steps(approval_id: UUID) -> list[dict[str, Any]]:
    rows = await VisitorApprovalStep.select().where(VisitorApprovalStep.approval == approval_id)
    return sorted(rows, key=lambda r: r["step"])


async def _park_other_requests(site_id: UUID) -> None:
    """Earlier tests leave pending walk-ins whose rungs are long due; the worker started here would
    take those first (and die in one of them). Stop their ladders, so this test kills its own."""
    await VisitorApproval.update({VisitorApproval.next_step_at: None}).where(
        (VisitorApproval.site != site_id) & (VisitorApproval.status == "pending")
    )


@pytest.mark.parametrize("kill_at", ["visitors.ladder.claimed", "visitors.ladder.sent_one"])
async def test_worker_sigkilled_inside_a_rung_the_rung_runs_once_after_restart(
    world: World, settings: Any, redis: Any, tmp_dir: Path, kill_at: str
) -> None:
    unit = world.unit_ids[1]  # nobody else lives there
    people = await add_recipients(world, OCCUPANTS, unit=unit)  # each with a mobile and a device
    mobiles = {p.mobile for p in people}
    tokens = {p.token for p in people}
    await cancel_other_notifications(world.site_id)
    await _park_other_requests(world.site_id)
    # Requested 200 s ago: the SMS (45 s), the call (90 s) and the guard prompt (150 s) are all due.
    t0 = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=200)
    created = await gate.register_walk_in(
        deps_for(world, redis, settings),
        principal_of(world, "guard"),
        gate.WalkInForm(unit_id=unit, name="Ravi Courier", kind="delivery"),
        None,
        now=t0,
    )
    approval_id = created.approval_id
    log_path = tmp_dir / "worker.log"
    async with running_fakes() as fakes:
        fakes.twilio.configure(callbacks_enabled=False)
        env = worker_env(fakes, OPSHUB_VISITOR_RUNG_LEASE_SECONDS=str(LEASE_SECONDS))
        with log_path.open("ab") as log:
            worker = await start_worker({**env, KILL_AT_ENV: kill_at}, log)
            try:
                await asyncio.wait_for(worker.wait(), 60)
            except TimeoutError:
                await stop_worker(worker)
                raise AssertionError(f"the worker never reached {kill_at}:\n{log_path.read_text()[-3000:]}") from None
            assert worker.returncode == -signal.SIGKILL, log_path.read_text()[-3000:]
            # Every rung is due, so a tick that overlapped the slow SMS rung (the cron runs every 3 s) may
            # already have claimed the voice rung: what counts is that the SMS rung was left unfinished.
            at_kill = {s["step"]: s for s in await _steps(approval_id)}
            assert 1 in at_kill and at_kill[1]["action"] == "message" and at_kill[1]["state"] == "started", (
                f"the worker did not die in this request's SMS rung: {at_kill}"
            )

            worker = await start_worker(env, log)
            try:

                async def prompted() -> bool:
                    return any(s["action"] == "guard_prompt" for s in await _steps(approval_id))

                await wait_until(prompted, 60, "the restarted worker to reach the guard prompt")

                async def all_sent() -> bool:
                    sms = {m.to for m in fakes.twilio.messages if m.channel == "sms"}
                    pushed = {m.target for m in fakes.fcm.messages}
                    return mobiles <= sms and tokens <= pushed

                # Give a missing SMS time to arrive, and a repeat time to show (a lease or two).
                with_sms = await _eventually(all_sent, 20)
                await asyncio.sleep(3 * LEASE_SECONDS + 3)
            finally:
                await stop_worker(worker)
        sms = Counter(m.to for m in fakes.twilio.messages if m.channel == "sms")
        calls = Counter(c.to for c in fakes.twilio.calls)
        pushes = Counter(m.target for m in fakes.fcm.messages)

    steps = await _steps(approval_id)
    assert [(s["step"], s["action"]) for s in steps] == [
        (0, "push"),
        (1, "message"),
        (2, "voice"),
        (3, "guard_prompt"),
    ], "a rung is missing after the restart"
    assert with_sms, f"not every occupant got the SMS: {dict(sms)}"
    assert {m: sms[m] for m in mobiles} == dict.fromkeys(mobiles, 1), "an occupant got the SMS twice, or never"
    assert {t: pushes[t] for t in tokens} == dict.fromkeys(tokens, 1), "an occupant got the first push twice, or never"
    assert {m: calls[m] for m in mobiles} == dict.fromkeys(mobiles, 1), "an occupant was called twice, or never"
    message = as_dict(steps[1]["detail"])
    assert len(message.get("notifications", [])) == OCCUPANTS, message
    made = await Notification.count().where(Notification.idempotency_key.like(f"visitor:ladder:{approval_id}:1:%"))
    assert made == OCCUPANTS, "the re-run made a second notification for someone"
    assert steps[1]["attempts"] >= 2, "the SMS rung was not taken over after the kill"
    assert [s.get("state") for s in steps[1:]] == ["done"] * 3, "a rung was left unfinished"
    assert all(s["at"] >= t0 for s in steps)


# ---------------------------------------------------------------------------- what a dead worker leaves

MOBILE = "+919845054321"


@pytest.fixture
async def fakes() -> AsyncIterator[RunningFakes]:
    async with running_fakes() as running:
        running.twilio.configure(callbacks_enabled=False)
        yield running


class Walkin(NamedTuple):
    deps: VisitorDeps
    voice: VoiceCaller
    site_id: UUID
    approval_id: UUID
    person_id: UUID
    t0: dt.datetime
    lease: dt.timedelta


@pytest.fixture
async def walk_in(world: World, settings: Any, redis: Any, fakes: RunningFakes) -> AsyncIterator[Walkin]:
    """A pending walk-in to a unit of one occupant with a mobile, requested an hour ago (controlled clock)."""
    app_settings = settings_for_fakes(settings, fakes)
    unit = world.unit_ids[2]
    person_id = await add_occupant(world, "lease_occupant", unit, mobile=MOBILE)
    deps = deps_for(world, redis, app_settings)
    t0 = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=1)
    created = await gate.register_walk_in(
        deps,
        principal_of(world, "guard"),
        gate.WalkInForm(unit_id=unit, name="Meena Tailor", kind="service"),
        None,
        now=t0,
    )
    voice = VoiceCaller.from_settings(app_settings)
    try:
        yield Walkin(
            deps,
            voice,
            world.site_id,
            created.approval_id,
            person_id,
            t0,
            dt.timedelta(seconds=settings.visitor_rung_lease_seconds),
        )
    finally:
        await voice.aclose()


async def _advance(w: Walkin, at: dt.datetime) -> list[str]:
    return [s.action for s in await ladder.advance_ladders(w.deps, w.voice, now=at) if s.approval_id == w.approval_id]


async def _claim_as_a_worker_that_dies(w: Walkin, at: dt.datetime) -> ladder.Started:
    """Claim the request's next rung, as a worker does before it acts (and then die: do nothing)."""
    row = await VisitorApproval.select().where(VisitorApproval.id == w.approval_id).first()
    assert row is not None
    started = await ladder._claim(row, (await sitecfg.load(row["site"])).ladder, at, w.lease)
    assert started is not None
    return started


async def test_a_rung_left_started_is_taken_again_once_its_lease_is_over(walk_in: Walkin, fakes: RunningFakes) -> None:
    w = walk_in
    assert await _advance(w, w.t0 + dt.timedelta(seconds=45)) == ["message"]
    at = w.t0 + dt.timedelta(seconds=90)
    started = await _claim_as_a_worker_that_dies(w, at)
    assert started.action == "voice"
    # Its lease still runs: the worker may only be slow. Nothing is taken, nobody is called.
    assert await _advance(w, at + w.lease - dt.timedelta(seconds=1)) == []
    assert [c for c in fakes.twilio.calls if c.to == MOBILE] == []
    # The lease is over: the rung is run again, once.
    assert await _advance(w, at + w.lease + dt.timedelta(seconds=1)) == ["voice"]
    assert await _advance(w, at + w.lease + dt.timedelta(seconds=2)) == []
    assert len([c for c in fakes.twilio.calls if c.to == MOBILE]) == 1
    (voice_step,) = [s for s in await _steps(w.approval_id) if s["step"] == 2]
    assert (voice_step["state"], voice_step["attempts"], voice_step["at"]) == ("done", 2, at)
    assert [c["error"] for c in as_dict(voice_step["detail"])["calls"]] == [None]
    # The ladder goes on.
    assert await _advance(w, w.t0 + dt.timedelta(seconds=max(150, 92 + int(w.lease.total_seconds())))) == [
        "guard_prompt"
    ]


async def test_a_call_in_doubt_is_not_dialled_again(walk_in: Walkin, fakes: RunningFakes) -> None:
    w = walk_in
    assert await _advance(w, w.t0 + dt.timedelta(seconds=45)) == ["message"]
    at = w.t0 + dt.timedelta(seconds=90)
    started = await _claim_as_a_worker_that_dies(w, at)
    # The worker recorded the call it was about to place, then died: did the phone ring? Unknown.
    in_doubt = {"person": str(w.person_id), "sid": None, "error": "in_doubt"}
    assert await ladder._write(started, {"calls": [in_doubt]})
    assert await _advance(w, at + w.lease + dt.timedelta(seconds=1)) == ["voice"]
    assert [c for c in fakes.twilio.calls if c.to == MOBILE] == []  # at most one call: none again
    (voice_step,) = [s for s in await _steps(w.approval_id) if s["step"] == 2]
    assert voice_step["state"] == "done" and as_dict(voice_step["detail"]) == {"calls": [in_doubt]}
    # The dead worker's attempt can no longer write anything.
    assert not await ladder._write(started, {"calls": []}, done=True)


async def test_a_rung_whose_request_was_answered_meanwhile_is_closed_without_sending(walk_in: Walkin) -> None:
    w = walk_in
    at = w.t0 + dt.timedelta(seconds=45)
    started = await _claim_as_a_worker_that_dies(w, at)
    assert started.action == "message"
    await approvals.answer(
        w.deps, w.site_id, w.approval_id, "approved", person_id=w.person_id, via="app", now=at + dt.timedelta(seconds=5)
    )
    assert await _advance(w, at + w.lease + dt.timedelta(seconds=1)) == []
    (message_step,) = [s for s in await _steps(w.approval_id) if s["step"] == 1]
    assert message_step["state"] == "done" and as_dict(message_step["detail"]) == {"closed": "approved"}
    assert not await Notification.exists().where(Notification.idempotency_key.like(f"visitor:ladder:{w.approval_id}:%"))


async def test_a_rung_that_keeps_killing_its_worker_is_closed_after_its_last_attempt(walk_in: Walkin) -> None:
    w = walk_in
    at = w.t0 + dt.timedelta(seconds=45)
    started = await _claim_as_a_worker_that_dies(w, at)
    # As if MAX_RUNG_ATTEMPTS workers had each taken it over and died in it.
    await VisitorApprovalStep.update({VisitorApprovalStep.attempts: ladder.MAX_RUNG_ATTEMPTS}).where(
        VisitorApprovalStep.id == started.step_id
    )
    assert await _advance(w, at + w.lease + dt.timedelta(seconds=1)) == []
    (message_step,) = [s for s in await _steps(w.approval_id) if s["step"] == 1]
    assert message_step["state"] == "done" and as_dict(message_step["detail"]) == {"error": "gave_up"}
    assert not await Notification.exists().where(Notification.idempotency_key.like(f"visitor:ladder:{w.approval_id}:%"))
    # The ladder itself goes on to the next rung.
    assert await _advance(w, w.t0 + dt.timedelta(seconds=90)) == ["voice"]


REFUSE_LADDER_NOTIFICATIONS = {
    "sqlite": [
        """CREATE TRIGGER refuse_ladder_notifications BEFORE INSERT ON notification
           WHEN NEW.idempotency_key LIKE 'visitor:ladder:%'
           BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END""",
    ],
    "postgres": [
        """CREATE FUNCTION refuse_ladder_notifications() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN RAISE EXCEPTION 'could not write block'; END $$""",
        """CREATE TRIGGER refuse_ladder_notifications BEFORE INSERT ON notification FOR EACH ROW
           WHEN (NEW.idempotency_key LIKE 'visitor:ladder:%') EXECUTE FUNCTION refuse_ladder_notifications()""",
    ],
}
ALLOW_LADDER_NOTIFICATIONS = {
    "sqlite": ["DROP TRIGGER refuse_ladder_notifications"],
    "postgres": [
        "DROP TRIGGER refuse_ladder_notifications ON notification",
        "DROP FUNCTION refuse_ladder_notifications()",
    ],
}


async def _run_sql(statements: dict[str, list[str]]) -> None:
    for statement in statements["sqlite" if is_sqlite() else "postgres"]:
        await Notification.raw(statement)


async def test_a_rung_whose_messages_the_database_refused_is_run_again(walk_in: Walkin) -> None:
    """The database fails the SMS rung's writes: the rung is not finished as if everyone were told."""
    w = walk_in
    at = w.t0 + dt.timedelta(seconds=45)
    await _run_sql(REFUSE_LADDER_NOTIFICATIONS)
    try:
        await ladder.advance_ladders(w.deps, w.voice, now=at)
    finally:
        await _run_sql(ALLOW_LADDER_NOTIFICATIONS)
    (message_step,) = [s for s in await _steps(w.approval_id) if s["step"] == 1]
    assert message_step["state"] == "started"
    assert await _advance(w, at + w.lease + dt.timedelta(seconds=1)) == ["message"]
    (message_step,) = [s for s in await _steps(w.approval_id) if s["step"] == 1]
    assert message_step["state"] == "done" and len(as_dict(message_step["detail"])["notifications"]) == 1
    made = await Notification.count().where(Notification.idempotency_key.like(f"visitor:ladder:{w.approval_id}:%"))
    assert made == 1  # the unit's one occupant, told once


async def _eventually(predicate: Any, within: float) -> bool:
    try:
        await wait_until(predicate, within, "")
    except AssertionError:
        return False
    return True
