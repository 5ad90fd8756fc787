"""The control-room dashboard (``/control``): the FM team's live board, sized for a wall screen.

The page is a server-rendered skeleton (the composer's towers, units and roles come from the
site); ``control.js`` fills each board from ``/api/dashboard/...``, the slots, announcement and billing
(``/api/billing/collections``) APIs, then keeps it live from ``site:{id}:control`` and ``site:{id}:slots``.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.response import Template
from litestar.types import ControllerRouterHandler

from app.auth.principal import Principal
from app.auth.roles import STAFF
from app.dashboard.service import audience_options, console_people
from app.web.pages import page_access, render
from notifications.categories import Category, Channel, Urgency


@get("/control", opt=page_access(*STAFF), name="control-room")
async def control_room(request: Request[Any, Any, Any]) -> Template:
    principal = request.user
    assert isinstance(principal, Principal)
    options = await audience_options(principal.site_id)
    return render(
        request,
        "control/dashboard.html",
        options=options,
        categories=[str(c) for c in Category],
        channels=[str(c) for c in Channel],
        urgencies=[str(u) for u in Urgency],
        config={"site_id": str(principal.site_id), "people": await console_people(principal.site_id)},
    )


ROUTES: list[ControllerRouterHandler] = [control_room]
