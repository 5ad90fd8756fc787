"""The control room's maintenance and QR screens, server-rendered from the AMC and places services:

- ``/control/assets``: the maintenance board (overdue, due this week, contracts ending), every asset
  with its next visit, and the forms for a new asset, a new contract and the reminder lead times;
- ``/control/assets/{asset_id}``: one asset's whole history (contracts, visits with their notes,
  checklists and photos, complaints raised against it, reminders sent, its QR code), where a visit
  is recorded;
- ``/control/places``: places and their QR codes, scans, revoking, and the printable PDF sheet.

Forms post to the JSON API through ``control-assets.js`` (CSRF header, problems shown by field).
Live: the main dashboard's maintenance panel follows ``site:{id}:control``; these pages are read fresh.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final
from uuid import UUID

from litestar import Request, get
from litestar.params import FromPath
from litestar.response import Template
from litestar.types import ControllerRouterHandler

from app.amc import assets, board, common, contracts, history, visits
from app.amc.schedule import Frequency
from app.auth.principal import Principal
from app.auth.roles import STAFF, Role
from app.errors import NotFound
from app.places import service as places
from app.web.pages import page_access, render
from schema.tables import Building, Resource

# A checklist to start from, by asset kind (the technician ticks what passed, adds remarks).
CHECKLISTS: Final[dict[str, list[str]]] = {
    "lift": [
        "Brakes and safety gear",
        "Door sensors and locks",
        "Alarm and intercom",
        "Ropes and sheaves",
        "Lubrication",
    ],
    "dg_set": ["Oil and coolant levels", "Battery and charger", "Load test", "Fuel filter", "Exhaust and leaks"],
    "pump": ["Pressure and flow", "Seals and leaks", "Motor current", "Valves", "Lubrication"],
    "fire_system": ["Pump auto start", "Hydrant pressure", "Sprinkler valves", "Alarm panel", "Extinguisher dates"],
    "ev_charger": ["Connector and cable", "RCD trip test", "Earth resistance", "Firmware and network", "Signage"],
    "cctv": ["Cameras online", "Recording retention", "Lens cleaning", "NVR disk health", "Time sync"],
    "hvac": ["Filters", "Refrigerant pressure", "Drain lines", "Belts and motors", "Thermostats"],
    "other": ["Visual inspection", "Functional test", "Cleaning"],
}
KINDS: Final = list(CHECKLISTS)


def rupees(paise: int) -> str:
    """Integer paise as Indian rupees with Indian digit grouping: 1234567890 -> ₹1,23,45,678.90."""
    sign = "-" if paise < 0 else ""
    whole, fraction = divmod(abs(paise), 100)
    digits = str(whole)
    if len(digits) > 3:
        head, tail = digits[:-3], digits[-3:]
        groups: list[str] = []
        while len(head) > 2:
            groups.insert(0, head[-2:])
            head = head[:-2]
        digits = ",".join([head, *groups, tail]) if head else ",".join([*groups, tail])
    return f"{sign}₹{digits}.{fraction:02d}"


def _principal(request: Request[Any, Any, Any]) -> Principal:
    principal = request.user
    assert isinstance(principal, Principal)
    return principal


async def _towers(site_id: UUID) -> list[dict[str, Any]]:
    return list(
        await Building.select(Building.id, Building.name).where(Building.site == site_id).order_by(Building.code)
    )


async def _resources(site_id: UUID, kinds: list[str]) -> list[dict[str, Any]]:
    return list(
        await Resource.select(Resource.id, Resource.code, Resource.name)
        .where((Resource.site == site_id) & Resource.kind.is_in(kinds))
        .order_by(Resource.code)
    )


@get("/control/assets", opt=page_access(Role.TECHNICIAN, *STAFF), name="control-assets")
async def assets_page(request: Request[Any, Any, Any]) -> Template:
    principal = _principal(request)
    settings = request.app.state.settings
    site_id = principal.site_id
    all_assets = await assets.list_assets(settings, site_id, limit=500, offset=0)
    open_visits = await visits.list_visits(site_id, which="open", limit=500, offset=0)
    next_visit: dict[UUID, visits.VisitView] = {}
    for visit in open_visits.items:
        next_visit.setdefault(visit.asset_id, visit)
    return render(
        request,
        "control/assets.html",
        board=await board.amc_board(site_id),
        assets=all_assets.items,
        next_visit=next_visit,
        contracts=(await contracts.list_contracts(site_id, limit=500, offset=0)).items,
        towers=await _towers(site_id),
        chargers=await _resources(site_id, ["ev_charger"]),
        kinds=KINDS,
        frequencies=[str(f) for f in Frequency],
        reminder_settings=await common.reminder_settings(site_id),
        staff=principal.has_any(STAFF),
        rupees=rupees,
        today=dt.date.today().isoformat(),
    )


# The id is taken as text and parsed here: a path that is not a UUID is this page's own 404 page, not
# the router's JSON 404 (a page answers in HTML, as its document says).
@get("/control/assets/{asset_id:str}", opt=page_access(Role.TECHNICIAN, *STAFF), name="control-asset")
async def asset_page(request: Request[Any, Any, Any], asset_id: FromPath[str]) -> Template:
    principal = _principal(request)
    try:
        parsed = UUID(asset_id)
    except ValueError:
        raise NotFound("asset not found") from None
    story = await history.asset_history(request.app.state.settings, principal.site_id, parsed)
    return render(
        request,
        "control/asset.html",
        story=story,
        checklist=CHECKLISTS.get(story.asset.kind, CHECKLISTS["other"]),
        towers=await _towers(principal.site_id),
        staff=principal.has_any(STAFF),
        rupees=rupees,
    )


@get("/control/places", opt=page_access(*STAFF), name="control-places")
async def places_page(request: Request[Any, Any, Any]) -> Template:
    principal = _principal(request)
    page = await places.list_places(request.app.state.settings, principal.site_id, limit=500, offset=0)
    return render(
        request,
        "control/places.html",
        places=page.items,
        towers=await _towers(principal.site_id),
        bookables=await _resources(principal.site_id, ["amenity"]),
    )


ROUTES: list[ControllerRouterHandler] = [assets_page, asset_page, places_page]
