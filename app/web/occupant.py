"""The occupant app (``/app``): mobile-first, for the people who live or work in the units."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.response import Template
from litestar.types import ControllerRouterHandler

from app.auth.roles import Role
from app.web.pages import page_access, render


@get("/app", opt=page_access(Role.OCCUPANT), name="occupant-app")
async def occupant_app(request: Request[Any, Any, Any]) -> Template:
    return render(request, "occupant/app.html")


ROUTES: list[ControllerRouterHandler] = [occupant_app]
