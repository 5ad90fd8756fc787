"""The escalation ladder: while a walk-in request is pending, take the site's next rung when due.

``advance_ladders(deps, voice, now)`` (called by an arq cron every few seconds, or by tests with a
controlled clock) moves each due request exactly one rung:

1. claim the rung with a conditional UPDATE (``next_step`` = i -> i + 1, only while pending), so two
   workers never take the same rung and a re-run takes nothing twice;
2. record it as a ``visitor_approval_step`` row with its timestamp (unique per approval and step);
3. act: ``message`` sends each occupant an SMS/WhatsApp through NOTIFY with a personal one-tap link
   (signed, expiring); ``voice`` calls each occupant's mobile through Twilio Voice with a
   "press 1 / press 2" TwiML whose action is our signed callback; ``guard_prompt`` tells the gate
   console to call the occupants by hand (their names and numbers in the event).

Calls are placed after the claim (at most once per rung); messages are idempotent through NOTIFY's
ledger (idempotency key per approval, rung and person).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any
from uuid import UUID

import msgspec

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
from schema.visitors import Visit, VisitorApproval, VisitorApprovalStep

logger = logging.getLogger("opshub.visitors.ladder")

LINK_PATH = "/v/a/"
GATHER_PATH = "/api/webhooks/twilio/visitor-gather"


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


async def _claim(row: dict[str, Any], ladder: list[sitecfg.Rung]) -> bool:
    index = row["next_step"]
    following = (
        row["requested_at"] + dt.timedelta(seconds=ladder[index + 1].after_seconds) if index + 1 < len(ladder) else None
    )
    claimed = (
        await VisitorApproval.update({VisitorApproval.next_step: index + 1, VisitorApproval.next_step_at: following})
        .where(
            (VisitorApproval.id == row["id"])
            & (VisitorApproval.status == "pending")
            & (VisitorApproval.next_step == index)
        )
        .returning(VisitorApproval.id)
    )
    return bool(claimed)


async def advance_ladders(
    deps: VisitorDeps, voice: VoiceCaller | None, now: dt.datetime | None = None
) -> list[TakenStep]:
    now = now or now_utc()
    due = await VisitorApproval.select().where(
        (VisitorApproval.status == "pending")
        & VisitorApproval.next_step_at.is_not_null()
        & (VisitorApproval.next_step_at <= now)
    )
    taken: list[TakenStep] = []
    for row in due:
        config = await sitecfg.load(row["site"])
        index = row["next_step"]
        if index >= len(config.ladder):
            await VisitorApproval.update({VisitorApproval.next_step_at: None}).where(VisitorApproval.id == row["id"])
            continue
        if not await _claim(row, config.ladder):
            continue
        kill_point("visitors.ladder.claimed")
        rung = config.ladder[index]
        step = VisitorApprovalStep(
            site=row["site"], approval=row["id"], step=index + 1, action=rung.action, at=now, detail={}
        )
        try:
            await step.save()
        except Exception:
            logger.warning("rung %s of approval %s was already recorded", index + 1, row["id"])
            continue
        try:
            detail = await _act(deps, voice, config, row, rung, index + 1, now)
        except Exception:
            logger.exception("rung %s of approval %s failed", index + 1, row["id"])
            detail = {"error": "failed"}
        await VisitorApprovalStep.update({VisitorApprovalStep.detail: detail}).where(VisitorApprovalStep.id == step.id)
        taken.append(TakenStep(row["id"], index + 1, rung.action))
    return taken


async def _act(
    deps: VisitorDeps,
    voice: VoiceCaller | None,
    config: sitecfg.VisitorSettings,
    row: dict[str, Any],
    rung: sitecfg.Rung,
    step: int,
    now: dt.datetime,
) -> dict[str, Any]:
    site_id: UUID = row["site"]
    visit = await Visit.select(Visit.name, Visit.purpose).where(Visit.id == row["visit"]).first()
    name = visit["name"] if visit else "A visitor"
    label = (await unit_labels(site_id, [row["unit"]])).get(row["unit"], "")
    occupants = await occupants_of(site_id, row["unit"])
    expires = int(now.timestamp()) + config.link_ttl_seconds
    detail: dict[str, Any] = {}
    call: list[ev.OccupantToCall] = []
    if rung.action == "message":
        sent = []
        for person_id in occupants:
            link = link_url(deps, row["id"], person_id, expires)
            notification_id = await notify(
                deps,
                site_id=site_id,
                audience=Audience(person_ids=[person_id]),
                title=f"Visitor for {label}",
                body=f"{name} is waiting at the gate. Approve or deny: {link}",
                key=f"visitor:ladder:{row['id']}:{step}:{person_id}",
                urgency=Urgency.CRITICAL,
                channels=[Channel(c) for c in config.message_channels],
                data={"type": ev.APPROVAL_ESCALATED, "approval_id": row["id"]},
                now=now,
            )
            if notification_id is not None:
                sent.append(str(notification_id))
            kill_point("visitors.ladder.sent_one")
        detail = {"notifications": sent}
    elif rung.action == "voice":
        calls: list[dict[str, str | None]] = []
        for person_id, mobile in (await _reachable_mobiles(deps, site_id, occupants)).items():
            if voice is None:
                calls.append({"person": str(person_id), "error": "no_voice_provider"})
                continue
            prompt = f"Hello. {name} is at the gate for {label}. Press 1 to approve the visitor, or press 2 to deny."
            outcome = await voice.call(
                to=mobile,
                from_=config.voice_caller_id,
                twiml=gather_twiml(prompt, gather_url(deps, row["id"], person_id, expires)),
            )
            calls.append({"person": str(person_id), "sid": outcome.sid, "error": outcome.error_code})
        detail = {"calls": calls}
    else:
        call = await occupants_to_call(deps, site_id, occupants)
        detail = {"occupants": len(call)}
    event = ev.ApprovalEscalated(
        approval_id=row["id"],
        visit_id=row["visit"],
        unit_id=row["unit"],
        step=step,
        action=rung.action,
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
