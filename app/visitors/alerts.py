"""Arrival, exit and overstay: who is told, on which topic and through NOTIFY.

- Check-in: ``visitor.arrived`` on the unit, gate and control topics, and an alert to the unit's
  occupants. A daily help's entry and exit also reach every *other* unit that employs them (any
  unit holding an active daily-help pass for the same phone number).
- Check-out: ``visitor.departed`` likewise (occupants get exit alerts for daily help only).
- Both run the hooks other modules registered (``app.visitors.hooks``: a daily help's attendance).
- Overstay: a visitor inside longer than the site's limit for their kind raises
  ``visitor.overstay`` on the gate and control topics and a notification to staff, once.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from uuid import UUID

from app.auth.roles import Role
from app.visitors import hooks, sitecfg
from app.visitors.common import (
    VisitorDeps,
    gate_topics,
    notify,
    now_utc,
    occupants_of,
    publish_all,
    unit_labels,
)
from notifications.audience import Audience
from notifications.categories import Urgency
from realtime.topics import unit_topic
from schema import visitors_events as ev
from schema.visitors import Visit, VisitorPass


async def employing_units(site_id: UUID, phone_index: str | None, now: dt.datetime) -> list[UUID]:
    """Units with an active daily-help pass for this phone number."""
    if not phone_index:
        return []
    rows = await VisitorPass.select(VisitorPass.unit).where(
        (VisitorPass.site == site_id)
        & (VisitorPass.kind == "daily_help")
        & (VisitorPass.status == "active")
        & (VisitorPass.phone_index == phone_index)
        & (VisitorPass.valid_until > now)
    )
    return sorted({row["unit"] for row in rows}, key=str)


async def _units_to_tell(visit: dict[str, Any], now: dt.datetime) -> list[UUID]:
    units = [visit["unit"]]
    if visit["kind"] == "daily_help":
        units += [u for u in await employing_units(visit["site"], visit["phone_index"], now) if u != visit["unit"]]
    return units


async def arrived(deps: VisitorDeps, visit: dict[str, Any], now: dt.datetime) -> None:
    site_id: UUID = visit["site"]
    units = await _units_to_tell(visit, now)
    event = ev.Arrived(
        visit_id=visit["id"],
        unit_id=visit["unit"],
        name=visit["name"],
        kind=visit["kind"],
        source=visit["source"],
        pass_id=visit["visitor_pass"],
        at=now,
        gate=visit["gate"],
    )
    await publish_all(deps, [*gate_topics(site_id), *(unit_topic(u) for u in units)], ev.ARRIVED, event)
    await hooks.run(hooks.ON_ARRIVAL, deps, visit, now)
    labels = await unit_labels(site_id, units)
    what = "Your daily help" if visit["kind"] == "daily_help" else "Your visitor"
    for unit_id in units:
        await notify(
            deps,
            site_id=site_id,
            audience=Audience(person_ids=await occupants_of(site_id, unit_id)),
            title=f"{what} has arrived",
            body=f"{visit['name']} entered for {labels.get(unit_id, '')} at the gate.",
            key=f"visitor:arrived:{visit['id']}:{unit_id}",
            urgency=Urgency.HIGH,
            data={"type": ev.ARRIVED, "visit_id": visit["id"]},
            now=now,
        )


async def departed(deps: VisitorDeps, visit: dict[str, Any], now: dt.datetime) -> None:
    site_id: UUID = visit["site"]
    units = await _units_to_tell(visit, now)
    event = ev.Departed(visit_id=visit["id"], unit_id=visit["unit"], name=visit["name"], kind=visit["kind"], at=now)
    await publish_all(deps, [*gate_topics(site_id), *(unit_topic(u) for u in units)], ev.DEPARTED, event)
    await hooks.run(hooks.ON_DEPARTURE, deps, visit, now)
    if visit["kind"] != "daily_help":
        return
    labels = await unit_labels(site_id, units)
    for unit_id in units:
        await notify(
            deps,
            site_id=site_id,
            audience=Audience(person_ids=await occupants_of(site_id, unit_id)),
            title="Your daily help has left",
            body=f"{visit['name']} left ({labels.get(unit_id, '')}).",
            key=f"visitor:departed:{visit['id']}:{unit_id}",
            urgency=Urgency.NORMAL,
            data={"type": ev.DEPARTED, "visit_id": visit["id"]},
            now=now,
        )


async def check_overstays(deps: VisitorDeps, now: dt.datetime | None = None) -> list[UUID]:
    """Alert once for every visitor inside past their kind's limit; returns the visits alerted. Safe to re-run."""
    now = now or now_utc()
    inside = await Visit.select(Visit.id, Visit.site, Visit.unit, Visit.name, Visit.kind, Visit.checked_in_at).where(
        (Visit.status == "inside") & Visit.overstay_alerted_at.is_null()
    )
    settings_of: dict[UUID, sitecfg.VisitorSettings] = {}
    alerted: list[UUID] = []
    for row in inside:
        site_id = row["site"]
        if site_id not in settings_of:
            settings_of[site_id] = await sitecfg.load(site_id)
        limit = settings_of[site_id].overstay_limit(row["kind"])
        if row["checked_in_at"] is None or row["checked_in_at"] + dt.timedelta(minutes=limit) > now:
            continue
        claimed = (
            await Visit.update({Visit.overstay_alerted_at: now})
            .where((Visit.id == row["id"]) & Visit.overstay_alerted_at.is_null() & (Visit.status == "inside"))
            .returning(Visit.id)
        )
        if not claimed:
            continue
        label = (await unit_labels(site_id, [row["unit"]])).get(row["unit"], "")
        event = ev.Overstay(
            visit_id=row["id"],
            unit_id=row["unit"],
            unit_label=label,
            name=row["name"],
            kind=row["kind"],
            checked_in_at=row["checked_in_at"],
            limit_minutes=limit,
        )
        await publish_all(deps, gate_topics(site_id), ev.OVERSTAY, event)
        await notify(
            deps,
            site_id=site_id,
            audience=Audience(roles=[Role.GUARD, Role.FM_ADMIN, Role.SITE_ADMIN]),
            title=f"Overstay: {row['name']} ({label})",
            body=f"{row['name']} ({row['kind']}) for {label} is inside past the {limit}-minute limit.",
            key=f"visitor:overstay:{row['id']}",
            urgency=Urgency.HIGH,
            data={"type": ev.OVERSTAY, "visit_id": row["id"]},
            now=now,
        )
        alerted.append(row["id"])
    return alerted
