"""The occupant app (``/app``): mobile-first, for the people who live or work in the units.

The page is a server-rendered skeleton with seven sections (Home, Visitors, Complaints, Bookings, Permits,
Bills, Settings); ``occupant.js`` fills each from the existing APIs and keeps it live over ``/ws``
(the person's ``user:`` and ``unit:`` topics, ``site:{id}:slots``, and ``complaint:{id}`` for the
complaint being followed). Every rule stays on the server: the page shows what the APIs answer.

Navigation: one tablist holds every section. On a phone (below 900 px) seven tabs do not fit a 360 px bar
in Hindi or English, so the bar holds the four used most (Home, Visitors, Complaints, Bookings) and a
"More" button (``#occ-more``, ``aria-expanded``) that opens the other three (Permits, Bills, Settings) in a
sheet above it (``#occ-extra``); while one of those is open, More names it. From 900 px all seven tabs
stand in a row on top and there is no More.

DOM contract (other consoles' tests rely on it):
- navigation: ``role="tab"`` buttons named Home, Visitors, Complaints, Bookings, Permits, Bills, Settings;
  on a phone the last three are visible only after a click on ``#occ-more`` (``tests/support/browser.py``
  ``open_occupant_section`` does both); ``/app?section=<bills|permits|...>`` opens with that section, for
  every section, and the address follows the section open (``?section=``);
- ``#unread-count``: the number of unread feed entries (inside the Home tab);
- ``[data-approval-id][data-status]``: a visitor at the gate (pending | approved | denied | leave_at_gate),
  above the tabs so it shows whatever section is open; buttons Approve, Deny, Leave at gate while pending,
  then a text saying who answered ("Approved by you" / "... by <name>" / "... by the guard");
- ``[data-resource-id][data-free]``: "1" and "Free" when the resource is free for the chosen start and
  length (default: the earliest free start today), else "0" and "Taken";
- ``[data-complaint-id][data-status]``: each of my complaints in the list (the API's status name); the
  complaint open in detail is ``#complaint-detail[data-detail-id][data-detail-status]``;
- ``#dues[data-outstanding]`` (paise) with ``#pay-dues``; ``#invoices [data-invoice-id][data-status]``;
  ``#receipts [data-receipt-id][data-receipt-number]``;
- ``#permits li[data-permit-id][data-status]``: each of my permits (the API's status name); the one open
  in detail is ``#permit-detail``, its history ``#permit-detail .steps li``.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec
from litestar import Request, get
from litestar.response import Template
from litestar.types import ControllerRouterHandler

from app.auth.principal import Principal
from app.auth.roles import Role
from app.visitors.sitecfg import KINDS
from app.web.pages import page_access, render
from notifications.categories import Category, Channel
from schema.tables import Occupancy, Person, Site


class UnitChoice(msgspec.Struct, frozen=True):
    id: UUID
    label: str


class OccupantConfig(msgspec.Struct, frozen=True, kw_only=True):
    """What the page's script needs before its first API call."""

    person_id: UUID
    site_id: UUID
    full_name: str
    site_timezone: str
    units: list[UnitChoice]
    channels: list[str]
    categories: list[str]


async def occupant_config(principal: Principal) -> OccupantConfig:
    """The signed-in occupant's units (active occupancies on their site), name and site clock."""
    rows = (
        await Occupancy.select(Occupancy.unit, Occupancy.unit.label.as_alias("label"))
        .where(
            (Occupancy.site == principal.site_id)
            & (Occupancy.person == principal.person_id)
            & (Occupancy.is_active.eq(True))
        )
        .order_by(Occupancy.unit.label)
    )
    person = await Person.select(Person.full_name).where(Person.id == principal.person_id).first()
    site = await Site.select(Site.timezone).where(Site.id == principal.site_id).first()
    return OccupantConfig(
        person_id=principal.person_id,
        site_id=principal.site_id,
        full_name=person["full_name"] if person else "",
        site_timezone=str((site or {}).get("timezone") or "Asia/Kolkata"),
        units=[UnitChoice(id=row["unit"], label=row["label"]) for row in rows],
        channels=[str(c) for c in Channel],
        categories=[str(c) for c in Category],
    )


@get("/app", opt=page_access(Role.OCCUPANT), name="occupant-app")
async def occupant_app(request: Request[Any, Any, Any]) -> Template:
    principal = request.user
    assert isinstance(principal, Principal)
    config = await occupant_config(principal)
    return render(
        request,
        "occupant/app.html",
        config=msgspec.to_builtins(config),
        units=config.units,
        kinds=list(KINDS),
    )


ROUTES: list[ControllerRouterHandler] = [occupant_app]
