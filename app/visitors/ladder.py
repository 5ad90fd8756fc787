"""The escalation ladder: while a walk-in request is pending, take the site's next rung when due.

``advance_ladders(deps, voice, now)`` (called by an arq cron every few seconds, or by tests with a
controlled clock) moves each due request exactly one rung:

1. claim the rung and record it, in one transaction: a conditional UPDATE (``next_step`` = i ->
   i + 1, only while pending), so two workers never take the same rung, and a
   ``visitor_approval_step`` row (unique per approval and step) with its timestamp, ``started``
   under a lease (``OPSHUB_VISITOR_RUNG_LEASE_SECONDS``);
2. act: ``message`` sends each occupant an SMS/WhatsApp through NOTIFY with a personal one-tap link
   (signed, expiring); ``voice`` calls each occupant's mobile through Twilio Voice with a
   "press 1 / press 2" TwiML whose action is our signed callback; ``guard_prompt`` tells the gate
   console to call the occupants by hand (their names and numbers in the event);
3. record the rung ``done`` with what it sent.

arq runs a job at least once and a worker can die anywhere, so the database holds the truth: a rung
still ``started`` when its lease ends is run again by the next tick (``attempts`` + 1 fences out the
earlier holder). Messages are exactly-once through NOTIFY's ledger (idempotency key per approval,
rung and person; deliveries are exactly-once by key there). A call is recorded before it is dialled
and never dialled again, so a call in flight when a worker died is at most once ("in_doubt").
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any
from uuid import UUID

import msgspec

from app.db import write_transaction
from app.errors import Conflict, NotFound
from app.faults import kill_point
from app.visitors import codes, sitecfg
from app.visitors.common import (
    VisitorDeps,
    notify,
    now_utc,
    occupants_of,
    person_names,
    publish_all,
    unit_labels,
)
from notifications.audience import Audience
from notifications.categories import Category, Channel, Urgency
from notifications.preferences import consent_matrix, is_enabled
from notifications.voice import VoiceCaller, gather_twiml
from realtime.topics import site_topic
from schema import visitors_events as ev
from schema.jsonvalue import as_dict
from schema.visitors import Visit, VisitorApproval, VisitorApprovalStep

logger = logging.getLogger("opshub.visitors.ladder")

LINK_PATH = "/v/a/"
GATHER_PATH = "/api/webhooks/twilio/visitor-gather"
# A rung that keeps failing (or keeps killing its worker) is closed after this many attempts.
MAX_RUNG_ATTEMPTS = 5


class TakenStep(msgspec.Struct, frozen=True):
    approval_id: UUID
    step: int
    action: str


def link_url(deps: VisitorDeps, approval_id: UUID, person_id: UUID, expires_at: int) -> str:
    token = codes.sign_answer(deps.settings, codes.AnswerToken("link", approval_id, person_id, expires_at))
    return deps.settings.public_link(LINK_PATH + token)


def gather_url(deps: VisitorDeps, approval_id: UUID, person_id: UUID, expires_at: int) -> str:
    token = codes.sign_answer(deps.settings, codes.AnswerToken("voice", approval_id, person_id, expires_at))
    return deps.settings.public_link(f"{GATHER_PATH}?token={token}")


class Started(msgspec.Struct, frozen=True):
    """A rung held by this worker: its step row and the attempt that fences its writes."""

    step_id: UUID
    step: int
    action: str
    attempt: int
    detail: dict[str, Any]


def _lease(deps: VisitorDeps) -> dt.timedelta:
    return dt.timedelta(seconds=deps.settings.visitor_rung_lease_seconds)


async def _claim(
    row: dict[str, Any], ladder: list[sitecfg.Rung], now: dt.datetime, lease: dt.timedelta
) -> Started | None:
    """Take the request's next rung and record it ``started``, in one transaction: a worker that
    dies after this leaves a row the recovery finds, never a rung claimed but unrecorded."""
    index = row["next_step"]
    following = (
        row["requested_at"] + dt.timedelta(seconds=ladder[index + 1].after_seconds) if index + 1 < len(ladder) else None
    )
    step = VisitorApprovalStep(
        site=row["site"],
        approval=row["id"],
        step=index + 1,
        action=ladder[index].action,
        at=now,
        detail={},
        state="started",
        lease_until=now + lease,
        attempts=1,
    )
    try:
        async with write_transaction():
            claimed = (
                await VisitorApproval.update(
                    {VisitorApproval.next_step: index + 1, VisitorApproval.next_step_at: following}
                )
                .where(
                    (VisitorApproval.id == row["id"])
                    & (VisitorApproval.status == "pending")
                    & (VisitorApproval.next_step == index)
                )
                .returning(VisitorApproval.id)
            )
            if not claimed:
                return None
            await step.save()
    except Exception:  # the unique (approval, step) index, or the database: nothing was claimed
        logger.warning("rung %s of approval %s not claimed (recorded already?)", index + 1, row["id"], exc_info=True)
        return None
    return Started(step.id, index + 1, ladder[index].action, 1, {})


async def _write(started: Started, detail: dict[str, Any], *, done: bool = False) -> bool:
    """Record the rung's progress (or its end) while this attempt still holds it."""
    values: dict[Any, Any] = {VisitorApprovalStep.detail: detail}
    if done:
        values.update({VisitorApprovalStep.state: "done", VisitorApprovalStep.lease_until: None})
    written = (
        await VisitorApprovalStep.update(values)
        .where(
            (VisitorApprovalStep.id == started.step_id)
            & (VisitorApprovalStep.state == "started")
            & (VisitorApprovalStep.attempts == started.attempt)
        )
        .returning(VisitorApprovalStep.id)
    )
    return bool(written)


def _due(now: dt.datetime) -> Any:
    return (
        (VisitorApproval.status == "pending")
        & VisitorApproval.next_step_at.is_not_null()
        & (VisitorApproval.next_step_at <= now)
    )


def _expired(now: dt.datetime) -> Any:
    return (VisitorApprovalStep.state == "started") & (VisitorApprovalStep.lease_until < now)


async def work_due(now: dt.datetime) -> bool:
    """Whether a tick has anything to do: a due rung, or a started one whose worker died."""
    due = await VisitorApproval.exists().where(_due(now))
    return due or await VisitorApprovalStep.exists().where(_expired(now))


async def advance_ladders(
    deps: VisitorDeps, voice: VoiceCaller | None, now: dt.datetime | None = None
) -> list[TakenStep]:
    now = now or now_utc()
    taken = await _resume_expired(deps, voice, now)
    due = await VisitorApproval.select().where(_due(now))
    for row in due:
        config = await sitecfg.load(row["site"])
        index = row["next_step"]
        if index >= len(config.ladder):
            await VisitorApproval.update({VisitorApproval.next_step_at: None}).where(VisitorApproval.id == row["id"])
            continue
        started = await _claim(row, config.ladder, now, _lease(deps))
        if started is None:
            continue
        kill_point("visitors.ladder.claimed")
        if await _run(deps, voice, config, row, started, now):
            taken.append(TakenStep(row["id"], started.step, started.action))
    return taken


async def _resume_expired(deps: VisitorDeps, voice: VoiceCaller | None, now: dt.datetime) -> list[TakenStep]:
    """Run again every rung left ``started`` past its lease (its worker died or was cut off).

    Taking it over bumps ``attempts``: the earlier holder, should it still be alive, can no longer
    record anything. Messages are idempotent by their NOTIFY key, calls already placed (or in
    doubt) are not placed again, and a request answered meanwhile only has its rung closed."""
    taken: list[TakenStep] = []
    for row in await VisitorApprovalStep.select().where(_expired(now)):
        retaken = (
            await VisitorApprovalStep.update(
                {
                    VisitorApprovalStep.attempts: VisitorApprovalStep.attempts + 1,
                    VisitorApprovalStep.lease_until: now + _lease(deps),
                }
            )
            .where(
                (VisitorApprovalStep.id == row["id"])
                & (VisitorApprovalStep.state == "started")
                & (VisitorApprovalStep.attempts == row["attempts"])
            )
            .returning(VisitorApprovalStep.attempts, VisitorApprovalStep.detail)
        )
        if not retaken:
            continue  # another worker took it over first
        started = Started(
            row["id"], row["step"], row["action"], int(retaken[0]["attempts"]), as_dict(retaken[0]["detail"])
        )
        approval = await VisitorApproval.select().where(VisitorApproval.id == row["approval"]).first()
        if approval is None:
            continue
        if approval["status"] != "pending":
            await _write(started, {**started.detail, "closed": approval["status"]}, done=True)
            continue
        if started.attempt > MAX_RUNG_ATTEMPTS:
            logger.error(
                "rung %s of approval %s given up after %d attempts", row["step"], row["approval"], row["attempts"]
            )
            await _write(started, {**started.detail, "error": "gave_up"}, done=True)
            continue
        logger.warning(
            "rung %s of approval %s resumed (attempt %d): its worker stopped before finishing it",
            row["step"],
            row["approval"],
            started.attempt,
        )
        config = await sitecfg.load(approval["site"])
        if await _run(deps, voice, config, approval, started, now):
            taken.append(TakenStep(approval["id"], started.step, started.action))
    return taken


async def _run(
    deps: VisitorDeps,
    voice: VoiceCaller | None,
    config: sitecfg.VisitorSettings,
    row: dict[str, Any],
    started: Started,
    now: dt.datetime,
) -> bool:
    """Act on a held rung and record it done; a failure leaves it started, for a later attempt."""
    try:
        detail = await _act(deps, voice, config, row, started, now)
    except Exception:
        logger.exception("rung %s of approval %s failed; it is retried when its lease ends", started.step, row["id"])
        return False
    return detail is not None and await _write(started, detail, done=True)


async def _act(
    deps: VisitorDeps,
    voice: VoiceCaller | None,
    config: sitecfg.VisitorSettings,
    row: dict[str, Any],
    started: Started,
    now: dt.datetime,
) -> dict[str, Any] | None:
    """The rung's sends and its event; the detail to record, or None when the rung was taken over."""
    site_id: UUID = row["site"]
    visit = await Visit.select(Visit.name, Visit.purpose).where(Visit.id == row["visit"]).first()
    name = visit["name"] if visit else "A visitor"
    label = (await unit_labels(site_id, [row["unit"]])).get(row["unit"], "")
    occupants = await occupants_of(site_id, row["unit"])
    expires = int(now.timestamp()) + config.link_ttl_seconds
    detail: dict[str, Any] = {}
    call: list[ev.OccupantToCall] = []
    if started.action == "message":
        sent = []
        for person_id in occupants:
            link = link_url(deps, row["id"], person_id, expires)
            notification_id = await notify(
                deps,
                site_id=site_id,
                audience=Audience(person_ids=[person_id]),
                title=f"Visitor for {label}",
                body=f"{name} is waiting at the gate. Approve or deny: {link}",
                # The same key on a re-run returns the notification already made: sent once.
                key=f"visitor:ladder:{row['id']}:{started.step}:{person_id}",
                urgency=Urgency.CRITICAL,
                channels=[Channel(c) for c in config.message_channels],
                data={"type": ev.APPROVAL_ESCALATED, "approval_id": row["id"]},
                now=now,
                raise_errors=True,
            )
            if notification_id is not None:
                sent.append(str(notification_id))
            kill_point("visitors.ladder.sent_one")
        detail = {"notifications": sent}
    elif started.action == "voice":
        calls: list[dict[str, str | None]] = list(started.detail.get("calls", []))
        placed = {c["person"] for c in calls}
        for person_id, mobile in (await _reachable_mobiles(deps, site_id, occupants)).items():
            if str(person_id) in placed:
                continue  # called by an earlier attempt, or maybe: a call is placed at most once
            if voice is None:
                calls.append({"person": str(person_id), "error": "no_voice_provider"})
                continue
            # Recorded before dialling: should this worker die in the call, the next attempt skips it.
            calls.append({"person": str(person_id), "sid": None, "error": "in_doubt"})
            if not await _write(started, {"calls": calls}):
                return None
            prompt = f"Hello. {name} is at the gate for {label}. Press 1 to approve the visitor, or press 2 to deny."
            outcome = await voice.call(
                to=mobile,
                from_=config.voice_caller_id,
                twiml=gather_twiml(prompt, gather_url(deps, row["id"], person_id, expires)),
            )
            calls[-1] = {"person": str(person_id), "sid": outcome.sid, "error": outcome.error_code}
            if not await _write(started, {"calls": calls}):
                return None
        detail = {"calls": calls}
    else:
        call = await occupants_to_call(deps, site_id, occupants)
        detail = {"occupants": len(call)}
    event = ev.ApprovalEscalated(
        approval_id=row["id"],
        visit_id=row["visit"],
        unit_id=row["unit"],
        step=started.step,
        action=started.action,
        at=now,
        call=call,
    )
    await publish_all(deps, [site_topic(site_id, "gate"), site_topic(site_id, "control")], ev.APPROVAL_ESCALATED, event)
    return detail


async def occupants_to_call(deps: VisitorDeps, site_id: UUID, occupants: list[UUID]) -> list[ev.OccupantToCall]:
    mobiles = await _mobiles(deps, site_id, occupants)
    names = await person_names(site_id, occupants)
    return [ev.OccupantToCall(person_id=p, name=names.get(p, ""), mobile=mobiles.get(p)) for p in occupants]


async def call_list(deps: VisitorDeps, site_id: UUID, approval_id: UUID) -> list[ev.OccupantToCall]:
    """Whom the guard should call, for a console that (re)loads after the guard prompt was published.

    Only once the request reached its guard prompt: before that the occupants' numbers are not the
    gate's business."""
    row = (
        await VisitorApproval.select(VisitorApproval.unit)
        .where((VisitorApproval.site == site_id) & (VisitorApproval.id == approval_id))
        .first()
    )
    if row is None:
        raise NotFound("approval request not found")
    prompted = await VisitorApprovalStep.exists().where(
        (VisitorApprovalStep.approval == approval_id) & (VisitorApprovalStep.action == "guard_prompt")
    )
    if not prompted:
        raise Conflict("the request has not reached the guard prompt", extra={"reason": "not_prompted"})
    return await occupants_to_call(deps, site_id, await occupants_of(site_id, row["unit"]))


async def _mobiles(deps: VisitorDeps, site_id: UUID, people: list[UUID]) -> dict[UUID, str]:
    points = await deps.directory.contact_points_for(site_id, people)
    result: dict[UUID, str] = {}
    for person_id, views in points.items():
        mobiles = [v for v in views if v.kind == "mobile" and v.status == "ok"]
        mobiles.sort(key=lambda v: v.label != "primary")
        if mobiles:
            result[person_id] = mobiles[0].value
    return result


async def _reachable_mobiles(deps: VisitorDeps, site_id: UUID, people: list[UUID]) -> dict[UUID, str]:
    """Mobiles we may call: a working number, and visitor messages by phone not withdrawn.

    NOTIFY has no voice channel; the person's consent to visitor SMS stands in for it, so anyone
    who turned visitor messages off on their phone is not rung either."""
    mobiles = await _mobiles(deps, site_id, people)
    choices = await consent_matrix(list(mobiles))
    return {
        person: mobile
        for person, mobile in mobiles.items()
        if is_enabled(choices.get(person, {}), Channel.SMS, Category.VISITOR)
    }
