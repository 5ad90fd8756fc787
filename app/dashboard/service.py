"""The control room's numbers, computed on the server from each module's own tables and rules.

Plain functions of a site id (and a clock where time matters). They read; they never change
anything. Each board is the REST snapshot a page starts from; the live deltas arrive as events
on ``site:{id}:control``, ``site:{id}:gate`` and ``site:{id}:slots``.

- ``complaint_board``: active complaints by status and by SLA state (``app.complaints.sla``).
- ``gate_board``: pending walk-in approvals with their current rung, recent answers, arrivals
  and overstays.
- ``complaint_trend``: per local day of the last 30, complaints raised and how many of those met
  or breached their SLA (compliance = met / (met + breached); still-running ones are not counted).
- ``approval_times``: time to decision of walk-in approvals decided in the window: p50, p90
  (nearest rank) and a histogram.
- ``delivery_funnel``: per channel, ledger rows created in the window by where they ended up.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections import Counter
from typing import Any, Final
from uuid import UUID
from zoneinfo import ZoneInfo

import msgspec

from app.auth.roles import Role
from app.complaints.lifecycle import ACTIVE, Status
from app.complaints.sla import SlaState, aware, site_rules, sla_state
from app.visitors import sitecfg
from schema.complaints import Complaint, ComplaintCategory
from schema.tables import Building, Person, PersonRole, Site, Unit
from schema.visitors import Visit, VisitorApproval, VisitorApprovalStep

TREND_DAYS: Final = 30
RECENT_ANSWERS: Final = dt.timedelta(hours=2)
RECENT_ARRIVALS: Final = dt.timedelta(hours=12)
BOARD_LIMIT: Final = 100
# Upper bounds (seconds) of the approval-time histogram's buckets; the last bucket is open.
APPROVAL_BUCKETS_S: Final = (15, 30, 60, 120, 300, 600)
ACTIVE_STATUSES: Final = [str(s) for s in sorted(ACTIVE, key=list(Status).index)]
LIVE_SLA: Final = [str(SlaState.ON_TRACK), str(SlaState.AT_RISK), str(SlaState.BREACHED)]
ANNOUNCE_ROLES: Final = [Role.OCCUPANT, Role.GUARD, Role.TECHNICIAN, Role.FM_ADMIN, Role.SITE_ADMIN]


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def site_zone(site_id: UUID) -> ZoneInfo:
    row = await Site.select(Site.timezone).where(Site.id == site_id).first()
    return ZoneInfo((row or {}).get("timezone") or "Asia/Kolkata")


# ------------------------------------------------------------------------------ complaints board


class BoardComplaint(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    status: str
    sla_state: str
    priority: str
    category: str
    unit_label: str | None
    location: str | None
    created_at: dt.datetime
    response_due_at: dt.datetime
    resolution_due_at: dt.datetime


class ComplaintBoard(msgspec.Struct, frozen=True, kw_only=True):
    by_status: dict[str, int]
    by_sla: dict[str, int]
    # Breached first, then at risk, then the earliest deadline: the order a controller works in.
    complaints: list[BoardComplaint]
    at_risk_percent: int
    as_of: dt.datetime


async def complaint_board(site_id: UUID, now: dt.datetime | None = None) -> ComplaintBoard:
    now = now or now_utc()
    rules = await site_rules(site_id)
    rows = await Complaint.select().where((Complaint.site == site_id) & Complaint.status.is_in(ACTIVE_STATUSES))
    codes = {
        r["id"]: r["code"]
        for r in await ComplaintCategory.select(ComplaintCategory.id, ComplaintCategory.code).where(
            ComplaintCategory.site == site_id
        )
    }
    unit_ids = list({r["unit"] for r in rows if r["unit"] is not None})
    labels = (
        {
            r["id"]: r["label"]
            for r in await Unit.select(Unit.id, Unit.label).where((Unit.site == site_id) & Unit.id.is_in(unit_ids))
        }
        if unit_ids
        else {}
    )
    by_status = dict.fromkeys(ACTIVE_STATUSES, 0)
    by_sla = dict.fromkeys(LIVE_SLA, 0)
    items: list[BoardComplaint] = []
    for row in rows:
        state = str(sla_state(row, now, rules.at_risk_percent))
        by_status[row["status"]] = by_status.get(row["status"], 0) + 1
        by_sla[state] = by_sla.get(state, 0) + 1
        items.append(
            BoardComplaint(
                id=row["id"],
                status=row["status"],
                sla_state=state,
                priority=row["priority"],
                category=codes.get(row["category"], ""),
                unit_label=labels.get(row["unit"]) if row["unit"] else None,
                location=row["location"],
                created_at=aware(row["created_at"]),
                response_due_at=aware(row["response_due_at"]),
                resolution_due_at=aware(row["resolution_due_at"]),
            )
        )
    rank = {str(SlaState.BREACHED): 0, str(SlaState.AT_RISK): 1}
    items.sort(key=lambda c: (rank.get(c.sla_state, 2), c.resolution_due_at))
    return ComplaintBoard(
        by_status=by_status,
        by_sla=by_sla,
        complaints=items[:BOARD_LIMIT],
        at_risk_percent=rules.at_risk_percent,
        as_of=now,
    )


# ------------------------------------------------------------------------------ gate board


class GateApproval(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    visit_id: UUID
    unit_id: UUID
    unit_label: str
    visitor_name: str
    kind: str
    purpose: str | None
    gate: str | None
    status: str  # pending | approved | denied | leave_at_gate
    rung: str  # the last ladder action taken: push | message | voice | guard_prompt
    step: int
    requested_at: dt.datetime
    decided_at: dt.datetime | None
    decided_via: str | None
    time_to_decision_ms: int | None


class GateVisit(msgspec.Struct, frozen=True, kw_only=True):
    visit_id: UUID
    unit_id: UUID
    unit_label: str
    name: str
    kind: str
    source: str
    gate: str | None
    status: str
    checked_in_at: dt.datetime | None
    checked_out_at: dt.datetime | None
    overstay: bool
    limit_minutes: int


class GateBoard(msgspec.Struct, frozen=True, kw_only=True):
    approvals: list[GateApproval]  # pending first (oldest first), then recent answers (newest first)
    arrivals: list[GateVisit]  # checked in within the last hours, newest first
    overstays: list[GateVisit]  # inside past their kind's limit
    as_of: dt.datetime


async def _labels(site_id: UUID, unit_ids: set[UUID]) -> dict[UUID, str]:
    if not unit_ids:
        return {}
    rows = await Unit.select(Unit.id, Unit.label).where((Unit.site == site_id) & Unit.id.is_in(list(unit_ids)))
    return {r["id"]: r["label"] for r in rows}


async def gate_board(site_id: UUID, now: dt.datetime | None = None) -> GateBoard:
    now = now or now_utc()
    pending = (
        await VisitorApproval.select()
        .where((VisitorApproval.site == site_id) & (VisitorApproval.status == "pending"))
        .order_by(VisitorApproval.requested_at)
        .limit(BOARD_LIMIT)
    )
    answered = (
        await VisitorApproval.select()
        .where(
            (VisitorApproval.site == site_id)
            & (VisitorApproval.status != "pending")
            & (VisitorApproval.decided_at >= now - RECENT_ANSWERS)
        )
        .order_by(VisitorApproval.decided_at, ascending=False)
        .limit(BOARD_LIMIT)
    )
    approvals = [*pending, *answered]
    visit_ids = [a["visit"] for a in approvals]
    visits = (
        {v["id"]: v for v in await Visit.select().where((Visit.site == site_id) & Visit.id.is_in(visit_ids))}
        if visit_ids
        else {}
    )
    rungs: dict[UUID, tuple[int, str]] = {}
    if approvals:
        steps = await VisitorApprovalStep.select(
            VisitorApprovalStep.approval, VisitorApprovalStep.step, VisitorApprovalStep.action
        ).where(
            (VisitorApprovalStep.site == site_id)
            & VisitorApprovalStep.approval.is_in([a["id"] for a in approvals])
            & (VisitorApprovalStep.action != "decided")
        )
        for step in steps:
            if step["step"] >= rungs.get(step["approval"], (-1, ""))[0]:
                rungs[step["approval"]] = (step["step"], step["action"])
    arrivals_rows = (
        await Visit.select()
        .where((Visit.site == site_id) & (Visit.checked_in_at >= now - RECENT_ARRIVALS))
        .order_by(Visit.checked_in_at, ascending=False)
        .limit(BOARD_LIMIT)
    )
    inside_rows = await Visit.select().where((Visit.site == site_id) & (Visit.status == "inside"))
    labels = await _labels(
        site_id,
        {a["unit"] for a in approvals} | {v["unit"] for v in arrivals_rows} | {v["unit"] for v in inside_rows},
    )
    config = await sitecfg.load(site_id)

    def gate_visit(row: dict[str, Any]) -> GateVisit:
        limit = config.overstay_limit(row["kind"])
        checked_in = aware(row["checked_in_at"]) if row["checked_in_at"] else None
        over = (
            row["status"] == "inside"
            and checked_in is not None
            and (row["overstay_alerted_at"] is not None or checked_in + dt.timedelta(minutes=limit) <= now)
        )
        return GateVisit(
            visit_id=row["id"],
            unit_id=row["unit"],
            unit_label=labels.get(row["unit"], ""),
            name=row["name"],
            kind=row["kind"],
            source=row["source"],
            gate=row["gate"],
            status=row["status"],
            checked_in_at=checked_in,
            checked_out_at=aware(row["checked_out_at"]) if row["checked_out_at"] else None,
            overstay=over,
            limit_minutes=limit,
        )

    return GateBoard(
        approvals=[
            GateApproval(
                id=a["id"],
                visit_id=a["visit"],
                unit_id=a["unit"],
                unit_label=labels.get(a["unit"], ""),
                visitor_name=visits.get(a["visit"], {}).get("name", ""),
                kind=visits.get(a["visit"], {}).get("kind", ""),
                purpose=visits.get(a["visit"], {}).get("purpose"),
                gate=visits.get(a["visit"], {}).get("gate"),
                status=a["status"],
                rung=rungs.get(a["id"], (0, "push"))[1],
                step=rungs.get(a["id"], (0, "push"))[0],
                requested_at=aware(a["requested_at"]),
                decided_at=aware(a["decided_at"]) if a["decided_at"] else None,
                decided_via=a["decided_via"],
                time_to_decision_ms=a["time_to_decision_ms"],
            )
            for a in approvals
        ],
        arrivals=[gate_visit(v) for v in arrivals_rows],
        overstays=sorted(
            (g for g in (gate_visit(v) for v in inside_rows) if g.overstay),
            key=lambda g: g.checked_in_at or now,
        ),
        as_of=now,
    )


# ------------------------------------------------------------------------------ charts


class TrendDay(msgspec.Struct, frozen=True, kw_only=True):
    date: dt.date
    raised: int
    met: int
    breached: int
    compliance_percent: float | None  # None when no complaint of that day has an SLA outcome yet


class ComplaintTrend(msgspec.Struct, frozen=True, kw_only=True):
    days: list[TrendDay]
    timezone: str


async def complaint_trend(site_id: UUID, now: dt.datetime | None = None, days: int = TREND_DAYS) -> ComplaintTrend:
    """Per local day (today and the ``days - 1`` before it): complaints raised that day (cancelled
    ones too), and of those not cancelled, how many met and how many breached their SLA as of ``now``.
    The rows are the ``complaints`` report's (its ``sla`` column), so each day's figures are what the
    report's export holds for the complaints raised that local day."""
    from app.reports.catalogue import COMPLAINTS
    from app.reports.framework import make_query, scope_for_site

    now = now or now_utc()
    zone = await site_zone(site_id)
    today = now.astimezone(zone).date()
    first = today - dt.timedelta(days=days - 1)
    start = dt.datetime.combine(first, dt.time(), tzinfo=zone).astimezone(dt.UTC)
    # The report's range is whole UTC days; the local days are cut out of it below.
    query = make_query(
        COMPLAINTS,
        scope_for_site(site_id, site_id),
        date_from=start.date(),
        date_to=now.astimezone(dt.UTC).date(),
        now=now,
    )
    names = [c.name for c in COMPLAINTS.columns]
    created_at, sla_at = names.index("created_at"), names.index("sla")
    raised: Counter[dt.date] = Counter()
    met: Counter[dt.date] = Counter()
    breached: Counter[dt.date] = Counter()
    async for batch in COMPLAINTS.batches(query):
        for row in batch:
            moment = aware(row[created_at])
            if not start <= moment <= now:
                continue
            day = moment.astimezone(zone).date()
            raised[day] += 1
            if row[sla_at] == "met":
                met[day] += 1
            elif row[sla_at] == "breached":
                breached[day] += 1
    result = []
    for offset in range(days):
        day = first + dt.timedelta(days=offset)
        decided = met[day] + breached[day]
        result.append(
            TrendDay(
                date=day,
                raised=raised[day],
                met=met[day],
                breached=breached[day],
                compliance_percent=round(100 * met[day] / decided, 1) if decided else None,
            )
        )
    return ComplaintTrend(days=result, timezone=str(zone))


class Bucket(msgspec.Struct, frozen=True, kw_only=True):
    up_to_seconds: int | None  # None: the open last bucket
    count: int


class ApprovalTimes(msgspec.Struct, frozen=True, kw_only=True):
    count: int
    p50_ms: int | None
    p90_ms: int | None
    buckets: list[Bucket]
    by_decision: dict[str, int]
    since: dt.datetime


def nearest_rank(sorted_values: list[int], percent: float) -> int | None:
    """The smallest value with at least ``percent`` % of the values at or below it."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(percent / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


async def approval_times(site_id: UUID, now: dt.datetime | None = None, days: int = TREND_DAYS) -> ApprovalTimes:
    """Time to decision of the walk-in approvals of visits registered in the whole UTC days from ``days``
    ago to today, still pending ones left out: the ``visitors`` report's rows for that range, so the board
    and the report's export (its p50/p90 of ``approval_seconds``) never disagree."""
    from app.reports.catalogue import VISITORS
    from app.reports.framework import make_query, scope_for_site

    now = now or now_utc()
    first = (now - dt.timedelta(days=days)).astimezone(dt.UTC).date()
    query = make_query(
        VISITORS, scope_for_site(site_id, site_id), date_from=first, date_to=now.astimezone(dt.UTC).date(), now=now
    )
    names = [c.name for c in VISITORS.columns]
    decision_at, seconds_at = names.index("approval"), names.index("approval_seconds")
    decided: list[tuple[str, int]] = []
    async for batch in VISITORS.batches(query):
        for row in batch:
            if row[decision_at] not in (None, "pending") and row[seconds_at] is not None:
                decided.append((str(row[decision_at]), int(row[seconds_at] * 1000)))
    values = sorted(ms for _, ms in decided)
    counts = [0] * (len(APPROVAL_BUCKETS_S) + 1)
    for value in values:
        index = next(
            (i for i, bound in enumerate(APPROVAL_BUCKETS_S) if value <= bound * 1000), len(APPROVAL_BUCKETS_S)
        )
        counts[index] += 1
    bounds: list[int | None] = [*APPROVAL_BUCKETS_S, None]
    return ApprovalTimes(
        count=len(values),
        p50_ms=nearest_rank(values, 50),
        p90_ms=nearest_rank(values, 90),
        buckets=[Bucket(up_to_seconds=b, count=c) for b, c in zip(bounds, counts, strict=True)],
        by_decision=dict(Counter(status for status, _ in decided)),
        since=dt.datetime.combine(first, dt.time(), tzinfo=dt.UTC),
    )


class ChannelFunnel(msgspec.Struct, frozen=True, kw_only=True):
    channel: str
    requested: int  # ledger rows: one per person and channel
    sent: int  # reached the provider (sent, delivered or read)
    delivered: int  # the provider confirmed delivery (delivered or read)
    failed: int
    suppressed: int
    deferred: int
    pending: int  # not yet tried (pending or being sent)
    suppressed_by_reason: dict[str, int]


class DeliveryFunnel(msgspec.Struct, frozen=True, kw_only=True):
    channels: list[ChannelFunnel]
    since: dt.datetime


async def delivery_funnel(site_id: UUID, now: dt.datetime | None = None, days: int = TREND_DAYS) -> DeliveryFunnel:
    """Ledger rows created in the whole UTC days from ``days`` ago to today, per channel, by where they are
    now: the ``notifications`` report's summary by channel (and by reason for the suppressed), so the
    board and the report's export never disagree."""
    from app.reports.catalogue import NOTIFICATIONS
    from app.reports.framework import make_query, scope_for_site, summarise

    now = now or now_utc()
    first = (now - dt.timedelta(days=days)).astimezone(dt.UTC).date()
    query = make_query(
        NOTIFICATIONS, scope_for_site(site_id, site_id), date_from=first, date_to=now.astimezone(dt.UTC).date(), now=now
    )
    names = ["channel", *(m.name for m in NOTIFICATIONS.measures)]
    channels = []
    for values in await summarise(NOTIFICATIONS, query, "channel"):
        row = dict(zip(names, values, strict=True))
        reasons = {}
        if row["suppressed"]:
            by_reason = await summarise(NOTIFICATIONS, dataclasses.replace(query, category=row["channel"]), "reason")
            reasons = {
                str(r[0] or "unknown"): r[names.index("suppressed")] for r in by_reason if r[names.index("suppressed")]
            }
        channels.append(
            ChannelFunnel(
                channel=row["channel"],
                requested=row["rows"],
                sent=row["sent"],
                delivered=row["delivered"],
                failed=row["failed"],
                suppressed=row["suppressed"],
                deferred=row["deferred"],
                pending=row["pending"],
                suppressed_by_reason=reasons,
            )
        )
    return DeliveryFunnel(channels=channels, since=dt.datetime.combine(first, dt.time(), tzinfo=dt.UTC))


class Charts(msgspec.Struct, frozen=True, kw_only=True):
    complaints: ComplaintTrend
    approvals: ApprovalTimes
    deliveries: DeliveryFunnel
    as_of: dt.datetime


async def charts(site_id: UUID, now: dt.datetime | None = None) -> Charts:
    now = now or now_utc()
    return Charts(
        complaints=await complaint_trend(site_id, now),
        approvals=await approval_times(site_id, now),
        deliveries=await delivery_funnel(site_id, now),
        as_of=now,
    )


# ------------------------------------------------------------------------------ the composer's choices


class Choice(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    label: str


class AudienceOptions(msgspec.Struct, frozen=True, kw_only=True):
    towers: list[Choice]
    units: list[Choice]
    roles: list[str]


async def audience_options(site_id: UUID) -> AudienceOptions:
    """What the announcement composer offers: the site's towers and units, and the roles."""
    towers = await Building.select(Building.id, Building.code, Building.name).where(Building.site == site_id)
    units = await Unit.select(Unit.id, Unit.label).where(Unit.site == site_id)
    return AudienceOptions(
        towers=sorted((Choice(id=str(t["id"]), label=t["name"] or t["code"]) for t in towers), key=lambda c: c.label),
        units=sorted((Choice(id=str(u["id"]), label=u["label"]) for u in units), key=lambda c: c.label),
        roles=[str(r) for r in ANNOUNCE_ROLES],
    )


async def console_people(site_id: UUID) -> dict[str, str]:
    """Names of the people who may open a gate console (guards and staff), for the presence board."""
    rows = await PersonRole.select(PersonRole.person).where(
        (PersonRole.site == site_id)
        & PersonRole.role.is_in([str(Role.GUARD), str(Role.FM_ADMIN), str(Role.SITE_ADMIN)])
    )
    ids = list({r["person"] for r in rows})
    if not ids:
        return {}
    people = await Person.select(Person.id, Person.full_name).where((Person.site == site_id) & Person.id.is_in(ids))
    return {str(p["id"]): p["full_name"] for p in people}
