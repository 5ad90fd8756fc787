"""The control-room dashboard (``/control``): the FM team's live board, sized for a wall screen."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.response import Template
from litestar.types import ControllerRouterHandler

from app.auth.roles import STAFF
from app.web.pages import page_access, render


@get("/control", opt=page_access(*STAFF), name="control-room")
async def control_room(request: Request[Any, Any, Any]) -> Template:
    return render(request, "control/dashboard.html")


ROUTES: list[ControllerRouterHandler] = [control_room]
